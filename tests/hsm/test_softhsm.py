"""The embedded SoftHSM token set-up."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hsm.pkcs11 import HSM
from hsm.softhsm import ensure_embedded_token, throwaway_token, token_exists

pytestmark = pytest.mark.softhsm


def test_token_is_created_once_with_private_pin_files(tmp_path: Path) -> None:
    """The token exists after set-up, PIN files are 0600, and a second run changes nothing."""
    conf = ensure_embedded_token(tmp_path, "embedded")
    assert token_exists(conf, "embedded")
    for name in ("user.pin", "so.pin"):
        mode = stat.S_IMODE((tmp_path / "softhsm" / name).stat().st_mode)
        assert mode == 0o600
    pin = (tmp_path / "softhsm" / "user.pin").read_text()
    assert ensure_embedded_token(tmp_path, "embedded") == conf
    assert (tmp_path / "softhsm" / "user.pin").read_text() == pin
    assert "directories.tokendir" in conf.read_text()


def test_missing_tool_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without softhsm2-util on PATH the error names the Debian package."""
    from hsm.errors import HSMUnavailable
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HSMUnavailable, match="softhsm2"):
        ensure_embedded_token(tmp_path, "embedded")


def test_throwaway_token_is_the_configuration_only_while_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While open, SOFTHSM2_CONF names the new token, which logs in; afterwards it is restored."""
    monkeypatch.setenv("SOFTHSM2_CONF", "/previous/softhsm2.conf")
    with throwaway_token(tmp_path, "throwaway") as token:
        assert os.environ["SOFTHSM2_CONF"] == str(token.conf)
        with HSM(token.module, token.label, token.pin) as opened:
            assert opened is not None
    assert os.environ["SOFTHSM2_CONF"] == "/previous/softhsm2.conf"
