"""The EAC PKI's ceremonies on open tokens and an inventory (BSI TR-03110-3 App. C; ICAO
9303-11 §7.1): the CVCA's self-signed CV certificate with its domain parameters, the domestic
DV certified by the CVCA, the QA desk's inspection system (IS) certified by the DV, an outside
inspection system's public key certified by the DV, and the CVCA rollover with its link
certificate.

Every key is generated in the HSM and signs there (CKM_ECDSA over a SHA-256 digest, plain
r ‖ s); every certificate is verified under its issuer's key before it is stored or given out.
Officers, time (``at``) and randomness (``rng``) are passed in; the service layer
(:mod:`personalization.service.eac`) authenticates the quorum and opens the tokens.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import cvc, eac_oids
from applets.emrtd.cvc import CHAT, CVCertificate, ISRights, Reference, Role
from common.curves import BRAINPOOL_P256R1, SECP256R1, Curve
from hsm import eac
from hsm.ceremony import check_officers, free_label
from hsm.errors import CeremonyError
from hsm.inventory import AuditEntry, InventoryPort, KeyRecord
from hsm.pkcs11 import HSM
from personalization.config import EACConfig

Random = Callable[[int], bytes]
TA_ALGORITHM = eac_oids.ID_TA_ECDSA_SHA_256
CURVES = {curve.label: curve for curve in (BRAINPOOL_P256R1, SECP256R1)}
RIGHTS = {"dg3": ISRights.DG3, "dg4": ISRights.DG4}
_log = structlog.get_logger()


class EACRequestError(CeremonyError):
    """A request the EAC policy refuses (validity, rights, curve, holder); ``code`` says which."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def parse_rights(text: str | Sequence[str]) -> ISRights:
    """``dg3``, ``dg4`` or both (comma-separated) as CHAT read rights; anything else refused."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text)]
    rights = ISRights.NONE
    for name in names:
        if name not in RIGHTS:
            raise EACRequestError(f"right {name!r} is not one an inspection system may get "
                                  "(dg3, dg4)", code="rights")
        rights |= RIGHTS[name]
    if rights is ISRights.NONE:
        raise EACRequestError("no right asked for: give dg3, dg4 or dg3,dg4", code="rights")
    return rights


def check_days(days: int, limit: int, what: str) -> int:
    """``days`` if the policy's ``limit`` (line.yaml key ``what``) allows it."""
    if not 1 <= days <= limit:
        raise EACRequestError(f"{days} days: the policy allows 1 to {limit} days ({what}); a "
                              "request may be shorter, never longer", code="validity")
    return days


def check_holder(mnemonic: str) -> str:
    """A holder mnemonic of a CHR (TR-03110-3 A.6.1), upper-case letters and digits here."""
    if not (1 <= len(mnemonic) <= 9 and mnemonic.isascii() and mnemonic.isalnum()
            and mnemonic == mnemonic.upper()):
        raise EACRequestError(f"holder mnemonic {mnemonic!r}: 1 to 9 upper-case letters or "
                              "digits", code="holder")
    return mnemonic


def load_public_point(pem: bytes, curve: Curve) -> bytes:
    """The uncompressed point of a PEM EC public key on ``curve``; another curve refused."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise EACRequestError("the public key is not a PEM SubjectPublicKeyInfo",
                              code="public-key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EACRequestError("the public key is not an EC key", code="public-key")
    if key.curve.name != curve.crypto_curve().name:
        raise EACRequestError(f"the public key is on {key.curve.name}; the CVCA's curve is "
                              f"{curve.label}: Terminal Authentication needs the same domain "
                              "parameters along the chain", code="curve")
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def decode(record: KeyRecord) -> CVCertificate:
    """The CV certificate an EAC record holds."""
    return CVCertificate.decode(record.certificate)


def curve_of(record: KeyRecord) -> Curve:
    """The curve of an EAC record's key."""
    return CURVES[eac.curve_of(record.algorithm)]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Subject:
    """What a new certificate says of its holder."""

    holder: Reference
    point: bytes
    curve: Curve
    role: Role
    rights: ISRights
    effective: date
    expiry: date


