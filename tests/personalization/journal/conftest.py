"""Every journal adapter under the same tests: a fresh journal per test, opened by URL, and a
backdoor that changes its database outside the port (as a bug or an attacker with the
database could), so the tests can check what the database itself refuses."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from personalization.journal import JournalPort, open_journal
from personalization.journal.sqlite import sqlite_path

ADAPTERS = ["sqlite"]


class Refused(Exception):  # noqa: N818 - reads as what happened
    """The database refused a backdoor statement; the message is the database's."""


class Backdoor(Protocol):
    """Raw access to an adapter's database, for tests only."""

    def execute(self, sql: str) -> None:
        """Run one statement and commit (:class:`Refused` when the database refuses)."""

    def edit_event(self, seq: int, data: str) -> None:
        """Rewrite one event's data, getting around the append-only rule first."""

    def set_schema_version(self, version: int) -> None:
        """Pretend a newer (or older) cardline migrated this database."""


@dataclass
class SQLiteBackdoor:
    """The SQLite file, through a connection of its own."""

    path: Path

    def execute(self, sql: str) -> None:
        """Run one statement and commit (:class:`Refused` when SQLite refuses)."""
        db = sqlite3.connect(self.path)
        try:
            db.execute(sql)
            db.commit()
        except sqlite3.DatabaseError as exc:
            raise Refused(str(exc)) from exc
        finally:
            db.close()

    def edit_event(self, seq: int, data: str) -> None:
        """Drop the append-only trigger and rewrite the event."""
        self.execute("DROP TRIGGER events_append_only_update")
        self.execute(f"UPDATE events SET data = '{data}' WHERE seq = {seq}")  # noqa: S608 - test values

    def set_schema_version(self, version: int) -> None:
        """``PRAGMA user_version`` is where the adapter keeps it."""
        self.execute(f"PRAGMA user_version = {version}")


@pytest.fixture(params=ADAPTERS)
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh journal of each adapter lives."""
    assert request.param == "sqlite"
    return f"sqlite:///{tmp_path / 'journal.db'}"


@pytest.fixture()
def journal(journal_url: str) -> Iterator[JournalPort]:
    """A fresh journal, migrated."""
    with open_journal(journal_url) as opened:
        yield opened


@pytest.fixture()
def backdoor(journal_url: str) -> Backdoor:
    """Raw access to the fresh journal's database."""
    return SQLiteBackdoor(sqlite_path(journal_url))
