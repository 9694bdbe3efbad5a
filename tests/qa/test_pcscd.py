"""QA through the real pcscd: a chip personalized over PC/SC passes, `cardline qa` verifies and
dumps it by subprocess, and the bench figures come out of the same path."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from applets.emrtd.lds.files import BY_FID
from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank
from applets.virtual.store import ChipStore
from hsm.certificates import certificate_to_pem
from qa import bench
from qa.passive_auth import TrustStore
from qa.verify import verify_card
from tests.qa.cards import AT, PKI, Prepared, personalize

pytestmark = pytest.mark.pcscd
ROOT = Path(__file__).resolve().parents[2]
CARDLINE = [sys.executable, "-c", "from personalization.cli import main; main()"]


@pytest.fixture(scope="module")
def encoded(encoder_bank: EncoderBank, prepared: Prepared,
            pki: PKI) -> Iterator[tuple[str, dict[str, bytes]]]:
    """A blank chip from the bank's store, personalized through PC/SC; (reader, files)."""
    serial = ChipStore(encoder_bank.chips_dir).create_blanks(1, "QAPCSC")[0]
    client = encoder_bank.client()
    index = next(i for i, s in client.status().items() if s is None)
    client.insert(index, serial)
    reader = encoder_bank.reader_name(index)
    try:
        with PCSCTransport(reader) as transport:
            transport.wait_for_card(5.0)
            files = personalize(transport, prepared, pki.signer())
        yield reader, {BY_FID[fid].name: body for fid, body in files.items()}
    finally:
        client.remove(index)
        with PCSCTransport(reader) as transport:
            transport.wait_for_removal(5.0)  # pcscd notices on its next poll


def test_personalized_chip_passes_over_pcscd(encoded: tuple[str, dict[str, bytes]],
                                             prepared: Prepared, trust: TrustStore) -> None:
    """A card personalized by an encoder passes the full in-line check through real pcscd."""
    reader, files = encoded
    with PCSCTransport(reader) as transport:
        verdict = verify_card(transport, prepared.keys, trust, at=AT, expected=prepared.expected)
    assert verdict.passed, verdict.reasons
    assert verdict.files == files


def test_bench_figures_over_pcscd(encoded: tuple[str, dict[str, bytes]], prepared: Prepared,
                                  trust: TrustStore) -> None:
    """measure() gives positive ms and the APDU count of a full check (about 21 APDUs)."""
    with PCSCTransport(encoded[0]) as transport:
        figures = bench.measure(transport, prepared.keys, trust, at=AT, cards=5,
                                expected=prepared.expected)
    assert set(figures) == {"qa_ms_per_card", "qa_apdus_per_card"}
    assert figures["qa_ms_per_card"] > 0
    assert 15 <= figures["qa_apdus_per_card"] <= 30


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CARDLINE, "qa", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, check=False)


def _keys(prepared: Prepared) -> list[str]:
    keys = prepared.keys
    return ["--document-number", keys.document_number, "--birth", keys.date_of_birth,
            "--expiry", keys.date_of_expiry]


def test_cli_verify_and_dump(encoded: tuple[str, dict[str, bytes]], prepared: Prepared,
                             pki: PKI, tmp_path: Path) -> None:
    """`qa verify --json` passes (exit 0) and `qa dump` writes every file's exact bytes."""
    reader, files = encoded
    pem = tmp_path / "csca.pem"
    pem.write_text(certificate_to_pem(pki.csca_der))
    result = _cli("verify", "--reader", reader, "--mrz", prepared.data.mrz.text, "--trust",
                  str(pem), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["verdict"] == "pass" and report["reasons"] == []
    assert report["apdus"] > 0 and set(report["files"]) == set(files)
    out = tmp_path / "dump"
    result = _cli("dump", "--reader", reader, *_keys(prepared), "--trust", str(pem),
                  "--out", str(out))
    assert result.returncode == 0, result.stderr
    for name, body in files.items():
        assert (out / f"{name}.bin").read_bytes() == body
    assert json.loads((out / "summary.json").read_text())["verdict"] == "pass"


def test_cli_wrong_keys_fail_with_bac_failed(encoded: tuple[str, dict[str, bytes]],
                                             pki: PKI, tmp_path: Path) -> None:
    """Keys that do not open the chip give exit 1 and the stable code bac_failed."""
    pem = tmp_path / "csca.pem"
    pem.write_text(certificate_to_pem(pki.csca_der))
    result = _cli("verify", "--reader", encoded[0], "--document-number", "000000000",
                  "--birth", "900101", "--expiry", "300101", "--trust", str(pem), "--json")
    assert result.returncode == 1, result.stderr
    assert [r["code"] for r in json.loads(result.stdout)["reasons"]] == ["bac_failed"]


def test_cli_unknown_reader_is_an_operational_error(encoder_bank: EncoderBank, pki: PKI,
                                                    tmp_path: Path) -> None:
    """A reader pcscd does not know exits 2 with a message naming it."""
    pem = tmp_path / "csca.pem"
    pem.write_text(certificate_to_pem(pki.csca_der))
    result = _cli("verify", "--reader", "No Such Reader 00 00", "--document-number", "1",
                  "--birth", "900101", "--expiry", "300101", "--trust", str(pem))
    assert result.returncode == 2
    assert "No Such Reader" in result.stderr
