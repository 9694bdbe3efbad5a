"""The journal port: the adapter is chosen by URL, and only the adapter knows its database."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from personalization.journal import JournalError, SQLiteJournal, open_journal

ROOT = Path(__file__).resolve().parents[3]
SQLITE_ADAPTERS = {"personalization/journal/sqlite.py", "common/sqlite.py",
                   "hsm/inventory.py"}
# pg_inventory: the key inventory lives in the journal's database and migrations, so it sits
# next to the journal's adapter (hsm/ stays free of psycopg and of the journal's schema)
POSTGRES_ADAPTERS = {"personalization/journal/postgres.py",
                     "personalization/journal/pgcluster.py",
                     "personalization/journal/pg_inventory.py"}


def test_a_sqlite_url_opens_the_sqlite_adapter(tmp_path: Path) -> None:
    """``sqlite:///PATH`` opens (and creates) the journal file through the SQLite adapter."""
    with open_journal(f"sqlite:///{tmp_path / 'j.db'}") as journal:
        assert isinstance(journal, SQLiteJournal)
        assert journal.url == f"sqlite:///{tmp_path / 'j.db'}"
    assert (tmp_path / "j.db").is_file()


def test_another_scheme_is_a_clear_error_naming_the_url() -> None:
    """A URL no adapter serves is refused with the URL (without its password) and what this
    version accepts."""
    with pytest.raises(JournalError, match=r"mysql://an:\*\*\*@db/line.*sqlite:///PATH.*"
                                           r"postgresql://") as refused:
        open_journal("mysql://an:secret-pw@db/line")
    assert "secret-pw" not in str(refused.value)


def test_only_the_adapters_import_sqlite3() -> None:
    """No module outside the SQLite adapters imports sqlite3 (PRAGMAs and placeholders stay
    there too)."""
    users = set()
    for package in ("applets", "hsm", "printers", "qa", "personalization"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(name.split(".")[0] == "sqlite3" for name in names):
                    users.add(str(path.relative_to(ROOT)))
    assert users <= SQLITE_ADAPTERS, sorted(users - SQLITE_ADAPTERS)


def test_only_the_postgresql_adapter_imports_psycopg() -> None:
    """psycopg and its pool are imported by the PostgreSQL adapter, its key inventory and the
    cluster helper only."""
    users = set()
    for package in ("common", "applets", "hsm", "printers", "qa", "personalization"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(name.split(".")[0] in ("psycopg", "psycopg_pool") for name in names):
                    users.add(str(path.relative_to(ROOT)))
    assert users <= POSTGRES_ADAPTERS, sorted(users - POSTGRES_ADAPTERS)


def test_one_controller_at_a_time(tmp_path: Path) -> None:
    """While one controller holds the line, a second is refused at once; then it may go."""
    with SQLiteJournal(tmp_path / "j.db") as first, SQLiteJournal(tmp_path / "j.db") as second:
        with first.controller_lock("line-1"), \
                pytest.raises(JournalError, match="another controller"), \
                second.controller_lock("line-1"):
            pass
        with first.controller_lock("line-2"):  # another line on the same journal goes on
            pass
        with second.controller_lock("line-1"):
            pass
