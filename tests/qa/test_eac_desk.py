"""The QA desk's EAC check: `--can` / `--pace` access keys, and the desk's HSM-backed inspection
system (SoftHSM) passing TA on a chip that trusts the line's CVCA."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from applets.emrtd.cvc import CVCertificate
from applets.transport.base import DirectTransport
from hsm.pkcs11 import release_module
from personalization.config import load_config
from personalization.service import eac
from personalization.service.errors import ServiceError
from personalization.service.qa import access_keys, desk_terminal
from qa.eac import EACAccess, Password
from qa.passive_auth import TrustStore
from qa.verify import verify_card
from tests.applets.eac_cards import CAN
from tests.personalization.test_eac_cli import LINE_YAML, MODULE
from tests.qa.cards import AT, PKI, Prepared
from tests.qa.eac_chips import expected_with_fingers, personalize_eac_chip
from tests.support.crew import enrol, keys_cli, officer_args

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"document_number": "093047064", "birth": "930105", "expiry": "330105"}


def test_can_alone_opens_with_pace_and_no_keys() -> None:
    """`--can` alone: PACE with the CAN, no MRZ keys, no BAC fallback."""
    access = access_keys(can="123456")
    assert (access.keys, access.password, access.can, access.allow_bac) == (
        None, Password.CAN, "123456", False)


def test_pace_with_the_mrz_keeps_the_mrz_checks(prepared: Prepared) -> None:
    """`--pace --mrz …`: PACE with the MRZ; DG1 is still compared with the typed MRZ."""
    access = access_keys(prepared.data.mrz.text, pace=True, allow_bac=True)
    assert access.password is Password.MRZ and access.allow_bac
    assert access.keys == prepared.keys and access.expected.mrz == prepared.data.mrz.text


@pytest.mark.parametrize("arguments,said", [
    ({"can": "12a456"}, "6 digits"),
    ({"can": "123456", "pace": True}, "not both"),
    ({"pace": True}, "--mrz"),
    ({"can": "123456", "allow_bac": True}, "--mrz"),
    ({"allow_bac": True, **FIELDS}, "--can or --pace"),
])
def test_inconsistent_access_is_refused(arguments: dict[str, object], said: str) -> None:
    """A malformed CAN, --can with --pace, PACE-MRZ or BAC fallback without the MRZ, and
    --allow-bac for a BAC check are refused, never echoing the CAN."""
    with pytest.raises(ServiceError, match=said) as caught:
        access_keys(**arguments)  # type: ignore[arg-type]
    assert "12a456" not in str(caught.value)


def test_cli_bad_can_exit_2() -> None:
    """`cardline qa verify --can` with a malformed CAN exits 2 before any reader or HSM."""
    result = subprocess.run(
        [sys.executable, "-c", "from personalization.cli import main; main()", "qa", "verify",
         "--reader", "R", "--can", "12345", "--trust", "x.pem"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "COLUMNS": "200"})
    assert result.returncode == 2 and "CAN" in result.stderr


@pytest.fixture
def desk_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A line with its embedded SoftHSM token, CSCA, and the EAC keys of `keys eac-init`."""
    path = tmp_path / "line.yaml"
    path.write_text(LINE_YAML.format(module=MODULE), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    for key, value in enrol(path).env("tess", {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SOFTHSM2_CONF", "/nonexistent")
    release_module(MODULE)
    for command in (["setup-embedded", "-c", str(path)],
                    ["init", "-c", str(path), *officer_args(path)],
                    ["eac-init", "-c", str(path), *officer_args(path)]):
        code, out = keys_cli(*command)
        assert code == 0, out
    yield path
    release_module(MODULE)


@pytest.mark.softhsm
def test_desk_terminal_passes_ta(desk_line: Path, prepared: Prepared, pki: PKI,
                                 trust: TrustStore) -> None:
    """The desk's chain (CVCA dropped, DV, IS) and HSM signer pass TA on a chip trusting the
    line's CVCA: PACE, PA, CA, TA, AA, DG3 as prepared."""
    cvca = CVCertificate.decode(eac.export_cvca(load_config(desk_line)))
    card = personalize_eac_chip(prepared, pki.signer(), trust_point=cvca,
                                chip_date=date.today())
    with desk_terminal(desk_line) as terminal:
        assert len(terminal.chain) == 2 and terminal.chain[0].body.car == cvca.body.chr
        verdict = verify_card(DirectTransport(card), None, trust, at=AT, rng=os.urandom,
                              access=EACAccess.by_can(CAN, terminal),
                              expected=expected_with_fingers(prepared))
    assert verdict.passed, verdict.reasons
    assert verdict.protocols == ("PACE", "PA", "CA", "TA", "AA")
