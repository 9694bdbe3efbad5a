"""The factory's own keys at the registry boundary, made once on the line token and kept.

``FACTORY-SIGN`` (ECDSA P-256) signs the issuance results the factory sends back;
``FACTORY-ENC`` (RSA-3072, decrypt only) is the key the registry encrypts batches to. Each
key's certificate lies on the token next to it, so any process on the line finds it. The SIGN
certificate is self-signed; the ENC certificate is issued by the SIGN key, because a
key-transport key never signs (NIST SP 800-57 Part 1 §5.2: one key, one use), and so the
registry can check with the SIGN certificate it already trusts that the ENC key is ours.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import x509

from hsm import cmsfile, cmssign
from hsm.auditcert import build_key_certificate
from hsm.errors import CertificateError, KeyNotFound
from hsm.pkcs11 import HSM

SIGN_LABEL = "FACTORY-SIGN"
ENC_LABEL = "FACTORY-ENC"
SIGN_ALGORITHM = "ecdsa-p256"
ENC_BITS = 3072
CERTIFICATE_DAYS = 5 * 365


@dataclass(frozen=True)
class FactoryKeys:
    """The DER certificates of the factory's signing and encryption keys."""

    sign_certificate: bytes
    enc_certificate: bytes


def _public_key(hsm: HSM, label: str) -> bytes | None:
    try:
        return hsm.public_key_info(label)
    except KeyNotFound:
        return None


def _check_pair(label: str, certificate: bytes, spki: bytes) -> None:
    named = bytes(x509.Certificate.load(certificate).public_key.dump())
    if named != spki:
        raise CertificateError(f"the certificate {label!r} on the HSM token names another key "
                               f"than the key {label!r}; remove the stale certificate")


def _ensure_key(hsm: HSM, label: str) -> tuple[bytes, bytes | None]:
    """The key's SPKI, and its CKA_ID when it was made just now."""
    spki = _public_key(hsm, label)
    if spki is not None:
        return spki, None
    key_id = secrets.token_bytes(8)
    if label == SIGN_LABEL:
        return hsm.generate_keypair(label, key_id, SIGN_ALGORITHM), key_id
    return hsm.generate_decryption_keypair(label, key_id, ENC_BITS), key_id


def _certify(hsm: HSM, label: str, *, line: str, now: datetime,
             issuer: bytes | None) -> bytes:
    """The certificate of ``label`` on the token, made (and kept there) when absent."""
    spki, key_id = _ensure_key(hsm, label)
    certificate = hsm.certificate(label)
    if certificate is None:
        signing = label == SIGN_LABEL
        moment = now.replace(microsecond=0)
        certificate = build_key_certificate(
            spki_der=spki, serial_number=secrets.randbits(63) or 1,
            common_name=f"cardline factory {'signing' if signing else 'encryption'} {line}",
            organization="cardline", issuer=issuer,
            key_usage=frozenset({"digital_signature" if signing else "key_encipherment"}),
            validity=(moment, moment + timedelta(days=CERTIFICATE_DAYS)),
            sign=lambda tbs: hsm.sign(SIGN_LABEL, tbs, SIGN_ALGORITHM))
        hsm.store_certificate(label, certificate, key_id)
    _check_pair(label, certificate, spki)
    return certificate


def ensure_factory_keys(hsm: HSM, *, line: str, now: datetime) -> FactoryKeys:
    """The factory's two keys and certificates on the token, making whatever is missing;
    refused when a certificate there names another key than the one it lies next to."""
    sign_certificate = _certify(hsm, SIGN_LABEL, line=line, now=now, issuer=None)
    enc_certificate = _certify(hsm, ENC_LABEL, line=line, now=now, issuer=sign_certificate)
    return FactoryKeys(sign_certificate, enc_certificate)


def factory_certificates(hsm: HSM) -> FactoryKeys | None:
    """The two certificates from the token, or None while either is missing."""
    sign_certificate = hsm.certificate(SIGN_LABEL)
    enc_certificate = hsm.certificate(ENC_LABEL)
    if sign_certificate is None or enc_certificate is None:
        return None
    return FactoryKeys(sign_certificate, enc_certificate)


def factory_decrypt(hsm: HSM, keys: FactoryKeys) -> cmsfile.Decrypt:
    """What :func:`cmsfile.open_signed` needs to open a file encrypted to ``FACTORY-ENC``."""

    def unwrap(encrypted_key: bytes, padding: cmsfile.KeyPadding) -> bytes:
        if padding == "pkcs1":
            return hsm.decrypt_rsa(ENC_LABEL, encrypted_key, "pkcs1")
        return hsm.decrypt_rsa(ENC_LABEL, encrypted_key, "oaep", oaep_hash=padding[1])

    return cmsfile.Decrypt(keys.enc_certificate, unwrap)


def sign_results(hsm: HSM, keys: FactoryKeys, content: bytes, at: datetime) -> bytes:
    """``content`` in a CMS SignedData signed with ``FACTORY-SIGN`` (ECDSA P-256, SHA-256)."""
    return cmssign.sign_enveloping(content, certificate=keys.sign_certificate, at=at,
                                   sign=lambda data: hsm.sign(SIGN_LABEL, data, SIGN_ALGORITHM))
