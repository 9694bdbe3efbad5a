"""The printer driver: typed operations over the escape protocol, printer faults as exceptions.

Card-printers fact sheet §9: errors are put in host mode (``Pem;2``), the card position is
re-read after every move and a mismatch is a jam, and a command that moves a card is never
retried on its own: after any doubt the controller decides (usually ``reject``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from types import TracebackType
from typing import Protocol, TypeVar

import structlog

from printers import protocol
from printers.errors import CardJam, CommandRefused, GarbledReply, PrinterError
from printers.link import SerialLink
from printers.panels import Panel
from printers.protocol import Command, Position

T = TypeVar("T")
log = structlog.get_logger()
SENSOR_HIGH = 2.5  # volts: sensors read ~5 V when true, ~0 V when false (Z390)


class FeederState(Enum):
    """What the feeder sensors say."""

    OK = "ok"
    NEAR_EMPTY = "near_empty"
    EMPTY = "empty"


@dataclass(frozen=True)
class PrinterInfo:
    """Who the printer is."""

    model: str
    firmware: str
    serial: str


@dataclass(frozen=True)
class PrinterStatus:
    """One reading of the sensors, levels, position and counters."""

    cover_open: bool
    feeder: FeederState
    reject_box_full: bool
    ribbon_remaining: int
    ribbon_capacity: int
    card_position: Position
    chip_serial: str | None
    cards_inserted: int
    panels_printed: int

    @property
    def ready(self) -> bool:
        """True when a new card can be fed and printed."""
        return not (self.cover_open or self.reject_box_full or self.ribbon_remaining == 0) and (
            self.feeder is not FeederState.EMPTY
        )

    def as_dict(self) -> dict[str, object]:
        """Plain JSON-ready values."""
        values = asdict(self)
        values.update(feeder=self.feeder.value, ready=self.ready)
        values["card_position"] = self.card_position.name.lower()
        return values


class PrintJob(Protocol):
    """Anything that yields the panels of a side as the protocol sends them."""

    def panels(self, side: str) -> Sequence[Panel]: ...


class PrinterDriver:
    """One printer over one link; use as a context manager (it opens and closes the link)."""

    def __init__(self, link: SerialLink, name: str | None = None) -> None:
        self.link = link
        self.name = name or link.url

    def __enter__(self) -> PrinterDriver:
        try:
            self.link.__enter__()
        except PrinterError as exc:
            raise exc.with_printer(self.name) from exc
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.link.__exit__(kind, exc, tb)

    # -- the wire ---------------------------------------------------------------------------

    def _exchange(self, frame: bytes, parse: Callable[[str], T]) -> T:
        try:
            self.link.discard_input()
            self.link.write(frame)
            return parse(protocol.decode_reply(self.link.read_reply()))
        except PrinterError as exc:
            raise exc.with_printer(self.name) from exc

    def _query(self, parse: Callable[[str], T], command: str, *params: str) -> T:
        """A command that moves nothing: a garbled answer is asked again once."""
        frame = protocol.encode(command, *params)
        try:
            return self._exchange(frame, parse)
        except GarbledReply:
            log.warning("printer.garbled_reply", printer=self.name, command=command, retry=True)
            return self._exchange(frame, parse)

    def _send(self, command: str, *params: str, data: bytes = b"") -> None:
        """A command that changes state or moves a card: sent exactly once, never retried."""
        self._exchange(protocol.encode(command, *params, data=data), protocol.parse_ok)

    def _move(self, command: str, target: Position) -> None:
        log.info("printer.move", printer=self.name, command=command, target=target.name)
        self._send(command)
        # Fact sheet §1.3/§9: re-read the position after every move; a mismatch is a jam.
        actual = self.position()
        if actual is not target:
            raise CardJam(self.name, f"card should be at {target.name} but is at {actual.name}")

    # -- queries ----------------------------------------------------------------------------

    def info(self) -> PrinterInfo:
        """Model, firmware version and serial number (``Rtp``, ``Rfv``, ``Rsn``)."""
        return PrinterInfo(
            model=self._query(protocol.parse_text, Command.MODEL),
            firmware=self._query(protocol.parse_text, Command.FIRMWARE),
            serial=self._query(protocol.parse_text, Command.SERIAL),
        )

    def position(self) -> Position:
        """Where the card inside is (``Rlr;p``)."""
        return self._query(protocol.parse_position, Command.LAST_REPLY, "p")

    def chip_serial(self) -> str | None:
        """Chip serial of the card at the encoding station, if the printer can tell."""
        try:
            text = self._query(protocol.parse_text, Command.CHIP_SERIAL)
        except CommandRefused:
            return None  # a real printer does not know the chip; the PC/SC reader does
        return None if text == Position.NONE.value else text

    def cards_inserted(self) -> int:
        """The printer's own counter of cards taken from the feeder (``Rco;c``)."""
        return self._query(protocol.parse_count, Command.COUNTERS, "c")

    def status(self) -> PrinterStatus:
        """Sensors, ribbon level, position and counters in one typed reading."""
        high = self._sensor
        feeder = FeederState.EMPTY if not high("f") else FeederState.OK
        if feeder is FeederState.OK and not high("n"):
            feeder = FeederState.NEAR_EMPTY
        return PrinterStatus(
            cover_open=not high("o"),
            feeder=feeder,
            reject_box_full=self._query(protocol.parse_position, Command.LAST_REPLY, "h")
            is Position.PRINT,
            ribbon_remaining=self._query(protocol.parse_count, Command.RIBBON, "count"),
            ribbon_capacity=self._query(protocol.parse_count, Command.RIBBON, "qty"),
            card_position=self.position(),
            chip_serial=self.chip_serial(),
            cards_inserted=self._query(protocol.parse_count, Command.COUNTERS, "c"),
            panels_printed=self._query(protocol.parse_count, Command.COUNTERS, "p"),
        )

    def _sensor(self, sensor: str) -> bool:
        return self._query(protocol.parse_volts, Command.SENSOR, sensor) > SENSOR_HIGH

    # -- settings ---------------------------------------------------------------------------

    def set_host_error_mode(self) -> None:
        """Host manages errors (``Pem;2``), cards come from the feeder, stay after printing."""
        self._send(Command.ERROR_MODE, "2")
        self._send(Command.INSERT_MODE, "F")
        self._send(Command.NO_EJECT, "E")

    # -- card moves -------------------------------------------------------------------------

    def _insert(self, command: str, target: Position) -> str:
        if (where := self.position()) is not Position.NONE:
            raise CommandRefused(self.name, f"a card is already inside at {where.name}")
        self._move(command, target)
        return self.chip_serial() or ""

    def feed_to_encoder(self) -> str:
        """Insert a blank to the contactless station (``Sic``); returns its chip serial."""
        return self._insert(Command.TO_CONTACTLESS, Position.CONTACTLESS)

    def feed_to_contact(self) -> str:
        """Insert a blank to the contact station (``Sis``); returns its chip serial."""
        return self._insert(Command.TO_CONTACT, Position.CONTACT)

    def feed_to_print(self) -> None:
        """Insert a blank straight to the print position (``Si``)."""
        self._insert(Command.INSERT, Position.PRINT)

    def release_from_encoder(self) -> None:
        """Move the card from the encoding station to the print position (``Si``)."""
        self._move(Command.INSERT, Position.PRINT)

    def print_card(self, job: PrintJob) -> None:
        """Print both sides (``Ss`` ``Sr`` ``Db``… ``Sv`` ``Db``… ``Se``); the card stays inside."""
        if self.position() is Position.NONE:
            raise CommandRefused(self.name, "no card to print on")
        self._send(Command.SEQUENCE_START)
        for side, select in (("front", Command.FRONT), ("back", Command.BACK)):
            self._send(select)
            for panel in job.panels(side):
                frame = protocol.download(panel.colour, panel.levels, panel.data)
                self._exchange(frame, protocol.parse_ok)
        self._move(Command.SEQUENCE_END, Position.PRINT)

    def eject(self) -> None:
        """Eject the card to the output hopper (``Se`` outside a sequence)."""
        self._move(Command.SEQUENCE_END, Position.NONE)

    def reject(self) -> None:
        """Send the card into the reject box (``Ser``)."""
        self._move(Command.REJECT, Position.NONE)
