"""The emulated printer's mechanics, pure: feeder, encoding station, print head, hoppers, faults.

``PrinterMachine.handle(frame)`` answers one decoded command as an Evolis printer would
(fact sheet §1.2-§1.4) and reports what physically happened as events; the emulator owns
the wire, the clock and the files. Stock always balances: fed = output + rejected + inside.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from printers.panels import Panel
from printers.protocol import Command, Fault, Position

NEAR_EMPTY = 10
STATIONS = (Position.CONTACT, Position.CONTACTLESS)
INSERTS = {
    Command.INSERT: Position.PRINT,
    Command.TO_CONTACT: Position.CONTACT,
    Command.TO_CONTACTLESS: Position.CONTACTLESS,
}
JamMode = Literal["none", "error", "silent"]


@dataclass(frozen=True)
class Timing:
    """Seconds each mechanical step takes (zero for tests)."""

    feed: float = 0.0
    to_station: float = 0.0
    panel: float = 0.0
    eject: float = 0.0


# Assumed figures for a desktop retransfer-free printer (~150 duplex cards/hour); not measured.
REALISTIC = Timing(feed=1.2, to_station=0.6, panel=2.5, eject=1.0)
FAST = Timing()


@dataclass
class Faults:
    """Faults injected by a test or an operator; all clear means a healthy printer."""

    feeder_empty: bool = False
    cover_open: bool = False
    reject_box_full: bool = False
    head_hot: bool = False
    jam: JamMode = "none"
    silent: bool = False
    garbage: bool = False


@dataclass
class Card:
    """The blank inside the machine."""

    chip_serial: str
    position: Position


@dataclass(frozen=True)
class Printed:
    """Event: card number ``index`` with ``chip_serial`` was printed with these panels."""

    index: int
    chip_serial: str
    front: tuple[Panel, ...]
    back: tuple[Panel, ...]


@dataclass(frozen=True)
class StationChange:
    """Event: a card arrived at (``arrived``) or left an encoding station."""

    chip_serial: str
    arrived: bool


Event = Printed | StationChange


@dataclass
class Outcome:
    """The reply text (None: the printer stays silent), the time it took, what happened."""

    reply: str | None
    delay: float = 0.0
    events: list[Event] = field(default_factory=list)


@dataclass
class Counts:
    """The stock accounting; ``inside`` is 0 or 1."""

    fed: int = 0
    output: int = 0
    rejected: int = 0
    printed: int = 0
    panels: int = 0
    reject_box: int = 0


class PrinterMachine:
    """A printer with one feeder, one encoding station, one output hopper and a reject box."""

    def __init__(
        self,
        name: str,
        blanks: list[str],
        *,
        timing: Timing = FAST,
        ribbon_capacity: int = 500,
        reject_capacity: int = 50,
    ) -> None:
        self.name = name
        self.feeder: deque[str] = deque(blanks)
        self.timing = timing
        self.ribbon_capacity = ribbon_capacity
        self.ribbon_left = ribbon_capacity
        self.reject_capacity = reject_capacity
        self.faults = Faults()
        self.counts = Counts()
        self.card: Card | None = None
        self.jammed = False
        self._sequence: dict[str, list[Panel]] | None = None
        self._side = "front"

    # -- operator actions -------------------------------------------------------------------

    def set_ribbon(self, cards: int | None) -> None:
        """Ribbon runs out after ``cards`` more cards; None puts in a new full ribbon."""
        self.ribbon_left = self.ribbon_capacity if cards is None else max(0, cards)

    def empty_reject_box(self) -> None:
        """The operator empties the reject box."""
        self.counts.reject_box = 0

    def clear_jam(self) -> None:
        """The operator frees the mechanism; the card stays where it stopped."""
        self.jammed = False
        self.faults.jam = "none"

    def snapshot(self) -> dict[str, object]:
        """Counts, levels and position for the status file."""
        return {
            "fed": self.counts.fed,
            "in_machine": 0 if self.card is None else 1,
            "output_hopper": self.counts.output,
            "reject_box": self.counts.rejected,
            "reject_box_level": self.counts.reject_box,
            "printed": self.counts.printed,
            "panels_printed": self.counts.panels,
            "ribbon_left": self.ribbon_left,
            "feeder_left": len(self.feeder),
            "card_position": (self.card.position if self.card else Position.NONE).name.lower(),
            "chip_serial_at_station": self.at_station(),
            "jammed": self.jammed,
        }

    @property
    def reject_box_full(self) -> bool:
        """The reject box sensor."""
        return self.faults.reject_box_full or self.counts.reject_box >= self.reject_capacity

    # -- mechanics: each raises RefusedError with the printer's error reply, or returns events ----

    def insert(self, target: Position) -> list[Event]:
        """``Si``/``Sis``/``Sic``: feed a blank (or move the card inside) to ``target``."""
        self._ready()
        events: list[Event] = []
        if self.card is None:
            if self.faults.feeder_empty or not self.feeder:
                raise RefusedError(Fault.FEEDER)
            self.card = Card(self.feeder.popleft(), Position.PRINT)
            self.counts.fed += 1
        self._jam_now()  # a picked blank that jams stays inside at the print position
        self._place(self.card, target, events)
        return events

    def start_sequence(self) -> None:
        """``Ss``: open a print job; downloads go to the front until ``Sv``."""
        self._sequence = {"front": [], "back": []}
        self._side = "front"

    def select_side(self, side: str) -> None:
        """``Sr`` / ``Sv``."""
        if self._sequence is None:
            raise RefusedError(Fault.PARAMETER)
        self._side = side

    def download(self, panel: Panel) -> None:
        """``Db``: a panel of the current side, printed as it arrives (EVO-PG §21)."""
        if self._sequence is None:
            raise RefusedError(Fault.PARAMETER)
        if self.card is None:
            raise RefusedError(Fault.NO_CARD)
        self._mechanics()
        if self.ribbon_left <= 0:
            raise RefusedError(Fault.RIBBON)
        if self.faults.head_hot:
            raise RefusedError(Fault.HEAD_TEMP)
        self._sequence[self._side].append(panel)
        self.counts.panels += 1

    def end_sequence(self) -> list[Event]:
        """``Se``: finish the job (the card stays at print position) or, outside a job, eject."""
        events: list[Event] = []
        if self._sequence is None:
            self._leave(False, events)
            return events
        job, self._sequence = self._sequence, None
        if self.card is None:
            raise RefusedError(Fault.NO_CARD)
        self._mechanics()
        self._place(self.card, Position.PRINT, events)
        self.counts.printed += 1
        self.ribbon_left -= 1
        front, back = tuple(job["front"]), tuple(job["back"])
        events.append(Printed(self.counts.printed, self.card.chip_serial, front, back))
        return events

    def reject(self) -> list[Event]:
        """``Ser``: the card goes into the reject box."""
        events: list[Event] = []
        self._leave(True, events)
        return events

    def at_station(self) -> str | None:
        """Chip serial of the card at an encoding station, if any."""
        card = self.card
        return card.chip_serial if card and card.position in STATIONS else None

    def _mechanics(self) -> None:
        self._ready()
        self._jam_now()

    def _ready(self) -> None:
        if self.faults.cover_open:
            raise RefusedError(Fault.COVER)
        if self.jammed:
            raise RefusedError(Fault.MECHANICAL)

    def _jam_now(self) -> None:
        if self.faults.jam == "error":
            self.jammed = True
            raise RefusedError(Fault.MECHANICAL)

    def _place(self, card: Card, target: Position, events: list[Event]) -> None:
        """Move ``card`` to ``target``, or stop it short on a silent jam."""
        if self.faults.jam == "silent":
            self.jammed = True
            return
        if card.position in STATIONS and target not in STATIONS:
            events.append(StationChange(card.chip_serial, arrived=False))
        if target in STATIONS and card.position not in STATIONS:
            events.append(StationChange(card.chip_serial, arrived=True))
        card.position = target

    def _leave(self, to_reject: bool, events: list[Event]) -> None:
        card = self.card
        if card is None:
            raise RefusedError(Fault.NO_CARD)
        if to_reject and self.reject_box_full:
            raise RefusedError(Fault.REJECT_BOX)
        self._mechanics()
        self._place(card, Position.NONE, events)
        if self.jammed:
            return
        self.card = None
        if to_reject:
            self.counts.rejected += 1
            self.counts.reject_box += 1
        else:
            self.counts.output += 1


class RefusedError(Exception):
    """The printer refuses a command with this error reply; nothing moved.

    Internal to the emulated printer: ``firmware.answer`` turns it into the ``ERR`` reply on
    the wire, so it never reaches a caller and is not a :class:`~printers.errors.PrinterError`.
    """

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.value)
        self.fault = fault
