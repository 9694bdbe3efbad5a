"""The work queue of one run: applications waiting for a card, prepared ahead of the encoders.

A preparation thread loads each queued application from the journal and builds its card data
(MRZ, DG1, DG2, DG13) while the stations are busy, keeping ``lookahead`` cards ready. An
application that cannot be prepared is failed by ``prepare`` (which returns None) and the
rest go on. The EF.SOD
is signed later, at the encoder, once the chip has given its Active Authentication key.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from personalization.applications.model import Application
from personalization.cardstate import Outcome
from personalization.prep import CardData

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Work:
    """One application with its card data, ready for a station."""

    application: Application
    data: CardData


class Dispatcher:
    """Hands prepared work to stations until every application of the run is settled."""

    def __init__(self, queued: Iterable[str], outstanding: int,
                 prepare: Callable[[str], Work | None], lookahead: int) -> None:
        self._queued: deque[str] = deque(queued)
        self._ready: deque[Work] = deque()
        self._outstanding = outstanding  # applications not yet handed out or failed
        self._prepare = prepare
        self._lookahead = max(1, lookahead)
        self._cond = threading.Condition()
        self._stopped = False
        self._paused = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._prep_loop, name="prep", daemon=True)

    def start(self) -> None:
        """Start preparing ahead."""
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
        """Every application of the run is handed out or failed."""
        with self._cond:
            return self._outstanding == 0

    @property
    def queued(self) -> int:
        """Applications waiting (prepared or not)."""
        with self._cond:
            return len(self._queued) + len(self._ready)

    def take(self, stop: threading.Event, poll_s: float = 0.1) -> Work | None:
        """The next prepared card, waiting for one (and while paused); None when the run is
        over or stopping."""
        with self._cond:
            while True:
                if stop.is_set() or self._stopped or self._outstanding == 0:
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
                self._outstanding -= 1
            else:
                self._queued.append(application_id)
            self._cond.notify_all()

    def _prep_loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._queued
                                             or len(self._ready) >= self._lookahead):
                    if self._outstanding == 0:
                        return
                    self._cond.wait(0.2)
                if self._stopped:
                    return
                application_id = self._queued.popleft()
            try:
                work = self._prepare(application_id)
            except BaseException as exc:  # surfaced by the controller, which stops the run
                _log.error("line.prep_failed", error=exc.__class__.__name__)
                with self._cond:
                    self.error, self._stopped = exc, True
                    self._cond.notify_all()
                return
            with self._cond:
                if work is None:  # the application cannot be prepared: recorded as failed
                    self._outstanding -= 1
                else:
                    self._ready.append(work)
                self._cond.notify_all()
