"""Fleet figures for ``cardline bench --section fleet``: lines sharing one journal, each
against the bare commit rate of the same database measured in the same run.

- ``fleet_cards_per_s``: N line processes (N = 4 and 8), each with two dry stations (threads)
  doing per card exactly the journal work a station does — ``begin_card``, the five moves of
  the happy path (FED with a chip serial of its own, ENCODED, QA_PASSED, PRINTED, EJECTED),
  the printer counter — while the line claims applications a few ahead (twice its stations,
  as the dispatcher does) and, every controller tick (0.25 s), heartbeats its lease,
  publishes its stations' live state and asks for run control; join before, leave after; no
  hardware. Cards handed out over the wall time from the start signal to the last line done.
- ``fleet_commits_per_card``: the server's count, the ``pg_stat_database.xact_commit`` delta
  of the fleet's database over the run (every transaction, reads included), per card;
  ``fleet_writes_per_card`` is the lines' own count of their write calls, to compare.
- ``pg_commits_per_s``: the bare commit rate of the same server with the same N connections
  (N processes, each on one connection, committing short single-row INSERTs and UPDATEs),
  measured just before and just after the lines' run, the mean of the two (this machine's
  rate drifts by a fifth or more from one minute to the next): ``pg_commits_before_N`` and
  ``pg_commits_after_N``, and ``pg_commits_drift_N``, the change between them over their
  mean.
- ``fleet_vs_pg = fleet_cards_per_s × fleet_commits_per_card / pg_commits_per_s``: the
  unsuffixed figures are those of the N with the lower ratio (the goal holds at every N);
  each N's are also given with an ``_N`` suffix.
- ``journal_vs_sqlite``: the same for one dry line on SQLite (its write calls counted: each
  is one ``BEGIN IMMEDIATE`` … ``COMMIT``) over ``sqlite_commits_per_s``, bare commits on a
  file with the journal's settings (WAL, ``synchronous=FULL``, ``common.sqlite``), measured
  just before and just after the line's run (the mean of the two: a disk's flush time
  drifts).
- ``fleet_campaign_times``: how many times the national campaign's 5 cards/s the slower
  fleet carries.

The cluster is a private one in a folder of its own under the system temp folder, removed
afterwards, with the production settings (``fsync``, ``synchronous_commit`` and
``full_page_writes`` on, checked once it runs): the test cluster's ``fsync=off`` would make
every commit nearly free and flatter all of these figures. Every run checks its own journal
afterwards: each application handed out exactly once, chip serials once, the chain intact.

``fleet_vs_bound`` (lines of real stations at realistic timing over their bound) is not here:
it needs the simulated stations, their pcscd and printers.
"""

from __future__ import annotations

import multiprocessing
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.sqlite import connect, write
from personalization.applications.model import Application
from personalization.benchkit import bench_applications
from personalization.cardstate import Event, Kind, State, step
from personalization.errors import PersonalizationError
from personalization.journal import JournalPort, open_journal
from personalization.journal.pgcluster import LINE, OWNER, PGCluster
from personalization.prep import document_number
from personalization.profile import DocumentProfile

CAMPAIGN_CARDS_PER_S = 5.0  # ~50 million cards at ~280 000 a day over 15 working hours
FLEET_LINES = (4, 8)
FLEET_APPLICATIONS = 600
STATIONS_PER_LINE = 2
PRODUCTION = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
BATCH = "fleet"
_BASE_APPLICATIONS = 8  # drawn portraits are slow: a few, cloned under new ids
_WAIT_S = 120.0
Figures = dict[str, Any]


class FleetBenchError(PersonalizationError):
    """The fleet benchmark could not run, or its journal broke a rule it must keep."""


@dataclass(frozen=True, slots=True)
class OnceCheck:
    """What became of a bench batch: every application handed out exactly once?"""

    applications: int
    handed_out: int  # applications in state handed_out
    cards: int  # card rows
    repeated: int  # applications with more than one handed-out card
    chips_repeated: int
    chain_ok: bool

    @property
    def ok(self) -> bool:
        """Each application one card, handed out; each chip once; the chain verifies."""
        return (self.handed_out == self.cards == self.applications and self.repeated == 0
                and self.chips_repeated == 0 and self.chain_ok)


