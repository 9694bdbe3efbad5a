"""The work queue of one run: applications waiting for a card, prepared ahead of the encoders.

A preparation thread claims applications of the batch for this line (a few at a time, so
several lines can share a batch), loads each from the journal and builds its card data (MRZ,
DG1, DG2, DG13) while the stations are busy, keeping ``lookahead`` cards ready. An
application that cannot be prepared is failed by ``prepare`` (which returns None) and the
rest go on. The EF.SOD
is signed later, at the encoder, once the chip has given its Active Authentication key.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from personalization.applications.model import Application
from personalization.cardstate import Outcome
from personalization.journal.port import JournalUnavailable
from personalization.prep import CardData

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Work:
    """One application with its card data, ready for a station."""

    application: Application
    data: CardData


class Dispatcher:
    """Hands prepared work to stations until the line has nothing left to do.

    Work comes from ``claim(count)``, which takes up to ``count`` pending applications of the
    batch for this line (other lines may be claiming from the same batch); ``held`` are the
    applications the line already has in hand (its cards in doubt). The line is done when it
    holds nothing and ``drained()`` says no application of the batch waits any more — an
    application another line holds may come back to the pool when that line dies, so an idle
    line keeps asking every ``poll_s`` until then.
    """

    def __init__(self, claim: Callable[[int], list[str]], held: Iterable[str],
                 drained: Callable[[], bool], prepare: Callable[[str], Work | None],
                 lookahead: int, poll_s: float = 0.5) -> None:
        self._claim, self._drained, self._prepare = claim, drained, prepare
        self._queued: deque[str] = deque()
        self._ready: deque[Work] = deque()
        self._held: set[str] = set(held)  # claimed or in doubt, not yet handed out or failed
        self._lookahead = max(1, lookahead)
        self._poll_s = poll_s
        self._cond = threading.Condition()
        self._stopped = False
        self._done = False
        self._paused = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._prep_loop, name="prep", daemon=True)

    def start(self) -> None:
        """Start claiming and preparing ahead."""
        self._thread.start()

    def stop(self) -> None:
        """No more work is handed out; the preparation thread ends."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def pause(self, paused: bool = True) -> None:
        """While paused no work is handed out (stations finish the card in hand and wait)."""
        with self._cond:
            self._paused = paused
            self._cond.notify_all()

    @property
    def paused(self) -> bool:
        """True while the run is paused."""
        with self._cond:
            return self._paused

    @property
    def finished(self) -> bool:
        """The line holds nothing and the batch has nothing left waiting."""
        with self._cond:
            return self._done

    @property
    def queued(self) -> int:
        """Applications claimed and waiting for a station (prepared or not)."""
        with self._cond:
            return len(self._queued) + len(self._ready)

    def take(self, stop: threading.Event, poll_s: float = 0.1) -> Work | None:
        """The next prepared card, waiting for one (and while paused); None when the line is
        done or stopping."""
        with self._cond:
            while True:
                if stop.is_set() or self._stopped or self._done:
                    return None
                if self._ready and not self._paused:
                    work = self._ready.popleft()
                    self._cond.notify_all()
                    return work
                self._cond.wait(poll_s)

    def settled(self, application_id: str, outcome: Outcome) -> None:
        """A card of this application reached a terminal state with this outcome."""
        with self._cond:
            if outcome in (Outcome.HANDED_OUT, Outcome.FAILED):
                self._held.discard(application_id)
            else:  # back in the queue, still this line's
                self._held.add(application_id)
                self._queued.append(application_id)
            self._cond.notify_all()

    def give_back(self, work: Work) -> None:
        """Work a station took but could not begin (the journal failed first): first in line
        again, still this line's."""
        with self._cond:
            self._ready.appendleft(work)
            self._cond.notify_all()

    def forget(self, application_id: str) -> None:
        """An application this line no longer holds (another line has it now)."""
        with self._cond:
            self._held.discard(application_id)
            self._cond.notify_all()

    def _prep_loop(self) -> None:
        try:
            self._feed()
        except BaseException as exc:  # surfaced by the controller, which stops the run
            _log.error("line.prep_failed", error=exc.__class__.__name__)
            with self._cond:
                self.error, self._stopped = exc, True
                self._cond.notify_all()

    def _feed(self) -> None:
        next_claim = 0.0
        while True:
            with self._cond:
                while not self._stopped and not self._queued and (
                        len(self._ready) >= self._lookahead or
                        time.monotonic() < next_claim):
                    self._cond.wait(min(0.2, max(0.0, next_claim - time.monotonic()) or 0.2))
                if self._stopped:
                    return
                if self._queued and len(self._ready) < self._lookahead:
                    application_id: str | None = self._queued.popleft()
                    wanted = 0
                else:
                    application_id = None
                    wanted = self._lookahead - len(self._ready) - len(self._queued)
            if application_id is not None:
                try:
                    work = self._prepare(application_id)
                except JournalUnavailable:
                    with self._cond:  # asked again once the journal answers
                        self._queued.appendleft(application_id)
                    self._wait_out_outage()
                    continue
                with self._cond:
                    if work is None:  # cannot be prepared: recorded as failed
                        self._held.discard(application_id)
                    else:
                        self._ready.append(work)
                    self._cond.notify_all()
                continue
            if wanted <= 0:
                with self._cond:
                    self._cond.wait(0.2)
                continue
            try:
                claimed = self._claim(wanted)
            except JournalUnavailable:
                self._wait_out_outage()
                continue
            with self._cond:
                fresh = [a for a in claimed if a not in self._held]
                self._held.update(fresh)
                self._queued.extend(fresh)
                idle = not claimed and not self._held
            if claimed:
                continue
            next_claim = time.monotonic() + self._poll_s
            try:
                drained = idle and self._drained()
            except JournalUnavailable:
                self._wait_out_outage()
                continue
            if drained:
                with self._cond:
                    if not self._held and not self._queued:
                        self._done = True
                        self._cond.notify_all()
                        return

    def _wait_out_outage(self) -> None:
        """The journal went away: pause (the stations show the outage) and try again."""
        _log.warning("line.journal_unavailable", during="prepare")
        with self._cond:
            self._cond.wait(self._poll_s * 4)
