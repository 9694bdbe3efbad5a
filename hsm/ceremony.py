"""Key ceremonies, each under a quorum of officers: the CSCA (creation, rollover with link
certificates), Document Signer keys (creation from a request, revocation), CRLs and master
lists.

Keys are generated in the HSM and never leave it; certificates are signed in the HSM.
Time (``at``) and randomness (``rng``) are passed in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from hsm.certificates import (
    build_certification_request,
    build_csca_certificate,
    build_ds_certificate,
    build_link_certificate,
    build_master_list_signer_certificate,
    certificate_to_pem,
    load_certificate,
    serial_from_random,
    verify_certificate_signature,
    verify_certification_request,
)
from hsm.crl import REASONS, Revoked, build_crl, verify_crl
from hsm.errors import CeremonyError, KeyNotFound
from hsm.inventory import AuditEntry, InventoryPort, KeyRecord
from hsm.masterlist import build_master_list, verify_master_list
from hsm.pkcs11 import HSM, algorithm_spec

Random = Callable[[int], bytes]
_log = structlog.get_logger()


def check_officers(officers: Sequence[str], quorum: int = 2) -> tuple[str, ...]:
    """At least ``quorum`` (k ≥ 2) different, named officers, in the order given — the same
    name twice (whatever its case or spaces) counts once — or ``CeremonyError``. The names
    are of people who have each authenticated in this ceremony: the service layer checks
    that before the HSM is opened."""
    if quorum < 2:
        raise CeremonyError("a key ceremony's quorum is at least two officers")
    names: list[str] = []
    seen: set[str] = set()
    for name in (officer.strip() for officer in officers):
        if not name:
            raise CeremonyError("an officer of a key ceremony has no name")
        if name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
    if len(names) < quorum:
        raise CeremonyError(f"a key ceremony needs {quorum} different officers; "
                            f"{len(names)} took part (the same officer twice counts once)")
    return tuple(names)


def years_after(moment: datetime, years: int) -> datetime:
    """``moment`` plus whole calendar years (29 February becomes 28 February)."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def _check_algorithm(algorithm: str) -> None:
    try:
        algorithm_spec(algorithm)
    except ValueError as exc:
        raise CeremonyError(str(exc)) from exc


def free_label(hsm: HSM, inventory: InventoryPort, label: str) -> None:
    """Refuse ``label`` when the inventory or the token has it already."""
    if any(record.label == label for record in inventory.all_keys()):
        raise CeremonyError(f"key label {label!r} is already in the inventory")
    try:
        hsm.key_attributes(label)
    except KeyNotFound:
        return
    raise CeremonyError(f"key label {label!r} already exists in the HSM; choose another label")


def init_csca(
    hsm: HSM, inventory: InventoryPort, *, officers: Sequence[str], at: datetime,
    label: str = "CSCA", country: str = "VN", icao_code: str = "VNM",
    common_name: str = "CSCA Vietnam", algorithm: str = "ecdsa-p256",
    validity_years: int = 15, usage_years: int = 5, rng: Random = secrets.token_bytes,
    ec_parameters: str = "explicit", quorum: int = 2,
) -> KeyRecord:
    """Generate the CSCA key in the HSM and its self-signed certificate (9303-12 Table 1)."""
    pair = check_officers(officers, quorum)
    _check_algorithm(algorithm)
    if inventory.active("CSCA") is not None:
        raise CeremonyError("an active CSCA already exists; replace it by rollover")
    record = _new_csca(hsm, inventory, _CSCASpec(label, algorithm, country, icao_code,
                                                 common_name, validity_years, usage_years,
                                                 ec_parameters), pair, at, rng)
    inventory.add_key(record, AuditEntry(at, "init-csca", label, pair, f"algorithm={algorithm}"))
    _log.info("hsm.ceremony.csca_created", label=label, algorithm=algorithm)
    return record


@dataclass(frozen=True)
class _CSCASpec:
    """What a new CSCA key and its certificate are made of."""

    label: str
    algorithm: str
    country: str
    icao_code: str
    common_name: str
    validity_years: int
    usage_years: int
    ec_parameters: str


