"""Passive Authentication (ICAO 9303-11 §5.1): the SOD, its Document Signer, the chain to a CSCA.

Checks, each with its own reason: the SOD parses (9303-10 §4.6.2); the message-digest
attribute is the hash of the LDSSecurityObject (RFC 5652 §11.2); the signature verifies with
the DS certificate the SOD carries; the DS certificate is a DS (9303-12 Table 6), was issued by
a trusted CSCA, is valid at the check time, was inside its private key usage period when the
card was signed, and its DocumentType list allows this document (9303-12 §7.1.1.6); every
data group read hashes to the SOD's value; EF.COM lists the same data groups as the SOD.

Signing time: the SOD carries none, so the usage period is checked at the check time — right
for a card verified in line just after signing. A QA desk re-checking an old card turns that
check into a warning (``usage_period_is_failure=False``): the DS key may well have retired since.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from asn1crypto import algos, keys, pem

from applets.emrtd.lds.com import decode_com
from applets.emrtd.lds.dg15 import rsa_key_problem
from applets.emrtd.lds.files import dg_for_tag
from applets.emrtd.lds.sod import SOD, parse_sod
from applets.errors import CardError, LDSError
from hsm.certificates import (
    CertificateError,
    document_types,
    is_ca,
    load_certificate,
    private_key_usage_period,
    subject_key_identifier,
    subject_public_key_info,
    verify_certificate_signature,
    verify_signature,
)
from qa.errors import TrustStoreError
from qa.reasons import Finding, Reason

EAC_PROTECTED = frozenset({3, 4})  # ICAO 9303-11 §7: fingerprints and iris need EAC, not BAC


@dataclass(frozen=True, slots=True)
class TrustStore:
    """The trusted CSCA certificates (DER), as ``cardline keys`` exports them."""

    certificates: tuple[bytes, ...]

    @classmethod
    def from_pem(cls, data: bytes, source: str = "PEM") -> TrustStore:
        """Every CERTIFICATE block of a PEM text (DER bytes are accepted as one certificate)."""
        try:
            blocks = ([der for kind, _, der in pem.unarmor(data, multiple=True)
                       if kind == "CERTIFICATE"] if pem.detect(data) else [data])
            for der in blocks:
                load_certificate(der)
        except (ValueError, CertificateError) as exc:
            raise TrustStoreError(source, f"not a certificate: {exc}") from exc
        if not blocks:
            raise TrustStoreError(source, "holds no CERTIFICATE")
        return cls(tuple(bytes(b) for b in blocks))

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> TrustStore:
        """All certificates of several PEM (or DER) files."""
        found: list[bytes] = []
        for path in paths:
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise TrustStoreError(str(path), exc.strerror or "cannot read") from exc
            found += cls.from_pem(data, str(path)).certificates
        if not found:
            raise TrustStoreError("(none)", "no CSCA certificate given")
        return cls(tuple(found))


def read_sod(data: bytes | None) -> SOD | Finding:
    """The parsed SOD, or ``sod_malformed``."""
    if data is None:
        return Finding(Reason.SOD_MALFORMED, "EF.SOD not on the chip")
    try:
        return parse_sod(data)
    except CardError as exc:
        return Finding(Reason.SOD_MALFORMED, str(exc))


@lru_cache(maxsize=64)
def _identity(der: bytes) -> tuple[bytes, int, bytes | None] | None:
    """(issuer DER, serial, subject key identifier) of a certificate; None if unreadable."""
    try:
        tbs = load_certificate(der)["tbs_certificate"]
        return bytes(tbs["issuer"].dump()), int(tbs["serial_number"].native), \
            subject_key_identifier(der)
    except CertificateError:
        return None


@lru_cache(maxsize=64)
def _spki(der: bytes) -> bytes:
    return subject_public_key_info(der)


def certificate_serial(der: bytes) -> str | None:
    """A certificate's serial number in hex, or None when a hostile one hides it."""
    try:
        return f"{int(load_certificate(der)['tbs_certificate']['serial_number'].native):x}"
    except (ValueError, TypeError, KeyError, CertificateError):
        return None


def signer_certificate(sod: SOD) -> bytes | None:
    """The certificate the SignerInfo's sid names (issuer and serial, or key identifier)."""
    for der in sod.certificates:
        identity = _identity(der)
        if identity is None:
            continue
        if sod.sid_issuer_serial is not None and identity[:2] == sod.sid_issuer_serial:
            return der
        if sod.sid_ski is not None and identity[2] == sod.sid_ski:
            return der
    return None