@dataclass(frozen=True, slots=True)
class _Issuer:
    """Who signs a new certificate: its reference, key and signer."""

    reference: Reference
    point: bytes
    curve: Curve
    sign: eac.Signer
    expiry: date | None  # the issuer certificate's own expiry (none for a self-signed one)


def _certify(subject: _Subject, issuer: _Issuer) -> bytes:
    """The CV certificate of ``subject`` signed by ``issuer``, verified under its key."""
    domain = cvc.DomainParameters.from_curve(subject.curve) if subject.role is Role.CVCA else None
    # TR-03110-3 C.1.5: no certificate outlives the one that signs it.
    expiry = subject.expiry if issuer.expiry is None else min(subject.expiry, issuer.expiry)
    body = cvc.CertificateBody(
        issuer.reference, cvc.PublicKey(TA_ALGORITHM, subject.point, domain), subject.holder,
        CHAT.inspection_system(subject.role, subject.rights), subject.effective, expiry)
    certificate = cvc.sign_body(body, issuer.sign)
    cvc.verify(certificate, issuer.point, issuer.curve, TA_ALGORITHM)
    return certificate.encode()


def _issuer(hsm: HSM, record: KeyRecord) -> _Issuer:
    certificate = decode(record)
    return _Issuer(certificate.body.chr, certificate.body.public_key.point, curve_of(record),
                   eac.ta_signer(hsm, record.label, record.key_id), certificate.body.expiry)


def _next_reference(inventory: InventoryPort, role: str, country: str, mnemonic: str) -> Reference:
    taken = [decode(r).body.chr for r in inventory.all_keys() if r.role == role]
    number = 1 + sum(1 for ref in taken if (ref.country, ref.mnemonic) == (country, mnemonic))
    return Reference(country, mnemonic, f"{number:05d}")


def _record(label: str, key_id: bytes, role: str, curve: Curve, certificate: bytes,
            at: datetime, officers: tuple[str, ...]) -> KeyRecord:
    body = CVCertificate.decode(certificate).body
    return KeyRecord(label, key_id, role, eac.algorithm_name(curve.label), certificate,
                     _midnight(body.effective), _midnight(body.expiry), None, 0, "active", at,
                     officers)


def _active(inventory: InventoryPort, role: str, at: datetime) -> KeyRecord:
    record = inventory.active(role)
    if record is None:
        raise CeremonyError(f"there is no active {role}; run `cardline keys eac-init` first")
    if not record.not_before <= at < record.not_after + timedelta(days=1):
        raise CeremonyError(f"{role} {record.label!r} is outside its certificate's validity "
                            f"({record.not_before:%Y-%m-%d} to {record.not_after:%Y-%m-%d})")
    return record


def _new_key(hsm: HSM, inventory: InventoryPort, holder: Reference, curve: Curve,
             rng: Random) -> tuple[str, bytes, bytes]:
    label = f"EAC-{holder}"
    free_label(hsm, inventory, label)
    key_id = rng(8)
    return label, key_id, eac.generate_key(hsm, label, key_id, curve.oid)


@dataclass(frozen=True, slots=True)
class Ceremony:
    """Who takes part in an EAC ceremony and when: officers, time, randomness, quorum."""

    officers: tuple[str, ...]
    at: datetime
    rng: Random = secrets.token_bytes

    @classmethod
    def of(cls, officers: Sequence[str], at: datetime, *, quorum: int = 2,
           rng: Random = secrets.token_bytes) -> Ceremony:
        """Refuse fewer than ``quorum`` different officers (``CeremonyError``)."""
        return cls(check_officers(officers, quorum), at, rng)


def _new_cvca(csca_hsm: HSM, inventory: InventoryPort, policy: EACConfig,
              c: Ceremony) -> tuple[KeyRecord, bytes]:
    """A CVCA key on ``csca_hsm`` and its self-signed certificate (not yet stored)."""
    curve = CURVES[policy.curve]
    holder = _next_reference(inventory, eac.CVCA, policy.country, policy.cvca_mnemonic)
    label, key_id, point = _new_key(csca_hsm, inventory, holder, curve, c.rng)
    effective = c.at.date()
    subject = _Subject(holder, point, curve, Role.CVCA, ISRights.DG3 | ISRights.DG4, effective,
                       effective + timedelta(days=policy.cvca_days))
    signer = eac.ta_signer(csca_hsm, label, key_id)
    certificate = _certify(subject, _Issuer(holder, point, curve, signer, None))
    return _record(label, key_id, eac.CVCA, curve, certificate, c.at, c.officers), point


