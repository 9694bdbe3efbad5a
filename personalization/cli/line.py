"""`cardline line`: start, stop and inspect the virtual encoder bank, and move chips around."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.table import Table

from applets.errors import CardError
from applets.virtual.bank import EncoderBank
from personalization.cli.common import ConfigOption, JsonOption, console, fail, line_config
from personalization.config import DEFAULT_CONFIG, LineConfig
from personalization.errors import PersonalizationError
from personalization.simline import PrinterLine

app = typer.Typer(
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


def _bank(config: LineConfig, readers: int | None = None) -> EncoderBank:
    count = readers if readers is not None else max(1, len(config.stations))
    return EncoderBank(
        config.data_dir, count, config.simulation.base_port, timing=config.simulation.timing
    )


def printer_line(config: LineConfig, bank: EncoderBank) -> PrinterLine:
    """The simulated printers of the stations whose printer port is ``auto``."""
    stations = {s.name: _reader_index(config, s.encoder.reader)
                for s in config.stations if s.printer.port == "auto"}
    return PrinterLine(config.data_dir, stations, bank.host_socket, bank.chips_dir,
                       config.simulation.timing, config.simulation.blank_cards_per_feeder)


def _reader_index(config: LineConfig, name: str) -> int:
    for station in config.stations:
        if station.name == name:
            name = station.encoder.reader
    match = re.fullmatch(r"(?:Encoder )?(\d+)(?: 00 00)?", name.strip())
    if match is None:
        fail(f"unknown encoder {name!r}; use an index, 'Encoder N', or a station name")
    return int(match.group(1))


def _status(bank: EncoderBank) -> dict[int, str | None]:
    try:
        return bank.client().status()
    except CardError as exc:
        fail(str(exc))


@app.command()
def up(
    config: ConfigOption = DEFAULT_CONFIG,
    readers: Annotated[
        int | None, typer.Option(min=1, max=32, help="encoders (default: one per station)")
    ] = None,
) -> None:
    """Start pcscd with the virtual encoders and the card host (reuses a matching one), and
    an emulated printer for each station whose printer port is 'auto'."""
    cfg = line_config(config)
    bank = _bank(cfg, readers)
    printers = printer_line(cfg, bank)
    try:
        bank.up()
        if printers.stations:
            printers.up()
    except (CardError, PersonalizationError) as exc:
        fail(str(exc))
    console.print(f"encoder bank up: {bank.readers} encoders, data in {bank.pcsc_dir}")
    for index in range(bank.readers):
        console.print(f"  {bank.reader_name(index)}  (vpcd port {bank.port(index)})")
    for name in printers.stations:
        console.print(f"  printer of {name} on {printers.port(name)}", highlight=False)


@app.command()
def down(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Stop the simulated printers, card host and pcscd that `line up` started (chips stay in
    the store)."""
    cfg = line_config(config)
    bank = _bank(cfg)
    was_running = bank.running()
    printer_line(cfg, bank).down()
    bank.down()
    console.print("encoder bank stopped" if was_running else "encoder bank was not running")


@app.command()
def status(config: ConfigOption = DEFAULT_CONFIG, as_json: JsonOption = False) -> None:
    """Show each encoder's PC/SC name and the chip in it."""
    bank = _bank(line_config(config))
    running = bank.running()
    slots = _status(bank) if running else {}
    rows = [
        {"index": i, "reader": bank.reader_name(i), "port": bank.port(i), "chip": serial}
        for i, serial in sorted(slots.items())
    ]
    if as_json:
        console.print_json(json.dumps({"running": running, "readers": rows}))
        return
    if not running:
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
    cfg = line_config(config)
    bank = _bank(cfg)
    slots = _status(bank)
    if reader is not None:
        index = _reader_index(cfg, reader)
    else:
        free = [i for i, serial in sorted(slots.items()) if serial is None]
        if not free:
            fail("no encoder is free; remove a chip first (`cardline line remove`)")
        index = free[0]
    try:
        bank.client().insert(index, chip_serial)
    except CardError as exc:
        fail(str(exc))
    console.print(bank.reader_name(index), highlight=False)


@app.command()
def remove(
    chip_serial: Annotated[
        str | None, typer.Argument(help="serial of the chip to pull out (or use --reader)")
    ] = None,
    reader: ReaderOption = None,
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Pull a chip out of its encoder, chosen by --reader or by the chip's serial."""
    cfg = line_config(config)
    bank = _bank(cfg)
    if (reader is None) == (chip_serial is None):
        fail("name exactly one of --reader or CHIP_SERIAL")
    if reader is not None:
        index = _reader_index(cfg, reader)
    else:
        held = [i for i, serial in _status(bank).items() if serial == chip_serial]
        if not held:
            fail(f"chip {chip_serial} is in no encoder")
        index = held[0]
    try:
        serial = bank.client().remove(index)
    except CardError as exc:
        fail(str(exc))
    console.print(f"removed {serial} from {bank.reader_name(index)}" if serial
                  else f"{bank.reader_name(index)} was empty", highlight=False)


@app.command()
def blanks(
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="how many blank chips")],
    prefix: Annotated[str, typer.Option(help="serial prefix of the new chips")] = "CHIP",
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Create blank (unpersonalized) virtual chips in the chip store, DATA_DIR/chips."""
    from applets.virtual.store import ChipStore

    cfg = line_config(config)
    store = ChipStore(cfg.data_dir / "chips")
    try:
        serials = store.create_blanks(count, prefix)
    except CardError as exc:
        fail(str(exc))
    console.print(f"created {len(serials)} blank chips: {serials[0]} … {serials[-1]}",
                  highlight=False)
