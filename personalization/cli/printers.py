"""`cardline printers`: look at a printer, print a test card, run an emulated printer."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    command_group,
    console,
    fail,
    reported,
)
from personalization.service.printers import (
    PrinterError,
    PrinterPort,
    emulated_printer,
    inject_faults,
    parse_faults,
    print_test_card,
    printer_status,
    specimen_card,
    station_ports,
)
from personalization.service.setup import LineSetup

app = command_group(help="Card printers: status, test card, emulator, fault injection.")
PortOption = Annotated[
    str | None, typer.Option("--port", help="device path or socket://host:port; default: line.yaml")
]
StationOption = Annotated[str | None, typer.Option("--station", help="station name in line.yaml")]
StateDir = Annotated[Path, typer.Option("--state-dir", help="folder of the emulators' files")]
NameOption = Annotated[str, typer.Option("--name", help="printer (station) name")]


def _ports(config: Path, port: str | None, station: str | None) -> list[PrinterPort]:
    """The printers to talk to: ``--port`` (named after --station if given) or line.yaml's."""
    if port is not None:
        return [PrinterPort(station or port, port)]
    return station_ports(LineSetup.load(config).config, station, source=config)


@app.command()
def status(
    config: ConfigOption = Path("line.yaml"),
    port: PortOption = None,
    station: StationOption = None,
    as_json: JsonOption = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 5.0,
) -> None:
    """Show each printer's model, sensors, ribbon and feeder levels, card position, counters."""
    with reported():
        reports = printer_status(_ports(config, port, station), timeout=timeout)
    results = {report.name: report.fields for report in reports}
    if as_json:
        console.print_json(json.dumps(results))
    else:
        _table(results)
    if any(report.failed for report in reports):
        raise typer.Exit(1)


def _table(results: dict[str, dict[str, Any]]) -> None:
    keys = [
        "port",
        "model",
        "ready",
        "card_position",
        "feeder",
        "ribbon_remaining",
        "cover_open",
        "reject_box_full",
        "cards_inserted",
        "panels_printed",
        "error",
    ]
    table = Table("printer", *keys)
    for name, values in results.items():
        table.add_row(name, *(str(values.get(k, "")) for k in keys))
    console.print(table)


@app.command("test-card")
def test_card(
    config: ConfigOption = Path("line.yaml"),
    port: PortOption = None,
    station: StationOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 30.0,
) -> None:
    """Print a specimen card through the whole path: feed, print both sides, eject."""
    with reported():
        card = specimen_card()
        ports = _ports(config, port, station)
    for printer in ports:
        try:
            print_test_card(printer, card, timeout=timeout)
        except PrinterError as exc:
            fail(f"{type(exc).__name__}: {exc}", code=1)
        console.print(f"{printer.name}: test card printed and ejected")


@app.command()
def emulate(
    state_dir: StateDir,
    name: NameOption,
    timing: Annotated[str, typer.Option(help="fast (zero) or realistic")] = "fast",
    cards: Annotated[int, typer.Option(help="blank cards in the feeder")] = 100,
    tcp_port: Annotated[int | None, typer.Option("--tcp-port", help="also serve socket://")] = None,
) -> None:
    """Run an emulated printer until stopped; writes NAME.pty, NAME.json and printed PNGs."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with reported(), emulated_printer(name, state_dir, timing=timing, cards=cards,
                                      tcp_port=tcp_port) as served:
        for address in served:
            console.print(f"{name}: serving on {address}")
        while not stop.wait(0.2):
            pass


@app.command()
def fault(
    state_dir: StateDir,
    name: NameOption,
    inject: Annotated[list[str] | None, typer.Option(help="FAULT=VALUE, e.g. jam=silent")] = None,
    clear: Annotated[list[str] | None, typer.Option(help="a fault to clear")] = None,
) -> None:
    """Inject or clear faults in a running emulator (it polls NAME.control.json).

    Faults: feeder_empty, cover_open, reject_box_full, head_hot, silent, garbage (true/false),
    jam (error|silent), ribbon_out_after (cards left; clearing it loads a new ribbon).
    """
    with reported():
        inject_faults(state_dir, name, parse_faults(inject or []), clear or [])
