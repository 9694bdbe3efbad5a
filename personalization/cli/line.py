"""`cardline line`: start, stop and inspect the virtual encoder bank, and move chips around."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    as_person,
    command_group,
    console,
    line_setup,
    reported,
)
from personalization.config import DEFAULT_CONFIG
from personalization.service import batches, line

app = command_group(
    help="The simulated line's encoders: a private pcscd with virtual vpcd readers and the "
    "card host that plugs virtual chips into them.",
    no_args_is_help=True,
)
ReaderOption = Annotated[
    str | None,
    typer.Option(
        "--reader", "-r",
        help="an encoder: its index (0), name ('Encoder 0'), PC/SC name ('Encoder 0 00 00') "
        "or the station that owns it in line.yaml",
    ),
]


@app.command()
def up(
    config: ConfigOption = DEFAULT_CONFIG,
    readers: Annotated[
        int | None, typer.Option(min=1, max=32, help="encoders (default: one per station)")
    ] = None,
) -> None:
    """Start pcscd with the virtual encoders and the card host (reuses a matching one), and
    an emulated printer for each station whose printer port is 'auto'."""
    cfg = line_setup(config).config
    as_person(cfg, "line.up")
    with reported():
        started = line.up(cfg, readers)
    console.print(f"encoder bank up: {len(started.readers)} encoders, data in "
                  f"{started.pcsc_dir}", markup=False)
    for name, port in started.readers:
        console.print(f"  {name}  (vpcd port {port})", markup=False)
    for station, pty in started.printers.items():
        console.print(f"  printer of {station} on {pty}", highlight=False, markup=False)


@app.command()
def down(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Stop the simulated printers, card host and pcscd that `line up` started (chips stay in
    the store)."""
    cfg = line_setup(config).config
    as_person(cfg, "line.down")
    with reported():
        was_running = line.down(cfg)
    console.print("encoder bank stopped" if was_running else "encoder bank was not running")


@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Show each encoder's PC/SC name and the chip in it."""
    with reported():
        slots = line.status(line_setup(config).config)
    rows = [{"index": s.index, "reader": s.reader, "port": s.port, "chip": s.chip}
            for s in slots or []]
    if as_json:
        console.print_json(json.dumps({"running": slots is not None, "readers": rows}))
        return
    if slots is None:
        console.print("encoder bank is not running; start it with `cardline line up`")
        return
    table = Table("encoder", "PC/SC reader", "vpcd port", "chip")
    for row in rows:
        table.add_row(str(row["index"]), str(row["reader"]), str(row["port"]),
                      str(row["chip"] or "—"))
    console.print(table)


@app.command()
def insert(
    chip_serial: Annotated[str, typer.Argument(help="serial of a chip in the chip store")],
    reader: ReaderOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Put a stored chip into a free encoder (or the named one); prints the PC/SC reader name."""
    with reported():
        name = line.insert(line_setup(config).config, chip_serial, reader)
    console.print(name, highlight=False, markup=False)


@app.command()
def remove(
    chip_serial: Annotated[
        str | None, typer.Argument(help="serial of the chip to pull out (or use --reader)")
    ] = None,
    reader: ReaderOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Pull a chip out of its encoder, chosen by --reader or by the chip's serial."""
    with reported():
        name, serial = line.remove(line_setup(config).config, chip_serial, reader)
    console.print(f"removed {serial} from {name}" if serial else f"{name} was empty",
                  highlight=False, markup=False)


@app.command()
def blanks(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="how many blank chips")],
    prefix: Annotated[str, typer.Option(help="serial prefix of the new chips")] = "CHIP",
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Create blank (unpersonalized) virtual chips in the chip store, DATA_DIR/chips."""
    with reported():
        serials = line.blanks(line_setup(config).config, count, prefix)
    console.print(f"created {len(serials)} blank chips: {serials[0]} … {serials[-1]}",
                  highlight=False, markup=False)


@app.command()
def abandon(
    line_name: Annotated[str, typer.Argument(metavar="LINE",
                                             help="the dead line (line.yaml: line)")],
    batch: Annotated[str, typer.Option("--batch", "-b", help="the batch it was running")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Declare a dead line's machines emptied (its cards taken out and destroyed): its cards
    in doubt in the batch are spoiled and their applications go back to the other lines.
    Journaled with your account's name. Refused while the line is alive."""
    cfg = line_setup(config).config
    person = as_person(cfg, "line.abandon", f"{line_name} in {batch}")
    with reported():
        row = next((r for r in batches.status(cfg, batch)[0]["lines"]
                    if r["line"] == line_name), None)
    in_doubt = row["in_doubt"] if row else 0
    if not yes and not typer.confirm(
            f"Spoil {in_doubt} card(s) in doubt of {line_name} in batch {batch}?"):
        raise typer.Exit(1)
    with reported():
        spoiled = batches.abandon_line(cfg, batch, line_name, person.name)
    console.print(f"{escape(line_name)}: {len(spoiled)} card(s) spoiled; their applications "
                  "are back in the pool")
