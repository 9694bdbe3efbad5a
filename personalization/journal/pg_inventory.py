"""The key inventory of lines sharing a PostgreSQL journal, in the journal's own database: the
same :class:`~hsm.inventory.InventoryPort` as the per-line SQLite file, so that a DS key's
``max_documents`` holds across every line and a rotation made at one line is seen by all.

Tables (journal migration 5): ``hsm_keys``, ``hsm_reservations`` (one row per key: the next
free signature count, and the key's maximum, which a CHECK keeps it within) and ``hsm_audit``
(append-only for the lines' role by grants and triggers). A block of counts is handed out by
one ``UPDATE … RETURNING`` under that row's lock, so two lines never get overlapping counts;
the line that finds the key used up retires it in the same transaction, so it is retired (and
audited) once. How soon other lines see a retirement is the signer's business: it reads the
key's status at most every ``status_every_s`` (1 s), as it does on SQLite.

The schema comes from the journal's migrations: opening runs them (as
:class:`~personalization.journal.postgres.PostgresJournal` does) when the database is behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, LiteralString, Self

import psycopg
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from hsm.errors import InventoryError, KeyNotFound, KeyRetired
from hsm.inventory import AuditEntry, KeyRecord
from personalization.journal.port import JournalError
from personalization.journal.postgres import PostgresJournal, redact
from personalization.journal.postgres_schema import LATEST

Cursor = psycopg.Cursor[DictRow]
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_S = 10  # also bounds a wait for another line's reservation lock
_KEY: LiteralString = (
    "SELECT k.label, k.key_id, k.role, k.algorithm, k.certificate, k.not_before, k.not_after, "
    "k.max_documents, r.next_free AS signed, k.status, k.created_at, k.officers "
    "FROM hsm_keys k JOIN hsm_reservations r ON r.label = k.label ")


def _record(row: DictRow) -> KeyRecord:
    return KeyRecord(
        row["label"], bytes.fromhex(row["key_id"]), row["role"], row["algorithm"],
        bytes(row["certificate"]), datetime.fromisoformat(row["not_before"]),
        datetime.fromisoformat(row["not_after"]), row["max_documents"], int(row["signed"]),
        row["status"], datetime.fromisoformat(row["created_at"]),
        tuple(row["officers"].split(",")))


def _bounded(db: psycopg.Connection[DictRow]) -> None:
    """Bound every statement and every lock wait of a pool connection."""
    bound = STATEMENT_TIMEOUT_S * 1000
    db.execute(f"SET statement_timeout = {bound}")
    db.execute(f"SET lock_timeout = {bound}")


class PostgresKeyInventory:
    """The shared key inventory at a ``postgresql://`` URL (the journal's); a context manager,
    safe to share between threads (a small pool of connections, each checked before use, so
    a restarted server is reconnected to)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self.where = redact(url)
        self._pool: ConnectionPool[psycopg.Connection[DictRow]] | None = None

    def __enter__(self) -> Self:
        self._migrate()
        self._pool = self._open_pool()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the pool's connections."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close(timeout=5)

    def _error(self, what: str, exc: BaseException) -> InventoryError:
        cause = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
        return InventoryError(f"the key inventory in {self.where}: {what}: "
                              f"{cause or exc or type(exc).__name__}")

    def _migrate(self) -> None:
        """The journal's migrations, when the database is behind this cardline (as its owner)."""
        try:
            with psycopg.connect(self._url, connect_timeout=CONNECT_TIMEOUT_S,
                                 autocommit=True) as db:
                row = db.execute("SELECT version FROM journal_schema WHERE id = 1").fetchone()
        except pgerrors.UndefinedTable:
            row = None
        except psycopg.Error as exc:
            raise self._error("cannot connect", exc) from exc
        if row is not None and row[0] == LATEST:
            return
        try:
            PostgresJournal(self._url).close()  # migrates, or says cardline is too old
        except JournalError as exc:
            raise InventoryError(f"the key inventory: {exc}") from exc

    def _open_pool(self) -> ConnectionPool[psycopg.Connection[DictRow]]:
        extra: dict[str, Any] = {} if "connect_timeout" in conninfo_to_dict(self._url) else \
            {"connect_timeout": CONNECT_TIMEOUT_S}
        pool = ConnectionPool(
            self._url, connection_class=psycopg.Connection[DictRow], min_size=1, max_size=2,
            kwargs={"autocommit": True, "row_factory": dict_row, **extra}, open=False,
            check=ConnectionPool.check_connection, timeout=STATEMENT_TIMEOUT_S,
            configure=_bounded,
            name="cardline-inventory")
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except PoolTimeout as exc:
            pool.close()
            raise self._error(f"no connection within {CONNECT_TIMEOUT_S} s", exc) from exc
        return pool

    @contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        pool = self._pool
        if pool is None:
            raise InventoryError("the key inventory is not open; use it as `with …`")
        try:
            with pool.connection() as db, db.transaction(), db.cursor() as cur:
                yield cur
        except pgerrors.UniqueViolation as exc:
            raise self._error("a key with this label exists", exc) from exc
        except pgerrors.InsufficientPrivilege as exc:
            raise self._error("this role may not do that", exc) from exc
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._error("unavailable", exc) from exc

    def _one(self, query: LiteralString, params: tuple[object, ...]) -> KeyRecord | None:
        with self._transaction() as cur:
            row = cur.execute(query, params).fetchone()
        return None if row is None else _record(row)

    # -- the port ---------------------------------------------------------------------------

    def add_key(self, record: KeyRecord, entry: AuditEntry, *, supersede: bool = False) -> None:
        """Store a new key, its reservation row and its audit entry; ``supersede`` retires
        the role's active key in the same transaction."""
        with self._transaction() as cur:
            if supersede:
                cur.execute("UPDATE hsm_keys SET status = 'retired' "
                            "WHERE role = %s AND status = 'active'", (record.role,))
            cur.execute(
                "INSERT INTO hsm_keys (label, key_id, role, algorithm, certificate, not_before, "
                "not_after, max_documents, status, created_at, officers) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (record.label, record.key_id.hex(), record.role, record.algorithm,
                 record.certificate, record.not_before.isoformat(),
                 record.not_after.isoformat(), record.max_documents, record.status,
                 record.created_at.isoformat(), ",".join(record.officers)))
            cur.execute("INSERT INTO hsm_reservations (label, next_free, maximum) "
                        "VALUES (%s, %s, %s)",
                        (record.label, record.signed, record.max_documents))
            self._audit(cur, entry)

    @staticmethod
    def _audit(cur: Cursor, entry: AuditEntry) -> None:
        cur.execute("INSERT INTO hsm_audit (at, action, key_label, officers, detail) "
                    "VALUES (%s, %s, %s, %s, %s)",
                    (entry.at.isoformat(), entry.action, entry.key_label,
                     ",".join(entry.officers), entry.detail))

    def record(self, entry: AuditEntry) -> None:
        """Append one audit entry on its own."""
        with self._transaction() as cur:
            self._audit(cur, entry)

    def get(self, label: str) -> KeyRecord:
        """The key ``label``, or ``KeyNotFound``."""
        found = self._one(_KEY + "WHERE k.label = %s", (label,))
        if found is None:
            raise KeyNotFound(label)
        return found

    def active(self, role: str) -> KeyRecord | None:
        """The active key of ``role`` ("CSCA" or "DS"), if any (the newest)."""
        return self._one(_KEY + "WHERE k.role = %s AND k.status = 'active' "
                         "ORDER BY k.created_at DESC LIMIT 1", (role,))

    def all_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        with self._transaction() as cur:
            rows = cur.execute(_KEY + "ORDER BY k.created_at, k.label").fetchall()
        return [_record(row) for row in rows]

    def audit_trail(self) -> list[AuditEntry]:
        """The audit trail in order."""
        with self._transaction() as cur:
            rows = cur.execute("SELECT at, action, key_label, officers, detail FROM hsm_audit "
                               "ORDER BY seq").fetchall()
        return [AuditEntry(datetime.fromisoformat(r["at"]), r["action"], r["key_label"],
                           tuple(r["officers"].split(",")), r["detail"]) for r in rows]

    def retire(self, label: str, reason: str, at: datetime) -> None:
        """Mark ``label`` retired (cards it signed stay valid) and audit why — once: a key
        another line has retired already is left as it is."""
        with self._transaction() as cur:
            self._retire(cur, label, reason, at)

    def revoke(self, label: str, reason: str, at: datetime, officers: tuple[str, ...]) -> bool:
        """Mark ``label`` revoked and audit who and why; False when it was revoked already.
        Every line's signer reads the status at least once a second and stops using it."""
        with self._transaction() as cur:
            if cur.execute("SELECT 1 FROM hsm_keys WHERE label = %s", (label,)).fetchone() \
                    is None:
                raise KeyNotFound(label)
            revoked = cur.execute("UPDATE hsm_keys SET status = 'revoked' WHERE label = %s "
                                  "AND status != 'revoked' RETURNING label",
                                  (label,)).fetchone()
            if revoked is not None:
                self._audit(cur, AuditEntry(at, "revoke", label, officers, f"reason={reason}"))
        return revoked is not None

    def _retire(self, cur: Cursor, label: str, reason: str, at: datetime) -> None:
        retired = cur.execute("UPDATE hsm_keys SET status = 'retired' WHERE label = %s "
                              "AND status = 'active' RETURNING label", (label,)).fetchone()
        if retired is not None:
            self._audit(cur, AuditEntry(at, "retire", label, ("system",), reason))

    def reserve(self, label: str, wanted: int, at: datetime) -> tuple[int, int]:
        """Durably reserve up to ``wanted`` signatures of ``label``: returns [start, end).

        The reservation row is locked (``FOR UPDATE``) while the block is taken, so lines
        reserving at once wait for each other and never get overlapping counts; a key with no
        count left is retired by the line that finds it so, in that same transaction."""
        with self._transaction() as cur:
            row = cur.execute(
                "SELECT r.next_free, r.maximum, k.status FROM hsm_reservations r "
                "JOIN hsm_keys k ON k.label = r.label WHERE r.label = %s FOR UPDATE OF r",
                (label,)).fetchone()
            if row is None:
                raise KeyNotFound(label)
            if row["status"] != "active":
                raise KeyRetired(label, f"its status is {row['status']}")
            maximum = row["maximum"]
            granted = wanted if maximum is None else min(wanted, maximum - row["next_free"])
            if granted > 0:
                end = cur.execute("UPDATE hsm_reservations SET next_free = next_free + %s "
                                  "WHERE label = %s RETURNING next_free",
                                  (granted, label)).fetchone()
                if end is not None:
                    return (int(end["next_free"]) - granted, int(end["next_free"]))
            self._retire(cur, label, f"document count {maximum} reached", at)
        raise KeyRetired(label, f"its maximum of {maximum} documents is reached")

    def give_back(self, label: str, start: int, end: int) -> None:
        """Return an unused tail [start, end) if no line reserved after it (clean shutdown)."""
        if start < end:
            with self._transaction() as cur:
                cur.execute("UPDATE hsm_reservations SET next_free = %s "
                            "WHERE label = %s AND next_free = %s", (start, label, end))
