"""The journal's port for people: accounts with their roles, and login sessions.

Both adapters implement :class:`PeoplePort` (the mixins ``SQLitePeople`` and
``PostgresPeople``); the same tests check their promises:

- an account or session change and its audit event are one transaction: both or neither;
- the first account is created once: of two bootstraps at the same moment, one wins;
- a change is read and written under the database's write lock, so counters never lose one;
- events name the actor (an account name) and what changed, never a passphrase, its hash or
  a session token (a session is named by its account only).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

from personalization.journal.port import JournalError
from personalization.journal.records import EventRow

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "AccountChanges",
    "AccountExistsError",
    "AccountRow",
    "NotFirstError",
    "PeoplePort",
    "SessionRow",
    "UnknownAccountError",
    "account_from",
    "changed",
    "people",
]


class AccountExistsError(JournalError):
    """An account of this name is already in the journal."""

    def __init__(self, name: str) -> None:
        super().__init__(f"an account named {name!r} already exists")
        self.name = name


class NotFirstError(JournalError):
    """A first account (the bootstrap) was asked for, but the journal has accounts."""

    def __init__(self) -> None:
        super().__init__("accounts exist already: the first admin is created once; an admin "
                         "adds the others with `cardline users add`")


class UnknownAccountError(JournalError):
    """No account of this name is in the journal."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no account named {name!r} (see `cardline users list`)")
        self.name = name


def stamp(at: datetime) -> str:
    """How the adapters store a moment: ISO 8601 in UTC, to the microsecond."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One account: ``passphrase`` is its Argon2id PHC string (never shown by ``repr``)."""

    name: str
    roles: tuple[str, ...]
    passphrase: str = field(repr=False)
    disabled: bool
    failures: int
    locked_until: datetime | None
    created_at: datetime
    created_by: str
    changed_at: datetime

    def columns(self) -> tuple[Any, ...]:
        """The row's values in the ``accounts`` table's column order."""
        return (self.name, json.dumps(list(self.roles)), self.passphrase, self.disabled,
                self.failures, None if self.locked_until is None else stamp(self.locked_until),
                stamp(self.created_at), self.created_by, stamp(self.changed_at))


def account_from(columns: Mapping[str, Any]) -> AccountRow:
    """An :class:`AccountRow` from a row of the ``accounts`` table."""
    return AccountRow(
        name=columns["name"], roles=tuple(json.loads(columns["roles"])),
        passphrase=columns["passphrase"], disabled=bool(columns["disabled"]),
        failures=int(columns["failures"]), locked_until=_moment(columns["locked_until"]),
        created_at=datetime.fromisoformat(columns["created_at"]),
        created_by=columns["created_by"], changed_at=datetime.fromisoformat(columns["changed_at"]))


@dataclass(frozen=True, slots=True)
class SessionRow:
    """One login: only the SHA-256 of its token is kept (never shown by ``repr``)."""

    token_hash: str = field(repr=False)
    account: str
    created_at: datetime
    expires_at: datetime
    ended_at: datetime | None


def session_from(columns: Mapping[str, Any]) -> SessionRow:
    """A :class:`SessionRow` from a row of the ``sessions`` table."""
    return SessionRow(columns["token_hash"], columns["account"],
                      datetime.fromisoformat(columns["created_at"]),
                      datetime.fromisoformat(columns["expires_at"]), _moment(columns["ended_at"]))


class AccountChanges(TypedDict, total=False):
    """What :meth:`PeoplePort.update_account` may change."""

    roles: tuple[str, ...]
    passphrase: str
    disabled: bool
    failures: int
    locked_until: datetime | None


_CHANGEABLE = frozenset(AccountChanges.__annotations__)


def changed(row: AccountRow, changes: AccountChanges, at: datetime) -> AccountRow:
    """``row`` with ``changes`` made at ``at``; :class:`JournalError` for anything else."""
    unknown = set(changes) - _CHANGEABLE
    if unknown:
        raise JournalError(f"an account's {', '.join(sorted(unknown))} cannot be changed")
    return replace(row, **changes, changed_at=at)


