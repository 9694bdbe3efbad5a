"""The journal's accounts, roles and sessions in SQLite (a mixin of ``SQLiteJournal``).

Every change runs in the adapter's write transaction (``BEGIN IMMEDIATE``: SQLite's one
writer at a time), so reading an account and writing it back, or counting the accounts before
the first one, is atomic against every other process; its event is appended in the same
transaction. Typed against :class:`_Host`, what it uses of the adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from personalization.journal.people_port import (
    AccountChanges,
    AccountExistsError,
    AccountRow,
    NotFirstError,
    SessionRow,
    UnknownAccountError,
    account_from,
    change_event,
    changed,
    event_row,
    failure_events,
    session_from,
    stamp,
)
from personalization.journal.records import EventRow

if TYPE_CHECKING:
    from typing_extensions import Unpack


class _Rows(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> _Rows: ...


class _Host(Protocol):
    """What the mixin uses of the SQLite adapter."""

    def _write(self) -> AbstractContextManager[_Connection]: ...

    def _read(self, sql: str, params: Sequence[Any] = ...) -> list[Any]: ...

    def _append(self, db: Any, batch: str | None, card: int | None, kind: str,
                data: dict[str, Any]) -> None: ...


def _columns(row: Any) -> dict[str, Any]:
    return dict(zip(row.keys(), row, strict=True))


def _locked_row(db: _Connection, name: str) -> AccountRow:
    found = db.execute("SELECT * FROM accounts WHERE name = ?", (name,)).fetchone()
    if found is None:
        raise UnknownAccountError(name)
    return account_from(_columns(found))


def _store(db: _Connection, row: AccountRow) -> None:
    db.execute("UPDATE accounts SET roles = ?2, passphrase = ?3, disabled = ?4, failures = ?5, "
               "locked_until = ?6, changed_at = ?9 WHERE name = ?1", row.columns())


class SQLitePeople:
    """What the adapter keeps of accounts, roles and sessions (see ``PeoplePort``)."""

    def accounts(self: _Host) -> list[AccountRow]:
        """Every account, by name."""
        return [account_from(_columns(r))
                for r in self._read("SELECT * FROM accounts ORDER BY name")]

    def account(self: _Host, name: str) -> AccountRow | None:
        """The account named ``name``, or None."""
        rows = self._read("SELECT * FROM accounts WHERE name = ?", (name,))
        return account_from(_columns(rows[0])) if rows else None

    def add_account(self: _Host, row: AccountRow, *, actor: str, first: bool = False) -> None:
        """Add ``row``; with ``first``, only into a journal without accounts."""
        with self._write() as db:
            if first and db.execute("SELECT 1 FROM accounts LIMIT 1").fetchone() is not None:
                raise NotFirstError
            if db.execute("INSERT INTO accounts (name, roles, passphrase, disabled, failures, "
                          "locked_until, created_at, created_by, changed_at) VALUES "
                          "(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                          row.columns()).rowcount != 1:
                raise AccountExistsError(row.name)
            self._append(db, None, None, "people.account_added", {
                "actor": actor, "account": row.name, "roles": list(row.roles), "first": first})

    def update_account(self: _Host, name: str, *, actor: str | None, event: str,
                       **changes: Unpack[AccountChanges]) -> AccountRow:
        """Change an account and append ``event`` in the same transaction."""
        with self._write() as db:
            row = changed(_locked_row(db, name), changes, datetime.now(UTC))
            _store(db, row)
            self._append(db, None, None, event, change_event(actor, name, changes))
        return row

    def count_failure(self: _Host, name: str, *, limit: int, lock_until: datetime
                      ) -> AccountRow:
        """One more wrong passphrase in a row; the lockout at ``limit``."""
        with self._write() as db:
            row = _locked_row(db, name)
            changes, events = failure_events(row, limit, lock_until)
            row = changed(row, changes, datetime.now(UTC))
            _store(db, row)
            for kind, data in events:
                self._append(db, None, None, kind, data)
        return row

    def open_session(self: _Host, token_hash: str, account: str, expires_at: datetime) -> None:
        """Record a login."""
        with self._write() as db:
            db.execute("INSERT INTO sessions (token_hash, account, created_at, expires_at) "
                       "VALUES (?, ?, ?, ?)",
                       (token_hash, account, stamp(datetime.now(UTC)), stamp(expires_at)))
            self._append(db, None, None, "people.login", {
                "actor": account, "account": account, "expires_at": stamp(expires_at)})

    def session(self: _Host, token_hash: str) -> SessionRow | None:
        """The session of this token hash, or None."""
        rows = self._read("SELECT * FROM sessions WHERE token_hash = ?", (token_hash,))
        return session_from(_columns(rows[0])) if rows else None

    def end_session(self: _Host, token_hash: str) -> bool:
        """End a session; False when it was unknown or had ended."""
        with self._write() as db:
            found = db.execute("UPDATE sessions SET ended_at = ? WHERE token_hash = ? AND "
                               "ended_at IS NULL RETURNING account",
                               (stamp(datetime.now(UTC)), token_hash)).fetchone()
            if found is None:
                return False
            self._append(db, None, None, "people.logout",
                         {"actor": found[0], "account": found[0]})
        return True

    def end_sessions(self: _Host, account: str, *, actor: str) -> int:
        """End every open session of ``account``."""
        with self._write() as db:
            ended = len(db.execute("UPDATE sessions SET ended_at = ? WHERE account = ? AND "
                                   "ended_at IS NULL RETURNING 1",
                                   (stamp(datetime.now(UTC)), account)).fetchall())
            if ended:
                self._append(db, None, None, "people.sessions_ended",
                             {"actor": actor, "account": account, "sessions": ended})
        return ended

    def people_events(self: _Host) -> list[EventRow]:
        """The events about people, oldest first."""
        return [event_row(_columns(r)) for r in self._read(
            "SELECT seq, at, card, kind, data FROM events WHERE kind LIKE 'people.%' "
            "ORDER BY seq")]
