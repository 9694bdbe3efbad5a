"""Key ceremonies: CSCA initialisation and Document Signer rotation, each under two officers.

Keys are generated in the HSM and never leave it; certificates are signed in the HSM.
Time (``at``) and randomness (``rng``) are passed in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import structlog

from hsm.certificates import (
    build_csca_certificate,
    build_ds_certificate,
    certificate_to_pem,
    load_certificate,
    serial_from_random,
    verify_certificate_signature,
)
from hsm.errors import CeremonyError, KeyNotFound
from hsm.inventory import AuditEntry, InventoryPort, KeyRecord
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


def _free_label(hsm: HSM, inventory: InventoryPort, label: str) -> None:
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
        raise CeremonyError("an active CSCA already exists; CSCA rollover is not supported yet")
    _free_label(hsm, inventory, label)
    key_id = rng(8)
    spki = hsm.generate_keypair(label, key_id, algorithm)
    csca_count = sum(1 for record in inventory.all_keys() if record.role == "CSCA")
    usage = (at, years_after(at, usage_years))
    certificate = build_csca_certificate(
        spki_der=spki, serial_number=serial_from_random(rng(16)), country=country,
        icao_code=icao_code, common_name=common_name, name_serial=str(csca_count + 1),
        validity=(at, years_after(at, validity_years)), usage=usage,
        sign=lambda tbs: hsm.sign(label, tbs, algorithm, key_id), ec_parameters=ec_parameters,
    )
    verify_certificate_signature(certificate, certificate)
    record = KeyRecord(label, key_id, "CSCA", algorithm, certificate, usage[0], usage[1], None, 0,
                       "active", at, pair)
    inventory.add_key(record, AuditEntry(at, "init-csca", label, pair, f"algorithm={algorithm}"))
    _log.info("hsm.ceremony.csca_created", label=label, algorithm=algorithm)
    return record


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
    ec_parameters: str = "explicit",
) -> KeyRecord:
    """Generate a DS key in the HSM, certify it with the CSCA, activate it, retire the old DS."""
    pair = check_officers(officers)
    _check_algorithm(algorithm)
    if usage_days <= 0 or max_documents <= 0:
        raise CeremonyError("usage days and maximum documents must be positive")
    csca = _active_csca(inventory, at)
    number = _next_ds_number(inventory, label_prefix, at)
    label = f"{label_prefix}-{at:%Y%m%d}-{number}"
    _free_label(hsm, inventory, label)
    key_id = rng(8)
    spki = hsm.generate_keypair(label, key_id, algorithm)
    usage = (at, at + timedelta(days=usage_days))
    # 9303-12 Table 1: DS certificate validity = key usage period + document validity,
    # but never beyond the CSCA certificate's own validity.
    csca_end = load_certificate(csca.certificate)["tbs_certificate"]["validity"]["not_after"].native
    validity = (at, min(years_after(usage[1], document_validity_years), csca_end))
    certificate = build_ds_certificate(
        spki_der=spki, serial_number=serial_from_random(rng(16)), csca_der=csca.certificate,
        icao_code=icao_code, common_name=f"Document Signer {icao_code}",
        name_serial=f"{at:%Y%m%d}{number:03d}", validity=validity,
        usage=usage, doc_types=doc_types, ec_parameters=ec_parameters,
        sign=lambda tbs: hsm.sign(csca.label, tbs, csca.algorithm, csca.key_id),
    )
    verify_certificate_signature(certificate, csca.certificate)
    record = KeyRecord(label, key_id, "DS", algorithm, certificate, usage[0], usage[1],
                       max_documents, 0, "active", at, pair)
    detail = f"algorithm={algorithm} usage_days={usage_days} max_documents={max_documents}"
    inventory.add_key(record, AuditEntry(at, "new-ds", label, pair, detail), supersede=True)
    _log.info("hsm.ceremony.ds_created", label=label, algorithm=algorithm)
    return record


def list_keys(inventory: InventoryPort) -> list[KeyRecord]:
    """Every key in the inventory, oldest first."""
    return inventory.all_keys()


def export_csca_pem(inventory: InventoryPort) -> str:
    """The active CSCA certificate as PEM (for the PKD / master list / QA trust store)."""
    csca = inventory.active("CSCA")
    if csca is None:
        raise CeremonyError("there is no active CSCA; run `cardline keys init` first")
    return certificate_to_pem(csca.certificate)