@dataclass(frozen=True, slots=True)
class FleetRun:
    """One measured run of dry lines on one journal."""

    lines: int
    cards: int
    seconds: float
    commits: int  # as counted (server delta for PostgreSQL, write calls for SQLite)
    writes: int  # the lines' write calls
    once: OnceCheck
    tallies: list[DryTally] = field(default_factory=list)
    cluster: Path | None = None  # the PostgreSQL cluster's folder (removed after the bench)

    @property
    def cards_per_s(self) -> float:
        """Cards handed out per second of wall time."""
        return self.cards / self.seconds

    @property
    def commits_per_card(self) -> float:
        """Committed transactions per card."""
        return self.commits / max(1, self.cards)


class BenchKeyWrap:
    """The bench's data-key wrap: keys kept in this process, since the bench's applications
    are synthetic (no person's data to protect); a line's journal uses the HSM's."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}

    def wrap(self, key: bytes, batch: str) -> bytes:
        """Remember ``key`` for ``batch``; the blob is only a handle."""
        self._keys[batch] = key
        return batch.encode("utf-8")

    def unwrap(self, blob: bytes, batch: str) -> bytes:
        """The key remembered for ``batch``."""
        if blob != batch.encode("utf-8") or batch not in self._keys:
            raise FleetBenchError(f"no data key for bench batch {batch!r}")
        return self._keys[batch]

    def destroy(self, batch: str) -> bool:
        """Forget ``batch``'s key."""
        return self._keys.pop(batch, None) is not None


def fleet_applications(root: Path, profile: DocumentProfile, count: int) -> list[Application]:
    """``count`` valid applications: a few synthesized, cloned under new ids and personal
    numbers (the last six digits, the CCCD's serial part, so document numbers stay unique)."""
    base = bench_applications(root / "fleet-apps", profile, _BASE_APPLICATIONS, seed=77)
    return [replace(app, application_id=f"FLEET-{i:06d}",
                    personal_id=app.personal_id[:6] + f"{i:06d}")
            for i, app in ((i, base[i % len(base)]) for i in range(count))]


def create_batch(journal: JournalPort, applications: Sequence[Application]) -> None:
    """The bench's batch, in queue order."""
    journal.create_batch(BATCH, source="fleet-bench", profile="cccd", max_attempts=3,
                         valid=[(i + 1, a, document_number(a)) for i, a in
                                enumerate(applications)], invalid=[])


def check_once(journal: JournalPort) -> OnceCheck:
    """What the bench's journal shows of its batch (see :class:`OnceCheck`)."""
    apps = journal.applications(BATCH)
    cards = journal.cards(BATCH)
    handed = Counter(c.application_id for c in cards if c.state is State.HANDED_OUT)
    chips = Counter(c.chip_serial for c in cards)
    return OnceCheck(len(apps), sum(1 for a in apps if a["state"] == "handed_out"),
                     len(cards), sum(1 for n in handed.values() if n > 1),
                     sum(1 for n in chips.values() if n > 1), journal.verify_chain().ok)


# -- a dry line: a line's journal work without its machines -----------------------------------

HAPPY_PATH = (Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED)
TICK_S = 0.25  # the controller's tick: heartbeat, live state, run control
LEASE_S = 10.0


@dataclass(frozen=True, slots=True)
class DryTally:
    """What one dry line did between the start signal and its last card."""

    line: str
    handed_out: int
    writes: int  # write calls to the journal (each one transaction)
    finished_at: float  # monotonic clock, system-wide