def _rsa_problem(spki_der: bytes) -> str | None:
    """Why the chip-supplied DS key is refused before an RSA operation (see dg15's bounds)."""
    info = keys.PublicKeyInfo.load(spki_der, strict=True)
    if info["algorithm"]["algorithm"].native not in ("rsa", "rsassa_pss"):
        return None
    numbers = info["public_key"].parsed
    return rsa_key_problem(int(numbers["modulus"].native), int(numbers["public_exponent"].native))


def check_signature(sod: SOD, ds_der: bytes) -> list[Finding]:
    """RFC 5652 §5.4/§11.2: message digest over eContent, signature over the signed attributes."""
    digest = hashlib.new(sod.digest_algorithm, sod.econtent).digest()
    if not hmac.compare_digest(digest, sod.message_digest):
        return [Finding(Reason.SOD_DIGEST_MISMATCH)]
    try:
        problem = _rsa_problem(_spki(ds_der))
        if problem is not None:
            return [Finding(Reason.DS_CERTIFICATE_INVALID, problem)]
        algorithm = algos.SignedDigestAlgorithm.load(sod.signature_algorithm_der)
        verify_signature(_spki(ds_der), algorithm, sod.signature, sod.signed_attrs_der)
    except (CertificateError, ValueError, KeyError) as exc:
        return [Finding(Reason.SOD_SIGNATURE_INVALID, str(exc))]
    return []


def _in(moment: datetime, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or start <= moment) and (end is None or moment <= end)


Window = tuple[datetime | None, datetime | None]


@dataclass(frozen=True, slots=True)
class SignerFacts:
    """What a DS certificate's checks found that does not depend on the card or the time.

    One DS signs thousands of cards, so these are computed once per (DS, trust store).
    """

    findings: tuple[Finding, ...]  # profile, chain and DocumentType-extension findings
    validity: Window
    usage: Window
    csca_validity: Window
    document_types: frozenset[str]


def _validity(der: bytes) -> Window:
    validity = load_certificate(der)["tbs_certificate"]["validity"]
    return validity["not_before"].native, validity["not_after"].native


def check_profile(ds_der: bytes) -> list[Finding]:
    """ICAO 9303-12 Table 6: a DS is not a CA and its key usage is digitalSignature."""
    usage = load_certificate(ds_der).key_usage_value
    if is_ca(ds_der):
        return [Finding(Reason.DS_CERTIFICATE_INVALID, "the signer certificate is a CA")]
    if usage is None or "digital_signature" not in usage.native:
        return [Finding(Reason.DS_CERTIFICATE_INVALID, "key usage lacks digitalSignature")]
    return []


def issuing_csca(ds_der: bytes, trust: TrustStore) -> bytes | None:
    """The trusted CSCA whose key signed the DS certificate, if any."""
    for csca in trust.certificates:
        try:
            verify_certificate_signature(ds_der, csca)
        except CertificateError:
            continue
        return csca
    return None


def _document_types(ds_der: bytes) -> tuple[frozenset[str], list[Finding]]:
    try:
        allowed = frozenset(document_types(ds_der))
    except CertificateError as exc:
        return frozenset(), [Finding(Reason.DS_CERTIFICATE_INVALID, str(exc))]
    return allowed, [] if allowed else [Finding(Reason.DS_DOCUMENT_TYPE_MISSING)]


@lru_cache(maxsize=64)
def signer_facts(ds_der: bytes, trust: TrustStore) -> SignerFacts:
    """Check a DS certificate once: profile, issuer among the trusted CSCAs, extensions."""
    try:
        findings = check_profile(ds_der)
        csca = issuing_csca(ds_der, trust)
        if csca is None:
            detail = f"{len(trust.certificates)} CSCA certificate(s) tried"
            findings.append(Finding(Reason.DS_NOT_TRUSTED, detail))
        types, type_findings = _document_types(ds_der)
        return SignerFacts(tuple(findings + type_findings), _validity(ds_der),
                           private_key_usage_period(ds_der),
                           _validity(csca) if csca is not None else (None, None), types)
    except CertificateError as exc:
        failed = (Finding(Reason.DS_CERTIFICATE_INVALID, str(exc)),)
        return SignerFacts(failed, (None, None), (None, None), (None, None), frozenset())


