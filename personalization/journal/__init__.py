"""The line's journal: what happened to every application, card and blank, durably.

Callers type against :class:`~personalization.journal.port.JournalPort` and get one from
:func:`open_journal`; :data:`Journal` is the SQLite adapter, for code that opens a file.
"""

from __future__ import annotations

from personalization.journal.port import JournalError, JournalPort
from personalization.journal.sqlite import SQLiteJournal

Journal = SQLiteJournal

__all__ = ["Journal", "JournalError", "JournalPort", "SQLiteJournal", "open_journal"]


def open_journal(url: str) -> JournalPort:
    """The journal at ``url``, created and migrated as needed; the scheme picks the adapter
    (``sqlite:///PATH`` in this version)."""
    if url.startswith("sqlite:///"):
        return SQLiteJournal.open(url)
    scheme = url.split(":", 1)[0] if ":" in url else "(none)"
    raise JournalError(f"journal {url!r}: no journal adapter for the scheme {scheme!r}; this "
                       "version keeps its journal in SQLite only (journal.url: sqlite:///PATH)")