class DryLine:
    """One line without hardware: a station thread per station doing a station's journal
    work per card, claims a few applications ahead, and a controller tick."""

    def __init__(self, journal: JournalPort, batch: str, line: str, stations: int) -> None:
        self.journal, self.batch, self.line = journal, batch, line
        self.stations = [f"{line}-s{n + 1}" for n in range(stations)]
        self.run_id = uuid.uuid4().hex
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self.writes = self.handed_out = 0

    def _count(self, writes: int = 1, cards: int = 0) -> None:
        with self._lock:
            self.writes += writes
            self.handed_out += cards

    def join(self) -> None:
        """Join the batch; record each printer's counter before its first feed."""
        self.journal.join_line(self.batch, self.line, stations=self.stations,
                               holder=f"fleet-bench:{self.run_id[:8]}")
        for station in self.stations:
            self.journal.station_counter(self.batch, station, before_feed=0, now=0)

    def _take(self) -> str | None:
        """The next claimed application, claiming twice the stations when none is left
        (the dispatcher's lookahead); None once the batch has none for this line."""
        with self._lock:
            if not self._queue:
                self._queue.extend(self.journal.claim(self.batch, self.line, self.run_id,
                                                      2 * len(self.stations), LEASE_S))
                self.writes += 1
            return self._queue.popleft() if self._queue else None

    def _station(self, station: str) -> None:
        made = 0
        while (application_id := self._take()) is not None:
            card = self.journal.begin_card(self.batch, application_id, station, self.line)
            for kind in HAPPY_PATH:
                serial = f"DRY-{station}-{made:06d}" if kind is Kind.FED else None
                card = self.journal.move(card, step(card.machine(3), Event(kind)),
                                         chip_serial=serial)
            made += 1
            self.journal.station_counter(self.batch, station, now=made)
            self._count(2 + len(HAPPY_PATH), cards=1)

    def _tick(self) -> None:
        while not self._done.wait(TICK_S):
            self.journal.heartbeat(self.batch, self.line)
            for station in self.stations:
                self.journal.set_station_live(self.batch, station, {"state": "busy"})
            self.journal.control(self.batch)
            self._count(1 + len(self.stations))

    def run(self) -> DryTally:
        """Drain the batch with this line's stations; then leave it."""
        ticker = threading.Thread(target=self._tick, name=f"{self.line}-tick", daemon=True)
        threads = [threading.Thread(target=self._station, args=(s,), name=s, daemon=True)
                   for s in self.stations]
        ticker.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        finished = time.monotonic()
        self._done.set()
        ticker.join()
        tally = DryTally(self.line, self.handed_out, self.writes, finished)
        self.journal.leave_line(self.batch, self.line, self.run_id)
        return tally


def dry_line_process(url: str, batch: str, line: str, stations: int, start: Any,
                     out: Any) -> None:
    """A spawned process's body: a dry line on the journal at ``url``; reports ``ready``
    once joined, runs at the start signal, reports its :class:`DryTally` (or its error)."""
    try:
        with open_journal(url) as journal:
            dry = DryLine(journal, batch, line, stations)
            dry.join()
            out.put(("ready", line))
            start.wait()
            out.put(("done", dry.run()))
    except Exception as exc:  # any failure: reported to the parent, which raises it
        out.put(("error", f"{line}: {type(exc).__name__}: {exc}"))


def bare_pg_process(folder: str, port: int, database: str, worker: int, seconds: float,
                    start: Any, out: Any) -> None:
    """A spawned process's body: one connection committing single-row INSERTs and UPDATEs
    in turn for ``seconds`` after the start signal; reports (commits, finished at)."""
    try:
        with PGCluster(Path(folder), port=port).admin(database) as db:
            db.execute("SET synchronous_commit = on")
            out.put(("ready", worker))
            start.wait()
            count, deadline = 0, time.monotonic() + seconds
            while time.monotonic() < deadline:
                if count % 2:
                    db.execute("UPDATE bare_counter SET n = n + 1 WHERE worker = %s", (worker,))
                else:
                    db.execute("INSERT INTO bare_log (worker, n) VALUES (%s, %s)",
                               (worker, count))
                count += 1
            out.put(("done", (count, time.monotonic())))
    except Exception as exc:  # any failure: reported to the parent, which raises it
        out.put(("error", f"bare {worker}: {type(exc).__name__}: {exc}"))


# -- processes ------------------------------------------------------------------------------


def _spawned(target: Any, jobs: Sequence[tuple[Any, ...]]) -> tuple[float, list[Any]]:
    """Run ``target(*job, start, out)`` in one spawned process per job; each reports ready,
    then waits for the common start. Returns the start (monotonic clock, system-wide) and
    each process's result, once they have all exited."""
    mp = multiprocessing.get_context("spawn")
    start, out = mp.Event(), mp.Queue()
    procs = [mp.Process(target=target, args=(*job, start, out), daemon=True) for job in jobs]
    for proc in procs:
        proc.start()
    try:
        _collect(out, len(procs), "ready")
        began = time.monotonic()
        start.set()
        results = _collect(out, len(procs), "done")
        for proc in procs:
            proc.join(_WAIT_S)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    return began, results


def _collect(out: Any, count: int, kind: str) -> list[Any]:
    got: list[Any] = []
    deadline = time.monotonic() + _WAIT_S
    while len(got) < count:
        try:
            what, value = out.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:  # queue.Empty: a process hangs or died without a word
            raise FleetBenchError(f"fleet bench: {count - len(got)} process(es) not {kind} "
                                  f"after {_WAIT_S:g} s") from exc
        if what == "error":
            raise FleetBenchError(f"fleet bench: a process failed: {value}")
        got.append(value)
    return got


