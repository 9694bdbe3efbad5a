"""What every SQLite store of cardline shares: durable connections, write transactions and
numbered migrations. Only the standard library: a store in any package can use it.

A migration is (number, title, statements); a file records the last number applied in
``PRAGMA user_version``. Never edit a migration that has shipped: add the next one.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000
Migration = tuple[int, str, tuple[str, ...]]
ErrorFactory = Callable[[str], Exception]
Applied = Callable[[sqlite3.Connection, int, Sequence[Migration]], None]
_UNIQUE = frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY})


def private_file(path: Path) -> None:
    """Make ``path`` owner-only before SQLite opens it: missing folders are created 0700, the
    file is created (or tightened) 0600 whatever the umask, and so are its ``-wal`` and
    ``-shm`` if present; SQLite gives the ones it creates the main file's mode (sqlite.org
    os_unix.c, findCreateFileMode)."""
    missing = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        folder.chmod(0o700)
    # POSIX fcntl(): closing any descriptor of a file drops the process's locks on it, so an
    # existing file (maybe open in SQLite here) is never opened, only created.
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            file.chmod(0o600)


def connect(path: Path, error: ErrorFactory) -> sqlite3.Connection:
    """A connection in WAL mode with ``synchronous=FULL`` (WAL with NORMAL may lose the last
    commits on power loss), foreign keys on, and rows readable by column name; the file and
    the folders it creates are owner-only (:func:`private_file`)."""
    try:
        private_file(path)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                             timeout=BUSY_TIMEOUT_MS / 1000)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = _wal_mode(db)
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
    except (OSError, sqlite3.Error) as exc:
        raise error(f"{path}: cannot open: {exc}") from exc
    if mode != "wal":
        db.close()
        raise error(f"{path}: the file system refuses WAL mode ({mode})")
    return db


def _wal_mode(db: sqlite3.Connection) -> str:
    """Switch to WAL. On a new file opened by several processes at once the switch can meet
    SQLITE_BUSY without SQLite calling its busy handler (the change needs an exclusive lock
    while another connection is opening the same file), so it is tried again here, within
    the same busy timeout the other statements have."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


@contextmanager
def write(db: sqlite3.Connection, where: Path, error: ErrorFactory,
          conflict: ErrorFactory | None = None) -> Iterator[sqlite3.Connection]:
    """One ``BEGIN IMMEDIATE`` transaction: it takes the write lock first, so a read inside
    it never goes stale (a deferred read-then-write can fail with SQLITE_BUSY_SNAPSHOT, which
    no retry fixes). SQLite errors leave as ``error``, a broken UNIQUE rule as ``conflict``."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise error(f"{where}: cannot start a write: {exc}") from exc
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as exc:
        if db.in_transaction:  # SQLite may have rolled back by itself
            db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.IntegrityError) and conflict is not None \
                and exc.sqlite_errorcode in _UNIQUE:
            raise conflict(f"{where}: a UNIQUE rule refused the change: {exc}") from exc
        if isinstance(exc, sqlite3.Error):
            raise error(f"{where}: {exc}") from exc
        raise


def user_version(db: sqlite3.Connection) -> int:
    """The number of the last migration applied to this file."""
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection, migrations: Sequence[Migration], where: Path,
            error: ErrorFactory, applied: Applied | None = None) -> int:
    """Apply the migrations this file lacks, all in one write transaction in which the version
    is read again (another process may have migrated while this one waited for the lock);
    ``applied(db, old_version, migrations)`` runs last in that transaction. A file from a
    newer cardline is refused. Returns the version the file is at."""
    latest = migrations[-1][0]
    if user_version(db) == latest:
        return latest
    with write(db, where, error):
        version = user_version(db)
        if version > latest:
            raise error(f"{where} is at schema v{version}; this cardline knows up to "
                        f"v{latest}: upgrade cardline")
        pending = [m for m in migrations if m[0] > version]
        for _, _, statements in pending:
            for statement in statements:
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {latest}")
        if pending and applied is not None:
            applied(db, version, pending)
    return latest
