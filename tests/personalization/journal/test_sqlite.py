"""The SQLite adapter's own promises: WAL with full sync, numbered migrations in
``user_version`` applied once, its URL, and a purge that leaves nothing in the file or its
WAL."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import date
from pathlib import Path

import pytest

from common.sqlite import migrate
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cardstate import Event, Kind, step
from personalization.journal import JournalError, SQLiteJournal
from personalization.journal.records import GENESIS, event_hash
from personalization.journal.sqlite import sqlite_path
from personalization.journal.sqlite_schema import LATEST, MIGRATIONS
from personalization.prep import document_number
from personalization.profile import load_profile

HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid]


@pytest.fixture()
def journal(tmp_path: Path) -> SQLiteJournal:
    """A fresh journal file."""
    return SQLiteJournal(tmp_path / "journal.db")


def test_a_new_journal_is_migrated_in_wal_with_full_sync(journal: SQLiteJournal) -> None:
    """Schema at the latest version, WAL journal mode, synchronous FULL (2)."""
    assert journal.schema_version == LATEST
    db = sqlite3.connect(journal.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._read("PRAGMA synchronous")[0][0] == 2


def test_only_sqlite_urls_are_accepted() -> None:
    """The URL names the file; anything else is a clear error."""
    assert sqlite_path("sqlite:////var/j.db") == Path("/var/j.db")
    assert sqlite_path("sqlite:///rel/j.db") == Path("rel/j.db")
    with pytest.raises(JournalError, match="SQLite"):
        sqlite_path("postgresql://db/line")


def test_processes_opening_a_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    """Six connections opening the same new file together: the version is read again under
    the write lock, so the migrations run once and the log has one migration event."""
    path, opened, errors = tmp_path / "j.db", [], []  # type: ignore[var-annotated]

    def open_one() -> None:
        try:
            opened.append(SQLiteJournal(path))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(opened) == 6
    events = opened[0]._read("SELECT kind FROM events")
    assert [e[0] for e in events] == ["journal.migrated"]


def _old_event(db: sqlite3.Connection, seq: int, prev: str, kind: str) -> str:
    """An event as cardline wrote them before the chain head (number = last + 1)."""
    at, data = f"2026-01-01T00:00:0{seq}+00:00", "{}"
    digest = event_hash(prev, seq, at, None, None, kind, data)
    db.execute("INSERT INTO events (seq, at, batch, card, kind, data, prev, hash) "
               "VALUES (?, ?, NULL, NULL, ?, ?, ?, ?)", (seq, at, kind, data, prev, digest))
    return digest


def test_an_older_file_is_brought_up_to_date_with_its_chain_intact(tmp_path: Path) -> None:
    """A file at migration 1 with events in it gets the later migrations in one transaction
    and one event naming them; the chain head starts from its last event, so the new events
    follow on and the whole chain verifies."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, MIGRATIONS[:1], path, JournalError)
    prev = GENESIS
    for seq in (1, 2, 3):
        prev = _old_event(db, seq, prev, "test.old")
    db.close()
    with SQLiteJournal(path) as journal:
        assert journal.schema_version == LATEST
        journal.note(None, "test.new")
        rows = journal._read("SELECT seq, kind, data FROM events ORDER BY seq")
        assert [(r[0], r[1]) for r in rows] == [(1, "test.old"), (2, "test.old"),
                                               (3, "test.old"), (4, "journal.migrated"),
                                               (5, "test.new")]
        migrated = json.loads(rows[3][2])
        assert migrated["from"] == 1 and migrated["version"] == LATEST
        assert len(migrated["migrations"]) == LATEST - 1
        check = journal.verify_chain()
        assert check.ok and check.events == 5


def test_events_cut_off_the_end_or_written_around_the_head_are_found(
        journal: SQLiteJournal) -> None:
    """Deleting the last events (around the append-only trigger) leaves the chain head ahead
    of the log, and an event inserted without moving the head is refused."""
    for index in range(3):
        journal.note(None, "test.note", index=index)
    db = sqlite3.connect(journal.path)
    with pytest.raises(sqlite3.DatabaseError, match="chain head"):
        db.execute("INSERT INTO events (seq, at, kind, data, prev, hash) "
                   "VALUES (5, 'now', 'forged', '{}', 'x', 'y')")
    db.execute("DROP TRIGGER events_append_only_delete")
    db.execute("DELETE FROM events WHERE seq >= 3")
    db.commit()
    check = journal.verify_chain()
    assert check.events == 2 and check.broken_at == 3


def test_the_purge_leaves_nothing_in_the_file_or_its_wal(journal: SQLiteJournal,
                                                         apps: list[Application]) -> None:
    """With retention 0 the application records go at once: not even in freed pages or the
    WAL (secure_delete and a truncating checkpoint). The personal ID stays, as the holder of
    the card: the key of the rule of one current card per person (issue #16 §2)."""
    journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=2,
                         valid=[(1, apps[0], document_number(apps[0]))], invalid=[])
    card = journal.begin_card("B1", apps[0].application_id, "s1")
    for kind in HAPPY:
        card = journal.move(card, step(card.machine(2), Event(kind)),
                            chip_serial="CHIP-1" if kind is Kind.FED else None)
    assert journal.close_batch("B1", 0)
    raw = journal.path.read_bytes() + Path(str(journal.path) + "-wal").read_bytes()
    for value in (apps[0].full_name, apps[0].date_of_birth.isoformat(),
                  apps[0].place_of_residence, apps[0].father_name):
        assert value.encode("utf-8") not in raw  # not even in freed pages or the WAL
    assert journal._read("SELECT count(*) FROM application_records")[0][0] == 0
    with pytest.raises(JournalError, match="already purged"):
        journal.application("B1", apps[0].application_id)
    kept = journal._read("SELECT a.holder, c.holder FROM applications a JOIN cards c "
                         "ON c.application_id = a.application_id")
    assert [tuple(r) for r in kept] == [(apps[0].personal_id, apps[0].personal_id)]


def test_the_head_a_journal_remembers_never_forks_the_chain(journal: SQLiteJournal) -> None:
    """A journal appends after the head it wrote last without reading it; when another
    process appended in between, or its own write was rolled back, it reads the head again:
    the chain stays one line, numbers never repeat or skip."""
    other = SQLiteJournal(journal.path)
    try:
        for n in range(3):  # two writers in turn
            journal.note(None, "test.mine", n=n)
            other.note(None, "test.theirs", n=n)
        with pytest.raises(RuntimeError), journal._write() as db:  # appended, rolled back
            journal._append(db, None, None, "test.rolled_back", {})
            raise RuntimeError("abandoned")
        journal.note(None, "test.after_rollback")
        other.note(None, "test.last")
        check = journal.verify_chain()
        assert check.ok, check
        kinds = [r["kind"] for r in journal._read("SELECT kind FROM events ORDER BY seq")]
        assert "test.rolled_back" not in kinds
        assert kinds[-8:] == ["test.mine", "test.theirs"] * 3 + ["test.after_rollback",
                                                                 "test.last"]
        seqs = [r[0] for r in journal._read("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        other.close()
