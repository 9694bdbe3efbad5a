"""`cardline printers`: look at a printer, print a test card, run an emulated printer."""

from __future__ import annotations

import io
import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from PIL import Image, ImageDraw
from rich.table import Table

from personalization.cli.common import ConfigOption, JsonOption, console, fail, line_config
from printers.driver import PrinterDriver
from printers.emulator import CLEARABLE, PrinterEmulator, write_control
from printers.errors import PrinterError
from printers.face import CardFace, render_card
from printers.layout import CardLayout
from printers.link import SerialLink
from printers.machine import FAST, REALISTIC

app = typer.Typer(help="Card printers: status, test card, emulator, fault injection.")
PROFILES = Path(__file__).resolve().parent.parent / "profiles"
PortOption = Annotated[
    str | None, typer.Option("--port", help="device path or socket://host:port; default: line.yaml")
]
StationOption = Annotated[str | None, typer.Option("--station", help="station name in line.yaml")]
StateDir = Annotated[Path, typer.Option("--state-dir", help="folder of the emulators' files")]
NameOption = Annotated[str, typer.Option("--name", help="printer (station) name")]


def _ports(config: Path, port: str | None, station: str | None) -> list[tuple[str, str]]:
    """(name, port URL) of the printers to talk to: ``--port`` or the stations of line.yaml."""
    if port is not None:
        return [(station or port, port)]
    cfg = line_config(config)
    chosen = [s for s in cfg.stations if station in (None, s.name)]
    if not chosen:
        fail(f"no station {station!r} in {config}" if station else f"no stations in {config}")
    return [(s.name, _resolve(s.printer.port, cfg.data_dir, s.name)) for s in chosen]


def _resolve(port: str, data_dir: Path, name: str) -> str:
    """``auto``: the emulator's pty, written to ``<data_dir>/printers/<name>.pty``."""
    if port != "auto":
        return port
    try:
        return (data_dir / "printers" / f"{name}.pty").read_text(encoding="utf-8").strip()
    except OSError:
        fail(f"station {name}: port is 'auto' but no emulator is running (no {name}.pty)")


@app.command()
def status(
    config: ConfigOption = Path("line.yaml"),
    port: PortOption = None,
    station: StationOption = None,
    as_json: JsonOption = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 5.0,
) -> None:
    """Show each printer's model, sensors, ribbon and feeder levels, card position, counters."""
    results: dict[str, dict[str, Any]] = {}
    for name, url in _ports(config, port, station):
        try:
            with PrinterDriver(SerialLink(url, timeout=timeout), name) as driver:
                info, state = driver.info(), driver.status()
            results[name] = {"port": url, **info.__dict__, **state.as_dict()}
        except PrinterError as exc:
            results[name] = {"port": url, "error": type(exc).__name__, "message": str(exc)}
    if as_json:
        console.print_json(json.dumps(results))
    else:
        _table(results)
    if any("error" in r for r in results.values()):
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


def specimen_face() -> CardFace:
    """A specimen card with no real person's data, for test prints."""
    portrait = Image.new("RGB", (300, 400), (215, 222, 232))
    draw = ImageDraw.Draw(portrait)
    draw.ellipse((95, 70, 205, 200), fill=(180, 180, 185))
    draw.rectangle((55, 220, 245, 400), fill=(120, 125, 135))
    buffer = io.BytesIO()
    portrait.save(buffer, "PNG")
    return CardFace(
        "000000000000",
        "Mẫu Thử Nghiệm",
        "01/01/2000",
        "Nam",
        "Việt Nam",
        "Mẫu / Specimen",
        "Thẻ in thử – không có giá trị / Test card – not valid",
        "01/01/2025",
        "Không",
        "01/01/2025",
        (
            "IDVNM0000000000000000000000<<0",
            "0001011M2501015VNM<<<<<<<<<<<4",
            "SPECIMEN<<TEST<CARD<<<<<<<<<<<",
        ),
        buffer.getvalue(),
    )


def load_layout(name: str = "cccd") -> CardLayout:
    """The card-face layout of a document profile shipped with cardline."""
    raw = yaml.safe_load((PROFILES / f"{name}-face.yaml").read_text(encoding="utf-8"))
    return CardLayout.model_validate(raw)


@app.command("test-card")
def test_card(
    config: ConfigOption = Path("line.yaml"),
    port: PortOption = None,
    station: StationOption = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 30.0,
) -> None:
    """Print a specimen card through the whole path: feed, print both sides, eject."""
    rendered = render_card(specimen_face(), load_layout())
    for name, url in _ports(config, port, station):
        try:
            with PrinterDriver(SerialLink(url, timeout=timeout), name) as driver:
                driver.set_host_error_mode()
                driver.feed_to_print()
                driver.print_card(rendered)
                driver.eject()
        except PrinterError as exc:
            fail(f"{type(exc).__name__}: {exc}", code=1)
        console.print(f"{name}: test card printed and ejected")


@app.command()
def emulate(
    state_dir: StateDir,
    name: NameOption,
    timing: Annotated[str, typer.Option(help="fast (zero) or realistic")] = "fast",
    cards: Annotated[int, typer.Option(help="blank cards in the feeder")] = 100,
    tcp_port: Annotated[int | None, typer.Option("--tcp-port", help="also serve socket://")] = None,
) -> None:
    """Run an emulated printer until stopped; writes NAME.pty, NAME.json and printed PNGs."""
    if timing not in ("fast", "realistic"):
        fail("--timing must be fast or realistic")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    model = REALISTIC if timing == "realistic" else FAST
    with PrinterEmulator(name, cards=cards, timing=model, state_dir=state_dir) as emulator:
        console.print(f"{name}: serving on {emulator.serve_pty()}")
        if tcp_port is not None:
            console.print(f"{name}: serving on {emulator.serve_tcp(port=tcp_port)}")
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
    faults: dict[str, Any] = {}
    for item in inject or []:
        key, _, value = item.partition("=")
        faults[key] = _value(value)
    unknown = [k for k in [*faults, *(clear or [])] if k not in CLEARABLE]
    if unknown:
        fail(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(CLEARABLE)}")
    write_control(state_dir, name, faults, list(clear or []))


def _value(text: str) -> Any:
    if text in ("", "true", "1"):
        return True
    if text.isdigit():
        return int(text)
    return text
