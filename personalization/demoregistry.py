"""A stand-in for the population registry on the embedded default: its own signing key and
certificate under ``data_dir/registry`` (the shipped ``line.yaml`` trusts that certificate),
so the demo and the README's run can sign application batches as the registry does.

The key is the registry's, not the factory's: it lives in a file (owner-only) because the
registry is outside cardline. A factory line trusts the real registry's certificate instead
and never has this key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from common.files import write_private
from hsm.cmsfile import open_signed
from personalization.applications.intake import IntakeRules, read_applications
from personalization.applications.lines import REGISTRY_HEADER
from personalization.applications.model import Application
from personalization.journal.port import JournalPort
from personalization.journal.registry_port import ReceivedRow
from personalization.prep import document_number

__all__ = ["DemoRegistry", "demo_registry", "ensure_demo_registry", "verified_batch",
           "with_header"]

_VALID = timedelta(days=5 * 365)


@dataclass(frozen=True, slots=True)
class DemoRegistry:
    """Where the demo registry's certificate (PEM) and key (PEM, owner-only) are."""

    certificate: Path
    key: Path

    def sign(self, content: bytes) -> bytes:
        """``content`` as an enveloping CMS SignedData (DER), as the registry sends it."""
        certificate = x509.load_pem_x509_certificate(self.certificate.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.key} is not the demo registry's EC key")
        return (pkcs7.PKCS7SignatureBuilder().set_data(content)
                .add_signer(certificate, key, hashes.SHA256())
                .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))

    def sign_file(self, records: Path, out: Path, registry_id: str) -> Path:
        """Sign a JSON Lines file as registry batch ``registry_id`` (its header line added
        when the file has none) into ``out``."""
        write_private(out, self.sign(with_header(records.read_bytes(), registry_id)))
        return out


def with_header(content: bytes, registry_id: str) -> bytes:
    """JSON Lines led by the registry's header line naming its batch (kept if present)."""
    if content.lstrip().startswith(b'{"' + REGISTRY_HEADER.encode()):
        return content
    header = json.dumps({REGISTRY_HEADER: registry_id}).encode() + b"\n"
    return header + content


def demo_registry(data_dir: Path) -> DemoRegistry:
    """Where the demo registry of ``data_dir`` keeps its key and certificate."""
    folder = data_dir / "registry"
    return DemoRegistry(folder / "demo-registry.pem", folder / "demo-registry.key")


def ensure_demo_registry(data_dir: Path) -> DemoRegistry:
    """The demo registry's key and self-signed certificate, made once."""
    registry = demo_registry(data_dir)
    if registry.certificate.is_file() and registry.key.is_file():
        return registry
    registry.key.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "cardline demo"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "cardline demo registry")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(secrets.randbits(63) | 1)
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                     key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(key, hashes.SHA256()))
    write_private(registry.key, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    registry.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return registry



def verified_batch(journal: JournalPort, name: str, records: Path, registry: DemoRegistry, *,
                   policy: IntakeRules, today: date, profile: str = "cccd",
                   max_attempts: int = 3) -> list[Application]:
    """Batch ``name`` made from ``records`` the way a line makes one from the registry, in one
    chunk: the file signed by the stand-in registry, verified against its certificate,
    received once under its registry batch id, and its valid applications queued (for
    benchmarks and tests that drive the line without ``batch create``)."""
    registry_id = f"RB-{name}"
    signed = registry.sign(with_header(records.read_bytes(), registry_id))
    certificate = x509.load_pem_x509_certificate(registry.certificate.read_bytes())
    opened = open_signed(signed, trust=[certificate.public_bytes(serialization.Encoding.DER)],
                         now=datetime.now(UTC))
    verified = records.with_name(f".{records.stem}.verified.jsonl")
    write_private(verified, opened.content)
    try:
        found = read_applications(verified, replace(policy, photo_digests=True), today,
                                  records.parent)
    finally:
        verified.unlink()
    journal.receive(ReceivedRow(
        registry_id, name, hashlib.sha256(signed).hexdigest(),
        opened.signer, False,
        datetime.now(UTC).isoformat(timespec="seconds")), actor=None)
    journal.create_batch(name, source=str(records), profile=profile, max_attempts=max_attempts,
                         valid=[(n, a, document_number(a)) for n, a in found.valid],
                         invalid=found.invalid)
    return [application for _, application in found.valid]
