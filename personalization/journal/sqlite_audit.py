"""The journal's signed checkpoints of the event chain (a mixin of the adapter; issue #15).

SQLite keeps one chain, ``journal``, whose head is the one-row ``chain_head``. The audit
snapshot reads through a connection of its own inside one read transaction: in WAL mode every
statement of that transaction sees the database as of its first read (sqlite.org/wal.html,
"Concurrency"), however much the line writes meanwhile, and the line's own connection is not
held while the verifier streams millions of events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from common.sqlite import connect
from personalization.journal.audit_port import (
    JOURNAL_CHAIN,
    ApplicationState,
    AuditEvent,
    AuditKey,
    AuditSnapshot,
    CardState,
    Checkpoint,
)
from personalization.journal.port import JournalError
from personalization.journal.sqlite_schema import MIGRATIONS

# A connection and its rows are the sqlite3 module's Connection and Row; that module is
# imported by the adapter module alone (the one-adapter rule), so they are Any here.
Connection = Any
Row = Any

# The triggers that keep the log, its head and the checkpoints append-only, as the schema
# created them: a trigger dropped or rewritten by hand no longer matches its text.
_GUARDS = ("events_append_only_update", "events_append_only_delete", "chain_head_forward",
           "chain_head_kept", "events_follow_the_head", "audit_checkpoints_no_update",
           "audit_checkpoints_no_delete")
_GUARD_TEXT = {statement.split()[2]: statement for _, _, statements in MIGRATIONS
               for statement in statements if statement.startswith("CREATE TRIGGER")}
_EVENT_COLUMNS = "seq, at, batch, card, kind, data, prev, hash"


class _Host(Protocol):
    """What the mixin uses of :class:`~.sqlite.SQLiteJournal`."""

    path: Path

    def _write(self) -> AbstractContextManager[Connection]: ...

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _event(row: Row) -> AuditEvent:
    seq, at, batch, card, kind, data, prev, digest = tuple(row)
    return AuditEvent(JOURNAL_CHAIN, int(seq), at, batch, None if card is None else int(card),
                      kind, data, prev, digest)


def _checkpoint(row: Row) -> Checkpoint:
    return Checkpoint(row["chain"], int(row["seq"]), row["head"], row["at"], row["key_label"],
                      bytes(row["signature"]))


class _Snapshot:
    """:class:`~.audit_port.AuditSnapshot` over one read transaction of its own connection."""

    def __init__(self, db: Connection) -> None:
        self._db = db

    def heads(self) -> dict[str, tuple[int, str]]:
        row = self._db.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
        return {JOURNAL_CHAIN: (int(row[0]), str(row[1]))} if row else {}

    def checkpoints(self) -> list[Checkpoint]:
        return [_checkpoint(r) for r in self._db.execute(
            "SELECT * FROM audit_checkpoints ORDER BY chain, seq")]

    def audit_keys(self) -> list[AuditKey]:
        return [AuditKey(r[0], bytes(r[1]), r[2]) for r in self._db.execute(
            "SELECT label, certificate, created_at FROM audit_keys ORDER BY label")]

    def missing_guards(self) -> list[str]:
        found = dict(self._db.execute("SELECT name, sql FROM sqlite_master WHERE type = "
                                      "'trigger'").fetchall())
        return [name for name in _GUARDS if found.get(name) != _GUARD_TEXT[name]]

    def events(self, chain: str | None = None, after: int = 0) -> Iterator[AuditEvent]:
        if chain not in (None, JOURNAL_CHAIN):
            return
        for row in self._db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE seq > ? "  # noqa: S608 - constant columns
                                    "ORDER BY seq", (after,)):
            yield _event(row)

    def batches(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT name FROM batches ORDER BY name")]

    def batch_events(self, batch: str) -> Iterator[AuditEvent]:
        for row in self._db.execute(f"SELECT {_EVENT_COLUMNS} FROM events WHERE batch = ? "  # noqa: S608 - constant columns
                                    "ORDER BY seq", (batch,)):
            yield _event(row)

    def cards(self, batch: str) -> list[CardState]:
        return [CardState(int(r[0]), r[1], r[2]) for r in self._db.execute(
            "SELECT id, application_id, state FROM cards WHERE batch = ? ORDER BY id", (batch,))]

    def applications(self, batch: str) -> list[ApplicationState]:
        return [ApplicationState(r[0], r[1]) for r in self._db.execute(
            "SELECT application_id, state FROM applications WHERE batch = ? ORDER BY seq",
            (batch,))]


class SQLiteAudit:
    """What the adapter keeps of signed checkpoints of the event chain."""

    def chain_heads(self: _Host) -> dict[str, tuple[int, str]]:
        """The one chain's head: {"journal": (seq, hash)}."""
        rows = self._read("SELECT seq, hash FROM chain_head WHERE id = 1")
        return {JOURNAL_CHAIN: (int(rows[0][0]), str(rows[0][1]))} if rows else {}

    def add_checkpoint(self: _Host, checkpoint: Checkpoint) -> None:
        """Keep a signed checkpoint (ConflictError when its chain has one at that seq)."""
        with self._write() as db:
            db.execute("INSERT INTO audit_checkpoints (chain, seq, head, at, key_label, "
                       "signature) VALUES (?, ?, ?, ?, ?, ?)",
                       (checkpoint.chain, checkpoint.seq, checkpoint.head, checkpoint.at,
                        checkpoint.key_label, checkpoint.signature))

    def checkpoints(self: _Host) -> list[Checkpoint]:
        """Every checkpoint, by chain and seq."""
        return [_checkpoint(r) for r in self._read(
            "SELECT * FROM audit_checkpoints ORDER BY chain, seq")]

    def add_audit_key(self: _Host, label: str, certificate: bytes) -> None:
        """Keep an audit key's certificate (ConflictError when the label has one)."""
        with self._write() as db:
            db.execute("INSERT INTO audit_keys (label, certificate, created_at) VALUES "
                       "(?, ?, ?)", (label, certificate, _now()))

    def audit_key(self: _Host, label: str) -> AuditKey | None:
        """The certificate of audit key ``label``, or None."""
        rows = self._read("SELECT label, certificate, created_at FROM audit_keys WHERE "
                          "label = ?", (label,))
        return AuditKey(rows[0][0], bytes(rows[0][1]), rows[0][2]) if rows else None

    @contextmanager
    def audit_snapshot(self: _Host) -> Iterator[AuditSnapshot]:
        """Everything the verifier reads, from one read transaction of a connection of its
        own (closed at the end of the ``with``)."""
        db = connect(self.path, lambda message: JournalError(f"journal {message}"))
        try:
            db.execute("BEGIN")
            db.execute("SELECT 1 FROM chain_head").fetchall()  # the snapshot starts here
            yield _Snapshot(db)
        except db.Error as exc:  # PEP 249's optional extension: the module's Error class
            raise JournalError(f"journal {self.path}: cannot read for the audit: {exc}") from exc
        finally:
            if db.in_transaction:
                db.execute("ROLLBACK")
            db.close()