def _tallied(lines: int, began: float, tallies: list[DryTally], commits: int,
             once: OnceCheck, cluster: Path | None = None) -> FleetRun:
    seconds = max(t.finished_at for t in tallies) - began
    return FleetRun(lines, sum(t.handed_out for t in tallies), seconds, commits,
                    sum(t.writes for t in tallies), once, tallies, cluster)


# -- PostgreSQL -----------------------------------------------------------------------------


@contextmanager
def production_cluster() -> Iterator[PGCluster]:
    """A private cluster with the production durability settings, checked; removed after."""
    folder = Path(tempfile.mkdtemp(prefix="cardline-fleet-"))
    cluster = PGCluster(folder, settings=PRODUCTION)
    try:
        cluster.start()
        _check_production(cluster)
        yield cluster
    finally:
        try:
            cluster.stop("immediate")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


def _check_production(cluster: PGCluster) -> None:
    """``fsync`` and ``full_page_writes`` as the server runs; ``synchronous_commit`` is given
    on its command line, and the superuser session that asks (set to ``local``) is the same
    as ``on`` while no synchronous standby is named, which is checked instead."""
    expected = {"fsync": "on", "full_page_writes": "on", "synchronous_standby_names": ""}
    with cluster.admin() as db:
        for name, value in expected.items():
            row = db.execute("SELECT setting FROM pg_settings WHERE name = %s",
                             (name,)).fetchone()
            if row is None or row[0] != value:
                raise FleetBenchError(f"fleet bench: the server runs with {name}="
                                      f"{row[0] if row else '?'!r}, not {value!r}")


def _xact_commits(cluster: PGCluster, database: str) -> int:
    with cluster.admin() as db:
        row = db.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                         (database,)).fetchone()
    return int(str(row[0])) if row else 0


def _settled_commits(cluster: PGCluster, database: str) -> int:
    """The database's commit count once its sessions have ended (each flushes its counts
    as it exits) and the count has stopped moving."""
    deadline, last = time.monotonic() + 10, -1
    while time.monotonic() < deadline:
        with cluster.admin() as db:
            row = db.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                             (database,)).fetchone()
        now = _xact_commits(cluster, database)
        if row is not None and row[0] == 0 and now == last:
            return now
        last = now
        time.sleep(0.2)
    return last


def pg_fleet(cluster: PGCluster, applications: Sequence[Application], lines: int) -> FleetRun:
    """``lines`` dry line processes draining one batch in a fresh database of ``cluster``."""
    database = f"fleet_{lines}"
    cluster.create_database(database)
    open_journal(cluster.url(database, OWNER)).close()  # migrated by its owner
    url = cluster.url(database, LINE)
    with open_journal(url, wrap=BenchKeyWrap()) as journal:
        create_batch(journal, applications)
    jobs = [(url, BATCH, f"line-{n + 1}", STATIONS_PER_LINE) for n in range(lines)]
    before = _xact_commits(cluster, database)
    began, tallies = _spawned(dry_line_process, jobs)
    commits = _settled_commits(cluster, database) - before
    with open_journal(url) as journal:
        once = check_once(journal)
    return _tallied(lines, began, tallies, commits, once, cluster.folder)


def pg_bare(cluster: PGCluster, connections: int, seconds: float, tag: str = "") -> float:
    """Commits per second of ``connections`` processes, one connection each, committing
    single-row INSERTs and UPDATEs in turn (autocommit, ``synchronous_commit=on``), in a
    database of their own (``tag`` tells one measurement's from another's)."""
    database = f"bare_{connections}{tag}"
    cluster.create_database(database)
    with cluster.admin(database) as db:
        db.execute("CREATE TABLE bare_log (worker int, n int, at timestamptz DEFAULT now())")
        db.execute("CREATE TABLE bare_counter (worker int PRIMARY KEY, n int)")
        db.execute("INSERT INTO bare_counter SELECT g, 0 FROM generate_series(0, %s) g",
                   (connections,))
    jobs = [(str(cluster.folder), cluster.port, database, n, seconds)
            for n in range(connections)]
    began, done = _spawned(bare_pg_process, jobs)
    return float(sum(c for c, _ in done)) / (max(float(f) for _, f in done) - began)


# -- SQLite ---------------------------------------------------------------------------------


def sqlite_line(root: Path, applications: Sequence[Application]) -> FleetRun:
    """One dry line on a SQLite journal; commits are its write calls (one each)."""
    url = f"sqlite:///{root / 'journal.db'}"
    with open_journal(url) as journal:
        create_batch(journal, applications)
    began, tallies = _spawned(dry_line_process, [(url, BATCH, "line-1", STATIONS_PER_LINE)])
    writes = sum(t.writes for t in tallies)
    with open_journal(url) as journal:
        once = check_once(journal)
    return _tallied(1, began, tallies, writes, once)


