"""An in-process Document Signer for pure-layer tests (the SoftHSM signer is tested in tests/hsm).

It satisfies the SODSigner shape with a software key so preparation logic can be tested
without an HSM; every test that claims HSM behaviour uses SoftHSM instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class LocalSigner:
    """ECDSA P-256 with a self-signed certificate."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls) -> LocalSigner:
        """A fresh key and certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "Test DS")])
        now = datetime.now(UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
        return cls(key, cert)

    @property
    def certificate_der(self) -> bytes:
        """DER of the certificate."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def signature_algorithm(self) -> str:
        """The SOD signature algorithm name."""
        return "ecdsa-with-SHA256"

    def sign(self, data: bytes) -> bytes:
        """DER ECDSA signature over SHA-256(data)."""
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def verify(self, data: bytes, signature: bytes) -> None:
        """Raise when the signature does not verify."""
        self.key.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
