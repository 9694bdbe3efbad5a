"""``cardline prep`` end to end on a private SoftHSM token, checked with OpenSSL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from applets.emrtd.lds.sod import parse_sod
from applets.iso7816 import tlv
from hsm.certificates import verify_certificate_signature
from personalization.demoregistry import demo_registry
from tests.support.crew import enrol, passphrase
from tests.support.embedded import embedded_line


def _cardline(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`cardline` in ``cwd``, acting as tess of the crew there (an officer, for prep)."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env.update(CARDLINE_USER="tess", CARDLINE_PASSPHRASE=passphrase("tess"))
    return subprocess.run([sys.executable, "-m", "personalization", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _line(tmp: Path, ec_parameters: str) -> Path:
    return embedded_line(tmp, {"ec_parameters: explicit": f"ec_parameters: {ec_parameters}"})


@pytest.fixture(scope="module", params=["named", "explicit"])
def prepared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A line with its own token, CSCA and DS; 5 applications + 1 bad one prepared."""
    tmp = tmp_path_factory.mktemp(f"prep-{request.param}")
    crew = enrol(_line(tmp, request.param))
    officers = crew.officers("tess", "olga")
    for args in (["keys", "setup-embedded"], ["keys", "init", *officers],
                 ["keys", "new-ds", *officers], ["keys", "export-csca", "--out", "csca.pem"],
                 ["applications", "synth", "--count", "5", "--seed", "11", "--out", "apps.jsonl"]):
        done = _cardline(*args, cwd=tmp)
        assert done.returncode == 0, done.stderr
    bad = json.loads((tmp / "apps.jsonl").read_text(encoding="utf-8").splitlines()[0])
    bad.update(application_id="BAD-1", personal_id="999000000000")
    with (tmp / "apps.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(bad, ensure_ascii=False) + "\n")
    signed = demo_registry(tmp / "data").sign_file(tmp / "apps.jsonl", tmp / "apps.p7m",
                                                   "RB-PREP")  # as the registry sends it
    done = _cardline("prep", str(signed), "--out", "out", cwd=tmp)
    assert done.returncode == 1, done.stderr  # 1: some applications were rejected
    return tmp


def _sod_content(path: Path) -> bytes:
    return tlv.decode_single(path.read_bytes(), 0x77).value


def test_prep_writes_every_file_and_a_report(prepared: Path) -> None:
    """Valid applications get a folder of five files; the bad one is listed with its reason."""
    report = json.loads((prepared / "out" / "prep.json").read_text(encoding="utf-8"))
    assert len(report["prepared"]) == 5
    assert [r["application_id"] for r in report["rejected"]] == ["BAD-1"]
    assert report["rejected"][0]["errors"][0]["field"] == "personal_id"
    for entry in report["prepared"]:
        folder = prepared / "out" / entry["application_id"]
        assert sorted(p.name for p in folder.iterdir()) == [
            "EF.COM.bin", "EF.DG1.bin", "EF.DG13.bin", "EF.DG2.bin", "EF.DG3.bin", "EF.SOD.bin"]
    assert not (prepared / "out" / "BAD-1").exists()


def test_sod_hashes_match_and_flips_are_detected(prepared: Path) -> None:
    """Each SOD hashes its DG files; a flipped DG byte no longer matches its hash."""
    for folder in (p for p in (prepared / "out").iterdir() if p.is_dir()):
        sod = parse_sod((folder / "EF.SOD.bin").read_bytes())
        for number in (1, 2, 13):
            data = bytearray((folder / f"EF.DG{number}.bin").read_bytes())
            assert hashlib.sha256(data).digest() == sod.dg_hashes[number]
            data[len(data) // 2] ^= 0x01
            assert hashlib.sha256(data).digest() != sod.dg_hashes[number]


def _openssl_verify(sod: bytes, tmp: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    (tmp / "sod.der").write_bytes(sod)
    return subprocess.run(["openssl", "cms", "-verify", "-inform", "DER", "-in",
                           str(tmp / "sod.der"), "-binary", "-purpose", "any", "-CAfile",
                           str(tmp / "csca.pem"), "-out", str(tmp / "econtent.der"), *extra],
                          capture_output=True, check=False)


def test_openssl_verifies_every_sod_against_the_exported_csca(prepared: Path) -> None:
    """openssl cms -verify accepts each SOD: with the chain to the CSCA for named curves; for
    ICAO explicit parameters (refused by OpenSSL 3 chain building) the CMS signature with
    -noverify, plus the DS certificate checked against the CSCA."""
    explicit = "explicit" in prepared.name
    csca_pem = (prepared / "csca.pem").read_text(encoding="ascii")
    for folder in (p for p in (prepared / "out").iterdir() if p.is_dir()):
        content = _sod_content(folder / "EF.SOD.bin")
        done = _openssl_verify(content, prepared, *(["-noverify"] if explicit else []))
        assert done.returncode == 0, done.stderr.decode()
        sod = parse_sod((folder / "EF.SOD.bin").read_bytes())
        assert (prepared / "econtent.der").read_bytes() == sod.econtent
        if explicit:
            import base64

            der = base64.b64decode("".join(csca_pem.strip().splitlines()[1:-1]))
            verify_certificate_signature(sod.certificates[0], der)
            chain = _openssl_verify(content, prepared)
            assert b"explicit ECC parameters" in chain.stderr


def test_openssl_rejects_a_flipped_signature_byte(prepared: Path) -> None:
    """One flipped byte in the SOD signature makes openssl cms -verify fail."""
    folder = next(p for p in (prepared / "out").iterdir() if p.is_dir())
    content = bytearray(_sod_content(folder / "EF.SOD.bin"))
    content[-5] ^= 0x01  # inside the signature, the last element of the SignerInfo
    done = _openssl_verify(bytes(content), prepared, "-noverify")
    assert done.returncode != 0
