"""The registry's boundary through the `cardline` command, with files made by openssl as the
registry would make them: a signed batch is taken; an unsigned, untrusted, expired, tampered,
replayed or wrongly encrypted one is refused with its reason before a record is read, and
nothing of it is kept; `prep` signs only verified batches and records every signature."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from personalization.synth import synthesize
from tests.support.crew import Crew, enrol
from tests.support.embedded import embedded_line

pytestmark = [pytest.mark.softhsm, pytest.mark.slow]


def _openssl(*args: str | Path) -> None:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def _key_and_csr(folder: Path, name: str, subject: str) -> None:
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", folder / f"{name}.key", "-out", folder / f"{name}.csr", "-subj", subject)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registry's CA (trusted by the line), its batch signer, an expired signer and a
    signer of no one the line knows; made with openssl (the expired one with cryptography,
    since openssl 3.0 cannot back-date a certificate)."""
    folder = tmp_path_factory.mktemp("registry")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", folder / "ca.key", "-out", folder / "ca.pem", "-days", "3650",
             "-subj", "/C=VN/O=Registry/CN=Registry CA")
    _key_and_csr(folder, "signer", "/C=VN/O=Registry/CN=Registry batch signer")
    _openssl("x509", "-req", "-in", folder / "signer.csr", "-CA", folder / "ca.pem", "-CAkey",
             folder / "ca.key", "-days", "365", "-out", folder / "signer.pem")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", folder / "rogue.key", "-out", folder / "rogue.pem", "-days", "30",
             "-subj", "/CN=Registry batch signer")
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    old = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    expired = (x509.CertificateBuilder().subject_name(
        x509.Name.from_rfc4514_string("CN=Registry old signer,O=Registry,C=VN"))
        .issuer_name(ca.subject).public_key(old.public_key()).serial_number(7)
        .not_valid_before(now - timedelta(days=400)).not_valid_after(now - timedelta(days=35))
        .sign(ca_key, hashes.SHA256()))
    (folder / "expired.pem").write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    (folder / "expired.key").write_bytes(old.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return folder


def _sign(registry: Path, records: Path, out: Path, signer: str = "signer") -> Path:
    """What the registry runs: an enveloping CMS SignedData over the JSON Lines, DER."""
    _openssl("cms", "-sign", "-nodetach", "-binary", "-outform", "DER", "-in", records,
             "-signer", registry / f"{signer}.pem", "-inkey", registry / f"{signer}.key",
             "-out", out)
    return out


def _line(tmp: Path, registry: Path) -> Path:
    return embedded_line(tmp, {"trust: [.cardline/registry/demo-registry.pem]":
                               f"trust: [{registry / 'ca.pem'}]"})


def _cardline(tmp: Path, crew: Crew, *args: str, who: str = "tess",
              ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in crew.env(who).items() if k != "SOFTHSM2_CONF"}
    env["COLUMNS"] = "400"  # messages on one line, as the assertions read them
    return subprocess.run([sys.executable, "-m", "personalization", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _rows(tmp: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(tmp / "data" / "journal.db")
    try:
        return list(db.execute(sql))
    finally:
        db.close()


@pytest.fixture
def line(tmp_path: Path, registry: Path) -> Crew:
    """An embedded line trusting the registry's CA, with its token and its crew."""
    _line(tmp_path, registry)
    done = subprocess.run([sys.executable, "-m", "personalization", "keys", "setup-embedded"],
                          cwd=tmp_path, capture_output=True, text=True, check=False,
                          env={k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"})
    assert done.returncode == 0, done.stderr
    return enrol(tmp_path / "line.yaml")


def test_a_signed_batch_is_taken_and_every_other_file_refused_unread(
        line: Crew, tmp_path: Path, registry: Path) -> None:
    """openssl's signed file is checked and imported; unsigned, untrusted, expired, tampered
    and replayed files are refused with their reason, and nothing of them is kept."""
    apps = tmp_path / "apps.jsonl"
    synthesize(3, 5, apps, registry_batch="RB-2026-0001")
    signed = _sign(registry, apps, tmp_path / "apps.p7m")

    checked = _cardline(tmp_path, line, "applications", "check", str(signed), "--json")
    assert checked.returncode == 0, checked.stderr
    summary = json.loads(checked.stdout)
    assert (summary["valid"], summary["registry_batch"]) == (3, "RB-2026-0001")
    assert "CN=Registry batch signer" in summary["signer"]

    tampered = tmp_path / "tampered.p7m"
    body = bytearray(signed.read_bytes())
    at = body.index(b"RB-2026-0001")
    body[at + 11] ^= 0x01  # one byte of the signed content: ...0001 -> ...0000
    tampered.write_bytes(bytes(body))
    refusals = {
        "plain": (apps, "unsigned"),
        "rogue": (_sign(registry, apps, tmp_path / "rogue.p7m", "rogue"), "is not trusted"),
        "expired": (_sign(registry, apps, tmp_path / "expired.p7m", "expired"),
                    "the signer's certificate expired on"),
        "tampered": (tampered, "the content was changed after signing"),
    }
    for case, (file, reason) in refusals.items():
        for command in (["applications", "check", str(file)],
                        ["batch", "create", str(file), "--name", f"X-{case}"]):
            done = _cardline(tmp_path, line, *command)
            assert done.returncode == 2, (case, command, done.stdout, done.stderr)
            assert "refused" in done.stderr and reason in done.stderr, (case, done.stderr)
    assert _rows(tmp_path, "SELECT name FROM batches") == []
    assert _rows(tmp_path, "SELECT count(*) FROM applications") == [(0,)]

    created = _cardline(tmp_path, line, "batch", "create", str(signed), "--name", "B1",
                        "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["accepted"] == 3
    [(registry_id, batch, signer, encrypted)] = _rows(
        tmp_path, "SELECT id, batch, signer, encrypted FROM registry_batches")
    assert (registry_id, batch, encrypted) == ("RB-2026-0001", "B1", 0)
    assert "CN=Registry batch signer" in str(signer)
    received = [json.loads(str(d)) for (d,) in _rows(
        tmp_path, "SELECT data FROM events WHERE kind = 'registry.received'")]
    assert [(r["registry_batch"], r["actor"]) for r in received] == [("RB-2026-0001", "tess")]
    assert not list((tmp_path / "data" / "intake").iterdir())  # the private copy is gone

    for command in (["batch", "create", str(signed), "--name", "B2"],
                    ["applications", "check", str(signed)]):
        replay = _cardline(tmp_path, line, *command)
        assert replay.returncode == 2 and "'RB-2026-0001' was already received" in \
            replay.stderr, replay.stderr
    assert [name for (name,) in _rows(tmp_path, "SELECT name FROM batches")] == ["B1"]


def test_unsigned_files_only_on_the_embedded_default(line: Crew, tmp_path: Path) -> None:
    """`--unsigned` takes a plain file on the embedded default, and says no anywhere else."""
    apps = tmp_path / "plain.jsonl"
    synthesize(2, 6, apps)
    taken = _cardline(tmp_path, line, "batch", "create", str(apps), "--name", "U1",
                      "--unsigned")
    assert taken.returncode == 0, taken.stderr
    assert _rows(tmp_path, "SELECT count(*) FROM registry_batches") == [(0,)]

    text = (tmp_path / "line.yaml").read_text(encoding="utf-8")
    (tmp_path / "factory.yaml").write_text(text.replace("pin_source: embedded",
                                                        "pin_source: env"), encoding="utf-8")
    refused = _cardline(tmp_path, line, "batch", "create", str(apps), "--name", "U2",
                        "--unsigned", "--config", "factory.yaml")
    assert refused.returncode == 2 and "--unsigned is for the embedded default only" in \
        refused.stderr, refused.stderr
    assert [name for (name,) in _rows(tmp_path, "SELECT name FROM batches")] == ["U1"]


def test_an_encrypted_batch_opens_with_this_factorys_key_only(
        line: Crew, tmp_path: Path, registry: Path) -> None:
    """The registry encrypts the signed file to the factory's certificate (`keys factory`);
    the key in the HSM opens it; a file encrypted to another factory is refused."""
    made = _cardline(tmp_path, line, "keys", "factory", "--out", "factory")
    assert made.returncode == 0, made.stderr
    apps = tmp_path / "apps.jsonl"
    synthesize(2, 8, apps, registry_batch="RB-2026-0002")
    signed = _sign(registry, apps, tmp_path / "apps.p7m")
    ours = tmp_path / "ours.p7m"
    _openssl("cms", "-encrypt", "-binary", "-outform", "DER", "-aes-256-cbc", "-in", signed,
             "-recip", tmp_path / "factory" / "factory-enc.pem", "-out", ours)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "other.key",
             "-out", tmp_path / "other.pem", "-days", "30", "-subj", "/CN=another factory")
    theirs = tmp_path / "theirs.p7m"
    _openssl("cms", "-encrypt", "-binary", "-outform", "DER", "-aes-256-cbc", "-in", signed,
             "-recip", tmp_path / "other.pem", "-out", theirs)

    refused = _cardline(tmp_path, line, "batch", "create", str(theirs), "--name", "E0")
    assert refused.returncode == 2, refused.stderr
    assert "encrypted to another recipient, not this factory's key" in refused.stderr

    created = _cardline(tmp_path, line, "batch", "create", str(ours), "--name", "E1", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["accepted"] == 2
    assert _rows(tmp_path, "SELECT id, batch, encrypted FROM registry_batches") == [
        ("RB-2026-0002", "E1", 1)]


def test_prep_signs_verified_batches_only_and_records_each_signature(
        line: Crew, tmp_path: Path, registry: Path) -> None:
    """`prep` refuses a plain file; on a signed one every EF.SOD's signature is in the
    journal (document number, DS key, time) before the card's files are written."""
    ceremony = line.officers("tess", "olga")
    for command in (["keys", "init", *ceremony], ["keys", "new-ds", *ceremony]):
        done = _cardline(tmp_path, line, *command)
        assert done.returncode == 0, done.stderr
    apps = tmp_path / "apps.jsonl"
    synthesize(3, 9, apps, registry_batch="RB-2026-0003")
    refused = _cardline(tmp_path, line, "prep", str(apps), "--out", "plain-out")
    assert refused.returncode == 2 and "unsigned" in refused.stderr
    assert not (tmp_path / "plain-out").exists()

    signed = _sign(registry, apps, tmp_path / "apps.p7m")
    done = _cardline(tmp_path, line, "prep", str(signed), "--out", "out")
    assert done.returncode == 0, done.stdout + done.stderr
    prepared = json.loads((tmp_path / "out" / "prep.json").read_text(encoding="utf-8"))
    numbers = sorted(p["document_number"] for p in prepared["prepared"])
    rows = _rows(tmp_path, "SELECT ds, document_number, command, application_id, at "
                           "FROM ds_signatures ORDER BY id")
    assert sorted(str(r[1]) for r in rows) == numbers and len(numbers) == 3
    assert {(r[0], r[2]) for r in rows} == {(prepared["document_signer"], "prep")}
    assert all(datetime.fromisoformat(str(r[4])) <= datetime.now(UTC) for r in rows)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db = sqlite3.connect(tmp_path / "data" / "journal.db")
        try:
            db.execute("DELETE FROM ds_signatures")
        finally:
            db.close()
