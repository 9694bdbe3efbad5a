"""The purge against a concurrent reader: it checks the checkpoint, reports itself incomplete
while another connection's read holds the log, leaves the batch due, and a later purge
finishes it so that no synthetic name, birth date or address is left in the file or its log
(the personal ID stays, as the holder of the card: the key of the rule of one current card
per person, issue #16 §2); journal files and their folder are owner-only."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.journal import SQLiteJournal
from personalization.journal.port import PurgeIncompleteError
from personalization.profile import load_profile
from tests.personalization.journal.closing import finished_batch, reader


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid][:3]


@pytest.fixture()
def journal(tmp_path: Path) -> Iterator[SQLiteJournal]:
    """A fresh journal file in a folder of its own."""
    with SQLiteJournal(tmp_path / "line" / "journal.db") as opened:
        yield opened


def _personal_values(apps: list[Application]) -> list[bytes]:
    return [v.encode("utf-8") for a in apps
            for v in (a.full_name, a.date_of_birth.isoformat(), a.place_of_residence,
                      a.father_name)]


def _journal_bytes(path: Path) -> bytes:
    files = (path, path.with_name(path.name + "-wal"))
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_purge_with_a_reader_open_is_incomplete_then_finished(
        journal: SQLiteJournal, apps: list[Application]) -> None:
    """While a reader holds the log the purge says incomplete and the batch stays unpurged;
    once it lets go, a purge of what is due finishes and no name, birth date or address is
    left in db or WAL."""
    finished_batch(journal, apps, retention=30)
    with reader(journal.path), pytest.raises(PurgeIncompleteError) as info:
        journal.purge("B1", wait_s=0.3)
    assert info.value.pending == ["B1"] and "incomplete" in str(info.value)
    assert journal.batch("B1").purged_at is None
    assert journal.purge_due(wait_s=0.3) == []  # retention not run out: not due yet…
    assert "batch.purged" not in [e["kind"] for e in journal.events("B1")]
    journal.purge("B1", wait_s=5)
    assert journal.batch("B1").purged_at is not None
    raw = _journal_bytes(journal.path)
    assert not [v for v in _personal_values(apps) if v in raw]


def test_closing_with_retention_zero_under_a_reader_stays_due(
        journal: SQLiteJournal, apps: list[Application]) -> None:
    """Retention 0 and a reader open: the close raises incomplete, the batch is closed but not
    purged, and purge_due finishes it once the reader is gone."""
    journal.purge_wait_s = 0.3
    with reader(journal.path), pytest.raises(PurgeIncompleteError):
        finished_batch(journal, apps, retention=0)
    assert journal.batch("B1").state == "closed" and journal.batch("B1").purged_at is None
    assert journal.purge_due(wait_s=5) == ["B1"]
    assert not [v for v in _personal_values(apps) if v in _journal_bytes(journal.path)]


def test_journal_files_and_folder_are_owner_only(journal: SQLiteJournal,
                                                 apps: list[Application]) -> None:
    """After opening and writing, the db, its WAL and shared-memory files are 0600 and their
    folder 0700, whatever the umask."""
    finished_batch(journal, apps, retention=30)
    reader = sqlite3.connect(journal.path)  # keeps the WAL and shm files in place
    try:
        reader.execute("SELECT count(*) FROM batches").fetchone()
        for suffix in ("", "-wal", "-shm"):
            mode = stat.S_IMODE(journal.path.with_name(journal.path.name + suffix).stat().st_mode)
            assert mode == 0o600, (suffix, oct(mode))
        assert stat.S_IMODE(journal.path.parent.stat().st_mode) == 0o700
    finally:
        reader.close()
