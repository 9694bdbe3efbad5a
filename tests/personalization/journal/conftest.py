"""Every journal adapter under the same tests: a fresh journal per test, opened by URL, and a
backdoor that changes its database outside the port (as a bug or an attacker with the
database could), so the tests can check what the database itself refuses.

PostgreSQL runs as one private cluster for the whole session, started only when a test asks
for it; each test gets a fresh database copied from a migrated template, opened as the role
the lines connect as (so the port tests also check that its grants suffice)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from personalization.journal import JournalPort, open_journal
from tests.support.pg import Refused, SoftwareKeyWrap, TestServer

ADAPTERS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]

__all__ = ["ADAPTERS", "Backdoor", "Refused", "SQLiteBackdoor"]


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


@dataclass
class Target:
    """A fresh journal database of one adapter: its URL and raw access to it."""

    url: str
    backdoor: Backdoor


@pytest.fixture(params=ADAPTERS)
def journal_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """A fresh journal of each adapter (for PostgreSQL, a database dropped afterwards)."""
    if request.param == "sqlite":
        yield Target(f"sqlite:///{tmp_path / 'journal.db'}",
                     SQLiteBackdoor(tmp_path / "journal.db"))
        return
    server: TestServer = request.getfixturevalue("pg_server")
    name = server.fresh()
    yield Target(server.cluster.url(name), server.backdoor(name))
    server.cluster.drop_database(name)


@pytest.fixture()
def journal_url(journal_target: Target) -> str:
    """Where a fresh journal of each adapter lives."""
    return journal_target.url


@pytest.fixture(scope="session")
def key_wrap() -> SoftwareKeyWrap:
    """The software stand-in for the HSM that wraps each batch's data key."""
    return SoftwareKeyWrap()


@pytest.fixture()
def journal(journal_url: str, key_wrap: SoftwareKeyWrap) -> Iterator[JournalPort]:
    """A fresh journal, migrated."""
    with open_journal(journal_url, wrap=key_wrap) as opened:
        yield opened


@pytest.fixture()
def backdoor(journal_target: Target) -> Backdoor:
    """Raw access to the fresh journal's database."""
    return journal_target.backdoor
