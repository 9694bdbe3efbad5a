"""CSCA Master Lists (ICAO 9303-12 §9): a CMS SignedData (RFC 5652) over a CscaMasterList.

Pure: DER in, DER out. The master-list signer key stays in the HSM; the signed attributes are
signed by a callable ``sign(attributes_der) -> signature`` that hashes with ``digest``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from datetime import datetime

from asn1crypto import algos, cms, core, x509

from hsm.certificates import (
    MASTER_LIST_SIGNER_OID,
    authority_key_identifier,
    build_master_list_signer_certificate,
    extended_key_usage,
    is_ca,
    key_usage,
    load_certificate,
    signature_algorithm,
    subject_key_identifier,
    subject_public_key_info,
    verify_certificate_signature,
    verify_signature,
)
from hsm.errors import CertificateError

__all__ = ["ID_CSCA_MASTER_LIST", "CscaMasterList", "build_master_list",
           "build_master_list_signer_certificate", "read_master_list", "verify_master_list"]

ID_CSCA_MASTER_LIST = "2.23.136.1.1.2"  # ICAO 9303-12 §9: id-icao-cscaMasterList
_DIGESTS = ("sha256", "sha384", "sha512")  # ICAO 9303-12 §4.1.6: SHA-2 only


class CertificateList(core.SetOf):  # type: ignore[misc]  # asn1crypto is untyped
    """SET OF Certificate."""

    _child_spec = x509.Certificate


class CscaMasterList(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """ICAO 9303-12 §9: SEQUENCE { version INTEGER (v0), certList SET OF Certificate }."""

    _fields = [  # noqa: RUF012 -- asn1crypto's declarative class attribute
        ("version", core.Integer),
        ("cert_list", CertificateList),
    ]


def _signing_time(at: datetime) -> cms.Time:
    # RFC 5652 §11.3: UTCTime from 1950 through 2049, GeneralizedTime otherwise.
    at = at.replace(microsecond=0)
    return cms.Time(name="utc_time" if at.year < 2050 else "generalized_time", value=at)


def _signer_issuer(signer_der: bytes, csca_certificates: Sequence[bytes]) -> bytes:
    """The listed CSCA certificate that issued the master-list signer certificate."""
    _check_signer(signer_der)
    issuer = load_certificate(signer_der).issuer
    for csca_der in csca_certificates:
        if (load_certificate(csca_der).subject == issuer
                and subject_key_identifier(csca_der) == authority_key_identifier(signer_der)):
            verify_certificate_signature(signer_der, csca_der)
            return csca_der
    raise CertificateError("no listed CSCA certificate issued the master-list signer")


def _check_signer(signer_der: bytes) -> None:
    # ICAO 9303-12 Table 6: digitalSignature, ExtKeyUsage cscaMasterListSigningKey, not a CA.
    if MASTER_LIST_SIGNER_OID not in extended_key_usage(signer_der):
        raise CertificateError("signer certificate lacks ExtKeyUsage cscaMasterListSigningKey")
    if "digital_signature" not in key_usage(signer_der) or is_ca(signer_der):
        raise CertificateError("signer certificate is not a digitalSignature end entity")


def _content(csca_certificates: Sequence[bytes]) -> bytes:
    unique = list(dict.fromkeys(csca_certificates))
    if not unique:
        raise CertificateError("a master list holds at least one CSCA certificate")
    if not all(is_ca(der) for der in unique):
        raise CertificateError("a master list holds CSCA (cA) certificates only")
    certificates = [load_certificate(der) for der in unique]
    return bytes(CscaMasterList({"version": 0, "cert_list": certificates}).dump())


def build_master_list(
    *, csca_certificates: Sequence[bytes], signer_der: bytes, sign: Callable[[bytes], bytes],
    at: datetime, digest: str = "sha256",
) -> bytes:
    """A ContentInfo(SignedData) DER: the CSCA certificates, signed by the master-list signer.

    The signer certificate must have been issued by one of ``csca_certificates``; both go in
    SignedData.certificates. ``sign`` hashes with ``digest`` (its key is the signer's).
    """
    if digest not in _DIGESTS:
        raise CertificateError(f"digest {digest!r} is not one of {_DIGESTS}")
    econtent = _content(csca_certificates)
    issuer_der = _signer_issuer(signer_der, csca_certificates)
    attributes = cms.CMSAttributes([
        {"type": "content_type", "values": [ID_CSCA_MASTER_LIST]},
        {"type": "message_digest", "values": [hashlib.new(digest, econtent).digest()]},
        {"type": "signing_time", "values": [_signing_time(at)]},
    ])
    signer = load_certificate(signer_der)
    digest_algorithm = algos.DigestAlgorithm({"algorithm": digest})  # RFC 5754 §2: no NULL
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value={
            "issuer": signer.issuer, "serial_number": signer.serial_number}),
        "digest_algorithm": digest_algorithm,
        "signed_attrs": attributes,
        "signature_algorithm": signature_algorithm(subject_public_key_info(signer_der), digest),
        "signature": sign(attributes.dump()),  # RFC 5652 §5.4: signed as a SET OF (tag 31)
    })
    signed_data = cms.SignedData({
        "version": "v3",  # RFC 5652 §5.1: eContentType is not id-data
        "digest_algorithms": [digest_algorithm],
        "encap_content_info": {"content_type": ID_CSCA_MASTER_LIST, "content": econtent},
        "certificates": [signer, load_certificate(issuer_der)],
        "signer_infos": [signer_info],
    })
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump())


# --- reading and verifying ------------------------------------------------------------------

def _signed_data(der: bytes) -> cms.SignedData:
    try:
        content_info = cms.ContentInfo.load(der, strict=True)
        content_info.native  # noqa: B018 -- forces asn1crypto's lazy parser over every field
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"malformed CMS ContentInfo: {exc}") from exc
    if content_info["content_type"].native != "signed_data":
        raise CertificateError("ContentInfo does not hold SignedData")
    signed_data: cms.SignedData = content_info["content"]
    econtent_type = signed_data["encap_content_info"]["content_type"].dotted
    if econtent_type != ID_CSCA_MASTER_LIST:
        raise CertificateError(f"eContentType {econtent_type} is not id-icao-cscaMasterList")
    if len(signed_data["signer_infos"]) != 1:
        raise CertificateError("a master list has exactly one SignerInfo")
    return signed_data


def _attributes(signer_info: cms.SignerInfo) -> tuple[str, bytes]:
    """(content-type, message-digest) of the signed attributes, each present exactly once."""
    found: dict[str, cms.CMSAttribute] = {}
    for attribute in signer_info["signed_attrs"]:
        name = attribute["type"].native
        if name in found or len(attribute["values"]) != 1:
            raise CertificateError(f"signed attribute {name} repeated or multi-valued")
        found[name] = attribute["values"][0]
    if "content_type" not in found or "message_digest" not in found:
        raise CertificateError("signed attributes lack content-type or message-digest")
    return str(found["content_type"].dotted), bytes(found["message_digest"].native)


def _signer_certificate(signed_data: cms.SignedData, signer_info: cms.SignerInfo) -> bytes:
    sid = signer_info["sid"]
    for choice in signed_data["certificates"]:
        if choice.name != "certificate":
            continue
        certificate = choice.chosen
        if sid.name == "issuer_and_serial_number":
            matches = (certificate.issuer == sid.chosen["issuer"]
                       and certificate.serial_number == sid.chosen["serial_number"].native)
        else:
            matches = certificate.key_identifier == sid.chosen.native
        if matches:
            return bytes(certificate.dump())
    raise CertificateError("SignedData does not carry the signer's certificate")


def _check_signature(signed_data: cms.SignedData) -> bytes:
    """Check the one SignerInfo against the eContent; return the signer certificate DER."""
    signer_info = signed_data["signer_infos"][0]
    econtent = bytes(signed_data["encap_content_info"]["content"].native)
    content_type, message_digest = _attributes(signer_info)
    if content_type != ID_CSCA_MASTER_LIST:  # RFC 5652 §11.1
        raise CertificateError("content-type attribute is not id-icao-cscaMasterList")
    digest = signer_info["digest_algorithm"]["algorithm"].native
    if digest not in _DIGESTS:
        raise CertificateError(f"digest algorithm {digest} is not allowed")
    expected = hashlib.new(digest, econtent).digest()
    if not hmac.compare_digest(expected, message_digest):
        raise CertificateError("message-digest does not match the master list content")
    signer_der = _signer_certificate(signed_data, signer_info)
    # RFC 5652 §5.4: the signature covers the attributes' own octets re-tagged as a SET OF.
    signed_attrs = cms.CMSAttributes(contents=signer_info["signed_attrs"].contents)
    verify_signature(subject_public_key_info(signer_der), signer_info["signature_algorithm"],
                     bytes(signer_info["signature"].native), bytes(signed_attrs.dump()))
    return signer_der


def _certificates(econtent: bytes) -> list[bytes]:
    try:
        master_list = CscaMasterList.load(econtent, strict=True)
        master_list.native  # noqa: B018 -- forces asn1crypto's lazy parser over every field
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"malformed CscaMasterList: {exc}") from exc
    if master_list["version"].native != 0:
        raise CertificateError("CscaMasterList version is not v0")
    return [bytes(certificate.dump()) for certificate in master_list["cert_list"]]


def read_master_list(der: bytes) -> list[bytes]:
    """The CSCA certificates of a master list whose signature verifies under the signer
    certificate it carries; ``CertificateError`` otherwise. It does not say who the signer is:
    :func:`verify_master_list` ties the signer to a trusted CSCA."""
    signed_data = _signed_data(der)
    _check_signature(signed_data)
    return _certificates(bytes(signed_data["encap_content_info"]["content"].native))


def verify_master_list(der: bytes, csca_der: bytes) -> list[bytes]:
    """The CSCA certificates of a master list signed by a master-list signer that the CSCA of
    ``csca_der`` certified; ``CertificateError`` otherwise."""
    signed_data = _signed_data(der)
    signer_der = _check_signature(signed_data)
    _check_signer(signer_der)
    verify_certificate_signature(signer_der, csca_der)
    return _certificates(bytes(signed_data["encap_content_info"]["content"].native))
