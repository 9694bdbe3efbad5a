"""One station of the line: a printer with its encoding station (a PC/SC reader) and the
thread that drives cards through it.

Every state change is journaled *before* the physical step it starts (``Journal.move`` runs
before the command). Trouble with the station itself — a printer fault, a printer that does
not answer, a reader gone — raises a station alarm: the station stops, the card inside stays
in doubt, and once the printer reports ready again the card is settled exactly as after a
crash (:func:`~personalization.cardstate.settle`) and the station resumes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from applets.errors import CardError
from applets.transport.pcsc import NoCardError, PCSCServiceError, PCSCTransport, ReaderNotFound
from hsm.errors import (
    HSMUnavailable,
    KeyNotFound,
    KeyPolicyViolation,
    KeyRetired,
    PINIncorrect,
    TokenNotFound,
)
from personalization.cardstate import (
    Command,
    Event,
    Kind,
    Observation,
    Outcome,
    Place,
    State,
    needs_chip_check,
    settle,
    step,
)
from personalization.encoder import EncodeError, EncoderStation
from personalization.errors import PersonalizationError
from personalization.face import card_face
from personalization.journal.port import ConflictError, JournalUnavailable, NotClaimable
from personalization.journal.records import CardRow
from personalization.line.context import LineContext
from personalization.line.dispatch import Work
from personalization.reasons import Code, Reason, encode_failed, qa_failed
from printers.driver import PrinterDriver, PrinterStatus
from printers.errors import PrinterError
from printers.face import render_card
from printers.link import SerialLink
from printers.protocol import Position
from qa.checks import Expected, fingerprints_of
from qa.eac import EACAccess
from qa.errors import QAError
from qa.readback import keys_from_fields
from qa.reasons import Reason as QAReason
from qa.verify import Verdict, verify_card

_log = structlog.get_logger(__name__)
T = TypeVar("T")
FEED = "feed"
CARD_WAIT_S = 5.0
OUTAGE_PAUSE_MAX_S = 5.0  # the longest pause between two looks at a journal that went away
PRINTER_READ_S = 2.0  # between cards, the printer's levels are read for the screen this often
PRINTER_SHOWN = ("ready", "cover_open", "feeder", "reject_box_full", "ribbon_remaining",
                 "ribbon_capacity")
_PLACES = {Position.NONE: Place.NONE, Position.PRINT: Place.PRINT,
           Position.CONTACT: Place.ENCODER, Position.CONTACTLESS: Place.ENCODER}
_READER_GONE = (ReaderNotFound, PCSCServiceError)
# HSM trouble no retry on a new blank can fix: the line stops after this card is rejected
_LINE_STOPPERS = (KeyRetired, KeyNotFound, KeyPolicyViolation, HSMUnavailable, PINIncorrect,
                  TokenNotFound)


class StationAlarm(PersonalizationError):  # noqa: N818 - an alarm, as operators call it
    """The station cannot go on until the operator (or the printer) clears the trouble."""


@dataclass(frozen=True, slots=True)
class StationSpec:
    """Where a station's printer and encoder are."""

    name: str
    printer_port: str
    reader: str


@dataclass(slots=True)
class StationStats:
    """What a station did in this run (for progress and the report)."""

    handed_out: int = 0
    rejected: int = 0
    busy_s: float = 0.0
    alarm: str | None = None
    current: str | None = None
    printer: dict[str, Any] | None = None  # the printer's last status reading, for the screen
    printer_read_at: float = 0.0  # its time.monotonic()


