"""Key ceremonies and the key inventory, for security officers: the embedded token, the CSCA,
Document Signer rotation, listing keys and exporting the CSCA certificate."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hsm import ceremony
from hsm.errors import HSMError
from hsm.inventory import InventoryPort, KeyInventory, KeyRecord, inventory_path, move_keys
from hsm.keywrap import HSMKeyWrap
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner
from hsm.softhsm import ensure_embedded_token
from personalization.config import LineConfig, hsm_pin
from personalization.demoregistry import ensure_demo_registry
from personalization.service.errors import ServiceError

__all__ = [
    "KeyRecord",
    "crl_schedule",
    "export_csca_pem",
    "journal_key_wrap",
    "key_rows",
    "list_keys",
    "open_hsm",
    "open_inventory",
    "open_signer",
    "setup_embedded",
]


def prepare_module(config: LineConfig) -> None:
    """Point the PKCS#11 module at its configuration before it is loaded."""
    if config.hsm.softhsm_conf is not None:  # SoftHSM reads its config at C_Initialize
        os.environ["SOFTHSM2_CONF"] = str(config.hsm.softhsm_conf)


def open_hsm(config: LineConfig) -> AbstractContextManager[HSM]:
    """The configured HSM token (PIN from hsm.pin_source): ``with open_hsm(config) as hsm``."""
    prepare_module(config)
    hsm = config.hsm
    return HSM(hsm.module, hsm.token, hsm_pin(config), sessions=hsm.signer_sessions)


def open_inventory(config: LineConfig) -> InventoryPort:
    """The line's key inventory; a context manager. Lines sharing a PostgreSQL journal share
    it in the journal's database (so a DS key's document maximum and rotations hold across
    them); otherwise it is the line's own file, ``<data_dir>/hsm/inventory.db``."""
    url = config.journal.url
    if url.startswith(("postgresql://", "postgres://")):
        from personalization.journal.pg_inventory import PostgresKeyInventory  # psycopg if used

        return PostgresKeyInventory(url)
    return KeyInventory(inventory_path(config.data_dir))


def open_signer(config: LineConfig, inventory: InventoryPort) -> DSSigner:
    """A DSSigner on the active DS key of the line; a context manager."""
    prepare_module(config)
    hsm = config.hsm
    return DSSigner(hsm.module, hsm.token, hsm_pin(config), inventory,
                    sessions=hsm.signer_sessions)


@contextmanager
def journal_key_wrap(config: LineConfig) -> Iterator[HSMKeyWrap]:
    """The wrap of a PostgreSQL journal's per-batch data keys, one wrapping key per batch in
    the line's HSM token (opened as :func:`open_signer` opens it, PIN from hsm.pin_source):
    ``with journal_key_wrap(config) as wrap: open_journal(url, wrap=wrap)``."""
    with open_hsm(config) as hsm:
        yield HSMKeyWrap(hsm)


def move_in(config: LineConfig) -> list[str]:
    """Move the line's own key inventory (``<data_dir>/hsm/inventory.db``) into the one the
    lines share in its PostgreSQL journal, once, with the line stopped: keys the shared one
    lacks are copied with their counts; the line's active DS is retired in its own file, so
    no key signs against two counts. Returns the labels moved."""
    if not config.journal.url.startswith(("postgresql://", "postgres://")):
        raise ServiceError("this line's journal is SQLite: its keys are already where it reads "
                           "them (`move-in` is for lines that share a PostgreSQL journal)")
    with KeyInventory(inventory_path(config.data_dir)) as own, open_inventory(config) as shared:
        return move_keys(own, shared, _now())


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def setup_embedded(config: LineConfig) -> Path | None:
    """Create the embedded SoftHSM token under data_dir; None when the line uses another HSM
    (``hsm.pin_source`` is not 'embedded'). Returns the SoftHSM configuration file."""
    if config.hsm.pin_source != "embedded":
        return None
    conf = ensure_embedded_token(config.data_dir, config.hsm.token)
    if config.hsm.softhsm_conf is not None and config.hsm.softhsm_conf != conf:
        raise ServiceError(f"hsm.softhsm_conf must be {conf} for the embedded token")
    ensure_demo_registry(config.data_dir)  # line.yaml trusts it: the demo's stand-in registry
    return conf


@dataclass(frozen=True, slots=True)
class CSCAName:
    """The subject of a new CSCA certificate."""

    common_name: str = "CSCA Vietnam"
    country: str = "VN"
    icao_code: str = "VNM"


def list_keys(config: LineConfig) -> list[KeyRecord]:
    """Every key of the inventory with status, usage window and signature counts."""
    with open_inventory(config) as inventory:
        return ceremony.list_keys(inventory)


def key_rows(records: list[KeyRecord]) -> list[dict[str, object]]:
    """Keys as plain rows (``keys list --json`` and the dashboard)."""
    return [{
        "label": r.label, "role": r.role, "algorithm": r.algorithm, "status": r.status,
        "signed": r.signed, "max_documents": r.max_documents,
        "usage_not_before": r.not_before.isoformat(), "usage_not_after": r.not_after.isoformat(),
        "created_at": r.created_at.isoformat(), "officers": list(r.officers),
    } for r in records]


def crl_schedule(config: LineConfig) -> list[dict[str, object]]:
    """Every CRL the CSCA issued, newest first: its number, when, and when the next one is due
    (its nextUpdate); from the inventory's ceremony trail."""
    with open_inventory(config) as inventory:
        entries = [e for e in inventory.audit_trail() if e.action == "crl"]
    rows: list[dict[str, object]] = []
    for entry in reversed(entries):
        fields = dict(part.split("=", 1) for part in entry.detail.split() if "=" in part)
        rows.append({"number": int(fields.get("number", "0")), "issued_at": entry.at.isoformat(),
                     "next_update": fields.get("next_update"), "officers": list(entry.officers)})
    return rows


def export_csca_pem(config: LineConfig) -> str:
    """The active CSCA certificate as PEM (for the PKD, master list and QA trust stores)."""
    with open_inventory(config) as inventory:
        return ceremony.export_csca_pem(inventory)


def csca_pem_or_explain(inventory: InventoryPort) -> str:
    """The active CSCA as PEM, or an error that says who creates it."""
    try:
        return ceremony.export_csca_pem(inventory)
    except HSMError as exc:
        raise ServiceError(f"{exc} (a security officer creates the CSCA and DS with "
                           "`cardline keys`)") from exc
