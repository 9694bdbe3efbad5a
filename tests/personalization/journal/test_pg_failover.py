"""Two data centres on the real server: a primary with a synchronous standby, each a private
cluster, the journal reached through a multi-host URL. Nothing the journal acknowledged is
lost when the primary dies and the standby is promoted; a new journal lands on the new
primary; with no writable server, journal calls fail with a clear error, bounded in time."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from personalization.journal import JournalError, open_journal
from personalization.journal.postgres import PostgresJournal
from tests.support.pg import TwoSites, postmaster

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
SPAWN = multiprocessing.get_context("spawn")
BATCH = "B-2DC"
STANDBY = "tphcm"


@pytest.fixture(scope="module")
def two_sites() -> Iterator[Callable[[], TwoSites]]:
    """Makes a fresh primary + synchronous standby pair per call (a failover uses one up);
    every pair is stopped and removed when the module ends."""
    with ExitStack() as stack:  # every pair comes down, even when another fails to

        def make() -> TwoSites:
            sites = TwoSites(STANDBY)
            stack.callback(sites.down)
            sites.up()
            return sites

        yield make


def _replication(sites: TwoSites) -> tuple[object, ...] | None:
    with sites.primary.admin() as db:
        return db.execute("SELECT state, sync_state FROM pg_stat_replication WHERE "
                          "application_name = %s", (STANDBY,)).fetchone()


def _on(cluster_rows: Callable[[], list[tuple[object, ...]]], within_s: float
        ) -> list[tuple[object, ...]]:
    """The first non-empty answer of ``cluster_rows`` within ``within_s`` (else the last)."""
    deadline = time.monotonic() + within_s
    while not (rows := cluster_rows()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return rows


def test_a_journal_through_the_multi_host_url_writes_to_the_primary(
        two_sites: Callable[[], TwoSites]) -> None:
    """Even with the standby listed first, the journal writes on the primary, whose
    synchronous standby streams and receives the event."""
    sites = two_sites()
    assert _replication(sites) == ("streaming", "sync")
    with open_journal(sites.url(standby_first=True)) as journal:
        journal.note(BATCH, "test.written", site="hanoi")
    query = "SELECT kind FROM events WHERE batch = 'B-2DC'"
    with sites.primary.admin("cardline") as db:
        assert db.execute(query).fetchall() == [("test.written",)]
    assert not sites.primary.in_recovery() and sites.standby.in_recovery()

    def on_standby() -> list[tuple[object, ...]]:
        with sites.standby.admin("cardline") as db:
            return db.execute(query).fetchall()

    assert _on(on_standby, 5) == [("test.written",)]


def test_a_commit_waits_until_the_standby_has_it(two_sites: Callable[[], TwoSites]) -> None:
    """With the standby down, a journal write does not return (only one site would hold
    it); it returns once the standby is back and streaming."""
    sites = two_sites()
    returned = threading.Event()
    with open_journal(sites.url()) as journal:

        def write() -> None:
            journal.note(BATCH, "test.waited")
            returned.set()

        sites.standby.stop()
        waiting = threading.Thread(target=write)
        waiting.start()
        try:
            assert not returned.wait(1.5)
        finally:
            sites.standby.start()
        assert returned.wait(sites.primary.timeout_s)
        waiting.join()
    assert _replication(sites) == ("streaming", "sync")


# -- no acknowledged commit lost -------------------------------------------------------------

def _writer(url: str, log: str, stop: object) -> None:
    """A line's journal in a process of its own: append numbered notes through ``url`` until
    told to stop, logging ``try N`` before each and ``ok N`` once the journal returned; after
    a failure, close the journal and open it again (through the same URL)."""
    journal = None
    number = 0
    with Path(log).open("a", encoding="utf-8") as out:
        while not stop.is_set():  # type: ignore[attr-defined]
            try:
                if journal is None:
                    journal = open_journal(url)
                number += 1
                out.write(f"try {number}\n")
                out.flush()
                journal.note(BATCH, "test.tick", n=number)
            except JournalError:
                if journal is not None:
                    journal.close()
                journal = None
                time.sleep(0.05)
                continue
            out.write(f"ok {number}\n")
            out.flush()
    if journal is not None:
        journal.close()


def _logged(log: Path, word: str) -> set[int]:
    text = log.read_text(encoding="utf-8") if log.exists() else ""
    return {int(line.split()[1]) for line in text.splitlines()
            if line.startswith(f"{word} ") and line.endswith(tuple("0123456789"))}


def _wait(what: str, done: Callable[[], bool], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not done():
        assert time.monotonic() < deadline, f"{what}: not within {within_s:g} s"
        time.sleep(0.05)


def test_no_commit_the_journal_acknowledged_is_lost_when_the_primary_dies(
        two_sites: Callable[[], TwoSites], tmp_path: Path) -> None:
    """A writer process appends through the multi-host URL; the primary is killed mid-stream
    and the standby promoted: the writer carries on there, a new journal through the same URL
    lands on it, every acknowledged event is there once, the chain verifies, writing goes on."""
    sites = two_sites()
    url, log, stop = sites.url(), tmp_path / "writer.log", SPAWN.Event()
    writer = SPAWN.Process(target=_writer, args=(url, str(log), stop))
    writer.start()
    try:
        _wait("100 acknowledged notes", lambda: len(_logged(log, "ok")) >= 100, 30)
        sites.primary.stop("immediate")
        before = len(_logged(log, "ok"))
        sites.standby.promote()
        _wait("50 more after the promotion", lambda: len(_logged(log, "ok")) >= before + 50, 30)
    finally:
        stop.set()
        writer.join(30)
    assert writer.exitcode == 0
    acked, tried = _logged(log, "ok"), _logged(log, "try")
    assert tried - acked, "the kill should have caught a write the journal did not acknowledge"
    with open_journal(url) as journal:
        seen = [e["data"]["n"] for e in journal.events(BATCH)]
        assert len(seen) == len(set(seen))
        assert acked <= set(seen) <= tried
        assert journal.verify_chain().ok
        journal.note(BATCH, "test.after_failover")
        assert journal.events(BATCH)[-1]["kind"] == "test.after_failover"
    assert not sites.standby.in_recovery()


# -- no writable server ----------------------------------------------------------------------

def _fails_within(call: Callable[[], object], within_s: float) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(JournalError) as caught:
        call()
    took = time.monotonic() - started
    assert took < within_s, f"took {took:.1f} s"
    return str(caught.value), took


def _passwords(sites: TwoSites) -> list[str]:
    lines = sites.primary.passfile.read_text(encoding="utf-8").splitlines()
    return [line.split(":", 4)[4] for line in lines]


def test_with_no_writable_server_journal_calls_fail_clearly_and_in_bounded_time(
        two_sites: Callable[[], TwoSites]) -> None:
    """A hung primary costs one connect_timeout (then the read-only standby is tried and
    refused); a dead one fails at once; an open journal's next calls fail within its bound;
    each error names the URL, never a password."""
    sites = two_sites()
    url = sites.url(connect_timeout_s=2)
    with PostgresJournal(url, statement_timeout_s=3) as journal:
        journal.note(BATCH, "test.before")
        assert postmaster(sites.primary, signal.SIGSTOP)
        try:
            message, took = _fails_within(lambda: PostgresJournal(url).close(), 2 * 2 + 3)
            assert took >= 1.5  # the hung primary's connect_timeout, per host
        finally:
            postmaster(sites.primary, signal.SIGCONT)
        assert journal.where in message and str(sites.standby.socket_dir) in message
        sites.primary.stop("immediate")
        messages = [_fails_within(lambda: journal.note(BATCH, "test.lost"), 3 + 2)[0]
                    for _ in range(2)]
        messages.append(_fails_within(lambda: PostgresJournal(url).close(), 2)[0])
    for text in [message, *messages]:
        assert text.startswith(f"journal {journal.where}")
        assert not any(password in text for password in _passwords(sites))