def _new_csca(hsm: HSM, inventory: InventoryPort, spec: _CSCASpec, officers: tuple[str, ...],
              at: datetime, rng: Random) -> KeyRecord:
    """A CSCA key generated in ``hsm`` and its self-signed certificate (9303-12 Table 1), as
    the record to store; its name serial counts the CSCAs before it."""
    free_label(hsm, inventory, spec.label)
    key_id = rng(8)
    spki = hsm.generate_keypair(spec.label, key_id, spec.algorithm)
    csca_count = sum(1 for record in inventory.all_keys() if record.role == "CSCA")
    usage = (at, years_after(at, spec.usage_years))
    certificate = build_csca_certificate(
        spki_der=spki, serial_number=serial_from_random(rng(16)), country=spec.country,
        icao_code=spec.icao_code, common_name=spec.common_name,
        name_serial=str(csca_count + 1), validity=(at, years_after(at, spec.validity_years)),
        usage=usage, sign=lambda tbs: hsm.sign(spec.label, tbs, spec.algorithm, key_id),
        ec_parameters=spec.ec_parameters)
    verify_certificate_signature(certificate, certificate)
    return KeyRecord(spec.label, key_id, "CSCA", spec.algorithm, certificate, usage[0],
                     usage[1], None, 0, "active", at, officers)


def _next_ds_number(inventory: InventoryPort, prefix: str, at: datetime) -> int:
    stem = f"{prefix}-{at:%Y%m%d}-"
    return 1 + sum(1 for record in inventory.all_keys() if record.label.startswith(stem))


def _active_csca(inventory: InventoryPort, at: datetime) -> KeyRecord:
    csca = inventory.active("CSCA")
    if csca is None:
        raise CeremonyError("there is no active CSCA; run `cardline keys init` first")
    # ICAO 9303-12 §4.1.4: the CSCA private key signs only inside its usage period.
    if not csca.not_before <= at < csca.not_after:
        raise CeremonyError(f"CSCA {csca.label!r} is outside its private key usage period")
    return csca


def new_ds(
    hsm: HSM, inventory: InventoryPort, *, officers: Sequence[str], at: datetime,
    usage_days: int, max_documents: int, doc_types: Sequence[str] = ("ID",),
    algorithm: str = "ecdsa-p256", label_prefix: str = "DS", icao_code: str = "VNM",
    document_validity_years: int = 10, rng: Random = secrets.token_bytes,
    ec_parameters: str = "explicit", csca_hsm: HSM | None = None, quorum: int = 2,
) -> KeyRecord:
    """Generate a DS key on the line token ``hsm``, certify it with the CSCA on ``csca_hsm``
    (its own token; the line token when None, for a one-token test set-up), activate it and
    retire the old DS.

    The DS key signs a PKCS#10 request on the line token and the CSCA certifies exactly the
    key whose request verifies: the DS private key never leaves its token, the CSCA key never
    leaves its own.
    """
    names = check_officers(officers, quorum)
    _check_algorithm(algorithm)
    if usage_days <= 0 or max_documents <= 0:
        raise CeremonyError("usage days and maximum documents must be positive")
    signer_hsm = csca_hsm or hsm
    csca = _active_csca(inventory, at)
    number = _next_ds_number(inventory, label_prefix, at)
    label = f"{label_prefix}-{at:%Y%m%d}-{number}"
    free_label(hsm, inventory, label)
    key_id = rng(8)
    generated = hsm.generate_keypair(label, key_id, algorithm)
    country = load_certificate(csca.certificate).subject.native["country_name"]
    name_serial = f"{at:%Y%m%d}{number:03d}"
    request = build_certification_request(
        spki_der=generated, country=country, common_name=f"Document Signer {icao_code}",
        name_serial=name_serial, ec_parameters=ec_parameters,
        sign=lambda info: hsm.sign(label, info, algorithm, key_id))
    spki = verify_certification_request(request)
    usage = (at, at + timedelta(days=usage_days))
    # 9303-12 Table 1: DS certificate validity = key usage period + document validity,
    # but never beyond the CSCA certificate's own validity.
    csca_end = load_certificate(csca.certificate)["tbs_certificate"]["validity"]["not_after"].native
    validity = (at, min(years_after(usage[1], document_validity_years), csca_end))
    certificate = build_ds_certificate(
        spki_der=spki, serial_number=serial_from_random(rng(16)), csca_der=csca.certificate,
        icao_code=icao_code, common_name=f"Document Signer {icao_code}",
        name_serial=name_serial, validity=validity,
        usage=usage, doc_types=doc_types, ec_parameters=ec_parameters,
        sign=lambda tbs: signer_hsm.sign(csca.label, tbs, csca.algorithm, csca.key_id),
    )
    verify_certificate_signature(certificate, csca.certificate)
    record = KeyRecord(label, key_id, "DS", algorithm, certificate, usage[0], usage[1],
                       max_documents, 0, "active", at, names)
    detail = f"algorithm={algorithm} usage_days={usage_days} max_documents={max_documents}"
    inventory.add_key(record, AuditEntry(at, "new-ds", label, names, detail), supersede=True)
    _log.info("hsm.ceremony.ds_created", label=label, algorithm=algorithm)
    return record


