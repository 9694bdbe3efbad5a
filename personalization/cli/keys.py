"""`cardline keys`: key ceremonies for security officers (CSCA, Document Signer rotation)."""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from hsm import ceremony
from hsm.errors import HSMError
from hsm.inventory import KeyInventory, KeyRecord, inventory_path
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner
from hsm.softhsm import ensure_embedded_token
from personalization.cli.common import ConfigOption, JsonOption, console, fail, line_config
from personalization.config import DEFAULT_CONFIG, LineConfig, hsm_pin
from personalization.errors import PersonalizationError

app = typer.Typer(
    help="Key ceremonies in the HSM: create the CSCA, rotate Document Signer (DS) keys, list "
    "keys and export the CSCA certificate. Ceremonies need two different officers.",
    no_args_is_help=True,
)

OfficerOption = Annotated[
    list[str],
    typer.Option("--officer", help="an officer taking part; give exactly two different names"),
]


def _prepare_module(config: LineConfig) -> None:
    if config.hsm.softhsm_conf is not None:  # SoftHSM reads its config at C_Initialize
        os.environ["SOFTHSM2_CONF"] = str(config.hsm.softhsm_conf)


def open_hsm(config: LineConfig) -> AbstractContextManager[HSM]:
    """The configured HSM token (PIN from hsm.pin_source): ``with open_hsm(config) as hsm``."""
    _prepare_module(config)
    hsm = config.hsm
    return HSM(hsm.module, hsm.token, hsm_pin(config), sessions=hsm.signer_sessions)


def open_inventory(config: LineConfig) -> KeyInventory:
    """The line's key inventory (``<data_dir>/hsm/inventory.db``); a context manager."""
    return KeyInventory(inventory_path(config.data_dir))


def open_signer(config: LineConfig, inventory: KeyInventory) -> DSSigner:
    """A DSSigner on the active DS key of the line; a context manager."""
    _prepare_module(config)
    hsm = config.hsm
    return DSSigner(hsm.module, hsm.token, hsm_pin(config), inventory,
                    sessions=hsm.signer_sessions)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@app.command("setup-embedded")
def setup_embedded(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Create the embedded SoftHSM token under data_dir (when hsm.pin_source is 'embedded')."""
    config = line_config(config_path)
    if config.hsm.pin_source != "embedded":
        console.print("hsm.pin_source is not 'embedded': nothing to set up (use your HSM's tools)")
        return
    try:
        conf = ensure_embedded_token(config.data_dir, config.hsm.token)
    except HSMError as exc:
        fail(str(exc))
    if config.hsm.softhsm_conf is not None and config.hsm.softhsm_conf != conf:
        fail(f"hsm.softhsm_conf must be {conf} for the embedded token")
    console.print(f"embedded SoftHSM token {config.hsm.token!r} ready ({conf})")


@app.command("init")
def init(officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG,
         common_name: Annotated[str, typer.Option(help="CSCA commonName")] = "CSCA Vietnam",
         country: Annotated[str, typer.Option(help="ISO 3166 alpha-2 countryName")] = "VN",
         icao_code: Annotated[str, typer.Option(help="ICAO 3-letter code (MRZ)")] = "VNM") -> None:
    """Create the CSCA key in the HSM and its self-signed certificate (two officers)."""
    config = line_config(config_path)
    try:
        with open_hsm(config) as hsm, open_inventory(config) as inventory:
            record = ceremony.init_csca(
                hsm, inventory, officers=officer, at=_now(), label=config.hsm.csca_label,
                country=country, icao_code=icao_code, common_name=common_name,
                algorithm=config.hsm.algorithm, ec_parameters=config.hsm.ec_parameters)
    except (HSMError, PersonalizationError) as exc:
        fail(str(exc))
    console.print(f"CSCA {record.label!r} created ({record.algorithm})")


@app.command("new-ds")
def new_ds(
    officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG,
    usage_days: Annotated[int | None, typer.Option(help="DS key usage period in days "
                                                   "(default: hsm.ds_usage_days)")] = None,
    max_documents: Annotated[int | None, typer.Option(help="documents before the DS retires "
                                                      "(default: hsm.ds_max_documents)")] = None,
) -> None:
    """Create and activate a new DS key certified by the CSCA; retires the previous DS."""
    config = line_config(config_path)
    try:
        with open_hsm(config) as hsm, open_inventory(config) as inventory:
            record = ceremony.new_ds(
                hsm, inventory, officers=officer, at=_now(),
                usage_days=usage_days or config.hsm.ds_usage_days,
                max_documents=max_documents or config.hsm.ds_max_documents,
                algorithm=config.hsm.algorithm, label_prefix=config.hsm.ds_label_prefix,
                ec_parameters=config.hsm.ec_parameters)
    except (HSMError, PersonalizationError) as exc:
        fail(str(exc))
    console.print(f"DS {record.label!r} active until {record.not_after:%Y-%m-%d} "
                  f"or {record.max_documents} documents")


def _row(record: KeyRecord) -> dict[str, object]:
    return {
        "label": record.label, "role": record.role, "algorithm": record.algorithm,
        "status": record.status, "signed": record.signed, "max_documents": record.max_documents,
        "usage_not_before": record.not_before.isoformat(),
        "usage_not_after": record.not_after.isoformat(),
        "created_at": record.created_at.isoformat(), "officers": list(record.officers),
    }


@app.command("list")
def list_keys(config_path: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """List the keys of the inventory with status, usage window and signature counts."""
    config = line_config(config_path)
    try:
        with open_inventory(config) as inventory:
            rows = [_row(record) for record in ceremony.list_keys(inventory)]
    except HSMError as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title="HSM keys")
    for column in ("label", "role", "algorithm", "status", "signed", "max_documents",
                   "usage_not_after"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[c]) for c in (
            "label", "role", "algorithm", "status", "signed", "max_documents", "usage_not_after")))
    console.print(table)


@app.command("export-csca")
def export_csca(out: Annotated[Path, typer.Option("--out", help="PEM file to write")],
                config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Write the active CSCA certificate as PEM (for the PKD, master list and QA trust store)."""
    config = line_config(config_path)
    try:
        with open_inventory(config) as inventory:
            pem_text = ceremony.export_csca_pem(inventory)
    except HSMError as exc:
        fail(str(exc))
    out.write_text(pem_text, encoding="ascii")
    console.print(f"CSCA certificate written to {out}")
