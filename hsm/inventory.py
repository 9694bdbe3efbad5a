"""The durable key inventory: CSCA and DS keys and the EAC keys (CVCA, DV, IS), their
certificates, usage bounds and counts, and an append-only audit trail of ceremonies.
:class:`InventoryPort` is what the signer and the ceremonies use; :class:`KeyInventory`
keeps it in one SQLite file, ``<data_dir>/hsm/inventory.db`` (one line); lines sharing a
PostgreSQL journal keep it in that database instead (``personalization.journal.pg_inventory``).

Durability: WAL with ``synchronous=FULL`` (WAL + NORMAL may lose the last commits on power
loss) and ``BEGIN IMMEDIATE`` for every writer. Signature counts are reserved in blocks
*before* signing, so a crash over-counts but never under-counts.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from common.sqlite import Migration, connect, migrate
from hsm.errors import InventoryError, KeyNotFound, KeyRetired, SigningRefused

# Numbered migrations, applied by common.sqlite.migrate as the journal's are. Number 1 is the
# schema files had before they were numbered (IF NOT EXISTS, so such a file adopts it).
MIGRATIONS: list[Migration] = [
    (1, "keys and the append-only audit trail of ceremonies", (
        """CREATE TABLE IF NOT EXISTS keys (
            label TEXT PRIMARY KEY, key_id TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('CSCA','DS')),
            algorithm TEXT NOT NULL, certificate BLOB NOT NULL,
            not_before TEXT NOT NULL, not_after TEXT NOT NULL, max_documents INTEGER,
            signed INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL CHECK (status IN ('active','retired','revoked')),
            created_at TEXT NOT NULL, officers TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS audit (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, action TEXT NOT NULL,
            key_label TEXT NOT NULL, officers TEXT NOT NULL, detail TEXT NOT NULL)""",
        """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
        """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END""",
    )),
    # SQLite cannot change a CHECK in place: the table is copied into one with the new rule.
    (2, "the keys of the EAC PKI: CVCA, document verifier, inspection system", (
        """CREATE TABLE keys_v2 (
            label TEXT PRIMARY KEY, key_id TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('CSCA','DS','CVCA','DV','IS')),
            algorithm TEXT NOT NULL, certificate BLOB NOT NULL,
            not_before TEXT NOT NULL, not_after TEXT NOT NULL, max_documents INTEGER,
            signed INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL CHECK (status IN ('active','retired','revoked')),
            created_at TEXT NOT NULL, officers TEXT NOT NULL)""",
        "INSERT INTO keys_v2 (label, key_id, role, algorithm, certificate, not_before, "
        "not_after, max_documents, signed, status, created_at, officers) SELECT label, key_id, "
        "role, algorithm, certificate, not_before, not_after, max_documents, signed, status, "
        "created_at, officers FROM keys",
        "DROP TABLE keys",
        "ALTER TABLE keys_v2 RENAME TO keys",
    )),
]
_COLUMNS = ("label, key_id, role, algorithm, certificate, not_before, not_after, "
            "max_documents, signed, status, created_at, officers")


def _error(message: str) -> InventoryError:
    return InventoryError(f"the key inventory {message}")


def inventory_path(data_dir: Path) -> Path:
    """Where the inventory of a line lives."""
    return data_dir / "hsm" / "inventory.db"


@dataclass(frozen=True)
class KeyRecord:
    """One key of the inventory; ``signed`` is the durable (reserved) signature count."""

    label: str
    key_id: bytes
    role: str  # "CSCA" | "DS" | "CVCA" | "DV" | "IS" (EAC keys: certificate is a CV certificate)
    algorithm: str
    certificate: bytes
    not_before: datetime  # private key usage window
    not_after: datetime
    max_documents: int | None
    signed: int
    status: str  # "active" | "retired" | "revoked"
    created_at: datetime
    officers: tuple[str, ...]

    def _row(self) -> tuple[object, ...]:
        return (self.label, self.key_id.hex(), self.role, self.algorithm, self.certificate,
                self.not_before.isoformat(), self.not_after.isoformat(), self.max_documents,
                self.signed, self.status, self.created_at.isoformat(), ",".join(self.officers))


def _record(row: tuple[Any, ...]) -> KeyRecord:
    (label, key_id, role, algorithm, cert, nb, na, max_docs, signed, status, created,
     officers) = row
    return KeyRecord(
        str(label), bytes.fromhex(key_id), str(role), str(algorithm), bytes(cert),
        datetime.fromisoformat(nb), datetime.fromisoformat(na),
        None if max_docs is None else int(max_docs), int(signed), str(status),
        datetime.fromisoformat(created), tuple(str(officers).split(",")),
    )


@dataclass(frozen=True)
class AuditEntry:
    """One ceremony in the audit trail: who, what, when, which key; never a secret."""

    at: datetime
    action: str
    key_label: str
    officers: tuple[str, ...]
    detail: str


