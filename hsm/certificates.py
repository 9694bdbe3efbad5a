"""CSCA and Document Signer certificates per ICAO 9303-12 §4 and §7.1 (Tables 5 and 6).

Pure: DER in, DER out. The private key stays in the HSM: a certificate is built as a
TBSCertificate and signed by a callable ``sign(tbs_der) -> signature``. QA imports this
module, so nothing here touches PKCS#11.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, core, csr, pem, x509
from asn1crypto import keys as asn1_keys

from hsm.ecparams import spki_form
from hsm.errors import CertificateError
from hsm.verify import load_public_key, verify_signature

__all__ = [
    "CertificateError", "DocumentTypeListSyntax", "Signer", "TBSBuilder",
    "authority_key_identifier", "build_certification_request",
    "build_csca_certificate", "build_ds_certificate", "build_link_certificate",
    "build_master_list_signer_certificate", "certificate_to_pem", "document_types",
    "extended_key_usage", "is_ca", "key_usage", "load_certificate", "load_public_key",
    "private_key_usage_period", "serial_from_random", "signature_algorithm",
    "subject_key_identifier", "subject_public_key_info", "verify_certificate_signature",
    "verify_certification_request", "verify_signature", "x509_time",
]

Signer = Callable[[bytes], bytes]
# ICAO 9303-12 §7.1.1.6: id-icao-mrtd-security-extensions-documentTypeList
DOCUMENT_TYPE_OID = "2.23.136.1.1.6.2"
# ICAO 9303-12 Table 6: id-icao-cscaMasterListSigningKey, the master-list signer's ExtKeyUsage
MASTER_LIST_SIGNER_OID = "2.23.136.1.1.3"
ICAO_CRL_URL = "https://pkddownload1.icao.int/CRLs/{code}.crl"  # 9303-12 §7.1.1.4 recommendation


class DocumentTypeList(core.SetOf):  # type: ignore[misc]  # asn1crypto is untyped
    """SET OF PrintableString (SIZE (1..2))."""

    _child_spec = core.PrintableString


class DocumentTypeListSyntax(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """ICAO 9303-12 §7.1.1.6: SEQUENCE { version INTEGER v0, docTypeList DocumentTypeList }."""

    _fields = [  # noqa: RUF012 -- asn1crypto's declarative class attribute
        ("version", core.Integer),
        ("doc_type_list", DocumentTypeList),
    ]


def serial_from_random(random_bytes: bytes) -> int:
    """A positive serial of at most 16 octets from caller-supplied randomness (9303-12 Table 5)."""
    value = int.from_bytes(random_bytes[:16], "big") >> 1
    if value == 0:
        raise CertificateError("certificate serial number must be positive")
    return value


def x509_time(moment: datetime) -> x509.Time:
    """UTCTime through 2049 with seconds and 'Z', GeneralizedTime after (9303-12 Table 5)."""
    moment = moment.replace(microsecond=0)
    return x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def _ext(name: str, value: object, critical: bool = False) -> x509.Extension:
    return x509.Extension({"extn_id": name, "critical": critical, "extn_value": value})


def _key_id(spki_der: bytes) -> bytes:
    # RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value.
    key_bits = asn1_keys.PublicKeyInfo.load(spki_der)["public_key"].dump()[3:]
    return hashlib.sha1(key_bits, usedforsecurity=False).digest()


_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}


def signature_algorithm(issuer_spki_der: bytes,
                        digest: str = "sha256") -> algos.SignedDigestAlgorithm:
    """ECDSA, or RSASSA-PSS for an RSA key, with ``digest`` (9303-12 §4.1.6: SHA-2 only)."""
    if digest not in _DIGEST_SIZES:
        raise CertificateError(f"digest {digest!r} is not one of {sorted(_DIGEST_SIZES)}")
    algorithm = asn1_keys.PublicKeyInfo.load(issuer_spki_der)["algorithm"]["algorithm"].native
    if algorithm == "ec":
        return algos.SignedDigestAlgorithm({"algorithm": f"{digest}_ecdsa"})
    # RFC 4055 §3.1: RSASSA-PSS, MGF1 with the same hash, salt as long as the hash.
    params = {"hash_algorithm": {"algorithm": digest}, "salt_length": _DIGEST_SIZES[digest],
              "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": digest}}}
    return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})


def _locality(icao_code: str) -> x509.GeneralNames:
    # ICAO 9303-12 §7.1.1.2: SAN/IAN carry a directoryName with localityName = the MRZ code.
    name = x509.Name.build({"locality_name": icao_code}, use_printable=True)
    return x509.GeneralNames([x509.GeneralName(name="directory_name", value=name)])


def _crl_points(url: str) -> x509.CRLDistributionPoints:
    full_name = [x509.GeneralName(name="uniform_resource_identifier", value=url)]
    return x509.CRLDistributionPoints([{"distribution_point": {"full_name": full_name}}])


def _usage(window: tuple[datetime, datetime]) -> x509.PrivateKeyUsagePeriod:
    return x509.PrivateKeyUsagePeriod({
        "not_before": window[0].replace(microsecond=0),
        "not_after": window[1].replace(microsecond=0),
    })


@dataclass(frozen=True)
class TBSBuilder:
    """The fields of a TBSCertificate; ``sign`` hands its DER to the HSM and assembles the cert."""

    serial_number: int
    issuer: x509.Name
    subject: x509.Name
    validity: tuple[datetime, datetime]
    spki_der: bytes  # the subject key, EC with explicit parameters
    issuer_spki_der: bytes  # decides the signature algorithm
    extensions: tuple[x509.Extension, ...]

    def build(self) -> x509.TbsCertificate:
        """The TBSCertificate: v3, no unique IDs (9303-12 Table 5)."""
        return x509.TbsCertificate({
            "version": "v3",
            "serial_number": self.serial_number,
            "signature": signature_algorithm(self.issuer_spki_der),
            "issuer": self.issuer,
            "validity": {"not_before": x509_time(self.validity[0]),
                         "not_after": x509_time(self.validity[1])},
            "subject": self.subject,
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(self.spki_der),
            "extensions": list(self.extensions),
        })

    def sign(self, sign: Signer) -> bytes:
        """Sign the TBSCertificate DER with ``sign`` and return the certificate DER."""
        tbs = self.build()
        certificate = x509.Certificate({
            "tbs_certificate": tbs,
            "signature_algorithm": tbs["signature"],
            "signature_value": sign(tbs.dump()),
        })
        return bytes(certificate.dump())


def _subject(country: str, common_name: str, name_serial: str) -> x509.Name:
    if len(country) != 2 or not country.isupper():
        raise CertificateError(f"countryName must be ISO 3166 alpha-2 upper case, not {country!r}")
    return x509.Name.build(
        {"country_name": country, "common_name": common_name, "serial_number": name_serial}
    )


def build_csca_certificate(
    *, spki_der: bytes, serial_number: int, country: str, icao_code: str, common_name: str,
    name_serial: str, validity: tuple[datetime, datetime], usage: tuple[datetime, datetime],
    sign: Signer, ec_parameters: str = "explicit",
) -> bytes:
    """A self-signed CSCA certificate with the 9303-12 Table 6 CSCA-root extensions."""
    spki = spki_form(spki_der, ec_parameters)
    name = _subject(country, common_name, name_serial)
    key_id = _key_id(spki)
    extensions = (
        _ext("authority_key_identifier", {"key_identifier": key_id}),
        _ext("key_identifier", key_id),
        _ext("key_usage", {"key_cert_sign", "crl_sign"}, critical=True),
        _ext("private_key_usage_period", _usage(usage)),
        _ext("subject_alt_name", _locality(icao_code)),
        _ext("issuer_alt_name", _locality(icao_code)),
        _ext("basic_constraints", {"ca": True, "path_len_constraint": 0}, critical=True),
        _ext("crl_distribution_points", _crl_points(ICAO_CRL_URL.format(code=icao_code))),
    )
    return TBSBuilder(serial_number, name, name, validity, spki, spki, extensions).sign(sign)


def build_ds_certificate(
    *, spki_der: bytes, serial_number: int, csca_der: bytes, icao_code: str, common_name: str,
    name_serial: str, validity: tuple[datetime, datetime], usage: tuple[datetime, datetime],
    doc_types: Iterable[str], sign: Signer, ec_parameters: str = "explicit",
) -> bytes:
    """A Document Signer certificate issued by ``csca_der`` (9303-12 Table 6, DS column)."""
    csca, issuer_key_id, issuer_spki = _issuer(csca_der)
    spki = spki_form(spki_der, ec_parameters)
    country = csca.subject.native["country_name"]
    types = sorted(set(doc_types), key=lambda t: core.PrintableString(t).dump())  # DER SET OF order
    if not types or any(not 1 <= len(t) <= 2 for t in types):
        raise CertificateError("document types must be 1-2 characters each, at least one")
    extensions = (
        _ext("authority_key_identifier", {"key_identifier": issuer_key_id}),
        _ext("key_identifier", _key_id(spki)),
        _ext("key_usage", {"digital_signature"}, critical=True),
        _ext("private_key_usage_period", _usage(usage)),
        _ext("subject_alt_name", _locality(icao_code)),
        _ext("issuer_alt_name", _locality(icao_code)),
        _ext("crl_distribution_points", _crl_points(ICAO_CRL_URL.format(code=icao_code))),
        _ext(DOCUMENT_TYPE_OID, DocumentTypeListSyntax({"version": 0, "doc_type_list": types})
             .dump()),
    )  # ICAO 9303-12 Table 6: no BasicConstraints in a DS certificate
    subject = _subject(country, common_name, name_serial)
    return TBSBuilder(serial_number, csca.subject, subject, validity, spki, issuer_spki,
                      extensions).sign(sign)


def _issuer(csca_der: bytes) -> tuple[x509.Certificate, bytes, bytes]:
    """(certificate, SubjectKeyIdentifier, SPKI DER) of the CSCA that issues a certificate."""
    csca = load_certificate(csca_der)
    key_id = subject_key_identifier(csca_der)
    if key_id is None:
        raise CertificateError("the CSCA certificate has no SubjectKeyIdentifier")
    return csca, key_id, bytes(csca["tbs_certificate"]["subject_public_key_info"].dump())


def build_master_list_signer_certificate(
    *, spki_der: bytes, serial_number: int, csca_der: bytes, icao_code: str, common_name: str,
    name_serial: str, validity: tuple[datetime, datetime],
    usage: tuple[datetime, datetime] | None = None, sign: Signer, ec_parameters: str = "explicit",
) -> bytes:
    """A CSCA Master List Signer certificate issued by ``csca_der`` (9303-12 Table 6).

    PrivateKeyUsagePeriod is optional for this signer; it is written when ``usage`` is given.
    """
    csca, issuer_key_id, issuer_spki = _issuer(csca_der)
    spki = spki_form(spki_der, ec_parameters)
    extensions = (
        _ext("authority_key_identifier", {"key_identifier": issuer_key_id}),
        _ext("key_identifier", _key_id(spki)),
        _ext("key_usage", {"digital_signature"}, critical=True),
        *(() if usage is None else (_ext("private_key_usage_period", _usage(usage)),)),
        _ext("subject_alt_name", _locality(icao_code)),
        _ext("issuer_alt_name", _locality(icao_code)),
        _ext("extended_key_usage", [MASTER_LIST_SIGNER_OID], critical=True),
        _ext("crl_distribution_points", _crl_points(ICAO_CRL_URL.format(code=icao_code))),
    )  # ICAO 9303-12 Table 6: no BasicConstraints in a master-list signer certificate
    subject = _subject(csca.subject.native["country_name"], common_name, name_serial)
    return TBSBuilder(serial_number, csca.subject, subject, validity, spki, issuer_spki,
                      extensions).sign(sign)


# The issuer's own extensions in a link certificate; the rest describe the subject key.
_ISSUER_SIDE = ("issuer_alt_name", "crl_distribution_points")


def build_link_certificate(
    *, subject_csca_der: bytes, issuer_csca_der: bytes, serial_number: int, sign: Signer,
    validity: tuple[datetime, datetime] | None = None,
) -> bytes:
    """A CSCA link certificate (9303-12 Table 6, link column): one CSCA's name and key,
    certified by another CSCA's key, which ``sign`` holds.

    At rollover the subject is the new CSCA and the issuer the old one; swapped, the new key
    certifies the old. The subject's key, name and CA extensions are kept; the AKI is the
    issuer's SKI. ``validity`` defaults to the subject certificate's.
    """
    subject, issuer_key_id, issuer_spki = _link_parties(subject_csca_der, issuer_csca_der)
    issuer_extensions = _extensions_by_name(issuer_csca_der)
    extensions = [_ext("authority_key_identifier", {"key_identifier": issuer_key_id})]
    for name, extension in _extensions_by_name(subject_csca_der).items():
        if name != "authority_key_identifier":
            extensions.append(issuer_extensions.get(name, extension)
                              if name in _ISSUER_SIDE else extension)
    tbs = subject["tbs_certificate"]
    window = validity or (tbs["validity"]["not_before"].native,
                          tbs["validity"]["not_after"].native)
    issuer_name = load_certificate(issuer_csca_der).subject
    return TBSBuilder(serial_number, issuer_name, subject.subject, window,
                      bytes(tbs["subject_public_key_info"].dump()), issuer_spki,
                      tuple(extensions)).sign(sign)


def _link_parties(subject_der: bytes,
                  issuer_der: bytes) -> tuple[x509.Certificate, bytes, bytes]:
    """(subject certificate, issuer SKI, issuer SPKI) once both are CSCAs of one country."""
    for der in (subject_der, issuer_der):
        if not is_ca(der) or subject_key_identifier(der) is None:
            raise CertificateError("a link certificate joins two CSCA certificates (cA, SKI)")
    subject = load_certificate(subject_der)
    issuer, issuer_key_id, issuer_spki = _issuer(issuer_der)
    if subject_public_key_info(subject_der) == issuer_spki:
        raise CertificateError("a link certificate joins two different CSCA keys")
    # ICAO 9303-12 Table 5: countryName is the same in issuer and subject.
    if subject.subject.native["country_name"] != issuer.subject.native["country_name"]:
        raise CertificateError("the two CSCAs of a link certificate differ in countryName")
    return subject, issuer_key_id, issuer_spki


def _extensions_by_name(cert_der: bytes) -> dict[str, x509.Extension]:
    extensions = load_certificate(cert_der)["tbs_certificate"]["extensions"]
    return {e["extn_id"].native: x509.Extension.load(e.dump()) for e in extensions}


# --- PKCS#10 requests: a key on one token asks a CSCA on another for its certificate ----------

def build_certification_request(
    *, spki_der: bytes, country: str, common_name: str, name_serial: str, sign: Signer,
    ec_parameters: str = "explicit",
) -> bytes:
    """A PKCS#10 CertificationRequest (RFC 2986) signed by the key it names, through ``sign``."""
    spki = spki_form(spki_der, ec_parameters)
    info = csr.CertificationRequestInfo({
        "version": "v1",
        "subject": _subject(country, common_name, name_serial),
        "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki),
        "attributes": [],  # RFC 2986 §4.1: the [0] SET is present even when empty
    })
    algorithm = signature_algorithm(spki)
    request = csr.CertificationRequest({
        "certification_request_info": info,
        "signature_algorithm": algorithm,
        "signature": sign(info.dump()),
    })
    return bytes(request.dump())


