"""The CSCA's own SoftHSM token, whose PIN is returned once and kept nowhere."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hsm.errors import PINIncorrect
from hsm.pkcs11 import HSM, release_module
from hsm.softhsm import ensure_embedded_token, ensure_quorum_token, softhsm_module, token_exists

pytestmark = pytest.mark.softhsm

MODULE = str(softhsm_module())
LABEL = "cardline-csca"


@pytest.fixture
def argv_seen(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every command line softhsm.py runs, recorded while still running it."""
    seen: list[list[str]] = []
    real_run = subprocess.run

    def recording(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        seen.append(list(argv))
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", recording)
    return seen


@pytest.fixture
def configured() -> Iterator[None]:
    """SoftHSM re-reads SOFTHSM2_CONF when the module is initialised: release it around a test."""
    release_module(MODULE)
    yield
    release_module(MODULE)


def _login(conf: Path, pin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    release_module(MODULE)
    with HSM(MODULE, LABEL, pin) as opened:
        assert opened.token_label == LABEL


def test_pin_is_returned_once_and_logs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          configured: None, argv_seen: list[list[str]]) -> None:
    """The first call creates the token and returns its PIN; the second returns None."""
    conf, pin = ensure_quorum_token(tmp_path, LABEL)
    assert pin is not None and len(pin) == 32
    assert token_exists(conf, LABEL)
    assert ensure_quorum_token(tmp_path, LABEL) == (conf, None)
    _login(conf, pin, monkeypatch)
    assert any("--init-token" in argv for argv in argv_seen)
    assert not any(pin in arg for argv in argv_seen for arg in argv)


def test_no_file_holds_the_pin(tmp_path: Path, configured: None) -> None:
    """Nothing under the data folder contains the PIN, and no PIN file is written."""
    _, pin = ensure_quorum_token(tmp_path, LABEL)
    assert pin is not None
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert files
    assert not any(pin.encode("ascii") in path.read_bytes() for path in files)
    assert not list(tmp_path.rglob("*.pin"))


def test_shares_the_embedded_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           configured: None) -> None:
    """The quorum token sits next to the line token in one softhsm2.conf; each has its PIN."""
    line_conf = ensure_embedded_token(tmp_path, "cardline-line")
    conf, pin = ensure_quorum_token(tmp_path, LABEL)
    assert conf == line_conf and pin is not None
    assert token_exists(conf, "cardline-line") and token_exists(conf, LABEL)
    line_pin = (tmp_path / "softhsm" / "user.pin").read_text().strip()
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    release_module(MODULE)
    with pytest.raises(PINIncorrect), HSM(MODULE, LABEL, line_pin):
        pass
    _login(conf, pin, monkeypatch)
    assert os.environ["SOFTHSM2_CONF"] == str(conf)
