"""The journal adapter for SQLite: batches, applications, one row per physical card,
stations and an append-only, hash-chained event log in one file. With ``common.sqlite``
(connections, writes, migrations) and ``sqlite_schema`` (the migrations), the only code that
knows SQLite: its PRAGMAs, placeholders, triggers and error codes stay here.

Durability: WAL, ``synchronous=FULL``, every writer opens ``BEGIN IMMEDIATE``. One connection
per ``SQLiteJournal``, shared by the controller's threads under a lock; other processes
(``batch status``) open their own. Event numbers come from the one-row ``chain_head`` that
each append moves inside its write transaction.

Events carry no personal data: card ids, chip serials, stations, states and reason codes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from common.sqlite import (
    BUSY_TIMEOUT_MS,
    Migration,
    connect,
    migrate,
    user_version,
    write,
)
from personalization.applications.intake import InvalidRecord
from personalization.applications.model import Application
from personalization.applications.stream import START, Mark
from personalization.cardstate import Outcome, State, Step, spoiled
from personalization.journal.port import (
    BatchExistsError,
    ConflictError,
    ImportState,
    JournalError,
    NotClaimable,
    PurgeIncompleteError,
    control_action,
)
from personalization.journal.records import (
    GENESIS,
    ApplicationRow,
    BatchInfo,
    CardRow,
    ChainCheck,
    EventRow,
    LineRow,
    QuarantineRow,
    StationRow,
    dump_application,
    event_hash,
    load_application,
)
from personalization.journal.rules import (
    ISSUANCE_COLUMNS,
    ISSUANCE_JOINS,
    CurrentCard,
    Holdings,
    InProgress,
    Queued,
    hold_once,
    issuance_result,
    line_row,
    no_station_clash,
    person_columns,
    quarantine_result,
)
from personalization.journal.sqlite_audit import SQLiteAudit
from personalization.journal.sqlite_people import SQLitePeople
from personalization.journal.sqlite_registry import SQLiteRegistry
from personalization.journal.sqlite_schema import MIGRATIONS
from personalization.journal.sqlite_shares import SQLiteShares
from personalization.reasons import Code, Reason

_CARD_QUERIES = {
    "batch": "SELECT * FROM cards WHERE batch = ? ORDER BY id",
    "open": "SELECT * FROM cards WHERE batch = ? AND state NOT IN ('handed_out', 'rejected', "
            "'void', 'superseded') ORDER BY id",
    "chip": "SELECT * FROM cards WHERE chip_serial = ? ORDER BY id",
}


# How long a purge waits for other processes' reads to let go of the log (then it is pending).
PURGE_WAIT_S = 10.0
# An unfinished import is removed this many rows per transaction, to keep each one short.
_DELETE_ROWS = 2000
_DELETE_SOME = {
    "import_keys": "DELETE FROM import_keys WHERE batch = ?1 AND key IN "
                   "(SELECT key FROM import_keys WHERE batch = ?1 LIMIT ?2)",
    **{table: f"DELETE FROM {table} WHERE rowid IN "  # noqa: S608 - table names are constants
              f"(SELECT rowid FROM {table} WHERE batch = ?1 LIMIT ?2)"
       for table in ("quarantine", "application_records", "applications")},
}
_DELETE_ALL = {table: f"DELETE FROM {table} WHERE batch = ?"  # noqa: S608 - constants
               for table in ("import_keys", "quarantine", "application_records",
                             "applications", "stations",
                             "run_control", "run_control_seen", "imports")}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _mapping(row: sqlite3.Row) -> dict[str, Any]:
    return dict(zip(row.keys(), row, strict=True))


def _reasons_json(reasons: Sequence[Reason]) -> str:
    return json.dumps([r.as_dict() for r in reasons], ensure_ascii=False)


def _lock_name(line: str) -> str:
    """A line's name as it can appear in a file name."""
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", line) and not line.startswith("."):
        return line
    return hashlib.sha256(line.encode()).hexdigest()[:16]


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///PATH`` journal URL."""
    if not url.startswith("sqlite:///"):
        raise JournalError(
            f"journal {url!r}: this version keeps its journal in SQLite only; "
            "use journal.url: sqlite:///PATH in line.yaml")
    return Path(url[len("sqlite:///"):])  # "sqlite:////abs/path" keeps its leading slash


