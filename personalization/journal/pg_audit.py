"""The journal's signed checkpoints of the event chains (a mixin of the adapter; issue #15).

PostgreSQL keeps the journal's own chain and one per line. The audit snapshot is one
REPEATABLE READ, READ ONLY transaction (every statement in it sees the same snapshot,
PostgreSQL docs §13.2.2), whose events are streamed through server-side cursors, a chain at a
time along the primary key (chain, seq), so neither side holds the whole log in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, LiteralString, Protocol

from personalization.journal.audit_port import (
    JOURNAL_CHAIN,
    ApplicationState,
    AuditEvent,
    AuditKey,
    AuditSnapshot,
    CardState,
    Checkpoint,
)
from personalization.journal.postgres_schema import (
    _FOLLOW_THEIR_HEAD,
    _HEAD_STARTS,
    _HEADS_FORWARD,
    _REFUSE,
)

# psycopg's connections, cursors, pool and rows: psycopg is imported by the adapter module
# alone (the one-adapter rule), so they are Any here. The pool's connections give tuples.
Connection = Any
Row = Any
_FETCH_ROWS = 5000  # rows per round trip of a server-side cursor
# The triggers that keep the log, its heads and the checkpoints append-only: (table, function)
_GUARDS = {
    "events_append_only": ("events", "journal_refuse"),
    "events_never_truncated": ("events", "journal_refuse"),
    "events_follow_their_head": ("events", "events_follow_their_head"),
    "chain_heads_forward": ("chain_heads", "chain_heads_forward"),
    "chain_heads_start": ("chain_heads", "chain_heads_start"),
    "chain_heads_kept": ("chain_heads", "journal_refuse"),
    "chain_heads_never_truncated": ("chain_heads", "journal_refuse"),
    "audit_checkpoints_append_only": ("audit_checkpoints", "journal_refuse"),
}
# ... and the bodies of their functions, as the schema wrote them (between the $$)
_BODIES = {name: text.split("$$")[1] for name, text in (
    ("journal_refuse", _REFUSE), ("events_follow_their_head", _FOLLOW_THEIR_HEAD),
    ("chain_heads_forward", _HEADS_FORWARD), ("chain_heads_start", _HEAD_STARTS))}
_CHAIN_EVENTS: LiteralString = ("SELECT chain, seq, at, batch, card, kind, data, prev, hash "
                                "FROM events WHERE chain = %s AND seq > %s ORDER BY seq")
# within a chain ``at`` is read under its head's lock, so this is the order of a batch's events
_BATCH_EVENTS: LiteralString = ("SELECT chain, seq, at, batch, card, kind, data, prev, hash "
                                "FROM events WHERE batch = %s ORDER BY at, chain, seq")
# the chains the log holds, found along the primary key without reading every event
_CHAINS: LiteralString = (
    "WITH RECURSIVE c AS (SELECT min(chain) AS chain FROM events UNION ALL "
    "SELECT (SELECT min(chain) FROM events WHERE chain > c.chain) FROM c "
    "WHERE c.chain IS NOT NULL) SELECT chain FROM c WHERE chain IS NOT NULL")
_CHECKPOINTS: LiteralString = ("SELECT chain, seq, head, at, key_label, signature FROM "
                               "audit_checkpoints ORDER BY chain, seq")
_GUARDS_IN_FORCE: LiteralString = (
    "SELECT t.tgname, c.relname, p.proname FROM pg_trigger t JOIN pg_class c ON "
    "c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid WHERE NOT t.tgisinternal "
    "AND t.tgenabled IN ('O', 'A')")


class _Host(Protocol):
    """What the mixin uses of :class:`~.postgres.PostgresJournal`."""

    _pool: Any

    def _errors(self) -> AbstractContextManager[None]: ...

    def _write(self) -> AbstractContextManager[Any]: ...

    def _read(self, query: LiteralString, params: Sequence[Any] = ()) -> list[Row]: ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _event(row: Row) -> AuditEvent:
    chain, seq, at, batch, card, kind, data, prev, digest = row
    return AuditEvent(chain, int(seq), at, batch, None if card is None else int(card), kind,
                      data, prev, digest)


def _checkpoint(row: Row) -> Checkpoint:
    chain, seq, head, at, label, signature = row
    return Checkpoint(chain, int(seq), head, at, label, bytes(signature))


class _Snapshot:
    """:class:`~.audit_port.AuditSnapshot` over one REPEATABLE READ transaction."""

    def __init__(self, db: Connection) -> None:
        self._db = db
        self._cursors = itertools.count(1)

    def _all(self, query: LiteralString, params: Sequence[Any] = ()) -> list[Row]:
        with self._db.cursor() as cur:
            return list(cur.execute(query, params).fetchall())

    def _stream(self, query: LiteralString, params: Sequence[Any]) -> Iterator[Row]:
        with self._db.cursor(f"cardline_audit_{next(self._cursors)}") as cur:
            cur.itersize = _FETCH_ROWS
            cur.execute(query, params)
            yield from cur

    def heads(self) -> dict[str, tuple[int, str]]:
        return {chain: (int(seq), str(digest)) for chain, seq, digest in self._all(
            "SELECT chain, seq, hash FROM chain_heads")}

    def checkpoints(self) -> list[Checkpoint]:
        return [_checkpoint(r) for r in self._all(_CHECKPOINTS)]

    def audit_keys(self) -> list[AuditKey]:
        return [AuditKey(label, bytes(cert), at) for label, cert, at in self._all(
            "SELECT label, certificate, created_at FROM audit_keys ORDER BY label")]

    def missing_guards(self) -> list[str]:
        found = {name: (table, function) for name, table, function in self._all(
            _GUARDS_IN_FORCE)}
        bodies = dict(self._all("SELECT proname, prosrc FROM pg_proc WHERE proname = ANY(%s)",
                                (list(_BODIES),)))
        return [name for name, where in _GUARDS.items() if found.get(name) != where] + \
            [f"{name}()" for name, body in _BODIES.items() if bodies.get(name) != body]

    def _chains(self) -> list[str]:
        named = {r[0] for r in self._all(_CHAINS)} | set(self.heads())
        return sorted(named, key=lambda c: (c != JOURNAL_CHAIN, c))

    def events(self, chain: str | None = None, after: int = 0) -> Iterator[AuditEvent]:
        for name in [chain] if chain is not None else self._chains():
            for row in self._stream(_CHAIN_EVENTS, (name, after)):
                yield _event(row)

    def batches(self) -> list[str]:
        return [r[0] for r in self._all("SELECT name FROM batches ORDER BY name")]

    def batch_events(self, batch: str) -> Iterator[AuditEvent]:
        for row in self._stream(_BATCH_EVENTS, (batch,)):
            yield _event(row)

    def cards(self, batch: str) -> list[CardState]:
        return [CardState(int(card), application, state) for card, application, state in
                self._all("SELECT id, application_id, state FROM cards WHERE batch = %s "
                          "ORDER BY id", (batch,))]

    def applications(self, batch: str) -> list[ApplicationState]:
        return [ApplicationState(application, state) for application, state in self._all(
            "SELECT application_id, state FROM applications WHERE batch = %s ORDER BY seq",
            (batch,))]


class PostgresAudit:
    """What the adapter keeps of signed checkpoints of the event chains."""

    def chain_heads(self: _Host) -> dict[str, tuple[int, str]]:
        """Each chain's head: chain → (seq, hash)."""
        return {r["chain"]: (int(r["seq"]), str(r["hash"]))
                for r in self._read("SELECT chain, seq, hash FROM chain_heads")}

    def add_checkpoint(self: _Host, checkpoint: Checkpoint) -> None:
        """Keep a signed checkpoint (ConflictError when its chain has one at that seq)."""
        with self._write() as cur:
            cur.execute("INSERT INTO audit_checkpoints (chain, seq, head, at, key_label, "
                        "signature) VALUES (%s, %s, %s, %s, %s, %s)",
                        (checkpoint.chain, checkpoint.seq, checkpoint.head, checkpoint.at,
                         checkpoint.key_label, checkpoint.signature))

    def checkpoints(self: _Host) -> list[Checkpoint]:
        """Every checkpoint, by chain and seq."""
        return [_checkpoint((r["chain"], r["seq"], r["head"], r["at"], r["key_label"],
                             r["signature"])) for r in self._read(_CHECKPOINTS)]

    def add_audit_key(self: _Host, label: str, certificate: bytes) -> None:
        """Keep an audit key's certificate (ConflictError when the label has one)."""
        with self._write() as cur:
            cur.execute("INSERT INTO audit_keys (label, certificate, created_at) VALUES "
                        "(%s, %s, %s)", (label, certificate, _now()))

    def audit_key(self: _Host, label: str) -> AuditKey | None:
        """The certificate of audit key ``label``, or None."""
        rows = self._read("SELECT label, certificate, created_at FROM audit_keys WHERE "
                          "label = %s", (label,))
        return AuditKey(rows[0]["label"], bytes(rows[0]["certificate"]),
                        rows[0]["created_at"]) if rows else None

    @contextmanager
    def audit_snapshot(self: _Host) -> Iterator[AuditSnapshot]:
        """Everything the verifier reads, from one REPEATABLE READ, READ ONLY transaction
        on a pooled connection (given back at the end of the ``with``)."""
        with self._errors(), self._pool.connection() as db, db.transaction():
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield _Snapshot(db)
