"""The journal's accounts, roles and sessions in PostgreSQL (a mixin of ``PostgresJournal``).

Every change is one transaction that reads the account ``FOR UPDATE`` before writing it back,
so concurrent changes (two wrong passphrases at once) wait for each other instead of losing
one; the first account is added under ``LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE``
(which conflicts with every other insert), so two bootstraps cannot both see an empty table.
Events go into the journal's own chain. Typed against :class:`_Host`, what it uses of the
adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, LiteralString, Protocol

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

_INSERT: LiteralString = (
    "INSERT INTO accounts (name, roles, passphrase, disabled, failures, locked_until, "
    "created_at, created_by, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (name) DO NOTHING")


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def execute(self, query: LiteralString, params: Sequence[Any] = ..., /) -> _Cursor: ...

    def fetchone(self) -> Mapping[str, Any] | None: ...

    def fetchall(self) -> Sequence[Mapping[str, Any]]: ...


class _Host(Protocol):
    """What the mixin uses of the PostgreSQL adapter."""

    def _write(self) -> AbstractContextManager[_Cursor]: ...

    def _read(self, query: LiteralString, params: Sequence[Any] = ...
              ) -> Sequence[Mapping[str, Any]]: ...

    def _append(self, cur: Any, batch: str | None, card: int | None, kind: str,
                data: dict[str, Any], chain: str = ...) -> None: ...


def _locked_row(cur: _Cursor, name: str) -> AccountRow:
    found = cur.execute("SELECT * FROM accounts WHERE name = %s FOR UPDATE", (name,)).fetchone()
    if found is None:
        raise UnknownAccountError(name)
    return account_from(found)


def _store(cur: _Cursor, row: AccountRow) -> None:
    name, roles, passphrase, disabled, failures, locked_until, _, _, at = row.columns()
    cur.execute("UPDATE accounts SET roles = %s, passphrase = %s, disabled = %s, failures = %s, "
                "locked_until = %s, changed_at = %s WHERE name = %s",
                (roles, passphrase, disabled, failures, locked_until, at, name))


class PostgresPeople:
    """What the adapter keeps of accounts, roles and sessions (see ``PeoplePort``)."""

    def accounts(self: _Host) -> list[AccountRow]:
        """Every account, by name."""
        return [account_from(r) for r in self._read("SELECT * FROM accounts ORDER BY name")]

    def account(self: _Host, name: str) -> AccountRow | None:
        """The account named ``name``, or None."""
        rows = self._read("SELECT * FROM accounts WHERE name = %s", (name,))
        return account_from(rows[0]) if rows else None

    def add_account(self: _Host, row: AccountRow, *, actor: str, first: bool = False) -> None:
        """Add ``row``; with ``first``, only into a journal without accounts."""
        with self._write() as cur:
            if first:
                cur.execute("LOCK TABLE accounts IN SHARE ROW EXCLUSIVE MODE")
                if cur.execute("SELECT 1 FROM accounts LIMIT 1").fetchone() is not None:
                    raise NotFirstError
            if cur.execute(_INSERT, row.columns()).rowcount != 1:
                raise AccountExistsError(row.name)
            self._append(cur, None, None, "people.account_added", {
                "actor": actor, "account": row.name, "roles": list(row.roles), "first": first})

    def update_account(self: _Host, name: str, *, actor: str | None, event: str,
                       **changes: Unpack[AccountChanges]) -> AccountRow:
        """Change an account and append ``event`` in the same transaction."""
        with self._write() as cur:
            row = changed(_locked_row(cur, name), changes, datetime.now(UTC))
            _store(cur, row)
            self._append(cur, None, None, event, change_event(actor, name, changes))
        return row

    def count_failure(self: _Host, name: str, *, limit: int, lock_until: datetime
                      ) -> AccountRow:
        """One more wrong passphrase in a row; the lockout at ``limit``."""
        with self._write() as cur:
            row = _locked_row(cur, name)
            changes, events = failure_events(row, limit, lock_until)
            row = changed(row, changes, datetime.now(UTC))
            _store(cur, row)
            for kind, data in events:
                self._append(cur, None, None, kind, data)
        return row

    def open_session(self: _Host, token_hash: str, account: str, expires_at: datetime) -> None:
        """Record a login."""
        with self._write() as cur:
            cur.execute("INSERT INTO sessions (token_hash, account, created_at, expires_at) "
                        "VALUES (%s, %s, %s, %s)",
                        (token_hash, account, stamp(datetime.now(UTC)), stamp(expires_at)))
            self._append(cur, None, None, "people.login", {
                "actor": account, "account": account, "expires_at": stamp(expires_at)})

    def session(self: _Host, token_hash: str) -> SessionRow | None:
        """The session of this token hash, or None."""
        rows = self._read("SELECT * FROM sessions WHERE token_hash = %s", (token_hash,))
        return session_from(rows[0]) if rows else None

    def end_session(self: _Host, token_hash: str) -> bool:
        """End a session; False when it was unknown or had ended."""
        with self._write() as cur:
            found = cur.execute("UPDATE sessions SET ended_at = %s WHERE token_hash = %s AND "
                                "ended_at IS NULL RETURNING account",
                                (stamp(datetime.now(UTC)), token_hash)).fetchone()
            if found is None:
                return False
            self._append(cur, None, None, "people.logout",
                         {"actor": found["account"], "account": found["account"]})
        return True

    def end_sessions(self: _Host, account: str, *, actor: str) -> int:
        """End every open session of ``account``."""
        with self._write() as cur:
            ended = len(cur.execute("UPDATE sessions SET ended_at = %s WHERE account = %s AND "
                                    "ended_at IS NULL RETURNING 1",
                                    (stamp(datetime.now(UTC)), account)).fetchall())
            if ended:
                self._append(cur, None, None, "people.sessions_ended",
                             {"actor": actor, "account": account, "sessions": ended})
        return ended

    def people_events(self: _Host) -> list[EventRow]:
        """The events about people (the journal's own chain), oldest first."""
        return [event_row(r) for r in self._read(
            "SELECT seq, at, card, kind, data FROM events WHERE chain = 'journal' AND "
            "kind LIKE %s ORDER BY seq", ("people.%",))]
