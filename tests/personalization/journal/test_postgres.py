"""The PostgreSQL adapter's own promises, on the real server: several processes appending
and moving cards at once keep one gapless chain; processes opening at once migrate once; the
lines' role may append events but never change them; purged personal data cannot be found in
the cluster's files or WAL; connection and permission failures are clear errors without the
password; the controller lock dies with its process."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pgerrors
from psycopg import sql

from personalization.applications.intake import InvalidRecord, read_applications
from personalization.applications.model import Application, FieldError
from personalization.cardstate import Event, Kind, State, step
from personalization.journal import JournalError, open_journal
from personalization.journal.pgcluster import LINE, OWNER, ClusterError, PGCluster
from personalization.journal.postgres import PostgresJournal, unseal
from personalization.journal.postgres_schema import LATEST
from personalization.journal.records import GENESIS, event_hash
from personalization.prep import document_number
from personalization.profile import load_profile
from tests.support.pg import SoftwareKeyWrap, TestServer

pytestmark = pytest.mark.postgres
HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid]


@pytest.fixture()
def database(pg_server: TestServer) -> Iterator[str]:
    """A fresh, migrated journal database, dropped afterwards."""
    name = pg_server.fresh()
    yield name
    pg_server.cluster.drop_database(name)


def _create(journal: PostgresJournal, apps: list[Application], name: str = "B1",
            invalid: tuple[InvalidRecord, ...] = ()) -> None:
    journal.create_batch(name, source="apps.jsonl", profile="cccd", max_attempts=2,
                         valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                         invalid=list(invalid))


# -- several processes at once -------------------------------------------------------------

def _line(url: str, batch: str, station: str, ids: list[str], go: object) -> None:
    """A line's worth of work in a process of its own: try every application (others take
    some first), drive each one it gets to a handed-out card, note each."""
    go.wait(30)  # type: ignore[attr-defined]
    with open_journal(url) as journal:
        for app_id in ids:
            try:
                card = journal.begin_card(batch, app_id, station)
            except JournalError:
                continue  # another line holds it
            for kind in HAPPY:
                card = journal.move(card, step(card.machine(2), Event(kind)),
                                    chip_serial=f"{station}-{app_id}" if kind is Kind.FED
                                    else None)
            journal.note(batch, "test.line", station=station)


def test_processes_moving_cards_at_once_keep_one_gapless_chain(
        pg_server: TestServer, database: str, apps: list[Application],
        key_wrap: SoftwareKeyWrap) -> None:
    """Three line processes competing for the same applications: each application gets one
    card, handed out once; the events are numbered 1..N without gap and the chain verifies."""
    url = pg_server.cluster.url(database)
    with PostgresJournal(url, wrap=key_wrap) as journal:
        _create(journal, apps)
        ids = [a.application_id for a in apps]
        go = SPAWN.Event()
        workers = [SPAWN.Process(target=_line, args=(url, "B1", f"s{i}", ids[i * 4:] +
                                                     ids[:i * 4], go)) for i in range(3)]
        for worker in workers:
            worker.start()
        go.set()
        for worker in workers:
            worker.join(120)
            assert worker.exitcode == 0
        cards = journal.cards("B1")
        assert len(cards) == len(apps) and all(c.state is State.HANDED_OUT for c in cards)
        assert {c.application_id for c in cards} == set(ids)
        assert {r["state"] for r in journal.applications("B1")} == {"handed_out"}
        check = journal.verify_chain()
        assert check.ok and check.events == 1 + 1 + len(apps) * 7
        seqs = [e["seq"] for e in journal.events("B1")]
        assert seqs == list(range(2, check.events + 1))


def _open_once(url: str, go: object) -> None:
    go.wait(30)  # type: ignore[attr-defined]
    PostgresJournal(url).close()


def test_processes_opening_a_new_database_at_once_migrate_it_once(pg_server: TestServer) -> None:
    """Four processes open an empty database at the same moment: it ends at the latest
    schema with exactly one migration event."""
    name = pg_server.fresh(template=None)
    try:
        url = pg_server.cluster.url(name, OWNER)
        go = SPAWN.Event()
        workers = [SPAWN.Process(target=_open_once, args=(url, go)) for _ in range(4)]
        for worker in workers:
            worker.start()
        go.set()
        for worker in workers:
            worker.join(120)
            assert worker.exitcode == 0
        rows = pg_server.backdoor(name).fetch("SELECT kind FROM events ORDER BY seq")
        assert rows == [("journal.migrated",)]
        with PostgresJournal(url) as journal:
            assert journal.schema_version == LATEST and journal.verify_chain().ok
    finally:
        pg_server.cluster.drop_database(name)


# -- what the database refuses ---------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "UPDATE events SET kind = 'x'", "DELETE FROM events", "TRUNCATE events",
    "ALTER TABLE events DISABLE TRIGGER events_append_only", "DELETE FROM chain_heads",
    "DELETE FROM cards", "DROP TABLE events"])
def test_the_lines_role_may_not_change_the_log(pg_server: TestServer, database: str,
                                               statement: str) -> None:
    """The server itself refuses the lines' role anything but appending to the log:
    permission denied, before any trigger runs."""
    with psycopg.connect(pg_server.cluster.url(database, LINE), connect_timeout=5) as db:
        assert db.execute("SELECT current_user").fetchone() == (LINE,)
        with pytest.raises(pgerrors.InsufficientPrivilege):
            db.execute(statement.encode())


def test_the_lines_role_may_append(pg_server: TestServer, database: str) -> None:
    """What a line does, it may: the journal opened as the lines' role appends an event."""
    with PostgresJournal(pg_server.cluster.url(database, LINE)) as journal:
        journal.note(None, "test.note")
        assert journal.verify_chain().events == 2