class Station:
    """Drives cards through one printer + encoder until the run ends (a thread's body)."""

    def __init__(self, spec: StationSpec, line: LineContext) -> None:
        self.spec, self.line = spec, line
        self.name = spec.name
        self.stats = StationStats()
        self._driver: PrinterDriver | None = None
        self._transport: PCSCTransport | None = None
        self._encoder: EncoderStation | None = None
        self._taken: Work | None = None  # taken from the queue, its card not yet begun

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        """Work until the run is over or stopped; alarms pause only this station."""
        line = self.line
        for row in line.journal.stations(line.batch):  # an alarm a previous run left raised
            if row["station"] == self.name:
                self.stats.alarm = row["alarm"]
        while not line.stop.is_set():
            try:
                with self._connected():
                    self._give_back_unbegun()
                    self._settle_open_cards()
                    self._clear_alarm()  # the station works again: only now is it cleared
                    self._work()
                    self._read_counter(final=True)
                return
            except StationAlarm as alarm:
                try:
                    self._alarm(str(alarm))
                except JournalUnavailable as exc:
                    self._outage(exc)
                    continue
                if not self._wait_until_clear():
                    return
            except JournalUnavailable as exc:
                self._outage(exc)

    def _outage(self, exc: JournalUnavailable) -> None:
        """The journal's database went away: the card in hand stays where it is and the
        station waits (with a growing pause, at most ``OUTAGE_PAUSE_MAX_S``) until the journal
        answers; it then settles its cards as after a crash, since the write that failed may
        or may not have been committed."""
        text = "journal unavailable: the station waits for the database"
        if self.stats.alarm != text:
            _log.warning("station.journal_unavailable", station=self.name,
                         error=exc.__class__.__name__)
            self.stats.alarm = text  # shown live; the journal cannot take it now
        pause = self.line.poll_s
        while not self.line.stop.wait(pause):
            try:
                self.line.journal.batch(self.line.batch)
            except JournalUnavailable:
                pause = min(OUTAGE_PAUSE_MAX_S, pause * 2)
                continue
            _log.info("station.journal_back", station=self.name)
            return

    def _give_back_unbegun(self) -> None:
        """Work taken when the journal failed at the card's first write: if no card of it
        was begun (the write never committed), it goes back to the line's queue."""
        work = self._taken
        if work is None:
            return
        application_id = work.application.application_id
        begun = any(c.application_id == application_id  # the journal may fail here again:
                    for c in self.line.journal.open_cards(self.line.batch))  # kept till known
        self._taken = None
        if not begun:
            self.line.dispatcher.give_back(work)

    def _alarm(self, text: str) -> None:
        """Raise an alarm once: the same trouble seen again keeps it (no new event)."""
        if self.stats.alarm == text:
            return
        _log.warning("station.alarm", station=self.name, alarm=text)
        self.stats.alarm = text
        self.line.journal.set_alarm(self.line.batch, self.name, text)

    def _clear_alarm(self) -> None:
        if self.stats.alarm is not None:
            self.stats.alarm = None
            self.line.journal.set_alarm(self.line.batch, self.name, None)

    def _wait_until_clear(self) -> bool:
        """Poll the printer and reader until both look usable again; False when stopping."""
        while not self.line.stop.wait(self.line.poll_s):
            if self.line.dispatcher.finished:
                return False  # the other stations did the work; nothing waits on this one
            try:
                with PrinterDriver(SerialLink(self.spec.printer_port), self.name) as driver:
                    status = driver.status()
                    self._shown(status)
                    if not status.ready:
                        self._alarm_still_there()
                        continue
                with PCSCTransport(self.spec.reader):
                    pass
            except (PrinterError, CardError):
                continue
            return True  # try again; the alarm stays until the station has really worked
        return False

    def _alarm_still_there(self) -> None:
        """An operator cleared the alarm (the dashboard's "cleared") while its cause is still
        there: raise it again, so that the screen never shows a stopped station as fine."""
        if self.stats.alarm is None:
            return
        for row in self.line.journal.stations(self.line.batch):
            if row["station"] == self.name and row["alarm"] is None:
                _log.warning("station.alarm_again", station=self.name)
                self.line.journal.set_alarm(self.line.batch, self.name, self.stats.alarm)

    def _shown(self, status: PrinterStatus) -> None:
        """Keep a printer reading for the operators' screen (levels and sensors only)."""
        values = status.as_dict()
        self.stats.printer = {k: values[k] for k in PRINTER_SHOWN}
        self.stats.printer_read_at = time.monotonic()

    def _read_printer_now_and_then(self) -> None:
        """Between cards, read the printer's sensors and levels for the screen, at most every
        ``PRINTER_READ_S`` (a few short exchanges on the serial line)."""
        if self._driver is None or time.monotonic() - self.stats.printer_read_at < PRINTER_READ_S:
            return
        try:
            self._shown(self._driver.status())
        except PrinterError:
            self.stats.printer_read_at = time.monotonic()  # the next card's trouble says more

    @contextmanager
    def _connected(self) -> Iterator[None]:
        with ExitStack() as stack:
            try:
                self._driver = stack.enter_context(
                    PrinterDriver(SerialLink(self.spec.printer_port), self.name))
                self._driver.set_host_error_mode()
                self._transport = stack.enter_context(PCSCTransport(self.spec.reader))
            except PrinterError as exc:
                raise StationAlarm(f"printer: {exc}") from exc
            except CardError as exc:
                raise StationAlarm(f"encoder: {exc}") from exc
            eac = self.line.eac
            self._encoder = EncoderStation(self.name, self._transport, self.line.preparer,
                                           eac.material if eac is not None else None)
            self._counted = False
            try:
                yield
            finally:
                self._driver = self._transport = self._encoder = None

    # -- work -------------------------------------------------------------------------------

    def _work(self) -> None:
        line = self.line
        while (work := line.dispatcher.take(line.stop)) is not None:
            self._taken = work
            try:
                card = line.journal.begin_card(line.batch, work.application.application_id,
                                               self.name, line.line, can=line.kept_can(work))
            except NotClaimable as exc:
                # another line has it now (this line's lease ran out while it hung), or a
                # card of it began after all: it is no longer this station's to start
                _log.warning("station.not_claimable", station=self.name,
                             application=work.application.application_id, error=str(exc))
                self._taken = None
                line.dispatcher.forget(work.application.application_id)
                continue
            self._taken = None
            self._drive(card, work, FEED)

    def _settle_open_cards(self) -> None:
        """Settle this station's in-doubt cards (after a crash or an alarm) from what is seen."""
        line = self.line
        for card in line.journal.open_cards(line.batch):
            if card.station != self.name:
                continue
            work = line.work_for_card(card)  # with the CAN kept with this card, if any
            seen = self._observe(card, work)
            found = settle(card.machine(line.max_attempts), seen)
            if isinstance(found, Event):
                serial = None
                if found.kind is Kind.FED:
                    serial = self._guarded(self._printer().chip_serial) or f"unknown-{card.id}"
                card, action = self._apply(card, found, chip_serial=serial)
            else:
                action = found
            if action is not None:
                self._drive(card, work, action)
            elif card.state is not State.VOID:
                self._card_left()

    def _observe(self, card: CardRow, work: Work) -> Observation:
        place = _PLACES[self._guarded(self._printer().position)]
        if place is Place.ENCODER and card.chip_serial and not card.chip_serial.startswith(
                "unknown-"):
            self._confirm_chip(card)
        chip_ok = self._chip_check(work) if needs_chip_check(card.state, place) else None
        _log.info("station.settling", station=self.name, card=card.id, state=card.state.value,
                  place=place.value, chip_ok=chip_ok)
        return Observation(place, chip_ok)

    def _confirm_chip(self, card: CardRow) -> None:
        """The chip at the encoder must be the one journaled for this card (when the printer
        can tell): another chip there is the operator's to sort out, never this card."""
        there = self._guarded(self._printer().chip_serial)
        if there is not None and there != card.chip_serial:
            raise StationAlarm(f"the encoder holds chip {there}, not chip {card.chip_serial} "
                               f"of card {card.id} in doubt; take it out of the printer")

    def _guarded(self, query: Callable[[], T]) -> T:
        try:
            return query()
        except PrinterError as exc:
            raise StationAlarm(f"printer: {exc}") from exc

    def _drive(self, card: CardRow, work: Work, action: str | Command) -> None:
        """Carry out ``action`` and every command that follows until the card is done."""
        started = time.perf_counter()
        self.stats.current = work.application.application_id
        try:
            next_action: str | Command | None = action
            while next_action is not None:
                event, extras = self._do(next_action, card, work)
                card, next_action = self._apply(card, event, **extras)
            if card.state is not State.VOID:
                self._card_left()
            self._read_counter(final=True)
            self._read_printer_now_and_then()
        finally:
            self.stats.busy_s += time.perf_counter() - started
            self.stats.current = None

    def _apply(self, card: CardRow, event: Event, *, chip_serial: str | None = None,
               qa: dict[str, Any] | None = None) -> tuple[CardRow, Command | None]:
        line = self.line
        result = step(card.machine(line.max_attempts), event)
        try:
            card = line.journal.move(card, result, chip_serial=chip_serial, qa=qa)
        except ConflictError as exc:
            if chip_serial is None or chip_serial == card.chip_serial:
                raise
            # the printer reports a chip another card already holds: the operator's to see
            raise StationAlarm(f"the printer reports chip {chip_serial}, which the journal "
                               "already holds for another card; take the card out of the "
                               "printer") from exc
        if result.outcome is not None:
            if result.outcome is Outcome.HANDED_OUT:
                self.stats.handed_out += 1
            elif card.state is State.REJECTED:
                self.stats.rejected += 1
            line.dispatcher.settled(card.application_id, result.outcome)
        return card, result.command

    # -- the physical steps -------------------------------------------------------------------

    def _do(self, action: str | Command, card: CardRow, work: Work,
            ) -> tuple[Event, dict[str, Any]]:
        try:
            if action == FEED:
                return self._feed(card)
            if action is Command.ENCODE:
                return self._encode(card, work), {}
            if action is Command.VERIFY:
                return self._verify(work)
            if action is Command.PRINT:
                return self._print(work), {}
            if action is Command.EJECT:
                self._printer().eject()
                return Event(Kind.EJECTED), {}
            if action is Command.REJECT:
                self._printer().reject()
                return Event(Kind.REJECTED), {}
        except PrinterError as exc:
            raise StationAlarm(f"printer: {exc}") from exc
        except _READER_GONE as exc:
            raise StationAlarm(f"encoder: {exc}") from exc
        raise ValueError(f"unknown station action {action!r}")

    def _feed(self, card: CardRow) -> tuple[Event, dict[str, Any]]:
        self._read_counter(final=False)
        printer = self._printer()
        try:
            serial = printer.feed_to_encoder()
        except PrinterError as exc:
            if self._guarded(printer.position) is Position.NONE:
                # nothing left the feeder: the application goes back to the queue now, so
                # the other stations can take it while this one waits for the operator
                self._apply(card, Event(Kind.NO_CARD))
            raise StationAlarm(f"printer: {exc}") from exc
        # A printer that cannot tell the serial (a real one asks the reader) still fed a card:
        # it is recorded, so the stock counts it.
        return Event(Kind.FED), {"chip_serial": serial or f"unknown-{card.id}"}

    def _encode(self, card: CardRow, work: Work) -> Event:
        transport, encoder = self._reader(), self._encoder
        assert encoder is not None  # set with the transport  # noqa: S101
        try:
            transport.wait_for_card(CARD_WAIT_S)
            encoder.personalize(work.data, card.chip_serial or "")
        except NoCardError:
            return Event(Kind.FAILED, Reason(Code.NO_CHIP))
        except EncodeError as exc:
            if isinstance(exc.__cause__, _READER_GONE):
                raise StationAlarm(f"encoder: {exc.__cause__}") from exc
            if isinstance(exc.__cause__, _LINE_STOPPERS):
                # every card would fail the same way: spoil this one, stop the line
                self.line.halt(f"HSM: {exc.__cause__}")
            return Event(Kind.FAILED, encode_failed(exc.step, exc.sw))
        return Event(Kind.ENCODED)

    def _verify(self, work: Work) -> tuple[Event, dict[str, Any]]:
        try:
            verdict = self._qa(work)
        except Exception as exc:  # whatever a chip makes QA do is this card's verdict
            self._alarm_if_reader_gone(exc)
            unread = (QAReason.READ_FAILED if isinstance(exc, (QAError, CardError))
                      else QAReason.MALFORMED)
            _log.warning("station.qa_error", station=self.name, error=exc.__class__.__name__)
            return Event(Kind.FAILED, qa_failed([unread.value])), {
                "qa": {"verdict": "fail",
                       "reasons": [{"code": unread.value, "message": unread.message}]}}
        summary = {"verdict": "pass" if verdict.passed else "fail",
                   "reasons": verdict.as_dict()["reasons"],
                   "protocols": list(verdict.protocols),  # what QA ran and passed, in order
                   "ds_serial": verdict.ds_serial}  # which DS signed it: `keys affected`
        if verdict.passed:
            self.line.save_chip_files(work.application.application_id, verdict.files)
            return Event(Kind.QA_PASSED), {"qa": summary}
        return Event(Kind.FAILED, qa_failed(list(verdict.codes))), {"qa": summary}

    def _qa(self, work: Work) -> Verdict:
        transport = self._reader()
        transport.reconnect(reset=True)  # a fresh session, as a separate QA terminal has
        application, data = work.application, work.data
        expected = Expected(mrz=data.mrz.text, dg13=self.line.dg13(application),
                            dg2_image=application.portrait.jpeg,
                            fingerprints=fingerprints_of(data.data_groups.get(3)))
        return verify_card(transport, keys_from_fields(*data.bac_key), self.line.trust,
                           at=datetime.now(UTC), expected=expected,
                           deadline_s=self.line.qa_deadline_s, access=self._eac_access(work))

    def _eac_access(self, work: Work) -> EACAccess | None:
        """How inline QA opens an EAC chip (a profile whose chip speaks PACE): PACE with the
        card's CAN, then CA, and TA as the QA desk's inspection system, which reads DG3; BAC
        never, since the chip offers PACE. None for a BAC chip: today's path."""
        if self.line.profile.chip.access == "bac":
            return None
        eac = self.line.eac
        if eac is None or eac.qa_terminal is None or work.data.can is None:
            raise QAError("this line makes EAC chips but holds no QA terminal or CAN for them")
        return EACAccess.by_can(work.data.can, eac.qa_terminal)

    def _chip_check(self, work: Work) -> bool:
        """Read an in-doubt chip back: True only if it passes QA against the prepared data."""
        try:
            self._reader().wait_for_card(CARD_WAIT_S)
            return self._qa(work).passed
        except Exception as exc:  # a chip that breaks QA is settled as failed, never re-read
            self._alarm_if_reader_gone(exc)
            return False

    @staticmethod
    def _alarm_if_reader_gone(exc: Exception) -> None:
        """A reader that vanished is the station's trouble, not the card's."""
        for cause in (exc, exc.__cause__):
            if isinstance(cause, _READER_GONE):
                raise StationAlarm(f"encoder: {cause}") from exc

    def _print(self, work: Work) -> Event:
        printer = self._printer()
        face = card_face(work.application, work.data.mrz, self.line.profile, can=work.data.can)
        rendered = render_card(face, self.line.layout)
        if printer.position() is not Position.PRINT:
            printer.release_from_encoder()
        printer.print_card(rendered)
        self.line.save_faces(work.application.application_id, rendered)
        return Event(Kind.PRINTED)

    def _card_left(self) -> None:
        """The card left the encoding station: let the reader notice before the next feed."""
        try:
            self._reader().wait_for_removal(CARD_WAIT_S)
        except _READER_GONE as exc:
            raise StationAlarm(f"encoder: {exc}") from exc
        except CardError as exc:
            raise StationAlarm(f"encoder still sees a card after it left: {exc}") from exc

    def _read_counter(self, *, final: bool) -> None:
        if not final and self._counted:
            return
        inserted = self._guarded(self._printer().cards_inserted)
        line = self.line
        if final:
            line.journal.station_counter(line.batch, self.name, now=inserted)
        else:
            line.journal.station_counter(line.batch, self.name, before_feed=inserted,
                                         now=inserted)
            self._counted = True

    def _printer(self) -> PrinterDriver:
        if self._driver is None:
            raise StationAlarm("printer not connected")
        return self._driver

    def _reader(self) -> PCSCTransport:
        if self._transport is None:
            raise StationAlarm("encoder not connected")
        return self._transport


def station_thread(station: Station, errors: list[BaseException],
                   stop: threading.Event) -> threading.Thread:
    """A thread running ``station``; an unexpected error is kept and stops the whole run."""
    def body() -> None:
        try:
            station.run()
        except BaseException as exc:
            _log.error("station.crashed", station=station.name, error=exc.__class__.__name__)
            errors.append(exc)
            stop.set()
    return threading.Thread(target=body, name=station.name, daemon=True)
