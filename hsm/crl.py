"""Certificate Revocation Lists signed by the CSCA: RFC 5280 §5 under the ICAO 9303-12 profile.

Pure: DER in, DER out. The CSCA key stays in the HSM; the TBSCertList is signed by a callable
``sign(tbs_der) -> signature``, with the signature algorithm the CSCA certificate's key implies.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from asn1crypto import crl, x509

from hsm.certificates import (
    key_usage,
    load_certificate,
    signature_algorithm,
    subject_key_identifier,
    subject_public_key_info,
    verify_signature,
    x509_time,
)
from hsm.errors import CertificateError

__all__ = ["MAX_CRL_PERIOD", "REASONS", "Revoked", "build_crl", "crl_revoked_serials",
           "verify_crl"]

# ICAO 9303-12 (CSCA key management): a CSCA issues a CRL at least every 90 days.
MAX_CRL_PERIOD = timedelta(days=90)
# RFC 5280 §5.3.1 CRLReason names -> asn1crypto's. removeFromCRL (8) belongs to delta CRLs
# only, which ICAO 9303-12 does not use.
REASONS: dict[str, str] = {
    "unspecified": "unspecified", "keyCompromise": "key_compromise",
    "cACompromise": "ca_compromise", "affiliationChanged": "affiliation_changed",
    "superseded": "superseded", "cessationOfOperation": "cessation_of_operation",
    "certificateHold": "certificate_hold", "privilegeWithdrawn": "privilege_withdrawn",
    "aACompromise": "aa_compromise",
}
_RFC_NAMES = {ours: rfc for rfc, ours in REASONS.items()}
_MAX_OCTETS = 20  # RFC 5280 §4.1.2.2 serials and §5.2.3 CRL numbers: at most 20 octets


@dataclass(frozen=True)
class Revoked:
    """One revoked certificate: its serial, when it was revoked, and the RFC 5280 reason name."""

    serial: int
    at: datetime
    reason: str

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise CertificateError(f"revocation reason {self.reason!r} not one of {list(REASONS)}")
        if not 0 < self.serial < 2 ** (8 * _MAX_OCTETS - 1):
            raise CertificateError(f"serial {self.serial} is not a positive 20-octet integer")
        if self.at.tzinfo is None:
            raise CertificateError("revocation time must carry a time zone")


def _check_window(this_update: datetime, next_update: datetime) -> None:
    if this_update.tzinfo is None or next_update.tzinfo is None:
        raise CertificateError("thisUpdate and nextUpdate must carry a time zone")
    if next_update <= this_update:
        raise CertificateError("nextUpdate must be after thisUpdate")
    if next_update - this_update > MAX_CRL_PERIOD:
        raise CertificateError(
            f"nextUpdate is {(next_update - this_update).days} days after thisUpdate; "
            "ICAO 9303-12 requires a new CRL at least every 90 days")


def _entry(item: Revoked) -> crl.RevokedCertificate:
    entry = {"user_certificate": item.serial, "revocation_date": x509_time(item.at)}
    if item.reason != "unspecified":  # RFC 5280 §5.3.1: absent rather than unspecified (0)
        entry["crl_entry_extensions"] = [
            {"extn_id": "crl_reason", "critical": False, "extn_value": REASONS[item.reason]}]
    return crl.RevokedCertificate(entry)


def _entries(revoked: Sequence[Revoked], this_update: datetime) -> list[crl.RevokedCertificate]:
    serials = [item.serial for item in revoked]
    if len(set(serials)) != len(serials):
        raise CertificateError("a serial number is listed twice")
    if any(item.at > this_update for item in revoked):
        raise CertificateError("a revocation date is later than thisUpdate")
    return [_entry(item) for item in sorted(revoked, key=lambda item: item.serial)]


def build_crl(
    *, csca_der: bytes, revoked: Sequence[Revoked], this_update: datetime,
    next_update: datetime, crl_number: int, sign: Callable[[bytes], bytes],
) -> bytes:
    """A v2 CRL issued by the CSCA of ``csca_der``, with AuthorityKeyIdentifier and cRLNumber."""
    _check_window(this_update, next_update)
    if not 0 <= crl_number < 2 ** (8 * _MAX_OCTETS - 1):
        raise CertificateError(f"CRL number {crl_number} is not a non-negative 20-octet integer")
    csca = _issuer(csca_der)
    tbs_fields = {
        "version": "v2",
        "signature": signature_algorithm(subject_public_key_info(csca_der)),
        "issuer": csca.subject,
        "this_update": x509_time(this_update),
        "next_update": x509_time(next_update),
        "crl_extensions": [
            {"extn_id": "authority_key_identifier", "critical": False,
             "extn_value": {"key_identifier": subject_key_identifier(csca_der)}},
            {"extn_id": "crl_number", "critical": False, "extn_value": crl_number},
        ],
    }
    entries = _entries(revoked, this_update)
    if entries:  # RFC 5280 §5.1.2.6: absent, not empty, when nothing is revoked
        tbs_fields["revoked_certificates"] = entries
    tbs = crl.TbsCertList(tbs_fields)
    certificate_list = crl.CertificateList({
        "tbs_cert_list": tbs,
        "signature_algorithm": tbs["signature"],
        "signature": sign(tbs.dump()),
    })
    return bytes(certificate_list.dump())


def _issuer(csca_der: bytes) -> x509.Certificate:
    """The CSCA certificate, once it may sign CRLs (RFC 5280 §6.3.3 (f): cRLSign, and an SKI)."""
    csca = load_certificate(csca_der)
    if "crl_sign" not in key_usage(csca_der):
        raise CertificateError("the CSCA certificate's KeyUsage lacks cRLSign")
    if subject_key_identifier(csca_der) is None:
        raise CertificateError("the CSCA certificate has no SubjectKeyIdentifier")
    return csca


def _load(crl_der: bytes) -> crl.CertificateList:
    try:
        certificate_list = crl.CertificateList.load(crl_der, strict=True)
        certificate_list.native  # noqa: B018 -- forces asn1crypto's lazy parser over every field
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"malformed CRL: {exc}") from exc
    if certificate_list["tbs_cert_list"]["version"].native != "v2":
        raise CertificateError("CRL is not version 2")  # ICAO 9303-12 CRL profile: v2
    return certificate_list


def crl_revoked_serials(crl_der: bytes) -> dict[int, str]:
    """{serial: RFC 5280 reason name} of every entry; "unspecified" when no reasonCode."""
    revoked: dict[int, str] = {}
    for entry in _load(crl_der)["tbs_cert_list"]["revoked_certificates"]:
        reason = entry.crl_reason_value
        name = "unspecified" if reason is None else _RFC_NAMES.get(reason.native)
        if name is None:
            raise CertificateError(f"CRL reason {reason.native!r} is not allowed")
        revoked[int(entry["user_certificate"].native)] = name
    return revoked


def verify_crl(crl_der: bytes, csca_der: bytes) -> None:
    """Raise ``CertificateError`` unless the CSCA of ``csca_der`` issued and signed the CRL."""
    certificate_list = _load(crl_der)
    tbs = certificate_list["tbs_cert_list"]
    if tbs["issuer"] != _issuer(csca_der).subject:
        raise CertificateError("CRL issuer does not match the CSCA subject")
    # RFC 5280 §5.1.1.2: signatureAlgorithm MUST equal TBSCertList.signature.
    if tbs["signature"].dump() != certificate_list["signature_algorithm"].dump():
        raise CertificateError("signatureAlgorithm differs from TBSCertList.signature")
    authority = certificate_list.authority_key_identifier
    ski = subject_key_identifier(csca_der)
    if authority is None or ski is None or not hmac.compare_digest(authority, ski):
        raise CertificateError("CRL AuthorityKeyIdentifier is not the CSCA's key identifier")
    verify_signature(subject_public_key_info(csca_der), certificate_list["signature_algorithm"],
                     bytes(certificate_list["signature"].native), bytes(tbs.dump()))