def test_a_sealed_record_moved_to_another_application_does_not_open(
        pg_server: TestServer, database: str, apps: list[Application],
        key_wrap: SoftwareKeyWrap) -> None:
    """Each record is bound to its batch and application: copied onto another application's
    row in the database, it is refused, not read as that person's."""
    with PostgresJournal(pg_server.cluster.url(database), wrap=key_wrap) as journal:
        _create(journal, apps[:2])
        first, second = (a.application_id for a in apps[:2])
        pg_server.backdoor(database).execute(
            f"UPDATE applications SET record = (SELECT record FROM applications WHERE "  # noqa: S608 - test values
            f"application_id = '{first}') WHERE application_id = '{second}'")
        assert journal.application("B1", first) == apps[0]
    with PostgresJournal(pg_server.cluster.url(database), wrap=key_wrap) as fresh, \
            pytest.raises(JournalError, match="does not verify"):
        fresh.application("B1", second)


def test_without_a_key_wrap_personal_data_is_out_of_reach(
        pg_server: TestServer, database: str, apps: list[Application],
        key_wrap: SoftwareKeyWrap) -> None:
    """Opened without a wrap, the journal runs status and purges, but neither creates a batch
    nor reads an application; another wrap's key does not open the batch's data key."""
    url = pg_server.cluster.url(database)
    with PostgresJournal(url, wrap=key_wrap) as journal:
        _create(journal, apps[:1])
    with PostgresJournal(url) as bare:
        assert bare.batch("B1").applications["pending"] == 1
        with pytest.raises(JournalError, match="without a key wrap"):
            _create(bare, apps[1:2], "B2")
        with pytest.raises(JournalError, match="without a key wrap"):
            bare.application("B1", apps[0].application_id)
    with PostgresJournal(url, wrap=SoftwareKeyWrap()) as stranger, \
            pytest.raises(JournalError, match="cannot unwrap its data key: InvalidTag"):
        stranger.application("B1", apps[0].application_id)


# -- crypto-shredding --------------------------------------------------------------------------

def _found(folder: Path, values: list[bytes]) -> set[bytes]:
    """Which of ``values`` occur in any file under ``folder`` (data files, WAL, log)."""
    found: set[bytes] = set()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            raw = path.read_bytes()
            found.update(v for v in values if v in raw)
    return found