def revoke_ds(inventory: InventoryPort, label: str, *, reason: str, officers: Sequence[str],
              at: datetime, quorum: int = 2) -> KeyRecord:
    """Revoke a DS key (RFC 5280 reason name): every signer stops using it within a second;
    the next CRL lists it."""
    names = check_officers(officers, quorum)
    if reason not in REASONS:
        raise CeremonyError(f"revocation reason {reason!r} is not one of {', '.join(REASONS)}")
    record = inventory.get(label)
    if record.role != "DS":
        raise CeremonyError(f"{label!r} is a {record.role} key; only DS keys are revoked here "
                            "(a CSCA is replaced by rollover)")
    if not inventory.revoke(label, reason, at, names):
        raise CeremonyError(f"DS {label!r} is revoked already")
    _log.info("hsm.ceremony.ds_revoked", label=label, reason=reason)
    return inventory.get(label)


def revocations(inventory: InventoryPort) -> list[Revoked]:
    """Every revoked DS certificate with when and why, from the inventory's audit trail."""
    when: dict[str, tuple[datetime, str]] = {}
    for entry in inventory.audit_trail():
        if entry.action == "revoke" and entry.key_label not in when:
            when[entry.key_label] = (entry.at, entry.detail.removeprefix("reason="))
    revoked = []
    for record in inventory.all_keys():
        if record.status == "revoked" and record.label in when:
            at, reason = when[record.label]
            serial = int(load_certificate(record.certificate).serial_number)
            revoked.append(Revoked(serial, at, reason if reason in REASONS else "unspecified"))
    return revoked


def issue_crl(csca_hsm: HSM, inventory: InventoryPort, *, officers: Sequence[str],
              at: datetime, number: int, next_update_days: int = 30,
              quorum: int = 2) -> bytes:
    """A CRL of every revoked DS, signed by the active CSCA (nextUpdate ≤ 90 days)."""
    names = check_officers(officers, quorum)
    csca = _active_csca(inventory, at)
    crl = build_crl(csca_der=csca.certificate, revoked=revocations(inventory), this_update=at,
                    next_update=at + timedelta(days=next_update_days), crl_number=number,
                    sign=lambda tbs: csca_hsm.sign(csca.label, tbs, csca.algorithm,
                                                   csca.key_id))
    verify_crl(crl, csca.certificate)
    due = (at + timedelta(days=next_update_days)).isoformat()
    inventory.record(AuditEntry(at, "crl", csca.label, names,
                                f"number={number} next_update={due}"))
    return crl