class InventoryPort(Protocol):
    """The key inventory as the signer and the ceremonies use it; a context manager."""

    def __enter__(self) -> Self:
        """Open the inventory."""
        ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close it."""
        ...

    def add_key(self, record: KeyRecord, entry: AuditEntry, *, supersede: bool = False) -> None:
        """Store a new key and its audit entry; ``supersede`` retires the role's active key."""
        ...

    def record(self, entry: AuditEntry) -> None:
        """Append one audit entry on its own."""
        ...

    def get(self, label: str) -> KeyRecord:
        """The key ``label``, or ``KeyNotFound``."""
        ...

    def active(self, role: str) -> KeyRecord | None:
        """The active key of ``role`` ("CSCA" or "DS"), if any."""
        ...

    def all_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        ...

    def audit_trail(self) -> list[AuditEntry]:
        """The audit trail in order."""
        ...

    def retire(self, label: str, reason: str, at: datetime) -> None:
        """Mark ``label`` retired (cards it signed stay valid) and audit why."""
        ...

    def revoke(self, label: str, reason: str, at: datetime, officers: tuple[str, ...]) -> bool:
        """Mark ``label`` revoked (cards it signed fail Passive Authentication once the CRL
        says so) and audit who and why; False when it was revoked already."""
        ...

    def reserve(self, label: str, wanted: int, at: datetime) -> tuple[int, int]:
        """Durably reserve up to ``wanted`` signatures of ``label``: [start, end); when none
        is left the key is retired and ``KeyRetired`` raised."""
        ...

    def give_back(self, label: str, start: int, end: int) -> None:
        """Return an unused tail [start, end) if nobody reserved after it."""
        ...


class KeyInventory:
    """The inventory database; a context manager, safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def __enter__(self) -> KeyInventory:
        self._connect()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection:
        connection = connect(self.path, _error)  # owner-only, WAL, synchronous=FULL
        migrate(connection, MIGRATIONS, self.path, _error)
        self._connection, self._pid = connection, os.getpid()
        return connection

    def close(self) -> None:
        """Close the database connection (only in the process that opened it)."""
        connection, self._connection = self._connection, None
        if connection is not None and self._pid == os.getpid():
            connection.close()

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._connection
            if connection is None or self._pid != os.getpid():  # never reuse across fork()
                connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield connection
                connection.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise

    def add_key(self, record: KeyRecord, entry: AuditEntry, *, supersede: bool = False) -> None:
        """Store a new key and its audit entry; ``supersede`` retires the role's active key."""
        try:
            with self._transaction(write=True) as db:
                if supersede:
                    db.execute("UPDATE keys SET status='retired' WHERE role=? AND status='active'",
                               (record.role,))
                db.execute(f"INSERT INTO keys ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608 -- fixed column list, values bound
                           record._row())
                self._audit(db, entry)
        except sqlite3.IntegrityError as exc:
            raise InventoryError(f"key {record.label!r} cannot be stored: {exc}") from exc

    @staticmethod
    def _audit(db: sqlite3.Connection, entry: AuditEntry) -> None:
        db.execute("INSERT INTO audit (at, action, key_label, officers, detail) VALUES (?,?,?,?,?)",
                   (entry.at.isoformat(), entry.action, entry.key_label,
                    ",".join(entry.officers), entry.detail))

    def record(self, entry: AuditEntry) -> None:
        """Append one audit entry on its own."""
        with self._transaction(write=True) as db:
            self._audit(db, entry)

    def get(self, label: str) -> KeyRecord:
        """The key ``label``, or ``KeyNotFound``."""
        with self._transaction(write=False) as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM keys WHERE label=?", (label,)).fetchone()  # noqa: S608 -- fixed column list
        if row is None:
            raise KeyNotFound(label)
        return _record(row)

    def active(self, role: str) -> KeyRecord | None:
        """The active key of ``role`` ("CSCA" or "DS"), if any."""
        with self._transaction(write=False) as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM keys WHERE role=? AND status='active' "  # noqa: S608 -- fixed column list
                             "ORDER BY created_at DESC LIMIT 1", (role,)).fetchone()
        return None if row is None else _record(row)

    def all_keys(self) -> list[KeyRecord]:
        """Every key, oldest first."""
        with self._transaction(write=False) as db:
            query = f"SELECT {_COLUMNS} FROM keys ORDER BY created_at, label"  # noqa: S608 -- fixed columns
            rows = db.execute(query).fetchall()
        return [_record(row) for row in rows]

    def audit_trail(self) -> list[AuditEntry]:
        """The audit trail in order."""
        with self._transaction(write=False) as db:
            rows = db.execute("SELECT at, action, key_label, officers, detail FROM audit "
                              "ORDER BY seq").fetchall()
        return [AuditEntry(datetime.fromisoformat(a), b, c, tuple(d.split(",")), e)
                for a, b, c, d, e in rows]

    def retire(self, label: str, reason: str, at: datetime) -> None:
        """Mark ``label`` retired (cards it signed stay valid) and audit why."""
        with self._transaction(write=True) as db:
            db.execute("UPDATE keys SET status='retired' WHERE label=? AND status='active'",
                       (label,))
            self._audit(db, AuditEntry(at, "retire", label, ("system",), reason))

    def revoke(self, label: str, reason: str, at: datetime, officers: tuple[str, ...]) -> bool:
        """Mark ``label`` revoked and audit who and why; False when it was revoked already."""
        with self._transaction(write=True) as db:
            if db.execute("SELECT 1 FROM keys WHERE label=?", (label,)).fetchone() is None:
                raise KeyNotFound(label)
            changed = db.execute("UPDATE keys SET status='revoked' WHERE label=? AND "
                                 "status != 'revoked'", (label,)).rowcount
            if changed:
                self._audit(db, AuditEntry(at, "revoke", label, officers, f"reason={reason}"))
        return bool(changed)

    def reserve(self, label: str, wanted: int, at: datetime) -> tuple[int, int]:
        """Durably reserve up to ``wanted`` signatures of ``label``: returns [start, end)."""
        with self._transaction(write=True) as db:
            row = db.execute("SELECT signed, max_documents, status FROM keys WHERE label=?",
                             (label,)).fetchone()
            if row is None:
                raise KeyNotFound(label)
            signed, maximum, status = int(row[0]), row[1], str(row[2])
            if status != "active":
                raise KeyRetired(label, f"its status is {status}")
            granted = wanted if maximum is None else min(wanted, int(maximum) - signed)
            if granted > 0:
                db.execute("UPDATE keys SET signed=? WHERE label=?", (signed + granted, label))
                return (signed, signed + granted)
        self.retire(label, f"document count {maximum} reached", at)
        raise KeyRetired(label, f"its maximum of {maximum} documents is reached")

    def give_back(self, label: str, start: int, end: int) -> None:
        """Return an unused tail [start, end) if nobody reserved after it (clean shutdown)."""
        if start < end:
            with self._transaction(write=True) as db:
                db.execute("UPDATE keys SET signed=? WHERE label=? AND signed=?",
                           (start, label, end))