def sqlite_bare(path: Path, seconds: float) -> float:
    """Commits per second on one connection with the journal's settings (``common.sqlite``):
    single-row INSERTs and UPDATEs in turn, each its own ``BEGIN IMMEDIATE`` … ``COMMIT``."""

    def error(message: str) -> FleetBenchError:
        return FleetBenchError(f"fleet bench: {message}")

    db = connect(path, error)
    try:
        db.execute("CREATE TABLE bare_log (n INTEGER, at REAL)")
        db.execute("CREATE TABLE bare_counter (id INTEGER PRIMARY KEY, n INTEGER)")
        db.execute("INSERT INTO bare_counter VALUES (1, 0)")
        count, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            with write(db, path, error) as tx:
                if count % 2:
                    tx.execute("UPDATE bare_counter SET n = n + 1 WHERE id = 1")
                else:
                    tx.execute("INSERT INTO bare_log VALUES (?, ?)", (count, time.time()))
            count += 1
        return count / (time.monotonic() - started)
    finally:
        db.close()


# -- the section ----------------------------------------------------------------------------


def _checked(run: FleetRun, where: str) -> FleetRun:
    if not run.once.ok:
        raise FleetBenchError(f"fleet bench on {where}: the journal broke exactly-once: "
                              f"{run.once}")
    return run


def _pg_figures(run: FleetRun, before: float, after: float) -> Figures:
    n = run.lines
    bare = (before + after) / 2
    return {f"fleet_cards_per_s_{n}": round(run.cards_per_s, 2),
            f"fleet_commits_per_card_{n}": round(run.commits_per_card, 3),
            f"fleet_writes_per_card_{n}": round(run.writes / max(1, run.cards), 3),
            f"pg_commits_per_s_{n}": round(bare, 1),
            f"pg_commits_before_{n}": round(before, 1), f"pg_commits_after_{n}": round(after, 1),
            f"pg_commits_drift_{n}": round((after - before) / bare, 3),
            f"fleet_vs_pg_{n}": round(run.cards_per_s * run.commits_per_card / bare, 3)}


def measure(root: Path, profile: DocumentProfile, *, lines: Sequence[int] = FLEET_LINES,
            applications: int = FLEET_APPLICATIONS, seconds: float = 2.0,
            ) -> tuple[Figures, list[FleetRun]]:
    """Every figure of the section, and the runs they come from (the SQLite one last)."""
    apps = fleet_applications(root, profile, applications)
    figures: Figures = {"fleet_applications": applications}
    runs: list[FleetRun] = []
    with production_cluster() as cluster:
        for n in lines:  # the bare rate on both sides of the lines' run, as for SQLite below
            before = pg_bare(cluster, n, seconds, "_before")
            run = _checked(pg_fleet(cluster, apps, n), "PostgreSQL")
            runs.append(run)
            figures.update(_pg_figures(run, before, pg_bare(cluster, n, seconds, "_after")))
    worst = min(lines, key=lambda n: figures[f"fleet_vs_pg_{n}"])
    figures.update({"fleet_lines": worst, **{
        key: figures[f"{key}_{worst}"] for key in
        ("fleet_cards_per_s", "fleet_commits_per_card", "pg_commits_per_s", "fleet_vs_pg")}})
    slowest = min(r.cards_per_s for r in runs)
    figures["fleet_campaign_times"] = round(slowest / CAMPAIGN_CARDS_PER_S, 1)
    folder = root / "fleet-sqlite"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    # the disk's flush time drifts from second to second: the bare rate is taken on both
    # sides of the line's run, and their mean is the bound
    before = sqlite_bare(folder / "bare-before.db", seconds)
    single = _checked(sqlite_line(folder, apps), "SQLite")
    runs.append(single)
    bare = (before + sqlite_bare(folder / "bare-after.db", seconds)) / 2
    figures.update({"journal_cards_per_s": round(single.cards_per_s, 2),
                    "journal_commits_per_card": round(single.commits_per_card, 3),
                    "sqlite_commits_per_s": round(bare, 1),
                    "journal_vs_sqlite": round(
                        single.cards_per_s * single.commits_per_card / bare, 3)})
    return figures, runs


def fleet_section(root: Path, profile: DocumentProfile, seconds: float = 2.0) -> Figures:
    """The section's figures (see the module's docstring)."""
    figures, _ = measure(root, profile, seconds=max(seconds, 2.0))
    return figures

