"""The dispatcher of one line: it claims work a few applications at a time, hands it out in
order, keeps retries with the line, and says the line is done only when it holds nothing and
the batch has nothing left waiting (another line's claims may come back)."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from personalization.cardstate import Outcome
from personalization.line.dispatch import Dispatcher, Work


class Pool:
    """A batch's queue as the journal keeps it, shared by the lines claiming from it."""

    def __init__(self, ids: list[str]) -> None:
        self.waiting = list(ids)
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def claim(self, count: int) -> list[str]:
        with self.lock:
            self.calls.append(count)
            taken, self.waiting = self.waiting[:count], self.waiting[count:]
            return taken

    def drained(self) -> bool:
        with self.lock:
            return not self.waiting


def _work(application_id: str) -> Work:
    return cast(Work, _Fake(application_id))


class _Fake:
    def __init__(self, application_id: str) -> None:
        self.application = type("A", (), {"application_id": application_id})()


def _id(work: Any) -> str:
    return str(work.application.application_id)


def _dispatcher(pool: Pool, *, held: tuple[str, ...] = (), lookahead: int = 2,
                prepare: Any = _work) -> Dispatcher:
    dispatcher = Dispatcher(pool.claim, held, pool.drained, prepare, lookahead, poll_s=0.05)
    dispatcher.start()
    return dispatcher


def test_work_is_claimed_ahead_in_small_chunks_and_handed_out_in_order() -> None:
    """Never more than the lookahead is claimed at once, so other lines get the rest."""
    pool = Pool([f"A{i}" for i in range(5)])
    dispatcher, stop = _dispatcher(pool), threading.Event()
    taken = []
    while (work := dispatcher.take(stop)) is not None:
        taken.append(_id(work))
        dispatcher.settled(_id(work), Outcome.HANDED_OUT)
    dispatcher.stop()
    assert taken == [f"A{i}" for i in range(5)]
    assert max(pool.calls) <= 2 and dispatcher.finished


def test_a_retry_stays_with_the_line_and_a_claim_of_what_it_holds_is_ignored() -> None:
    """A rejected card's application comes back to this line's queue; the same id claimed
    again (the line's earlier run held it) is not handed out twice."""
    pool = Pool(["A0", "A1"])
    dispatcher, stop = _dispatcher(pool, held=("A1",)), threading.Event()
    first = dispatcher.take(stop)
    assert first is not None and _id(first) == "A0"
    dispatcher.settled("A0", Outcome.RETRY)
    again = dispatcher.take(stop)
    assert again is not None and _id(again) == "A0"
    assert not dispatcher.finished  # A1 is held (in doubt) until a station settles it
    dispatcher.settled("A0", Outcome.HANDED_OUT)
    dispatcher.settled("A1", Outcome.FAILED)
    assert dispatcher.take(stop) is None and dispatcher.finished
    dispatcher.stop()


def test_an_idle_line_waits_while_other_lines_hold_work_then_takes_what_comes_back() -> None:
    """Nothing to claim yet the batch is not drained (another line holds applications): the
    line waits; when that line dies and its claims return, this line takes them."""
    pool = Pool([])
    pool.waiting = []
    held_elsewhere = ["B0"]
    dispatcher = Dispatcher(pool.claim, (), lambda: not held_elsewhere and pool.drained(),
                            _work, 2, poll_s=0.05)
    dispatcher.start()
    stop = threading.Event()
    time.sleep(0.3)
    assert not dispatcher.finished
    with pool.lock:  # the other line's lease ran out: its claim is back in the pool
        pool.waiting.append(held_elsewhere.pop())
    work = dispatcher.take(stop)
    assert work is not None and _id(work) == "B0"
    dispatcher.settled("B0", Outcome.HANDED_OUT)
    assert dispatcher.take(stop) is None and dispatcher.finished
    dispatcher.stop()


def test_an_application_that_cannot_be_prepared_is_dropped_and_the_rest_go_on() -> None:
    """prepare returns None (it recorded the failure): the line does not wait for it."""
    pool = Pool(["A0", "BAD", "A2"])
    dispatcher = _dispatcher(pool, prepare=lambda a: None if a == "BAD" else _work(a))
    stop, taken = threading.Event(), []
    while (work := dispatcher.take(stop)) is not None:
        taken.append(_id(work))
        dispatcher.settled(_id(work), Outcome.HANDED_OUT)
    dispatcher.stop()
    assert taken == ["A0", "A2"]


def test_a_journal_that_fails_stops_the_line_with_the_error() -> None:
    """A claim that raises is kept for the controller (which stops the run), not swallowed."""
    def broken(count: int) -> list[str]:
        raise RuntimeError("journal gone")

    dispatcher = Dispatcher(broken, (), lambda: False, _work, 2, poll_s=0.05)
    dispatcher.start()
    assert dispatcher.take(threading.Event()) is None
    assert isinstance(dispatcher.error, RuntimeError)
    dispatcher.stop()


@pytest.mark.parametrize("paused", [True, False])
def test_a_paused_line_hands_out_nothing(paused: bool) -> None:
    """While paused, take waits; the stop ends the wait."""
    pool = Pool(["A0"])
    dispatcher = _dispatcher(pool)
    dispatcher.pause(paused)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    work = dispatcher.take(stop)
    assert (work is None) is paused
    dispatcher.stop()