def master_list(csca_hsm: HSM, inventory: InventoryPort, *, officers: Sequence[str],
                at: datetime, icao_code: str = "VNM", rng: Random = secrets.token_bytes,
                ec_parameters: str = "explicit", quorum: int = 2) -> bytes:
    """A CSCA master list (every CSCA certificate of the inventory, old and new), signed by a
    fresh master-list signer key on the CSCA token that the active CSCA certifies."""
    names = check_officers(officers, quorum)
    csca = _active_csca(inventory, at)
    label = f"MLS-{at:%Y%m%d%H%M%S}-{rng(3).hex()}"
    key_id = rng(8)
    spki = csca_hsm.generate_keypair(label, key_id, csca.algorithm)
    signer = build_master_list_signer_certificate(
        spki_der=spki, serial_number=serial_from_random(rng(16)), csca_der=csca.certificate,
        icao_code=icao_code, common_name=f"Master List Signer {icao_code}",
        name_serial=f"{at:%Y%m%d%H%M%S}", validity=(at, years_after(at, 1)),
        usage=(at, at + timedelta(days=1)), ec_parameters=ec_parameters,
        sign=lambda tbs: csca_hsm.sign(csca.label, tbs, csca.algorithm, csca.key_id))
    certificates = [r.certificate for r in inventory.all_keys() if r.role == "CSCA"]
    signed = build_master_list(
        csca_certificates=certificates, signer_der=signer, at=at,
        sign=lambda data: csca_hsm.sign(label, data, csca.algorithm, key_id))
    verify_master_list(signed, csca.certificate)
    inventory.record(AuditEntry(at, "master-list", label, names,
                                f"csca_certificates={len(certificates)}"))
    return signed


@dataclass(frozen=True)
class Rollover:
    """A CSCA rollover: the new CSCA and the two link certificates joining it to the old."""

    new: KeyRecord
    new_by_old: bytes  # the new CSCA's key and name, certified by the old key
    old_by_new: bytes  # the old CSCA's key and name, certified by the new key


def rollover_csca(
    csca_hsm: HSM, inventory: InventoryPort, *, officers: Sequence[str], at: datetime,
    label: str, country: str = "VN", icao_code: str = "VNM",
    common_name: str = "CSCA Vietnam", validity_years: int = 15, usage_years: int = 5,
    rng: Random = secrets.token_bytes, ec_parameters: str = "explicit", quorum: int = 2,
) -> Rollover:
    """A new CSCA key and self-signed certificate on the CSCA token, link certificates both
    ways (ICAO 9303-12 §4.1.5), and the old CSCA retired (DS keys it certified stay valid;
    new DS keys are certified by the new CSCA)."""
    names = check_officers(officers, quorum)
    old = _active_csca(inventory, at)
    record = _new_csca(csca_hsm, inventory, _CSCASpec(
        label, old.algorithm, country, icao_code, common_name, validity_years, usage_years,
        ec_parameters), names, at, rng)
    certificate, key_id = record.certificate, record.key_id
    new_by_old = build_link_certificate(
        subject_csca_der=certificate, issuer_csca_der=old.certificate,
        serial_number=serial_from_random(rng(16)),
        sign=lambda tbs: csca_hsm.sign(old.label, tbs, old.algorithm, old.key_id))
    old_by_new = build_link_certificate(
        subject_csca_der=old.certificate, issuer_csca_der=certificate,
        serial_number=serial_from_random(rng(16)),
        sign=lambda tbs: csca_hsm.sign(label, tbs, old.algorithm, key_id))
    verify_certificate_signature(new_by_old, old.certificate)
    verify_certificate_signature(old_by_new, certificate)
    inventory.add_key(record, AuditEntry(at, "rollover-csca", label, names,
                                         f"replaces={old.label}"), supersede=True)
    _log.info("hsm.ceremony.csca_rolled_over", old=old.label, new=label)
    return Rollover(record, new_by_old, old_by_new)


def list_keys(inventory: InventoryPort) -> list[KeyRecord]:
    """Every key in the inventory, oldest first."""
    return inventory.all_keys()


def export_csca_pem(inventory: InventoryPort) -> str:
    """The active CSCA certificate as PEM (for the PKD / master list / QA trust store)."""
    csca = inventory.active("CSCA")
    if csca is None:
        raise CeremonyError("there is no active CSCA; run `cardline keys init` first")
    return certificate_to_pem(csca.certificate)