def init_cvca(csca_hsm: HSM, inventory: InventoryPort, policy: EACConfig,
              c: Ceremony) -> KeyRecord:
    """The CVCA: key on the CSCA's token, self-signed certificate with domain parameters."""
    if inventory.active(eac.CVCA) is not None:
        raise CeremonyError("an active CVCA exists already; replace it with "
                            "`cardline keys eac-rollover`")
    record, _ = _new_cvca(csca_hsm, inventory, policy, c)
    inventory.add_key(record, AuditEntry(c.at, "init-cvca", record.label, c.officers,
                                         f"curve={policy.curve} days={policy.cvca_days}"))
    _log.info("hsm.ceremony.cvca_created", label=record.label)
    return record


def new_dv(line_hsm: HSM, cvca_hsm: HSM, inventory: InventoryPort, policy: EACConfig,
           c: Ceremony) -> KeyRecord:
    """A domestic DV key on the line token, certified by the active CVCA; the previous DV
    retires (IS certificates it issued stay valid until they expire)."""
    cvca = _active(inventory, eac.CVCA, c.at)
    curve = curve_of(cvca)
    holder = _next_reference(inventory, eac.DV, policy.country, policy.dv_mnemonic)
    label, key_id, point = _new_key(line_hsm, inventory, holder, curve, c.rng)
    subject = _Subject(holder, point, curve, Role.DV_DOMESTIC, ISRights.DG3 | ISRights.DG4,
                       c.at.date(), c.at.date() + timedelta(days=policy.dv_days))
    certificate = _certify(subject, _issuer(cvca_hsm, cvca))
    record = _record(label, key_id, eac.DV, curve, certificate, c.at, c.officers)
    inventory.add_key(record, AuditEntry(c.at, "new-dv", label, c.officers,
                                         f"car={cvca.label} days={policy.dv_days}"),
                      supersede=True)
    _log.info("hsm.ceremony.dv_created", label=label)
    return record


def new_qa_is(line_hsm: HSM, inventory: InventoryPort, policy: EACConfig,
              c: Ceremony) -> KeyRecord:
    """The QA desk's inspection-system key on the line token, certified by the active DV with
    the policy's rights (``eac.qa_rights``); the previous one retires."""
    dv = _active(inventory, eac.DV, c.at)
    curve = curve_of(dv)
    holder = _next_reference(inventory, eac.IS, policy.country, policy.qa_mnemonic)
    label, key_id, point = _new_key(line_hsm, inventory, holder, curve, c.rng)
    rights = parse_rights(policy.qa_rights)
    subject = _Subject(holder, point, curve, Role.TERMINAL, rights, c.at.date(),
                       c.at.date() + timedelta(days=policy.is_days))
    certificate = _certify(subject, _issuer(line_hsm, dv))
    record = _record(label, key_id, eac.IS, curve, certificate, c.at, c.officers)
    inventory.add_key(record, AuditEntry(c.at, "new-qa-is", label, c.officers,
                                         f"car={dv.label} rights={','.join(policy.qa_rights)}"),
                      supersede=True)
    _log.info("hsm.ceremony.qa_is_created", label=label)
    return record


@dataclass(frozen=True, slots=True)
class ISRequest:
    """An outside inspection system's request: its key, rights, validity and holder name."""

    point: bytes
    rights: ISRights
    days: int
    holder: str


