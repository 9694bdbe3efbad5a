"""`cardline keys`: key ceremonies for security officers (CSCA, Document Signer rotation)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    command_group,
    console,
    line_setup,
    reported,
)
from personalization.config import DEFAULT_CONFIG
from personalization.service import keys
from personalization.service.keys import CSCAName

app = command_group(
    help="Key ceremonies in the HSM: create the CSCA, rotate Document Signer (DS) keys, list "
    "keys and export the CSCA certificate. Ceremonies need two different officers.",
    no_args_is_help=True,
)

OfficerOption = Annotated[
    list[str],
    typer.Option("--officer", help="an officer taking part; give exactly two different names"),
]


@app.command("setup-embedded")
def setup_embedded(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Create the embedded SoftHSM token under data_dir (when hsm.pin_source is 'embedded')."""
    config = line_setup(config_path).config
    with reported():
        conf = keys.setup_embedded(config)
    if conf is None:
        console.print("hsm.pin_source is not 'embedded': nothing to set up (use your HSM's tools)")
        return
    console.print(f"embedded SoftHSM token {config.hsm.token!r} ready ({conf})", markup=False)


@app.command("init")
def init(officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG,
         common_name: Annotated[str, typer.Option(help="CSCA commonName")] = "CSCA Vietnam",
         country: Annotated[str, typer.Option(help="ISO 3166 alpha-2 countryName")] = "VN",
         icao_code: Annotated[str, typer.Option(help="ICAO 3-letter code (MRZ)")] = "VNM") -> None:
    """Create the CSCA key in the HSM and its self-signed certificate (two officers)."""
    config = line_setup(config_path).config
    with reported():
        record = keys.init_csca(config, officer, CSCAName(common_name, country, icao_code))
    console.print(f"CSCA {record.label!r} created ({record.algorithm})", markup=False)


@app.command("new-ds")
def new_ds(
    officer: OfficerOption, config_path: ConfigOption = DEFAULT_CONFIG,
    usage_days: Annotated[int | None, typer.Option(help="DS key usage period in days "
                                                   "(default: hsm.ds_usage_days)")] = None,
    max_documents: Annotated[int | None, typer.Option(help="documents before the DS retires "
                                                      "(default: hsm.ds_max_documents)")] = None,
) -> None:
    """Create and activate a new DS key certified by the CSCA; retires the previous DS."""
    config = line_setup(config_path).config
    with reported():
        record = keys.new_ds(config, officer, usage_days=usage_days,
                             max_documents=max_documents)
    console.print(f"DS {record.label!r} active until {record.not_after:%Y-%m-%d} "
                  f"or {record.max_documents} documents", markup=False)


@app.command("list")
def list_keys(config_path: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """List the keys of the inventory with status, usage window and signature counts."""
    config = line_setup(config_path).config
    with reported():
        rows = keys.key_rows(keys.list_keys(config))
    if as_json:
        console.print_json(json.dumps(rows))
        return
    columns = ("label", "role", "algorithm", "status", "signed", "max_documents",
               "usage_not_after")
    table = Table(*columns, title="HSM keys")
    for row in rows:
        table.add_row(*(str(row[c]) for c in columns))
    console.print(table)


@app.command("move-in")
def move_in(config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Move this line's keys from its own file into the inventory the lines share in the
    PostgreSQL journal (once, the line stopped; its DS retires in the file)."""
    config = line_setup(config_path).config
    with reported():
        moved = keys.move_in(config)
    console.print(f"moved into the shared inventory: {', '.join(moved) or 'nothing (it has them)'}",
                  markup=False)


@app.command("export-csca")
def export_csca(out: Annotated[Path, typer.Option("--out", help="PEM file to write")],
                config_path: ConfigOption = DEFAULT_CONFIG) -> None:
    """Write the active CSCA certificate as PEM (for the PKD, master list and QA trust store)."""
    config = line_setup(config_path).config
    with reported():
        pem_text = keys.export_csca_pem(config)
    out.write_text(pem_text, encoding="ascii")
    console.print(f"CSCA certificate written to {out}", markup=False)