def change_event(actor: str | None, name: str, changes: AccountChanges) -> dict[str, Any]:
    """The audit event of a change: who, which account, which fields, and their new values
    except the passphrase's (only that it changed)."""
    data: dict[str, Any] = {"actor": actor, "account": name, "fields": sorted(changes)}
    for key, value in changes.items():
        if key == "passphrase":
            continue
        if isinstance(value, datetime):
            value = stamp(value)
        data[key] = list(value) if isinstance(value, tuple) else value
    return data


@runtime_checkable
class PeoplePort(Protocol):
    """What the journal keeps of people. Times are aware datetimes; an ``actor`` is the name
    of the account that acts (None when nobody is known, as for an unknown name at login)."""

    def note(self, batch: str | None, kind: str, **data: Any) -> None:
        """Append an event that changes no state (here: a refusal)."""

    def accounts(self) -> list[AccountRow]:
        """Every account, by name."""

    def account(self, name: str) -> AccountRow | None:
        """The account named ``name``, or None."""

    def add_account(self, row: AccountRow, *, actor: str, first: bool = False) -> None:
        """Add ``row`` (event ``people.account_added``); :class:`AccountExistsError` when the
        name is taken. ``first``: only when there is no account yet (:class:`NotFirstError`
        otherwise), decided under the write lock so two bootstraps cannot both succeed."""

    def update_account(self, name: str, *, actor: str | None, event: str,
                       **changes: Unpack[AccountChanges]) -> AccountRow:
        """Change an account, appending event ``event`` (:func:`change_event`) in the same
        transaction; returns the new row. :class:`UnknownAccountError` when there is none."""

    def count_failure(self, name: str, *, limit: int, lock_until: datetime) -> AccountRow:
        """One more wrong passphrase in a row (event ``people.login_failed``); at ``limit``
        the account is locked until ``lock_until`` and its count starts again (event
        ``people.locked``). Read and written in one transaction: no failure is lost."""

    def open_session(self, token_hash: str, account: str, expires_at: datetime) -> None:
        """Record a login (event ``people.login``)."""

    def session(self, token_hash: str) -> SessionRow | None:
        """The session of this token hash, or None."""

    def end_session(self, token_hash: str) -> bool:
        """End a session (event ``people.logout``); False when it was unknown or ended."""

    def end_sessions(self, account: str, *, actor: str) -> int:
        """End every open session of ``account`` (event ``people.sessions_ended`` if any);
        returns how many."""

    def people_events(self) -> list[EventRow]:
        """The events about people (kinds ``people.*``), oldest first."""


def people(journal: object) -> PeoplePort:
    """The people side of an opened journal (every adapter has one)."""
    if not isinstance(journal, PeoplePort):
        raise JournalError(f"{type(journal).__name__} keeps no accounts")
    return journal


def event_row(columns: Mapping[str, Any]) -> EventRow:
    """An event as the port hands it out."""
    return {"seq": columns["seq"], "at": columns["at"], "card": columns["card"],
            "kind": columns["kind"], "data": json.loads(columns["data"])}


def failure_events(row: AccountRow, limit: int, lock_until: datetime,
                   ) -> tuple[AccountChanges, list[tuple[str, dict[str, Any]]]]:
    """What one more wrong passphrase changes of ``row``, and the events to append."""
    failures = row.failures + 1
    events: list[tuple[str, dict[str, Any]]] = [
        ("people.login_failed", {"actor": row.name, "account": row.name, "failures": failures})]
    if failures < limit:
        return {"failures": failures}, events
    events.append(("people.locked", {"actor": row.name, "account": row.name,
                                     "failures": failures, "until": stamp(lock_until)}))
    return {"failures": 0, "locked_until": lock_until}, events