def issue_is(line_hsm: HSM, inventory: InventoryPort, policy: EACConfig, request: ISRequest,
             c: Ceremony) -> tuple[bytes, bytes, bytes]:
    """Certify an outside inspection system's key with the active DV: the chain (CVCA, DV,
    IS) as DER CV certificates, the CVCA the one that signed the DV."""
    check_days(request.days, policy.is_days, "eac.is_days")
    dv = _active(inventory, eac.DV, c.at)
    curve = curve_of(dv)
    cvca = by_reference(inventory, decode(dv).body.car)
    number = 1 + sum(1 for e in inventory.audit_trail() if e.action == "issue-is")
    holder = Reference(policy.country, check_holder(request.holder), f"{number:05d}")
    subject = _Subject(holder, request.point, curve, Role.TERMINAL, request.rights, c.at.date(),
                       c.at.date() + timedelta(days=request.days))
    certificate = _certify(subject, _issuer(line_hsm, dv))
    rights = ",".join(name for name, flag in RIGHTS.items() if flag in request.rights)
    inventory.record(AuditEntry(c.at, "issue-is", dv.label, c.officers,
                                f"chr={holder} rights={rights} days={request.days}"))
    _log.info("hsm.ceremony.is_certified", holder=str(holder), rights=rights)
    return cvca.certificate, dv.certificate, certificate


def by_reference(inventory: InventoryPort, reference: Reference) -> KeyRecord:
    """The EAC record whose certificate holder is ``reference``."""
    for record in inventory.all_keys():
        if record.role in eac.EAC_ROLES and decode(record).body.chr == reference:
            return record
    raise CeremonyError(f"no EAC certificate of {reference} in the inventory")


def chain(inventory: InventoryPort, record: KeyRecord) -> tuple[bytes, ...]:
    """``record``'s certificate and its issuers up to the self-signed CVCA, CVCA first."""
    found = [record]
    while decode(found[-1]).body.car != decode(found[-1]).body.chr:
        if len(found) > len(eac.EAC_ROLES):
            raise CeremonyError(f"the chain of {record.label!r} does not end in a CVCA")
        found.append(by_reference(inventory, decode(found[-1]).body.car))
    return tuple(r.certificate for r in reversed(found))


@dataclass(frozen=True)
class CVCARollover:
    """A new CVCA: its record (self-signed certificate) and the link certificate, the same
    body signed by the previous CVCA key (TR-03110-3 §2.3, link certificates)."""

    new: KeyRecord
    link: bytes
    previous: KeyRecord


def rollover_cvca(csca_hsm: HSM, inventory: InventoryPort, policy: EACConfig,
                  c: Ceremony) -> CVCARollover:
    """A new CVCA key (on the policy's curve) with its self-signed certificate and a link
    certificate from the previous CVCA; the previous CVCA retires. Chips that trust the old
    CVCA follow the link to the new one."""
    old = inventory.active(eac.CVCA)
    if old is None:
        raise CeremonyError("there is no active CVCA to roll over; run `cardline keys eac-init`")
    record, point = _new_cvca(csca_hsm, inventory, policy, c)
    body = decode(record).body
    subject = _Subject(body.chr, point, curve_of(record), Role.CVCA, body.chat.rights,
                       body.effective, body.expiry)
    issuer = _issuer(csca_hsm, old)
    link = _certify(subject, _Issuer(issuer.reference, issuer.point, issuer.curve, issuer.sign,
                                     None))  # TR-03110-3 §2.3: a link may outlive the old CVCA
    inventory.add_key(record, AuditEntry(c.at, "rollover-cvca", record.label, c.officers,
                                         f"replaces={old.label} link={link.hex()}"),
                      supersede=True)
    _log.info("hsm.ceremony.cvca_rolled_over", old=old.label, new=record.label)
    return CVCARollover(record, link, old)


@dataclass(frozen=True)
class TerminalKey:
    """What the QA desk needs for Terminal Authentication: the chain (CVCA, DV, IS) as DER
    CV certificates, the IS certificate's holder, its curve, and a signer backed by the HSM."""

    chain: tuple[bytes, ...]
    holder: str
    curve: Curve
    sign: eac.Signer


def qa_terminal(line_hsm: HSM, inventory: InventoryPort, at: datetime) -> TerminalKey:
    """The QA desk's active IS key, checked against the key policy, with its chain."""
    record = _active(inventory, eac.IS, at)
    eac.check_key(line_hsm, record.label, record.key_id)
    return TerminalKey(chain(inventory, record), str(decode(record).body.chr), curve_of(record),
                       eac.ta_signer(line_hsm, record.label, record.key_id))