class SQLiteJournal(SQLitePeople, SQLiteAudit, SQLiteShares, SQLiteRegistry):
    """The journal of one line in a SQLite file; a context manager that closes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.purge_wait_s = PURGE_WAIT_S  # how long a purge waits for other readers
        self._db = connect(path, self._error)
        try:
            self._db.execute("PRAGMA secure_delete = ON")  # purged data is overwritten
        except sqlite3.Error as exc:
            raise JournalError(f"journal {path}: cannot open: {exc}") from exc
        self._lock = threading.RLock()
        self._head: tuple[int, str] | None = None  # the chain head this journal last wrote
        with self._lock:
            migrate(self._db, MIGRATIONS, path, self._error, self._migrated)

    @staticmethod
    def _error(message: str) -> JournalError:
        return JournalError(f"journal {message}")

    @classmethod
    def open(cls, url: str) -> Self:
        """Open (creating and migrating as needed) the journal at a ``sqlite:///`` URL."""
        return cls(sqlite_path(url))

    @property
    def url(self) -> str:
        """``sqlite:///PATH`` of this journal's file."""
        return f"sqlite:///{self.path}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    @contextmanager
    def controller_lock(self, line: str) -> Iterator[None]:
        """An ``flock`` on ``<journal>.<line>.run.lock``: the kernel releases it when the
        holder dies, even by SIGKILL, so a crashed controller never blocks the next one. (A
        SQLite journal is shared by the lines of one machine only.)"""
        path = self.path.with_name(f"{self.path.name}.{_lock_name(line)}.run.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise JournalError(f"another controller is running line {line!r} (its lock "
                                   f"is {path}); wait for it or stop it first") from exc
            yield
        finally:
            os.close(fd)

    # -- transactions and the event chain ---------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock, write(self._db, self.path, self._error,
                               lambda message: ConflictError(f"journal {message}")) as db:
            yield db

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def _append(self, db: sqlite3.Connection, batch: str | None, card: int | None, kind: str,
                data: dict[str, Any]) -> None:
        """The next event, numbered and chained from the one-row chain head inside the
        caller's write transaction: the head row is the point every appender passes one at a
        time (here under SQLite's write lock), so numbers never repeat or skip."""
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
        # The head this journal wrote last saves a read; the UPDATE checks it, and when
        # another process has appended since (or that write was rolled back) it is read.
        for known in (self._head, None):
            last, prev = known or db.execute("SELECT seq, hash FROM chain_head "
                                             "WHERE id = 1").fetchone()
            seq, at = last + 1, _now()
            digest = event_hash(prev, seq, at, batch, card, kind, text)
            if db.execute("UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1 AND seq = ? "
                          "AND hash = ?", (seq, digest, last, prev)).rowcount == 1:
                break
            if known is None:
                raise JournalError(f"journal {self.path}: the event chain moved under a write")
        db.execute("INSERT INTO events (seq, at, batch, card, kind, data, prev, hash) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (seq, at, batch, card, kind, text, prev, digest))
        self._head = (seq, digest)

    def note(self, batch: str | None, kind: str, **data: Any) -> None:
        """Append an event that changes no state (run started, paused, reconciled…)."""
        with self._write() as db:
            self._append(db, batch, None, kind, data)

    def verify_chain(self) -> ChainCheck:
        """Re-hash the whole event log, from one snapshot; report the first event that does
        not follow (a changed event, a gap), or the one after the last when the log ends
        before the chain head (events cut off its end)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                rows = self._db.execute("SELECT seq, at, batch, card, kind, data, prev, hash "
                                        "FROM events ORDER BY seq").fetchall()
                head = tuple(self._db.execute("SELECT seq, hash FROM chain_head").fetchone())
            finally:
                self._db.execute("COMMIT")
        prev, count = GENESIS, 0
        for row in rows:
            count += 1
            seq, at, batch, card, kind, data, stored_prev, stored = tuple(row)
            if seq != count:
                return ChainCheck(count, count)  # event number ``count`` is missing
            if stored_prev != prev or event_hash(prev, seq, at, batch, card, kind,
                                                 data) != stored:
                return ChainCheck(count, seq)
            prev = stored
        if head == (count, prev):
            return ChainCheck(count, None)
        if head[0] != count:  # events cut off the end, or events past what the head says
            return ChainCheck(count, min(head[0], count) + 1)
        return ChainCheck(count, count)  # the last event is not the one the head names

    def events(self, batch: str) -> list[EventRow]:
        """A batch's events, oldest first."""
        return [{"seq": r["seq"], "at": r["at"], "card": r["card"], "kind": r["kind"],
                 "data": json.loads(r["data"])}
                for r in self._read("SELECT * FROM events WHERE batch = ? ORDER BY seq",
                                    (batch,))]

    # -- schema -----------------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The number of the last migration applied to this file."""
        with self._lock:
            return user_version(self._db)

    def _migrated(self, db: sqlite3.Connection, old: int,
                  applied: Sequence[Migration]) -> None:
        self._append(db, None, None, "journal.migrated", {
            "version": applied[-1][0], "from": old,
            "migrations": [f"{number}: {title}" for number, title, _ in applied]})

    # -- batches ----------------------------------------------------------------------------

    @staticmethod
    def _holdings(db: sqlite3.Connection, numbers: Sequence[str]) -> Holdings:
        """The current cards and the applications in progress of these document numbers
        (indexed lookups: applications_document, one_card_per_document)."""
        cards: list[CurrentCard] = []
        applications: list[InProgress] = []
        wanted = sorted(set(numbers))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            applications += [InProgress(*row) for row in db.execute(
                "SELECT holder, document_number, batch FROM applications WHERE state IN "  # noqa: S608 - placeholders only
                f"('pending', 'active') AND document_number IN ({marks})", chunk)]
            cards += [CurrentCard(*row) for row in db.execute(
                "SELECT c.id, c.holder, c.document_number, a.issue_date FROM cards c "  # noqa: S608 - placeholders only
                "JOIN applications a ON a.batch = c.batch AND a.application_id = "
                "c.application_id WHERE c.state = 'handed_out' AND c.document_number IN "
                f"({marks})", chunk)]
        return Holdings(cards, applications)

    @staticmethod
    def _enqueue(db: sqlite3.Connection, name: str, first_seq: int, queued: Sequence[Queued],
                 texts: Mapping[int, str]) -> None:
        db.executemany(
            "INSERT INTO applications (batch, application_id, seq, line, document_number, "
            "state, holder, kind, issue_date, expiry_date, supersedes_card, predates) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
            [(name, q.application.application_id, first_seq + seq, q.line, q.number,
              *person_columns(q)) for seq, q in enumerate(queued)])
        db.executemany(  # apart: an application's state changes never rewrite its record
            "INSERT INTO application_records (batch, application_id, record) VALUES (?, ?, ?)",
            [(name, q.application.application_id, texts[q.line]) for q in queued])

    def create_batch(self, name: str, *, source: str, profile: str, max_attempts: int,
                     valid: Sequence[tuple[int, Application, str]],
                     invalid: Sequence[InvalidRecord]) -> BatchInfo:
        """A new batch: ``valid`` as (line, application, document number) queued in order,
        ``invalid`` quarantined with their reasons — and so is an application the rule of one
        current card per person refuses (:func:`~personalization.journal.rules.hold_once`)."""
        texts = {line: dump_application(a) for line, a, _ in valid}
        with self._write() as db:
            created = db.execute(
                "INSERT INTO batches (name, created_at, source, profile, max_attempts, state) "
                "VALUES (?, ?, ?, ?, ?, 'open') ON CONFLICT (name) DO NOTHING",
                (name, _now(), source, profile, max_attempts)).rowcount
            if created != 1:
                raise BatchExistsError(name)
            held = self._holdings(db, [number for _, _, number in valid])
            queued, refused = hold_once(name, valid, invalid, held)
            self._enqueue(db, name, 0, queued, texts)
            self._quarantine(db, name, refused)
            self._append(db, name, None, "batch.created",
                         {"source": source, "accepted": len(queued),
                          "quarantined": len(refused), "max_attempts": max_attempts})
        return self.batch(name)

    @staticmethod
    def _quarantine(db: sqlite3.Connection, name: str, refused: Sequence[InvalidRecord]) -> None:
        db.executemany(
            "INSERT INTO quarantine (batch, line, application_id, errors) VALUES (?, ?, ?, ?)",
            [(name, r.line, r.application_id,
              json.dumps([e.as_dict() for e in r.errors], ensure_ascii=False)) for r in refused])

    # -- chunked import ---------------------------------------------------------------------

    def begin_import(self, name: str, *, source: str, profile: str,
                     max_attempts: int) -> ImportState:
        """A new batch in state ``importing``, or the unfinished import of that name."""
        with self._write() as db:
            row = db.execute(
                "SELECT b.source, b.profile, b.max_attempts, i.lines, i.bytes, i.digest, "
                "i.accepted, i.quarantined FROM batches b LEFT JOIN imports i "
                "ON i.batch = b.name WHERE b.name = ?", (name,)).fetchone()
            if row is None:
                db.execute("INSERT INTO batches (name, created_at, source, profile, "
                           "max_attempts, state) VALUES (?, ?, ?, ?, ?, 'open')",
                           (name, _now(), source, profile, max_attempts))
                db.execute("INSERT INTO imports (batch, started_at, digest) VALUES (?, ?, ?)",
                           (name, _now(), START.digest))
                self._append(db, name, None, "batch.importing",
                             {"source": source, "max_attempts": max_attempts})
                return ImportState(name, source, profile, max_attempts, START, 0, 0)
        if row["lines"] is None:
            raise BatchExistsError(name)
        return ImportState(name, row["source"], row["profile"], row["max_attempts"],
                           Mark(row["lines"], row["bytes"], row["digest"]), row["accepted"],
                           row["quarantined"])

    def import_seen(self, name: str, keys: Collection[bytes]) -> dict[bytes, int]:
        """Of these keys, those an earlier chunk of the import holds, with their line."""
        found: dict[bytes, int] = {}
        wanted = list(keys)
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            marks = ",".join("?" * len(part))
            for key, line in self._read(
                    f"SELECT key, line FROM import_keys WHERE batch = ? AND key IN ({marks})",  # noqa: S608 - placeholders only
                    (name, *part)):
                found[bytes(key)] = line
        return found

    def import_chunk(self, name: str, *, start: Mark, end: Mark,
                     valid: Sequence[tuple[int, Application, str]],
                     invalid: Sequence[InvalidRecord],
                     keys: Mapping[bytes, int]) -> list[InvalidRecord]:
        """One chunk of an import in one short transaction (see the port)."""
        texts = {line: dump_application(a) for line, a, _ in valid}  # before taking the lock
        with self._write() as db:
            row = db.execute("SELECT lines, bytes, next_seq FROM imports WHERE batch = ?",
                             (name,)).fetchone()
            if row is None or (row[0], row[1]) != (start.lines, start.offset):
                raise JournalError(f"batch {name!r} is no longer being imported from line "
                                   f"{start.lines}: another process imported, finished or "
                                   "discarded it meanwhile")
            held = self._holdings(db, [number for _, _, number in valid])
            queued, refused = hold_once(name, valid, invalid, held)
            self._enqueue(db, name, row[2], queued, texts)
            self._quarantine(db, name, refused)
            db.executemany("INSERT INTO import_keys (batch, key, line) VALUES (?, ?, ?)",
                           [(name, key, line) for key, line in keys.items()])
            db.execute("UPDATE imports SET lines = ?, bytes = ?, digest = ?, "
                       "next_seq = next_seq + ?, accepted = accepted + ?, "
                       "quarantined = quarantined + ? WHERE batch = ?",
                       (end.lines, end.offset, end.digest, len(queued), len(queued),
                        len(refused), name))
        return refused

    def finish_import(self, name: str, end: Mark) -> BatchInfo | None:
        """One short transaction: a bounded number of the import's keys removed (None: call
        again), or, once none is left, the batch made runnable (its info)."""
        if self._delete_some(name, "import_keys"):
            return None
        with self._write() as db:
            row = db.execute("SELECT i.accepted, i.quarantined, b.source, b.max_attempts "
                             "FROM imports i JOIN batches b ON b.name = i.batch "
                             "WHERE i.batch = ?", (name,)).fetchone()
            if row is None:
                raise JournalError(f"batch {name!r} is not being imported")
            db.execute("DELETE FROM import_keys WHERE batch = ?", (name,))  # a chunk's, meanwhile
            db.execute("DELETE FROM imports WHERE batch = ?", (name,))
            self._append(db, name, None, "batch.created",
                         {"source": row[2], "accepted": row[0], "quarantined": row[1],
                          "max_attempts": row[3], "lines": end.lines, "sha256": end.digest})
        return self.batch(name)

    def discard_import(self, name: str) -> int:
        """Remove an unfinished import and all it wrote, a bounded number of rows at a time."""
        removed = 0
        for table in ("import_keys", "quarantine", "application_records", "applications"):
            while True:
                gone = self._delete_some(name, table)
                removed += gone if table == "applications" else 0
                if gone < _DELETE_ROWS:
                    break
        with self._write() as db:
            self._importing(db, name)
            for table, sql in _DELETE_ALL.items():  # and what a chunk wrote meanwhile
                gone = db.execute(sql, (name,)).rowcount
                removed += gone if table == "applications" else 0
            db.execute("DELETE FROM batches WHERE name = ?", (name,))
            self._append(db, name, None, "batch.discarded", {"applications": removed})
        return removed

    def _importing(self, db: sqlite3.Connection, name: str) -> None:
        if db.execute("SELECT 1 FROM imports WHERE batch = ?", (name,)).fetchone() is None:
            raise JournalError(f"batch {name!r} is not an unfinished import"
                               if db.execute("SELECT 1 FROM batches WHERE name = ?",
                                             (name,)).fetchone()
                               else f"no batch named {name!r} (see `cardline batch status`)")

    def _delete_some(self, name: str, table: str) -> int:
        """Up to ``_DELETE_ROWS`` rows of an unfinished import's ``table``, one transaction."""
        with self._write() as db:
            self._importing(db, name)
            return int(db.execute(_DELETE_SOME[table], (name, _DELETE_ROWS)).rowcount)

    def batch(self, name: str) -> BatchInfo:
        """One batch by name (``importing`` while its file is still being read in)."""
        rows = self._read("SELECT b.*, i.batch IS NOT NULL AS importing FROM batches b "
                          "LEFT JOIN imports i ON i.batch = b.name WHERE b.name = ?", (name,))
        if not rows:
            raise JournalError(f"no batch named {name!r} (see `cardline batch status`)")
        row = rows[0]
        counts = {state: 0 for state in ("pending", "active", "handed_out", "failed")}
        counts.update({r[0]: r[1] for r in self._read(
            "SELECT state, count(*) FROM applications WHERE batch = ? GROUP BY state", (name,))})
        quarantined = self._read("SELECT count(*) FROM quarantine WHERE batch = ?", (name,))
        return BatchInfo(row["name"], row["created_at"], row["source"], row["profile"],
                         row["max_attempts"], "importing" if row["importing"] else row["state"],
                         row["closed_at"], row["purged_at"], counts, quarantined[0][0])

    def batches(self) -> list[BatchInfo]:
        """Every batch, oldest first."""
        return [self.batch(r[0]) for r in self._read(
            "SELECT name FROM batches ORDER BY created_at, name")]

    def quarantined(self, name: str) -> list[QuarantineRow]:
        """The invalid records of a batch with their reasons."""
        return [{"line": r["line"], "application_id": r["application_id"],
                 "errors": json.loads(r["errors"])}
                for r in self._read("SELECT * FROM quarantine WHERE batch = ? ORDER BY line",
                                    (name,))]

    # -- applications -----------------------------------------------------------------------

    def pending(self, name: str) -> list[str]:
        """Application ids waiting for a card, in queue order."""
        return [r[0] for r in self._read(
            "SELECT application_id FROM applications WHERE batch = ? AND state = 'pending' "
            "ORDER BY attempts, seq", (name,))]

    def application(self, name: str, application_id: str) -> Application:
        """The validated application (until its batch's personal data is purged)."""
        rows = self._read("SELECT r.record FROM applications a LEFT JOIN application_records r "
                          "USING (batch, application_id) WHERE a.batch = ? AND "
                          "a.application_id = ?", (name, application_id))
        if not rows:
            raise JournalError(f"batch {name!r} has no application {application_id!r}")
        if rows[0][0] is None:
            raise JournalError(f"application {application_id!r} of batch {name!r}: personal "
                               "data already purged")
        return load_application(rows[0][0])

    def applications(self, name: str) -> list[ApplicationRow]:
        """Every application's state, attempts and reasons (no personal data)."""
        return [{"application_id": r["application_id"], "line": r["line"],
                 "document_number": r["document_number"], "state": r["state"],
                 "attempts": r["attempts"], "reasons": json.loads(r["reasons"])}
                for r in self._read("SELECT * FROM applications WHERE batch = ? ORDER BY seq",
                                    (name,))]

    def issuance_results(self, name: str) -> list[dict[str, Any]]:
        """What became of each application, in queue order, then of each quarantined record
        (see the port)."""
        rows = self._read(f"SELECT {ISSUANCE_COLUMNS} FROM applications a {ISSUANCE_JOINS} "  # noqa: S608 - constants
                          "WHERE a.batch = ? ORDER BY a.seq", (name,))
        return [*(issuance_result(_mapping(r)) for r in rows),
                *(quarantine_result(q) for q in self.quarantined(name))]

    def fail_application(self, name: str, application_id: str, reason: Reason) -> None:
        """A pending application that cannot be made into a card at all: failed, with why."""
        with self._write() as db:
            row = db.execute("SELECT reasons FROM applications WHERE batch = ? AND "
                             "application_id = ? AND state = 'pending'",
                             (name, application_id)).fetchone()
            if row is not None:
                reasons = [*json.loads(row[0]), {"attempt": None, "card": None,
                                                 "reasons": [reason.as_dict()]}]
                db.execute("UPDATE applications SET state = 'failed', reasons = ? WHERE "
                           "batch = ? AND application_id = ?",
                           (json.dumps(reasons, ensure_ascii=False), name, application_id))
            else:
                raise JournalError(f"application {application_id!r} of batch {name!r} is not "
                                   "pending")
            self._append(db, name, None, "application.failed",
                         {"application": application_id, "reason": reason.as_dict()})

    # -- cards ------------------------------------------------------------------------------

    def begin_card(self, name: str, application_id: str, station: str,
                   line: str | None = None, *, can: str | None = None) -> CardRow:
        """A new card row in FEEDING for a pending application (journaled before the feed);
        with ``line``, refused when another line holds the application; with ``can``, the
        card's printed random CAN kept beside it (``card_cans``, purged with the records)."""
        now = time.time()
        with self._write() as db:
            if db.execute("SELECT 1 FROM imports WHERE batch = ?", (name,)).fetchone():
                raise JournalError(f"batch {name!r} is still being imported: it cannot run")
            row = db.execute("SELECT state, attempts, document_number, claimed_by, holder "
                             "FROM applications WHERE batch = ? AND application_id = ?",
                             (name, application_id)).fetchone()
            if row is None or row[0] != "pending":
                raise NotClaimable(f"application {application_id!r} of batch {name!r} is not "
                                   f"pending ({row[0] if row else 'unknown'})")
            if line is not None and row[3] is not None and row[3] != line:
                raise NotClaimable(f"application {application_id!r} of batch {name!r} is held "
                                   f"by line {row[3]!r}")
            attempt = row[1] + 1
            db.execute("UPDATE applications SET state = 'active', attempts = ? "
                       "WHERE batch = ? AND application_id = ?", (attempt, name, application_id))
            [inserted] = db.execute(
                "INSERT INTO cards (batch, application_id, attempt, station, document_number, "
                "state, started_at, updated_at, holder) VALUES (?, ?, ?, ?, ?, 'feeding', ?, ?, "
                "?) RETURNING *", (name, application_id, attempt, station, row[2], now, now,
                                   row[4])).fetchall()
            card = CardRow.from_mapping(_mapping(inserted))
            if can is not None:
                db.execute("INSERT INTO card_cans (card, batch, can) VALUES (?, ?, ?)",
                           (card.id, name, can))
            self._append(db, name, card.id, "card.feeding",
                         {"station": station, "attempt": attempt, "application": application_id})
        return card

    def card_access_number(self, name: str, card_id: int) -> str | None:
        """The printed random CAN kept with card ``card_id`` of batch ``name`` (see the port)."""
        rows = self._read("SELECT can FROM card_cans WHERE card = ? AND batch = ?",
                          (card_id, name))
        return str(rows[0][0]) if rows else None

    def move(self, card: CardRow, result: Step, *, chip_serial: str | None = None,
             qa: dict[str, Any] | None = None) -> CardRow:
        """Journal a state change of a card (and of its application when the card is done).

        The row must still be in the state ``card`` says: a card moved by someone else is an
        error, never overwritten.
        """
        serial = chip_serial or card.chip_serial
        try:
            with self._write() as db:
                return self._move(db, card, result, serial, qa)
        except ConflictError as exc:  # one chip per card, one handed-out card per document
            raise ConflictError(f"card {card.id} ({card.application_id}): {exc}") from exc

    def _move(self, db: sqlite3.Connection, card: CardRow, result: Step, serial: str | None,
              qa: dict[str, Any] | None) -> CardRow:
        new = result.card
        now = time.time()
        if new.state is State.HANDED_OUT:  # before the card's own row: the unique indexes
            self._supersede(db, card)
        changed = db.execute(
            "UPDATE cards SET state = ?, reasons = ?, chip_serial = ?, qa = ?, "
            "updated_at = ? WHERE id = ? AND state = ? RETURNING *",
            (new.state.value, _reasons_json(new.reasons), serial,
             json.dumps(qa if qa is not None else card.qa, ensure_ascii=False),
             now, card.id, card.state.value)).fetchall()
        if len(changed) != 1:
            raise JournalError(f"card {card.id} is no longer {card.state.value}")
        moved = CardRow.from_mapping(_mapping(changed[0]))
        if result.outcome is not None:
            self._settle_application(db, card, result)
        data: dict[str, Any] = {"station": card.station, "from": card.state.value,
                                "chip": serial}
        if new.reasons != card.reasons:
            data["reason"] = new.reasons[-1].as_dict()
        if qa is not None:
            data["qa"] = qa.get("verdict")
        if result.outcome is not None:
            data["outcome"] = result.outcome.value
        self._append(db, card.batch, card.id, f"card.{new.state.value}", data)
        return moved

    def _supersede(self, db: sqlite3.Connection, card: CardRow) -> None:
        """Every other current card of ``card``'s holder becomes superseded, each with its
        ``card.superseded`` event, in the transaction that hands ``card`` out: no moment
        (nor crash) shows a person with two current cards, or none. A card whose holder was
        never recorded is matched by its document number. ``updated_at`` stays when the
        card left the line (its batch's figures); the event says when it was superseded."""
        [holder] = db.execute("SELECT holder FROM cards WHERE id = ?", (card.id,)).fetchone()
        for old, batch in db.execute(  # two lookups, one on each partial unique index
                "UPDATE cards SET state = 'superseded' WHERE id IN (SELECT id FROM cards WHERE "
                "state = 'handed_out' AND holder = ?3 UNION ALL SELECT id FROM cards WHERE "
                "state = 'handed_out' AND document_number = ?2 AND (holder IS NULL OR ?3 IS "
                "NULL)) AND id != ?1 RETURNING id, batch",
                (card.id, card.document_number, holder)).fetchall():
            self._append(db, batch, old, "card.superseded", {"by": card.id, "batch": card.batch})

    def _settle_application(self, db: sqlite3.Connection, card: CardRow, result: Step) -> None:
        key = (card.batch, card.application_id)
        outcome = result.outcome
        if outcome is Outcome.HANDED_OUT:
            db.execute("UPDATE applications SET state = 'handed_out' WHERE batch = ? AND "
                       "application_id = ?", key)
        elif outcome is Outcome.REQUEUE:
            db.execute("UPDATE applications SET state = 'pending', attempts = attempts - 1 "
                       "WHERE batch = ? AND application_id = ?", key)
        else:
            old = db.execute("SELECT reasons FROM applications WHERE batch = ? AND "
                             "application_id = ?", key).fetchone()[0]
            reasons = [*json.loads(old), {"attempt": card.attempt, "card": card.id,
                                          "reasons": [r.as_dict() for r in result.reasons]}]
            state = "pending" if outcome is Outcome.RETRY else "failed"
            db.execute("UPDATE applications SET state = ?, reasons = ? WHERE batch = ? AND "
                       "application_id = ?", (state, json.dumps(reasons, ensure_ascii=False),
                                              *key))

    def _cards(self, which: str, params: Sequence[Any]) -> list[CardRow]:
        return [CardRow.from_mapping(_mapping(r)) for r in self._read(_CARD_QUERIES[which], params)]



    def cards(self, name: str) -> list[CardRow]:
        """Every card fed (or being fed) for a batch, in order."""
        return self._cards("batch", (name,))

    def open_cards(self, name: str) -> list[CardRow]:
        """Cards not yet in a terminal state: after a crash, the ones in doubt."""
        return self._cards("open", (name,))

    def card_by_chip(self, chip_serial: str) -> CardRow | None:
        """The card that holds this chip, in any batch."""
        found = self._cards("chip", (chip_serial,))
        return found[0] if found else None

    def stock(self, name: str) -> dict[str, int]:
        """Blank stock of a batch by what became of each chip serial fed."""
        counts = dict.fromkeys(("fed", "handed_out", "rejected", "in_machine"), 0)
        for state, count in self._read(
                "SELECT state, count(*) FROM cards WHERE batch = ? AND chip_serial IS NOT NULL "
                "GROUP BY state", (name,)):
            counts["fed"] += count
            key = "handed_out" if State(state).issued else \
                state if state == "rejected" else "in_machine"
            counts[key] += count
        return counts

    # -- stations ---------------------------------------------------------------------------

    def station_counter(self, name: str, station: str, *, before_feed: int | None = None,
                        now: int | None = None) -> None:
        """Record a printer's inserted-cards counter: before its first feed of the batch, and
        the latest reading (both feed the end-of-shift reconciliation)."""
        with self._write() as db:
            db.execute("INSERT INTO stations (batch, station) VALUES (?, ?) "
                       "ON CONFLICT DO NOTHING", (name, station))
            if before_feed is not None:
                db.execute("UPDATE stations SET counter_start = ? WHERE batch = ? AND "
                           "station = ? AND counter_start IS NULL", (before_feed, name, station))
            if now is not None:
                db.execute("UPDATE stations SET counter_last = ? WHERE batch = ? AND "
                           "station = ?", (now, name, station))

    def set_alarm(self, name: str, station: str, alarm: str | None) -> None:
        """Raise (text) or clear (None) a station's alarm."""
        with self._write() as db:
            db.execute("INSERT INTO stations (batch, station) VALUES (?, ?) "
                       "ON CONFLICT DO NOTHING", (name, station))
            db.execute("UPDATE stations SET alarm = ? WHERE batch = ? AND station = ?",
                       (alarm, name, station))
            self._append(db, name, None, "station.alarm" if alarm else "station.cleared",
                         {"station": station, "alarm": alarm})

    def stations(self, name: str) -> list[StationRow]:
        """Each station of a batch: printer counters, alarm and live state."""
        return [{"station": r["station"], "counter_start": r["counter_start"],
                 "counter_last": r["counter_last"], "alarm": r["alarm"],
                 "live": json.loads(r["live"]) if r["live"] else None, "live_at": r["live_at"]}
                for r in self._read("SELECT station, counter_start, counter_last, alarm, live, "
                                    "live_at FROM stations WHERE batch = ? ORDER BY station",
                                    (name,))]

    def set_station_live(self, name: str, station: str, live: dict[str, Any]) -> None:
        """Publish what a station is doing now (no event; one short write)."""
        with self._write() as db:
            db.execute("INSERT INTO stations (batch, station, live, live_at) VALUES "
                       "(?, ?, ?, ?) ON CONFLICT (batch, station) DO UPDATE SET "
                       "live = excluded.live, live_at = excluded.live_at",
                       (name, station, json.dumps(live, sort_keys=True), _now()))

    # -- lines sharing a batch ----------------------------------------------------------------

    def join_line(self, name: str, line: str, *, stations: Sequence[str], holder: str) -> None:
        """The line runs the batch from now on (see the port)."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM batches WHERE name = ?", (name,)).fetchone() is None:
                raise JournalError(f"no batch named {name!r} (see `cardline batch status`)")
            no_station_clash(name, [(other, json.loads(names)) for other, names in db.execute(
                "SELECT line, stations FROM lines WHERE batch = ? AND line != ?",
                (name, line)).fetchall()], stations)
            db.execute("INSERT INTO lines (batch, line, holder, stations, started_at, "
                       "heartbeat) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (batch, line) DO "
                       "UPDATE SET holder = excluded.holder, stations = excluded.stations, "
                       "started_at = excluded.started_at, heartbeat = excluded.heartbeat, "
                       "left_at = NULL",
                       (name, line, holder, json.dumps(sorted(stations)), _now(), time.time()))

    def heartbeat(self, name: str, line: str) -> None:
        """The line's lease runs on from now."""
        with self._write() as db:
            db.execute("UPDATE lines SET heartbeat = ? WHERE batch = ? AND line = ?",
                       (time.time(), name, line))

    def leave_line(self, name: str, line: str, run: str) -> None:
        """The run ended: its unstarted claims go back to the pool, its lease ends."""
        with self._write() as db:
            db.execute("UPDATE applications SET claimed_by = NULL, claim_run = NULL WHERE "
                       "batch = ? AND claimed_by = ? AND state = 'pending'", (name, line))
            db.execute("UPDATE lines SET left_at = ? WHERE batch = ? AND line = ?",
                       (_now(), name, line))

    def claim(self, name: str, line: str, run: str, count: int, lease_s: float) -> list[str]:
        """Pending applications for this run, in queue order (see the port)."""
        if count <= 0:
            return []
        with self._write() as db:
            rows = db.execute(
                "UPDATE applications SET claimed_by = ?1, claim_run = ?2 WHERE rowid IN ("
                " SELECT a.rowid FROM applications a LEFT JOIN lines l"
                "  ON l.batch = a.batch AND l.line = a.claimed_by"
                " WHERE a.batch = ?3 AND a.state = 'pending' AND a.claim_run IS NOT ?2"
                "  AND (a.claimed_by IS NULL OR a.claimed_by = ?1 OR l.line IS NULL"
                "       OR l.left_at IS NOT NULL OR l.heartbeat < ?4)"
                " ORDER BY a.attempts, a.seq LIMIT ?5)"
                " RETURNING application_id, attempts, seq",
                (line, run, name, time.time() - lease_s, count)).fetchall()
        return [r[0] for r in sorted(rows, key=lambda r: (r[1], r[2]))]

    def lines(self, name: str, lease_s: float) -> list[LineRow]:
        """Every line that has run the batch, with its lease and holdings."""
        now = time.time()
        claimed: dict[str, int] = {r[0]: int(r[1]) for r in self._read(
            "SELECT claimed_by, count(*) FROM applications WHERE batch = ? AND "
            "state = 'pending' AND claimed_by IS NOT NULL GROUP BY claimed_by", (name,))}
        open_by_station: dict[str, int] = {r[0]: int(r[1]) for r in self._read(
            "SELECT station, count(*) FROM cards WHERE batch = ? AND state NOT IN "
            "('handed_out', 'rejected', 'void', 'superseded') GROUP BY station", (name,))}
        return [line_row(_mapping(r), json.loads(r["stations"]), now - r["heartbeat"], lease_s,
                         claimed, open_by_station)
                for r in self._read("SELECT * FROM lines WHERE batch = ? ORDER BY line",
                                    (name,))]

    def abandon_line(self, name: str, line: str, by: str, lease_s: float) -> list[int]:
        """Spoil a dead line's cards in doubt and requeue them (see the port)."""
        with self._write() as db:
            row = db.execute("SELECT stations, heartbeat, left_at FROM lines WHERE batch = ? "
                             "AND line = ?", (name, line)).fetchone()
            if row is None:
                raise JournalError(f"line {line!r} has never run batch {name!r}")
            if row["left_at"] is None and row["heartbeat"] >= time.time() - lease_s:
                raise JournalError(f"line {line!r} is alive (it heartbeat within {lease_s:g} s):"
                                   " stop it before declaring its machines emptied")
            stations = json.loads(row["stations"])
            marks = ",".join("?" * len(stations))
            cards = [CardRow.from_mapping(_mapping(r)) for r in db.execute(
                f"SELECT * FROM cards WHERE batch = ? AND station IN ({marks}) AND "  # noqa: S608 - placeholders
                "state NOT IN ('handed_out', 'rejected', 'void', 'superseded') ORDER BY id",
                (name, *stations)).fetchall()]
            max_attempts = db.execute("SELECT max_attempts FROM batches WHERE name = ?",
                                      (name,)).fetchone()[0]
            reason = Reason(Code.LINE_ABANDONED, {"line": line, "by": by})
            for card in cards:
                self._move(db, card, spoiled(card.machine(max_attempts), reason),
                           card.chip_serial, None)
            db.execute("UPDATE applications SET claimed_by = NULL, claim_run = NULL WHERE "
                       "batch = ? AND claimed_by = ? AND state = 'pending'", (name, line))
            self._append(db, name, None, "line.abandoned",
                         {"line": line, "by": by, "cards": [c.id for c in cards]})
        return [c.id for c in cards]

    # -- run control ------------------------------------------------------------------------

    def request_control(self, name: str, action: str, by: str) -> None:
        """Ask the running controller of ``name`` to pause, resume or stop (see the port)."""
        control_action(action)
        with self._write() as db:
            if db.execute("SELECT 1 FROM batches WHERE name = ?", (name,)).fetchone() is None:
                raise JournalError(f"no batch named {name!r} (see `cardline batch status`)")
            db.execute("INSERT INTO run_control (batch, requested, requested_by, requested_at, "
                       "obeyed) VALUES (?, ?, ?, ?, 0) ON CONFLICT (batch) DO UPDATE SET "
                       "requested = excluded.requested, requested_by = excluded.requested_by, "
                       "requested_at = excluded.requested_at, obeyed = 0",
                       (name, action, by, _now()))
            self._append(db, name, None, "run.control", {"action": action, "by": by})

    def control(self, name: str, line: str | None = None) -> str | None:
        """The latest requested action not yet acknowledged (by ``line``; see the port)."""
        if line is None:
            rows = self._read("SELECT requested FROM run_control WHERE batch = ? AND "
                              "obeyed = 0", (name,))
        else:
            rows = self._read("SELECT r.requested FROM run_control r LEFT JOIN "
                              "run_control_seen s ON s.batch = r.batch AND s.line = ? "
                              "WHERE r.batch = ? AND s.requested_at IS NOT r.requested_at",
                              (line, name))
        return str(rows[0][0]) if rows else None

    def ack_control(self, name: str, action: str, line: str | None = None) -> None:
        """The controller carried out ``action`` (for ``line``; see the port)."""
        control_action(action)
        with self._write() as db:
            if line is None:
                if db.execute("UPDATE run_control SET obeyed = 1 WHERE batch = ? AND "
                              "requested = ? AND obeyed = 0", (name, action)).rowcount:
                    self._append(db, name, None, "run.obeyed", {"action": action})
                return
            row = db.execute("SELECT requested_at FROM run_control WHERE batch = ? AND "
                             "requested = ?", (name, action)).fetchone()
            if row is None or db.execute(
                    "SELECT 1 FROM run_control_seen WHERE batch = ? AND line = ? AND "
                    "requested_at = ?", (name, line, row[0])).fetchone():
                return
            db.execute("INSERT INTO run_control_seen (batch, line, requested_at) VALUES "
                       "(?, ?, ?) ON CONFLICT (batch, line) DO UPDATE SET "
                       "requested_at = excluded.requested_at", (name, line, row[0]))
            db.execute("UPDATE run_control SET obeyed = 1 WHERE batch = ?", (name,))
            self._append(db, name, None, "run.obeyed", {"action": action, "line": line})

    # -- closing and purging ----------------------------------------------------------------

    def close_batch(self, name: str, retention_days: int) -> bool:
        """Close a finished batch (no card open, no application pending); purge its personal
        data now (retention 0) or mark when it is due. Returns False when not finished."""
        info = self.batch(name)
        if info.state == "closed":
            return True
        if not info.finished or self.open_cards(name):
            return False
        closed = datetime.now(UTC)
        with self._write() as db:
            # lines finishing together close it once: only the one that flips the state
            if db.execute("UPDATE batches SET state = 'closed', closed_at = ?, purge_after = ? "
                          "WHERE name = ? AND state = 'open'", (closed.isoformat(), (
                              closed + timedelta(days=retention_days)).isoformat(),
                              name)).rowcount:
                self._append(db, name, None, "batch.closed",
                             {"applications": info.applications, "stock": self.stock(name)})
        if retention_days == 0:
            self.purge(name)
        return True

    def purge_due(self, at: datetime | None = None, *,
                  wait_s: float | None = None) -> list[str]:
        """Purge every closed batch whose retention has run out (an incomplete purge is still
        due); returns their names, or :class:`PurgeIncompleteError` naming those pending."""
        moment = (at or datetime.now(UTC)).isoformat()
        due = [r[0] for r in self._read(
            "SELECT name FROM batches WHERE state = 'closed' AND purged_at IS NULL AND "
            "purge_after <= ?", (moment,))]
        self._purge(due, wait_s)
        return due

    def purge(self, name: str, *, wait_s: float | None = None) -> None:
        """Drop a closed batch's personal data: application records, the cards' printed
        random CANs and the quarantined reasons (which may quote input); ids, states, reason
        codes and the audit stay. The batch is marked purged only once the log holds none of
        it either."""
        if self.batch(name).state != "closed":
            raise JournalError(f"batch {name!r} is not closed: personal data is still needed")
        self._purge([name], wait_s)

    def _purge(self, names: Sequence[str], wait_s: float | None) -> None:
        if not names:
            return
        for name in names:  # idempotent: a purge left incomplete runs again in full
            self._drop_personal_data(name)
        if not self._checkpoint(self.purge_wait_s if wait_s is None else wait_s):
            self.note(None, "journal.purge_incomplete", batches=list(names))
            raise PurgeIncompleteError([], names)
        with self._write() as db:
            for name in names:
                count = db.execute("SELECT count(*) FROM applications WHERE batch = ?",
                                   (name,)).fetchone()[0]
                if db.execute("UPDATE batches SET purged_at = ? WHERE name = ? AND purged_at "
                              "IS NULL", (_now(), name)).rowcount:  # purged once, said once
                    self._append(db, name, None, "batch.purged", {"applications": count})

    def _drop_personal_data(self, name: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM application_records WHERE batch = ?", (name,))
            db.execute("DELETE FROM card_cans WHERE batch = ?", (name,))
            for line, errors in db.execute("SELECT line, errors FROM quarantine WHERE "
                                           "batch = ?", (name,)).fetchall():
                fields = [{"field": e["field"], "reason": "(purged)"} for e in json.loads(errors)]
                db.execute("UPDATE quarantine SET errors = ? WHERE batch = ? AND line = ?",
                           (json.dumps(fields), name, line))

    def _checkpoint(self, wait_s: float) -> bool:
        """Copy the log into the file and empty it (the old pages must not linger there),
        retrying while another connection's read holds it, for at most ``wait_s``."""
        deadline = time.monotonic() + wait_s
        with self._lock:
            try:
                while True:
                    left = deadline - time.monotonic()
                    wait_ms = max(int(min(left, 0.25) * 1000), 0)
                    self._db.execute(f"PRAGMA busy_timeout = {wait_ms}")
                    # sqlite.org/pragma.html#pragma_wal_checkpoint: (busy, log frames, frames
                    # checkpointed); TRUNCATE succeeded only when busy is 0 and all were copied.
                    busy, log, done = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    if busy == 0 and log == done:
                        return True
                    if left <= 0:
                        return False
                    time.sleep(0.05)
            finally:
                self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