def test_purged_personal_data_is_nowhere_in_the_files_or_the_wal(
        pg_server: TestServer, database: str, apps: list[Application],
        key_wrap: SoftwareKeyWrap) -> None:
    """Names never reach the cluster's files in clear (the search does find a probe written in
    clear); the stored record opens only with the batch's key; after the purge the key is
    gone and the data is still nowhere. The personal ID is the cards' holder, kept in clear as
    the document number (its last 9 digits) always was: the key of the rule of one current
    card per person (issue #16 §2), which outlives the purge."""
    tag = secrets.token_hex(4).upper()
    people = [dataclasses.replace(a, full_name=f"Thử Nghiệm {tag} Số {i}",
                                  personal_id=f"0{secrets.randbelow(10**11):011d}")
              for i, a in enumerate(apps[:3])]
    refused = InvalidRecord(99, "X-99", (FieldError("full_name", f"not a name: Ẩn {tag}"),))
    values = [p.full_name.encode() for p in people]
    values.append(f"Ẩn {tag}".encode())
    backdoor = pg_server.backdoor(database)
    probe = f"probe-{tag}".encode()
    backdoor.execute(f"CREATE TABLE probe AS SELECT '{probe.decode()}'::text AS t")
    with PostgresJournal(pg_server.cluster.url(database), wrap=key_wrap) as journal:
        _create(journal, people, invalid=(refused,))
        for person in people:
            card = journal.begin_card("B1", person.application_id, "s1")
            for kind in HAPPY:
                card = journal.move(card, step(card.machine(2), Event(kind)),
                                    chip_serial=f"{tag}-{person.application_id}"
                                    if kind is Kind.FED else None)
        assert journal.application("B1", people[0].application_id) == people[0]
        backdoor.execute("CHECKPOINT")
        assert _found(pg_server.folder, [probe, *values]) == {probe}
        [(blob,)] = backdoor.fetch(f"SELECT record FROM applications WHERE application_id = "  # noqa: S608 - test value
                                   f"'{people[0].application_id}'")
        [(wrapped,)] = backdoor.fetch("SELECT wrapped FROM batch_keys WHERE batch = 'B1'")
        assert isinstance(blob, bytes) and isinstance(wrapped, bytes)
        assert not [v for v in values if v in blob]
        with pytest.raises(JournalError, match="does not verify"):
            unseal(os.urandom(32), blob, "application", "B1", people[0].application_id)
        key = key_wrap.unwrap(wrapped, "B1")
        assert people[0].full_name in unseal(key, blob, "application", "B1",
                                             people[0].application_id)
        assert journal.close_batch("B1", 0)
        backdoor.execute("CHECKPOINT")
        assert backdoor.fetch("SELECT count(*) FROM batch_keys") == [(0,)]
        assert backdoor.fetch("SELECT count(*) FROM applications WHERE record IS NOT "
                              "NULL") == [(0,)]
        assert not _found(pg_server.folder, values)
        assert sorted(backdoor.fetch("SELECT holder FROM cards")) == sorted(
            (p.personal_id,) for p in people)
        with pytest.raises(JournalError, match="purged"):
            journal.application("B1", people[0].application_id)
        assert journal.quarantined("B1")[0]["errors"] == [{"field": "full_name",
                                                           "reason": "(purged)"}]
        assert journal.verify_chain().ok


# -- connection and permission failures -------------------------------------------------------

def test_a_wrong_password_is_a_clear_error_without_the_password(pg_server: TestServer,
                                                                database: str) -> None:
    """The error names the URL with the password masked, and the server's reason."""
    password = "Wr0ng-" + secrets.token_hex(6)
    socket = pg_server.cluster.socket_dir
    url = f"postgresql://{LINE}:{password}@/{database}?host={socket}&port=5432"
    with pytest.raises(JournalError, match="password authentication failed") as refused:
        open_journal(url)
    assert password not in str(refused.value)
    assert f"{LINE}:***@" in str(refused.value)


def test_an_unreachable_server_is_a_clear_error_at_once(tmp_path: Path) -> None:
    """No server behind the socket: a prompt error naming the URL and why."""
    started = time.monotonic()
    with pytest.raises(JournalError, match=r"cannot connect.*No such file") as refused:
        open_journal(f"postgres://{LINE}:hidden-pw@/cardline?host={tmp_path}&port=5999")
    assert time.monotonic() - started < 10
    assert "hidden-pw" not in str(refused.value)


def test_a_url_libpq_cannot_read_is_a_clear_error_without_the_password() -> None:
    """A malformed URL is refused before any connection, its password masked."""
    with pytest.raises(JournalError, match=r"an:\*\*\*@.*cannot read this URL") as refused:
        open_journal("postgresql://an:hidden-pw@/cardline?no_such_option=1")
    assert "hidden-pw" not in str(refused.value)


def test_a_role_that_may_not_write_gets_a_clear_error(pg_server: TestServer,
                                                      database: str) -> None:
    """A role that may read the journal but not write it opens it, and its first write is
    refused naming the permission the server denied (and no password)."""
    password = secrets.token_hex(12)
    with pg_server.cluster.admin(database) as db:
        if not db.execute("SELECT 1 FROM pg_roles WHERE rolname = 'cardline_viewer'").fetchone():
            db.execute("CREATE ROLE cardline_viewer LOGIN")
        verifier = db.pgconn.encrypt_password(password.encode(), b"cardline_viewer",
                                              b"scram-sha-256").decode()
        db.execute(sql.SQL("ALTER ROLE cardline_viewer PASSWORD {}").format(sql.Literal(verifier)))
        db.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO cardline_viewer").format(
            sql.Identifier(database)))
        db.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO cardline_viewer")
    url = (f"postgresql://cardline_viewer:{password}@/{database}?"
           f"host={pg_server.cluster.socket_dir}&port=5432")
    with open_journal(url) as journal:
        assert journal.batches() == []
        with pytest.raises(JournalError, match="may not do that: permission denied") as refused:
            journal.note(None, "test.note")
    assert password not in str(refused.value)