def check_validity(facts: SignerFacts, at: datetime) -> list[Finding]:
    """The DS certificate (RFC 5280 §4.1.2.5) and its CSCA are valid at the check time."""
    start, end = facts.validity
    if start is not None and at < start:
        return [Finding(Reason.DS_NOT_YET_VALID, f"valid from {start:%Y-%m-%d}")]
    if end is not None and at > end:
        return [Finding(Reason.DS_EXPIRED, f"expired {end:%Y-%m-%d}")]
    if facts.csca_validity != (None, None) and not _in(at, *facts.csca_validity):
        return [Finding(Reason.CSCA_NOT_VALID)]
    return []


def check_usage_period(facts: SignerFacts, signed_at: datetime) -> list[Finding]:
    """ICAO 9303-12 Table 6: the DS private key was used inside its PrivateKeyUsagePeriod."""
    if facts.usage == (None, None):
        return [Finding(Reason.DS_OUTSIDE_USAGE_PERIOD, "no PrivateKeyUsagePeriod extension")]
    if not _in(signed_at, *facts.usage):
        return [Finding(Reason.DS_OUTSIDE_USAGE_PERIOD, "signing time outside the period")]
    return []


def _type_allowed(code: str, allowed: frozenset[str]) -> bool:
    # ICAO 9303-12 §7.1.1.6: the list holds MRZ document codes; a one-letter entry ('I')
    # covers every code that starts with it ('ID', 'IP'), a two-letter entry only itself.
    return code in allowed or code[:1] in {t for t in allowed if len(t) == 1}


def check_document_type(facts: SignerFacts, document_code: str | None) -> list[Finding]:
    """The DocumentType list allows the MRZ's document code (absence is a static finding)."""
    code = (document_code or "").strip("<")
    if document_code is None or not facts.document_types:
        return []
    if not _type_allowed(code, facts.document_types):
        allowed = ", ".join(sorted(facts.document_types))
        return [Finding(Reason.DS_DOCUMENT_TYPE_MISMATCH, f"document code {code} not in {allowed}")]
    return []


def check_certificate(ds_der: bytes, trust: TrustStore, at: datetime,
                      document_code: str | None) -> tuple[list[Finding], list[Finding]]:
    """(findings, usage-period findings) of every Document Signer check at time ``at``."""
    facts = signer_facts(ds_der, trust)
    if any(f.reason is Reason.DS_CERTIFICATE_INVALID for f in facts.findings):
        return list(facts.findings), []
    findings = list(facts.findings) + check_validity(facts, at)
    return findings + check_document_type(facts, document_code), check_usage_period(facts, at)


def check_hashes(sod: SOD, read: Mapping[int, bytes], missing: Iterable[int]) -> list[Finding]:
    """Each data group read hashes to the SOD's value; listed ones are present; none unsigned."""
    findings: list[Finding] = []
    absent = set(missing)
    for number, expected in sorted(sod.dg_hashes.items()):
        if number in absent:
            findings.append(Finding(Reason.DG_MISSING, f"DG{number}"))
        elif number in read:
            actual = hashlib.new(sod.hash_algorithm, read[number]).digest()
            if not hmac.compare_digest(actual, expected):
                findings.append(Finding(Reason.DG_HASH_MISMATCH, f"DG{number}"))
    unsigned = sorted(set(read) - set(sod.dg_hashes))
    findings += [Finding(Reason.DG_UNSIGNED, f"DG{n}") for n in unsigned]
    return findings


def com_groups(com: bytes) -> set[int] | Finding:
    """The data group numbers EF.COM lists."""
    try:
        return {dg_for_tag(tag) for tag in decode_com(com).tags}
    except (LDSError, CardError) as exc:
        return Finding(Reason.COM_INCONSISTENT, f"EF.COM does not decode: {exc}")


def check_com(com: bytes | None, sod: SOD) -> list[Finding]:
    """EF.COM's tag list names exactly the data groups the SOD covers."""
    if com is None:
        return [Finding(Reason.COM_INCONSISTENT, "EF.COM not on the chip")]
    listed = com_groups(com)
    if isinstance(listed, Finding):
        return [listed]
    signed = set(sod.dg_hashes)
    if listed != signed:
        only_com = " ".join(f"DG{n}" for n in sorted(listed - signed)) or "none"
        only_sod = " ".join(f"DG{n}" for n in sorted(signed - listed)) or "none"
        detail = f"only in COM: {only_com}; only in SOD: {only_sod}"
        return [Finding(Reason.COM_INCONSISTENT, detail)]
    return []
