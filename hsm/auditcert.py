"""The audit key's certificate and the CMS signatures of audit checkpoints.

Pure: DER in, DER out; the private key stays in the HSM and signs through a callable
``sign(data) -> DER Ecdsa-Sig-Value``. The certificate is self-signed (RFC 5280) with an ECDSA
P-256 key on the named curve, so any X.509 tool reads it; a checkpoint is a detached CMS
SignedData (RFC 5652 §5) over its statement, so ``openssl cms -verify`` checks it offline.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime

from asn1crypto import algos, cms, core, pem, x509
from asn1crypto import keys as asn1_keys

from hsm.cmssign import build_signed_data
from hsm.errors import CertificateError
from hsm.verify import verify_signature

Signer = Callable[[bytes], bytes]
_ECDSA_SHA256 = {"algorithm": "sha256_ecdsa"}  # RFC 5758 §3.2: ecdsa-with-SHA256, no parameters


def fingerprint(certificate: bytes) -> str:
    """The SHA-256 of a DER certificate, in hex: what an auditor compares out of band."""
    return hashlib.sha256(certificate).hexdigest()


def _time(moment: datetime) -> x509.Time:
    # RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050
    moment = moment.replace(microsecond=0)
    return x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def _key_id(spki_der: bytes) -> bytes:
    # RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value
    key_bits = asn1_keys.PublicKeyInfo.load(spki_der)["public_key"].dump()[3:]
    return hashlib.sha1(key_bits, usedforsecurity=False).digest()


def _public_key(spki_der: bytes) -> asn1_keys.PublicKeyInfo:
    try:
        info = asn1_keys.PublicKeyInfo.load(spki_der, strict=True)
        info.native  # noqa: B018 - forces asn1crypto's lazy parser over every field
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"the key is not a usable public key: {exc}") from exc
    return info


def _is_named_p256(info: asn1_keys.PublicKeyInfo) -> bool:
    parameters = info["algorithm"]["parameters"]
    return bool(info["algorithm"]["algorithm"].native == "ec" and parameters.name == "named"
                and parameters.chosen.native == "secp256r1")


def _named_p256(spki_der: bytes, whose: str = "the audit key") -> asn1_keys.PublicKeyInfo:
    info = _public_key(spki_der)
    if not _is_named_p256(info):
        raise CertificateError(f"{whose} must be ECDSA P-256 on the named curve")
    return info


def _subject_key(spki_der: bytes) -> asn1_keys.PublicKeyInfo:
    info = _public_key(spki_der)
    if info["algorithm"]["algorithm"].native == "rsa" and info.bit_size >= 2048:
        return info
    if not _is_named_p256(info):
        raise CertificateError("a line key must be ECDSA P-256 or RSA of 2048 bits or more")
    return info


def _extension(name: str, value: object, critical: bool = False) -> x509.Extension:
    return x509.Extension({"extn_id": name, "critical": critical, "extn_value": value})


def build_audit_certificate(*, spki_der: bytes, line: str, serial_number: int,
                            validity: tuple[datetime, datetime], sign: Signer) -> bytes:
    """The self-signed certificate of a line's audit key: CN "cardline audit <line>",
    keyUsage digitalSignature only (RFC 5280 §4.2.1.3), signed by the key itself."""
    _named_p256(spki_der)
    return build_key_certificate(spki_der=spki_der, common_name=f"cardline audit {line}",
                                 serial_number=serial_number, validity=validity, sign=sign)


def build_key_certificate(*, spki_der: bytes, common_name: str, serial_number: int,
                          validity: tuple[datetime, datetime], sign: Signer,
                          key_usage: frozenset[str] = frozenset({"digital_signature"}),
                          organization: str | None = None, issuer: bytes | None = None) -> bytes:
    """The certificate of a line key (ECDSA P-256 or RSA) with ``key_usage`` (RFC 5280
    §4.2.1.3): self-signed, or issued by ``issuer`` (a DER certificate of a P-256 key).
    ``sign`` holds the signing key and returns a DER Ecdsa-Sig-Value (ECDSA with SHA-256)."""
    if serial_number <= 0:
        raise CertificateError("certificate serial number must be positive")  # RFC 5280 §4.1.2.2
    info = _subject_key(spki_der)
    fields = {"common_name": common_name}
    if organization is not None:
        fields["organization_name"] = organization
    name = x509.Name.build(fields)
    key_id = _key_id(spki_der)
    issuer_name, issuer_key_id = name, key_id
    if issuer is not None:
        issuing = x509.Certificate.load(issuer)
        _named_p256(bytes(issuing.public_key.dump()), "the issuing key")
        issuer_name, issuer_key_id = issuing.subject, _key_id(bytes(issuing.public_key.dump()))
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial_number,
        "signature": _ECDSA_SHA256,
        "issuer": issuer_name,
        "validity": {"not_before": _time(validity[0]), "not_after": _time(validity[1])},
        "subject": name,
        "subject_public_key_info": info,
        "extensions": [
            _extension("key_identifier", key_id),
            _extension("authority_key_identifier", {"key_identifier": issuer_key_id}),
            _extension("key_usage", set(key_usage), critical=True),
        ],
    })
    certificate = x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": _ECDSA_SHA256,
                                    "signature_value": sign(tbs.dump())})
    return bytes(certificate.dump())


def load_audit_certificate(der: bytes) -> x509.Certificate:
    """A DER audit certificate whose self-signature verifies; else :class:`CertificateError`."""
    try:
        certificate = x509.Certificate.load(der, strict=True)
        certificate.native  # noqa: B018 - forces asn1crypto's lazy parser over every field
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"malformed audit certificate: {exc}") from exc
    tbs = certificate["tbs_certificate"]
    verify_signature(bytes(tbs["subject_public_key_info"].dump()),
                     certificate["signature_algorithm"],
                     bytes(certificate["signature_value"].native), bytes(tbs.dump()))
    return certificate


def certificate_pem(der: bytes) -> str:
    """PEM text of a DER certificate."""
    return bytes(pem.armor("CERTIFICATE", der)).decode("ascii")


def certificates_from_pem(text: bytes) -> list[bytes]:
    """Every certificate of a PEM bundle, as DER."""
    try:
        return [bytes(der) for kind, _, der in pem.unarmor(text, multiple=True)
                if kind == "CERTIFICATE"]
    except ValueError as exc:
        raise CertificateError(f"malformed PEM: {exc}") from exc


def sign_detached(content: bytes, *, certificate: bytes, at: datetime, sign: Signer) -> bytes:
    """A detached CMS SignedData (DER) over ``content`` by the certificate's key, which
    ``sign`` holds; the certificate travels inside, so a verifier needs only its trust."""
    return build_signed_data(content, certificate=certificate, at=at, sign=sign, detached=True)


def verify_detached(signature: bytes, content: bytes, certificate: bytes) -> datetime:
    """Check a detached CMS SignedData over ``content`` by the key of ``certificate`` (the
    trusted one, never one the signature carries); returns its signingTime. Raises
    :class:`CertificateError` on anything that does not hold."""
    signer = _one_signer(signature)
    cert = load_audit_certificate(certificate)
    sid = signer["sid"].chosen
    if signer["sid"].name != "issuer_and_serial_number" or sid["issuer"] != cert.issuer \
            or sid["serial_number"].native != cert.serial_number:
        raise CertificateError("the checkpoint was signed by another key than the audit key")
    attributes = {a["type"].native: a["values"] for a in signer["signed_attrs"]}
    if signer["digest_algorithm"]["algorithm"].native != "sha256" \
            or _only(attributes, "content_type") != "data":
        raise CertificateError("the checkpoint signature is not SHA-256 over data")
    digest = hashlib.sha256(content).digest()
    if not _equal(_only(attributes, "message_digest"), digest):
        raise CertificateError("the checkpoint statement does not match its signature")
    signed_der = b"\x31" + signer["signed_attrs"].dump()[1:]  # [0] IMPLICIT back to SET OF
    verify_signature(bytes(cert["tbs_certificate"]["subject_public_key_info"].dump()),
                     algos.SignedDigestAlgorithm(signer["signature_algorithm"].native),
                     bytes(signer["signature"].native), signed_der)
    moment = _only(attributes, "signing_time")
    if not isinstance(moment, datetime):
        raise CertificateError("the checkpoint signature has no signing time")
    return moment


def _one_signer(signature: bytes) -> cms.SignerInfo:
    try:
        info = cms.ContentInfo.load(signature, strict=True)
        if info["content_type"].native != "signed_data":
            raise CertificateError("not a CMS SignedData")
        signed = info["content"]
        signed.native  # noqa: B018 - forces asn1crypto's lazy parser over every field
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"malformed checkpoint signature: {exc}") from exc
    if signed["encap_content_info"]["content"].native is not None:
        raise CertificateError("a checkpoint signature is detached: it carries no content")
    if len(signed["signer_infos"]) != 1 or not signed["signer_infos"][0]["signed_attrs"]:
        raise CertificateError("a checkpoint signature has exactly one signer, with attributes")
    return signed["signer_infos"][0]


def _only(attributes: dict[str, core.SetOf], name: str) -> object:
    values = attributes.get(name)
    if values is None or len(values) != 1:
        raise CertificateError(f"the checkpoint signature needs exactly one {name} attribute")
    return values[0].native


def _equal(found: object, expected: bytes) -> bool:
    return isinstance(found, bytes) and hmac.compare_digest(found, expected)