def test_the_lines_role_cannot_migrate_an_empty_database(pg_server: TestServer) -> None:
    """The first open must be the owner's: the lines' role gets an error that says so."""
    name = pg_server.fresh(template=None)
    try:
        with pytest.raises(JournalError, match=r"permission denied.*must be as the database's "
                                               "owner"):
            open_journal(pg_server.cluster.url(name, LINE))
    finally:
        pg_server.cluster.drop_database(name)


# -- the controller lock ---------------------------------------------------------------------

def _hold_the_line(url: str, held: object) -> None:
    with PostgresJournal(url) as journal, journal.controller_lock("line-1"):
        held.set()  # type: ignore[attr-defined]
        time.sleep(120)


def test_the_controller_lock_dies_with_its_process(pg_server: TestServer,
                                                   database: str) -> None:
    """While a process holds the line another is refused at once; once that process is
    killed (SIGKILL, no clean-up), the server releases the lock and the next one takes it."""
    url = pg_server.cluster.url(database)
    held = SPAWN.Event()
    holder = SPAWN.Process(target=_hold_the_line, args=(url, held))
    holder.start()
    try:
        assert held.wait(60)
        with PostgresJournal(url) as journal:
            with pytest.raises(JournalError, match="another controller"), \
                    journal.controller_lock("line-1"):
                pass
            os.kill(holder.pid or 0, signal.SIGKILL)
            holder.join(30)
            deadline = time.monotonic() + 10
            while True:
                try:
                    with journal.controller_lock("line-1"):
                        break
                except JournalError:
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
    finally:
        holder.kill()
        holder.join(30)


# -- the cluster helper ----------------------------------------------------------------------

