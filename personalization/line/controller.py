"""The line controller: one thread per station, preparation ahead of them, the journal under
everything. A run ends when every application is handed out or failed (the batch is then
closed and, by default, its personal data purged), or when it is stopped (Ctrl-C pauses: each
station finishes the card in hand) — and ``batch resume`` carries on from the journal.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from personalization.errors import PersonalizationError
from personalization.journal.port import JournalPort, JournalUnavailable, PurgeIncompleteError
from personalization.line.context import LineContext, LineEAC, Outputs
from personalization.line.dispatch import Dispatcher
from personalization.line.station import Station, StationSpec, station_thread
from personalization.prep import Preparer
from personalization.profile import DocumentProfile
from printers.layout import CardLayout
from qa.passive_auth import TrustStore

_log = structlog.get_logger(__name__)


class LineError(PersonalizationError):
    """The run cannot start or could not go on; the message says why."""


@dataclass(slots=True)
class RunResult:
    """How a run ended."""

    batch: str
    finished: bool
    seconds: float
    handed_out: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    line_done: bool = False  # nothing left for this line; other lines may still hold work


@dataclass(slots=True)
class LineParts:
    """What a run needs besides the journal and the stations."""

    preparer: Preparer
    profile: DocumentProfile
    layout: CardLayout
    trust: TrustStore
    outputs: Outputs = field(default_factory=Outputs)
    poll_s: float = 0.5
    retention_days: int = 0
    qa_deadline_s: float = 10.0
    stop_grace_s: float = 60.0
    line: str = "line-1"
    lease_s: float = 10.0
    eac: LineEAC | None = None  # the EAC material of a PACE profile's line (else None)


@dataclass(frozen=True, slots=True)
class StationLive:
    """What a station is doing now, as operators watch it (no personal data)."""

    station: str
    state: str  # idle, busy, paused, alarm, off
    application: str | None
    alarm: str | None
    encoder: str
    printer: str
    handed_out: int
    rejected: int
    busy_s: float
    printer_status: dict[str, Any] | None = None  # sensors and levels, as last read

    def as_dict(self) -> dict[str, Any]:
        """The snapshot as the journal keeps it."""
        return {"state": self.state, "application": self.application, "alarm": self.alarm,
                "encoder": self.encoder, "printer": self.printer,
                "handed_out": self.handed_out, "rejected": self.rejected,
                "busy_s": round(self.busy_s, 1), "printer_status": self.printer_status}


class LineController:
    """Runs one batch on a set of stations.

    Other processes steer a run through the journal: :meth:`JournalPort.request_control`
    asks for ``pause`` (stations finish the card in hand and wait), ``resume`` or ``stop`` (the
    run ends; the batch stays open for ``batch resume``); the controller reads the request
    every tick and writes each station's :class:`StationLive` snapshot when it changes (and
    at least every ``LIVE_REFRESH_S``), so a second process can watch the line.
    """

    LIVE_REFRESH_S = 2.0

    def __init__(self, journal: JournalPort, batch: str, stations: list[StationSpec],
                 parts: LineParts, stop: threading.Event | None = None) -> None:
        if not stations:
            raise LineError("the line has no stations (line.yaml: stations)")
        self.journal, self.batch, self.parts = journal, batch, parts
        self.specs = stations
        self.stations: list[Station] = []
        self.stop = stop if stop is not None else threading.Event()
        self.dispatcher: Dispatcher | None = None
        self._written: dict[str, tuple[dict[str, Any], float]] = {}
        self._beat = 0.0

    @property
    def paused(self) -> bool:
        """True while an operator has paused the run."""
        return self.dispatcher is not None and self.dispatcher.paused

    def live(self, *, ended: bool = False) -> list[StationLive]:
        """Each station's state now (``off`` for every station once the run has ended)."""
        views = []
        for station in self.stations:
            stats = station.stats
            state = ("off" if ended else "alarm" if stats.alarm else "busy" if stats.current
                     else "paused" if self.paused else "idle")
            views.append(StationLive(station.name, state, stats.current, stats.alarm,
                                     station.spec.reader, station.spec.printer_port,
                                     stats.handed_out, stats.rejected, stats.busy_s,
                                     stats.printer))
        return views

    def _publish(self, *, ended: bool = False) -> None:
        now = time.monotonic()
        for view in self.live(ended=ended):
            snapshot = view.as_dict()
            last = self._written.get(view.station)
            changed = last is None or {**last[0], "busy_s": 0} != {**snapshot, "busy_s": 0}
            if changed or ended or last is None or now - last[1] >= self.LIVE_REFRESH_S:
                self.journal.set_station_live(self.batch, view.station, snapshot)
                self._written[view.station] = (snapshot, now)

    def _obey(self) -> None:
        """Carry out a pause, resume or stop another process asked for."""
        action = self.journal.control(self.batch, self.parts.line)
        if action is None or self.dispatcher is None:
            return
        if action == "stop":
            self.stop.set()
        else:
            self.dispatcher.pause(action == "pause")
        self.journal.ack_control(self.batch, action, self.parts.line)
        _log.info("line.control", batch=self.batch, action=action)

    def _in_doubt(self) -> list[str]:
        """The applications of this line's cards in doubt. A card in doubt on a station no
        line of the batch has (renamed or removed since) is an error: no one would settle it."""
        names = {spec.name for spec in self.specs}
        others = {s for row in self.journal.lines(self.batch, self.parts.lease_s)
                  if row["line"] != self.parts.line for s in row["stations"]}
        open_cards = self.journal.open_cards(self.batch)
        strays = [c for c in open_cards if c.station not in names | others]
        if strays:
            where = ", ".join(sorted({c.station for c in strays}))
            raise LineError(f"batch {self.batch!r} has {len(strays)} card(s) in doubt on "
                            f"station(s) {where}, which this line does not have; run the "
                            "batch with those stations so the cards can be settled")
        return [c.application_id for c in open_cards if c.station in names]

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._beat >= min(2.0, self.parts.lease_s / 5):
            self.journal.heartbeat(self.batch, self.parts.line)
            self._beat = now

    def _drained(self) -> bool:
        return self.journal.batch(self.batch).applications.get("pending", 0) == 0

    def run(self, on_tick: Callable[[LineController], None] | None = None,
            tick_s: float = 0.25) -> RunResult:
        """Run until the batch is done or :attr:`stop` is set; ``on_tick`` shows progress."""
        info = self.journal.batch(self.batch)
        if info.state == "closed":
            raise LineError(f"batch {self.batch!r} is closed: every application is settled")
        parts = self.parts
        self.journal.join_line(self.batch, parts.line, stations=[s.name for s in self.specs],
                               holder=f"{socket.gethostname()}:{os.getpid()}")
        self._beat = time.monotonic()
        in_doubt = self._in_doubt()
        run_id = uuid.uuid4().hex
        self.dispatcher = Dispatcher(
            lambda count: self.journal.claim(self.batch, parts.line, run_id, count,
                                             parts.lease_s),
            in_doubt, self._drained,
            lambda application_id: context.prepare_or_fail(application_id),
            lookahead=2 * len(self.specs), poll_s=parts.poll_s)
        context = LineContext(self.journal, self.batch, info.max_attempts, parts.preparer,
                              parts.profile, parts.layout, parts.trust, self.dispatcher,
                              self.stop, parts.poll_s, parts.outputs, parts.qa_deadline_s,
                              line=parts.line, eac=parts.eac)
        self.stations = [Station(spec, context) for spec in self.specs]
        errors: list[BaseException] = []
        threads = [station_thread(s, errors, self.stop) for s in self.stations]
        stale = self.journal.control(self.batch, parts.line)
        if stale is not None:  # asked of an earlier run that ended first: a new run starts
            self.journal.ack_control(self.batch, stale, parts.line)
        self.journal.note(self.batch, "run.started", line=parts.line,
                          stations=[s.name for s in self.specs],
                          queued=info.applications["pending"], in_doubt=len(in_doubt),
                          pid=os.getpid())
        started = time.perf_counter()
        self.dispatcher.start()
        for thread in threads:
            thread.start()
        stopping_since: float | None = None
        outage = False
        try:
            while any(t.is_alive() for t in threads):
                if self.dispatcher.error is not None:
                    self.stop.set()
                if self.stop.is_set() and stopping_since is None:
                    stopping_since = time.monotonic()
                if stopping_since is not None and \
                        time.monotonic() - stopping_since > parts.stop_grace_s:
                    break  # the stations had their time to finish the cards in hand
                try:
                    self._obey()
                    self._heartbeat()
                    self._publish()
                except JournalUnavailable as exc:  # the stations wait it out; so does this
                    if not outage:
                        _log.warning("line.journal_unavailable", error=str(exc))
                    outage = True
                else:
                    outage = False
                if on_tick is not None:
                    on_tick(self)
                for thread in threads:
                    thread.join(tick_s / len(threads))
        finally:
            self.stop.set()
            self.dispatcher.stop()
            try:
                self._publish(ended=True)
                self.journal.leave_line(self.batch, parts.line, run_id)
            except JournalUnavailable as exc:  # the lease runs out by itself
                _log.warning("line.journal_unavailable", error=str(exc))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:  # daemon threads: they end with the process; their cards stay in doubt
            _log.error("line.stations_stuck", stations=stuck)
            errors.append(LineError(f"station(s) {', '.join(stuck)} did not finish the card "
                                    f"in hand within {parts.stop_grace_s:g} s of the stop; "
                                    "their cards are settled when the batch resumes"))
        if self.dispatcher.error is not None:
            errors.append(self.dispatcher.error)
        errors += [LineError(reason) for reason in context.halted]
        return self._finish(started, errors)

    def _finish(self, started: float, errors: list[BaseException]) -> RunResult:
        seconds = time.perf_counter() - started
        result = RunResult(self.batch, False, seconds,
                           sum(s.stats.handed_out for s in self.stations),
                           sum(s.stats.rejected for s in self.stations),
                           [f"{e.__class__.__name__}: {e}" for e in errors])
        info = self.journal.batch(self.batch)
        if info.finished and not self.journal.open_cards(self.batch):
            try:
                result.finished = self.journal.close_batch(self.batch, self.parts.retention_days)
            except PurgeIncompleteError as exc:  # closed; its purge stays due: an alarm
                result.finished = True
                result.errors.append(f"{exc.__class__.__name__}: {exc}")
                _log.error("journal.purge_incomplete", batches=exc.pending)
        result.line_done = self.dispatcher is not None and self.dispatcher.finished
        kind = ("run.finished" if result.finished else "run.stopped" if errors
                else "run.done" if result.line_done else "run.paused")
        self.journal.note(self.batch, kind, line=self.parts.line, seconds=round(seconds, 3),
                          handed_out=result.handed_out, rejected=result.rejected,
                          errors=[e.__class__.__name__ for e in errors])
        _log.info("line.run_ended", batch=self.batch, outcome=kind, seconds=round(seconds, 2))
        return result