def verify_certification_request(request_der: bytes) -> bytes:
    """The SPKI DER of a PKCS#10 request whose self-signature verifies; else CertificateError."""
    try:
        request = csr.CertificationRequest.load(request_der, strict=True)
        request.native  # noqa: B018 -- forces asn1crypto's lazy parser over every field
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"malformed certification request: {exc}") from exc
    info = request["certification_request_info"]
    if info["version"].native != "v1":  # RFC 2986 §4.1
        raise CertificateError("certification request version is not v1")
    spki = bytes(info["subject_pk_info"].dump())
    verify_signature(spki, request["signature_algorithm"], bytes(request["signature"].native),
                     bytes(info.dump()))
    return spki


# --- reading certificates back ----------------------------------------------------------------

def load_certificate(cert_der: bytes) -> x509.Certificate:
    """Parse a DER certificate fully, or raise ``CertificateError``."""
    try:
        certificate = x509.Certificate.load(cert_der, strict=True)
        certificate.native  # noqa: B018 -- forces asn1crypto's lazy parser over every field
    except (ValueError, TypeError, KeyError) as exc:  # KeyError: an OID asn1crypto does not know
        raise CertificateError(f"malformed certificate: {exc}") from exc
    return certificate


def _extension(cert_der: bytes, name: str) -> x509.Extension | None:
    for extension in load_certificate(cert_der)["tbs_certificate"]["extensions"]:
        if extension["extn_id"].native == name or extension["extn_id"].dotted == name:
            return extension
    return None


