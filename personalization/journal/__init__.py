"""The line's journal: what happened to every application, card and blank, durably.

Callers type against :class:`~personalization.journal.port.JournalPort` and get one from
:func:`open_journal`; :data:`Journal` is the SQLite adapter, for code that opens a file.
"""

from __future__ import annotations

import re

from personalization.journal.port import DataKeyWrap, JournalError, JournalPort
from personalization.journal.sqlite import SQLiteJournal

Journal = SQLiteJournal

__all__ = ["DataKeyWrap", "Journal", "JournalError", "JournalPort", "SQLiteJournal",
           "open_journal"]


def open_journal(url: str, *, wrap: DataKeyWrap | None = None) -> JournalPort:
    """The journal at ``url``, created and migrated as needed; the scheme picks the adapter:
    ``sqlite:///PATH`` or ``postgresql://…`` (``postgres://`` too).

    ``wrap`` wraps the per-batch data keys under which PostgreSQL keeps personal fields (the
    HSM in production: one wrapping key per batch, destroyed at the purge). Without it a
    PostgreSQL journal still opens for everything that needs no personal field (status, run
    control, events, cards, reports), and refuses to create a batch, read an application or
    purge. SQLite needs none: its purge overwrites the data in place.
    """
    if url.startswith("sqlite:///"):
        return SQLiteJournal.open(url)
    if url.startswith(("postgresql://", "postgres://")):
        from personalization.journal.postgres import PostgresJournal  # psycopg only when used

        return PostgresJournal.open(url, wrap=wrap)
    scheme = url.split(":", 1)[0] if ":" in url else "(none)"
    shown = re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)  # no password in the message
    raise JournalError(f"journal {shown!r}: no journal adapter for the scheme {scheme!r}; this "
                       "version keeps its journal in SQLite (journal.url: sqlite:///PATH) or "
                       "PostgreSQL (postgresql://…)")
