"""Test helpers for purges: a batch run to its end and closed, and another process's reader."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from personalization.applications.model import Application
from personalization.cardstate import Event, Kind, step
from personalization.journal import SQLiteJournal
from personalization.prep import document_number

HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]


def finished_batch(journal: SQLiteJournal, apps: list[Application], retention: int,
                   name: str = "B1") -> None:
    """Batch ``name`` with one handed-out card per application, closed with ``retention``."""
    journal.create_batch(name, source="apps.jsonl", profile="cccd", max_attempts=2,
                         valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                         invalid=[])
    for index, app in enumerate(apps):
        card = journal.begin_card(name, app.application_id, "s1")
        for kind in HAPPY:
            card = journal.move(card, step(card.machine(2), Event(kind)),
                                chip_serial=f"{name}-CHIP-{index}" if kind is Kind.FED else None)
    assert journal.close_batch(name, retention)


@contextmanager
def reader(path: Path) -> Iterator[None]:
    """Another process's `batch status`: a connection holding a read transaction open."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.execute("SELECT count(*) FROM applications").fetchone()
        yield
    finally:
        db.execute("COMMIT")
        db.close()
