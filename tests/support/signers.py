"""A software Document Signer for tests that need a signature but not an HSM.

It has the ``SODSigner`` shape (``applets.emrtd.lds.sod``) over an in-process ECDSA key, so
codecs, preparation and QA can be tested without a token; every test that claims HSM
behaviour uses SoftHSM instead (tests/hsm).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID


def self_signed_certificate(key: CertificateIssuerPrivateKeyTypes, common_name: str = "Test DS",
                            *, country: str | None = "VN", serial: int | None = None,
                            not_before: datetime | None = None, days: int = 30) -> bytes:
    """DER of a certificate for ``key`` signed by itself; a random serial unless one is given.

    Without ``not_before`` it is valid from a day ago, so it is valid now.
    """
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, country)] if country else []
    name = x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = not_before or datetime.now(UTC) - timedelta(days=1)
    number = x509.random_serial_number() if serial is None else serial
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(number)
        .not_valid_before(start).not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.DER)


@dataclass
class SoftwareSigner:
    """ECDSA with SHA-256 over an in-process key, presenting ``certificate_der`` as the DS."""

    key: ec.EllipticCurvePrivateKey
    certificate_der: bytes
    signature_algorithm: str = "ecdsa-with-SHA256"

    @classmethod
    def create(cls) -> SoftwareSigner:
        """A fresh P-256 key with a self-signed certificate valid now."""
        key = ec.generate_private_key(ec.SECP256R1())
        return cls(key, self_signed_certificate(key))

    def sign(self, data: bytes) -> bytes:
        """DER ECDSA signature over SHA-256(data)."""
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def verify(self, data: bytes, signature: bytes) -> None:
        """Raise ``InvalidSignature`` when the signature does not verify."""
        self.key.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
