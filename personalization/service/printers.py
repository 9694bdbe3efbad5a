"""The line's card printers: their status, a specimen test card, an emulated printer, and
fault injection into a running emulator."""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw

from personalization.config import DEFAULT_CONFIG, LineConfig
from personalization.profile import PROFILES_DIR
from personalization.service.errors import LineNotUp, NotFound, ServiceError
from printers.driver import PrinterDriver
from printers.emulator import CLEARABLE, PrinterEmulator, write_control
from printers.errors import PrinterError
from printers.face import CardFace, RenderedCard, render_card
from printers.layout import CardLayout
from printers.link import SerialLink
from printers.machine import FAST, REALISTIC

__all__ = ["CLEARABLE", "PrinterError", "PrinterPort", "PrinterReport", "RenderedCard",
           "emulated_printer", "inject_faults", "load_layout", "parse_faults",
           "print_test_card", "printer_status", "specimen_card", "specimen_face",
           "station_ports"]

TIMINGS = {"fast": FAST, "realistic": REALISTIC}


@dataclass(frozen=True, slots=True)
class PrinterPort:
    """A printer to talk to: its (station) name and its port URL."""

    name: str
    url: str


@dataclass(frozen=True, slots=True)
class PrinterReport:
    """What one printer said: port, model, sensors, levels, position, counters; or its error
    (``error``: the PrinterError's class name, ``message``: its text)."""

    name: str
    fields: dict[str, Any]

    @property
    def failed(self) -> bool:
        """True when the printer could not be read."""
        return "error" in self.fields


def station_ports(config: LineConfig, station: str | None = None, *,
                  source: Path | str = DEFAULT_CONFIG) -> list[PrinterPort]:
    """The printers of the line's stations (or of the one named); ``source`` names the file
    in messages."""
    chosen = [s for s in config.stations if station in (None, s.name)]
    if not chosen:
        raise NotFound(f"no station {station!r} in {source}" if station
                       else f"no stations in {source}")
    return [PrinterPort(s.name, _resolve(s.printer.port, config.data_dir, s.name))
            for s in chosen]


def _resolve(port: str, data_dir: Path, name: str) -> str:
    """``auto``: the emulator's pty, written to ``<data_dir>/printers/<name>.pty``."""
    if port != "auto":
        return port
    try:
        return (data_dir / "printers" / f"{name}.pty").read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise LineNotUp(f"station {name}: port is 'auto' but no emulator is running "
                        f"(no {name}.pty)") from exc


def printer_status(ports: Sequence[PrinterPort], *, timeout: float = 5.0) -> list[PrinterReport]:
    """Ask each printer who it is and what its sensors say; a silent one reports its error."""
    reports = []
    for port in ports:
        try:
            with PrinterDriver(SerialLink(port.url, timeout=timeout), port.name) as driver:
                info, state = driver.info(), driver.status()
            fields = {"port": port.url, **info.__dict__, **state.as_dict()}
        except PrinterError as exc:
            fields = {"port": port.url, "error": type(exc).__name__, "message": str(exc)}
        reports.append(PrinterReport(port.name, fields))
    return reports


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
    raw = yaml.safe_load((PROFILES_DIR / f"{name}-face.yaml").read_text(encoding="utf-8"))
    return CardLayout.model_validate(raw)


def specimen_card() -> RenderedCard:
    """Both sides of the specimen card, rendered with the CCCD layout."""
    return render_card(specimen_face(), load_layout())


def print_test_card(port: PrinterPort, card: RenderedCard, *, timeout: float = 30.0) -> None:
    """Feed a blank, print both sides of ``card``, eject it; raises the printer's error."""
    with PrinterDriver(SerialLink(port.url, timeout=timeout), port.name) as driver:
        driver.set_host_error_mode()
        driver.feed_to_print()
        driver.print_card(card)
        driver.eject()


@contextmanager
def emulated_printer(name: str, state_dir: Path, *, timing: str = "fast", cards: int = 100,
                     tcp_port: int | None = None) -> Iterator[list[str]]:
    """An emulated printer serving on a pseudo-terminal (and on TCP when ``tcp_port`` is
    given) until the block ends; yields where it serves. It writes NAME.pty, NAME.json and
    the printed cards' PNGs under ``state_dir``."""
    if timing not in TIMINGS:
        raise ServiceError("--timing must be fast or realistic")
    with PrinterEmulator(name, cards=cards, timing=TIMINGS[timing],
                         state_dir=state_dir) as emulator:
        served = [emulator.serve_pty()]
        if tcp_port is not None:
            served.append(emulator.serve_tcp(port=tcp_port))
        yield served


def parse_faults(items: Sequence[str]) -> dict[str, Any]:
    """``FAULT=VALUE`` items as a mapping: ``true``, ``1`` or nothing is True, digits a count."""
    faults: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        faults[key] = _value(value)
    return faults


def _value(text: str) -> Any:
    if text in ("", "true", "1"):
        return True
    if text.isdigit():
        return int(text)
    return text


def inject_faults(state_dir: Path, name: str, inject: Mapping[str, Any],
                  clear: Sequence[str] = ()) -> None:
    """Ask the emulator NAME running over ``state_dir`` to inject or clear faults.

    Faults: feeder_empty, cover_open, reject_box_full, head_hot, silent, garbage (true/false),
    jam (error|silent), ribbon_out_after (cards left; clearing it loads a new ribbon).
    """
    unknown = [k for k in [*inject, *clear] if k not in CLEARABLE]
    if unknown:
        raise ServiceError(f"unknown fault(s) {', '.join(unknown)}; known: "
                           f"{', '.join(CLEARABLE)}")
    try:
        write_control(state_dir, name, dict(inject), list(clear))
    except OSError as exc:
        raise ServiceError(f"cannot write to {state_dir}: {exc.strerror}") from exc