def move_keys(source: InventoryPort, target: InventoryPort, at: datetime) -> list[str]:
    """Copy the keys ``target`` lacks from ``source``, counts and all (their signers stopped):
    how a line's own inventory joins the one lines share. An active DS is retired in
    ``source`` first, so that no key ever signs against two counts; a CSCA stays in both. A
    key arrives retired when its role already has an active key in ``target``. Returns the
    labels copied."""
    present = {record.label for record in target.all_keys()}
    copied = []
    for record in source.all_keys():
        if record.label in present:
            continue
        if record.role == "DS" and record.status == "active":
            source.retire(record.label, "moved to another key inventory", at)
        busy = record.status == "active" and target.active(record.role) is not None
        detail = f"moved in with {record.signed} signatures counted, {record.status} there"
        target.add_key(replace(record, status="retired" if busy else record.status),
                       AuditEntry(at, "move-in", record.label, ("system",), detail))
        copied.append(record.label)
    return copied


class SignatureCounter:
    """Counts signatures of one DS key against its usage window and document maximum."""

    def __init__(self, inventory: InventoryPort, record: KeyRecord, *, block: int = 256,
                 status_every_s: float = 1.0) -> None:
        self._inventory = inventory
        self._record = record
        self._block = block
        self._next = self._end = 0
        self._pid = os.getpid()
        self._lock = threading.Lock()
        # A block is reserved ahead, so a key retired by a ceremony (or by hand) elsewhere is
        # noticed by reading its status at most this often, not only when the block runs out.
        self._status_every_s = status_every_s
        self._status_read = time.monotonic()

    def take(self, at: datetime) -> int:
        """Reserve one signature at ``at``; its sequence number, or ``KeyRetired``."""
        record = self._record
        # ICAO 9303-12 §4.1.4 Table 1: the DS private key is used only within its usage period.
        if at < record.not_before:
            raise SigningRefused(record.label, f"its usage period starts {record.not_before}")
        if at >= record.not_after:
            self._inventory.retire(record.label, "usage period ended", at)
            raise KeyRetired(record.label, f"its usage period ended {record.not_after}")
        with self._lock:
            if self._pid != os.getpid():  # forked child: the parent's block is the parent's
                self._next = self._end = 0
                self._pid = os.getpid()
            if time.monotonic() - self._status_read >= self._status_every_s:
                status = self._inventory.get(record.label).status
                self._status_read = time.monotonic()
                if status != "active":
                    raise KeyRetired(record.label, f"its status is {status}")
            if self._next >= self._end:
                self._next, self._end = self._inventory.reserve(record.label, self._block, at)
            self._next += 1
            return self._next

    def close(self) -> None:
        """Give back the unused part of the current block."""
        with self._lock:
            if self._pid == os.getpid():
                self._inventory.give_back(self._record.label, self._next, self._end)
                self._next = self._end = 0