def test_the_cluster_listens_on_its_socket_only(pg_server: TestServer) -> None:
    """No TCP at all, a password for every role over the socket, the passwords in an
    owner-only file, and URLs that carry none."""
    cluster = pg_server.cluster
    with cluster.admin() as db:
        assert db.execute("SHOW listen_addresses").fetchone() == ("",)
    rules = [line for line in (cluster.data / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules == ["local all all scram-sha-256"]
    assert cluster.passfile.stat().st_mode & 0o077 == 0
    url = cluster.url()
    assert url.startswith(f"postgresql://{LINE}@/cardline?") and ":" not in url.split("@")[0][13:]
    assert cluster.status() == "running"


def test_a_cluster_starts_stops_and_says_why_it_cannot(tmp_path: Path) -> None:
    """A cluster of its own starts, stops immediately and reports each state; a folder
    initdb refuses gives an error naming the folder and initdb's own words; as root, a folder
    the server's user cannot reach is refused before initdb runs."""
    folders = [Path(tempfile.mkdtemp(prefix="cardline-pg-")) for _ in range(2)]
    try:
        cluster = PGCluster(folders[0], port=5433, settings={"fsync": "off"})
        assert cluster.status() == "absent"
        cluster.start()
        assert cluster.status() == "running"
        cluster.stop("immediate")
        assert cluster.status() == "stopped"
        (folders[1] / "data" / "junk").mkdir(parents=True)
        with pytest.raises(ClusterError, match=rf"{folders[1]}: initdb failed.*not empty"):
            PGCluster(folders[1]).init()
        if os.geteuid() == 0:  # pytest's own folders are root's, 0700
            with pytest.raises(ClusterError, match="who cannot pass"):
                PGCluster(tmp_path / "pg").init()
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


# -- one chain per line ----------------------------------------------------------------------

def test_each_line_appends_to_a_chain_of_its_own_anchored_in_the_journals(
        pg_server: TestServer, database: str, apps: list[Application]) -> None:
    """Card events go to their line's chain (so lines never wait on each other's commits),
    batch events to the journal's; joining and leaving anchor a line's head in the journal's
    chain. The whole verifies; a changed event in one line's chain breaks it, and so does a
    line's chain cut back behind an anchor."""
    url = pg_server.cluster.url(database)
    backdoor = pg_server.backdoor(database)
    with PostgresJournal(url, wrap=SoftwareKeyWrap()) as journal:
        journal.create_batch("B1", source="a.jsonl", profile="cccd", max_attempts=2,
                             valid=[(i + 1, a, document_number(a))
                                    for i, a in enumerate(apps[:4])], invalid=[])
        for line, station in (("line-1", "l1-s1"), ("line-2", "l2-s1")):
            journal.join_line("B1", line, stations=[station], holder="test")
            [app] = journal.claim("B1", line, "run", 1, 30)
            card = journal.begin_card("B1", app, station, line)
            journal.move(card, step(card.machine(2), Event(Kind.FED)), chip_serial=f"C-{line}")
            journal.leave_line("B1", line, "run")
        chains = dict(backdoor.fetch("SELECT chain, count(*) FROM events GROUP BY chain"))
        assert chains == {"journal": 6, "line:line-1": 2, "line:line-2": 2}  # migrated,
        # created, two joins and two leaves; each line: feeding and encoding
        check = journal.verify_chain()
        assert check.ok and check.events == 10
        backdoor.edit_event_in("line:line-2", 2, '{"station": "l9"}')
        assert journal.verify_chain().broken_at == 2


def test_a_lines_chain_cut_back_behind_its_anchor_is_found(
        pg_server: TestServer, database: str) -> None:
    """Removing a line's last events and moving its head back (as the owner could, with the
    triggers off) leaves a chain that hashes well by itself: the anchor catches it."""
    url = pg_server.cluster.url(database)
    backdoor = pg_server.backdoor(database)
    with PostgresJournal(url, wrap=SoftwareKeyWrap()) as journal:
        journal.create_batch("B1", source="a.jsonl", profile="cccd", max_attempts=2,
                             valid=[], invalid=[])
        journal.join_line("B1", "line-1", stations=["l1-s1"], holder="test")
        journal.note("B1", "run.started", line="line-1")
        journal.note("B1", "run.done", line="line-1")
        journal.leave_line("B1", "line-1", "run")
        assert journal.verify_chain().ok
        backdoor.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
        backdoor.execute("ALTER TABLE chain_heads DISABLE TRIGGER chain_heads_forward")
        backdoor.execute("DELETE FROM events WHERE chain = 'line:line-1' AND seq = 2")
        backdoor.execute("UPDATE chain_heads SET seq = 1, hash = (SELECT hash FROM events "
                         "WHERE chain = 'line:line-1' AND seq = 1) WHERE chain = 'line:line-1'")
        check = journal.verify_chain()
        assert not check.ok


TRICKY = ["plain", 'quote " and back\\slash', "tab\tnew\nline\rcr", "bell\x07esc\x1bnul-free",
          "\x7f del", "Nguyễn Văn An – ĐBSCL", "emoji 🪪", "\u2028 line sep", "/ solidus", ""]


@pytest.mark.parametrize("text", TRICKY)
def test_the_server_hashes_an_event_as_python_does(pg_server: TestServer, database: str,
                                                   text: str) -> None:
    """journal_event_hash (the server's, used when it appends) equals records.event_hash
    (Python's, used to verify) for strings that JSON escapes and strings it keeps."""
    data = json.dumps({"station": text}, ensure_ascii=False, sort_keys=True)
    backdoor = pg_server.backdoor(database)
    with pg_server.cluster.admin(database) as db:
        [(server,)] = db.execute("SELECT journal_event_hash(%s, %s, %s, %s, %s, %s, %s)",
                                 (GENESIS, 7, text, text or None, 3, text, data)).fetchall()
    assert server == event_hash(GENESIS, 7, text, text or None, 3, text, data)
    with PostgresJournal(pg_server.cluster.url(database)) as journal:
        journal.note(None, "test.note", station=text)
        assert journal.verify_chain().ok
    assert backdoor.fetch("SELECT count(*) FROM events")[0][0] == 2


INLINED_HASH = ("EXPLAIN (VERBOSE, COSTS OFF) SELECT journal_event_hash(g::text, g, 'at', 'b', g, "
                "'kind', 'data') FROM generate_series(1, 2) g")


def test_the_planner_inlines_the_event_hash(pg_server: TestServer, database: str) -> None:
    """journal_append's plan holds the hash's own expression (migration 15): an SQL function
    the server cannot inline is parsed and planned anew on every call, every event."""
    with PostgresJournal(pg_server.cluster.url(database)):
        pass  # migrated
    with pg_server.cluster.admin(database) as db:
        plan = "\n".join(str(row[0]) for row in db.execute(INLINED_HASH).fetchall())
        assert "sha256" in plan and "journal_event_hash" not in plan
        # as it was before migration 15: marked IMMUTABLE over a STABLE body, never inlined
        db.execute("ALTER FUNCTION journal_event_hash(text, bigint, text, text, bigint, text, "
                   "text) IMMUTABLE")
        plan = "\n".join(str(row[0]) for row in db.execute(INLINED_HASH).fetchall())
        assert "journal_event_hash" in plan