def subject_public_key_info(cert_der: bytes) -> bytes:
    """The certificate's SubjectPublicKeyInfo DER."""
    return bytes(load_certificate(cert_der)["tbs_certificate"]["subject_public_key_info"].dump())


def subject_key_identifier(cert_der: bytes) -> bytes | None:
    """The SubjectKeyIdentifier, or None when absent."""
    extension = _extension(cert_der, "key_identifier")
    return None if extension is None else bytes(extension["extn_value"].parsed.native)


def authority_key_identifier(cert_der: bytes) -> bytes | None:
    """The AuthorityKeyIdentifier keyIdentifier, or None when absent."""
    extension = _extension(cert_der, "authority_key_identifier")
    if extension is None:
        return None
    value = extension["extn_value"].parsed["key_identifier"].native
    return None if value is None else bytes(value)


def is_ca(cert_der: bytes) -> bool:
    """Whether BasicConstraints says cA=TRUE."""
    extension = _extension(cert_der, "basic_constraints")
    return extension is not None and bool(extension["extn_value"].parsed["ca"].native)


def key_usage(cert_der: bytes) -> set[str]:
    """The KeyUsage bits by asn1crypto name (``"crl_sign"``…); empty when absent."""
    extension = _extension(cert_der, "key_usage")
    return set() if extension is None else set(extension["extn_value"].parsed.native)


def extended_key_usage(cert_der: bytes) -> set[str]:
    """The ExtendedKeyUsage purposes as dotted OIDs; empty when absent."""
    extension = _extension(cert_der, "extended_key_usage")
    return set() if extension is None else {p.dotted for p in extension["extn_value"].parsed}


def private_key_usage_period(cert_der: bytes) -> tuple[datetime | None, datetime | None]:
    """(notBefore, notAfter) of PrivateKeyUsagePeriod; (None, None) when absent."""
    extension = _extension(cert_der, "private_key_usage_period")
    if extension is None:
        return (None, None)
    period = extension["extn_value"].parsed
    return (period["not_before"].native, period["not_after"].native)


def document_types(cert_der: bytes) -> set[str]:
    """The DocumentTypeList of a DS certificate (9303-12 §7.1.1.6); empty when absent."""
    extension = _extension(cert_der, DOCUMENT_TYPE_OID)
    if extension is None:
        return set()
    try:
        syntax = DocumentTypeListSyntax.load(bytes(extension["extn_value"]), strict=True)
        return {str(item) for item in syntax["doc_type_list"].native}
    except (ValueError, TypeError) as exc:
        raise CertificateError(f"malformed DocumentTypeList extension: {exc}") from exc


def verify_certificate_signature(cert_der: bytes, issuer_cert_der: bytes) -> None:
    """Raise ``CertificateError`` unless ``issuer_cert_der``'s key signed ``cert_der``."""
    certificate = load_certificate(cert_der)
    issuer = load_certificate(issuer_cert_der)
    tbs = certificate["tbs_certificate"]
    if tbs["issuer"] != issuer["tbs_certificate"]["subject"]:
        raise CertificateError("certificate issuer does not match the issuer's subject")
    # RFC 5280 §4.1.1.2: signatureAlgorithm MUST equal TBSCertificate.signature.
    if tbs["signature"].dump() != certificate["signature_algorithm"].dump():
        raise CertificateError("signatureAlgorithm differs from TBSCertificate.signature")
    verify_signature(
        bytes(issuer["tbs_certificate"]["subject_public_key_info"].dump()),
        certificate["signature_algorithm"],
        bytes(certificate["signature_value"].native),
        bytes(tbs.dump()),
    )


def certificate_to_pem(cert_der: bytes) -> str:
    """PEM text of a DER certificate."""
    load_certificate(cert_der)
    return bytes(pem.armor("CERTIFICATE", cert_der)).decode("ascii")
