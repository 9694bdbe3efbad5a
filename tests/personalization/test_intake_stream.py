"""Intake on every core and in chunks: the pool gives the reference path's results in file
order, a bad record (even one that kills its worker) stops nothing else, and a chunked import
is runnable only once the whole file is in, resumes where it stopped, and keeps each write
short."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from personalization import batchimport
from personalization.applications import stream
from personalization.applications.intake import (
    Inspected,
    IntakeRules,
    read_applications,
)
from personalization.applications.stream import InspectPool, Line, RecordFile
from personalization.batchimport import IntakeError, Progress, check_file, import_file
from personalization.intakebench import repeated_file
from personalization.journal import JournalError, SQLiteJournal

TODAY = date(2026, 11, 24)


def _lines(records: list[object]) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n"
                    for r in records)


@pytest.fixture()
def mixed(tmp_path: Path, synth_dir: Path) -> Path:
    """Twelve good records with bad ones among them: a photo that is not one, broken JSON,
    a line over the limit, a record repeated whole and one repeating a personal id."""
    good = [json.loads(line) for line in
            (synth_dir / "apps.jsonl").read_text(encoding="utf-8").splitlines()]
    for record in good:  # photos by relative path, inside the folder of the file
        name = Path(record["photo"]["path"]).name
        (tmp_path / name).write_bytes((synth_dir / record["photo"]["path"]).read_bytes())
        record["photo"] = name
    (tmp_path / "not-a-photo.jpg").write_bytes(b"hello")
    bad_photo = dict(good[0], application_id="BAD-PHOTO", personal_id="001099000001",
                     photo="not-a-photo.jpg")
    records: list[object] = [*good[:5], bad_photo, b"{not json", b"[" + b" " * 5000 + b"]",
                             *good[5:], dict(good[2]),
                             dict(good[3], application_id="AGAIN-3")]
    path = tmp_path / "apps.jsonl"
    path.write_bytes(_lines(records))
    return path


def _inspect(path: Path, policy: IntakeRules, workers: int,
             check: stream.Check = stream._check_task) -> list[Inspected]:
    with RecordFile(path, policy.max_line_bytes) as file, \
            InspectPool(path.parent, policy, TODAY, workers, check) as pool:
        return [record for record, _ in pool.inspect(file.records())]


def test_the_pool_gives_the_reference_results_in_file_order(mixed: Path,
                                                            policy: IntakeRules) -> None:
    """Two worker processes give exactly what checking in this process gives, line by line."""
    policy = IntakeRules(photo=policy.photo, max_line_bytes=4096)
    reference = _inspect(mixed, policy, 0)
    pooled = _inspect(mixed, policy, 2)
    assert pooled == reference
    assert [r.line for r in pooled] == list(range(1, 18))
    assert [r.line for r in pooled if r.application is None] == [6, 7, 8]


def test_check_file_finds_what_read_applications_finds(mixed: Path,
                                                       policy: IntakeRules) -> None:
    """The streaming check counts the same valid records and lists the same invalid ones
    (duplicates on their later line) as reading the whole file in this process."""
    policy = IntakeRules(photo=policy.photo, max_line_bytes=4096)
    whole = read_applications(mixed, policy, TODAY)
    checked = check_file(mixed, policy, TODAY, workers=2)
    assert checked.valid == len(whole.valid) == 12
    assert checked.invalid == whole.invalid
    assert [(r.line, r.errors[-1].reason) for r in checked.invalid][-2:] == [
        (16, "duplicate of line 3"), (17, "duplicate of line 4")]


def _dies_on_line_3(lines: list[Line]) -> list[Inspected]:
    """A worker's task that kills its process when it holds line 3 (as an OOM kill would)."""
    if any(number == 3 for number, _ in lines):
        os._exit(3)
    return stream._check_task(lines)


def test_a_record_that_kills_its_worker_stops_nothing_else(mixed: Path,
                                                           policy: IntakeRules) -> None:
    """The record whose worker dies is refused as such; every other record is checked as
    usual, in order, in fresh workers."""
    policy = IntakeRules(photo=policy.photo, max_line_bytes=4096)
    reference = _inspect(mixed, policy, 0)
    pooled = _inspect(mixed, policy, 2, _dies_on_line_3)
    assert [r.line for r in pooled] == list(range(1, 18))
    assert pooled[2].application is None
    assert [e.reason for e in pooled[2].errors] == [
        "record could not be checked (worker process died)"]
    assert pooled[:2] + pooled[3:] == reference[:2] + reference[3:]


# -- chunked import into the journal ---------------------------------------------------------


@pytest.fixture()
def journal(tmp_path: Path) -> Iterator[SQLiteJournal]:
    """A fresh journal."""
    with SQLiteJournal(tmp_path / "journal.db") as opened:
        yield opened


@pytest.fixture()
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of four records, so a dozen records take several transactions."""
    monkeypatch.setattr(batchimport, "CHUNK_RECORDS", 4)


def _import(journal: SQLiteJournal, path: Path, policy: IntakeRules, name: str = "B1",
            **kwargs: Any) -> batchimport.Imported:
    return import_file(journal, path, name, policy=policy, today=TODAY, profile="cccd",
                       max_attempts=3, **kwargs)


@pytest.mark.usefixtures("small_chunks")
def test_a_chunked_import_is_runnable_only_once_complete(
        journal: SQLiteJournal, mixed: Path, policy: IntakeRules,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Between chunks the batch is 'importing': not finished, no card can start, it cannot
    close; at the end it is open with every valid record queued in file order."""
    seen: list[tuple[str, bool]] = []
    real = SQLiteJournal.import_chunk

    def watched(self: SQLiteJournal, name: str, **kwargs: Any) -> Any:
        refused = real(self, name, **kwargs)
        info = self.batch(name)
        seen.append((info.state, info.finished))
        with pytest.raises(JournalError, match="still being imported"):
            self.begin_card(name, self.pending(name)[0], "station-1")
        assert self.close_batch(name, 0) is False
        return refused

    monkeypatch.setattr(SQLiteJournal, "import_chunk", watched)
    policy = IntakeRules(photo=policy.photo, max_line_bytes=4096)
    imported = _import(journal, mixed, policy, workers=2)
    assert len(seen) == 5 and set(seen) == {("importing", False)}
    info = journal.batch("B1")
    assert (info.state, info.finished, imported.accepted, imported.quarantined) == (
        "open", False, 12, 5)
    lines = [row["line"] for row in journal.applications("B1")]
    assert lines == sorted(lines) and len(lines) == 12
    assert [q["line"] for q in journal.quarantined("B1")] == [6, 7, 8, 16, 17]
    kinds = [e["kind"] for e in journal.events("B1")]
    assert kinds == ["batch.importing", "batch.created"]


class _Killed(Exception):  # noqa: N818 - reads as what happened
    """Stands for the process dying between two chunks."""


@pytest.mark.usefixtures("small_chunks")
def test_an_interrupted_import_resumes_after_its_last_chunk(
        journal: SQLiteJournal, mixed: Path, policy: IntakeRules,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An import that stops after two chunks carries on from line 8 when run again: nothing
    twice, and a repeat of a value imported before the stop is still found."""
    policy = IntakeRules(photo=policy.photo, max_line_bytes=4096)
    real = SQLiteJournal.import_chunk
    calls = [0]

    def dies_third(self: SQLiteJournal, name: str, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            raise _Killed
        return real(self, name, **kwargs)

    monkeypatch.setattr(SQLiteJournal, "import_chunk", dies_third)
    with pytest.raises(_Killed):
        _import(journal, mixed, policy, workers=0)
    assert journal.batch("B1").state == "importing"
    monkeypatch.setattr(SQLiteJournal, "import_chunk", real)
    imported = _import(journal, mixed, policy, workers=2)
    assert imported.resumed_from_line == 8
    assert (imported.accepted, imported.quarantined) == (12, 5)
    assert [q["line"] for q in journal.quarantined("B1")] == [6, 7, 8, 16, 17]
    assert journal.quarantined("B1")[-1]["errors"][-1]["reason"] == "duplicate of line 4"


def test_a_different_file_does_not_resume_an_import(journal: SQLiteJournal, mixed: Path,
                                                    policy: IntakeRules) -> None:
    """Another path, or the same path whose first bytes changed, is refused with the way
    out; discarding the unfinished import removes all it wrote."""
    policy = IntakeRules(photo=policy.photo, max_line_bytes=4096)
    journal.begin_import("B1", source=str(mixed.resolve()), profile="cccd", max_attempts=3)
    other = mixed.with_name("other.jsonl")
    other.write_bytes(mixed.read_bytes())
    with pytest.raises(IntakeError, match=r"unfinished import of .*batch discard B1"):
        _import(journal, other, policy, workers=0)
    state = journal.begin_import("B1", source=str(mixed.resolve()), profile="cccd",
                                 max_attempts=3)
    journal.import_chunk("B1", start=state.mark, end=stream.Mark(1, 10, "0" * 64), valid=[],
                         invalid=[], keys={})
    with pytest.raises(IntakeError, match="first 10 bytes differ"):
        _import(journal, mixed, policy, workers=0)
    assert journal.discard_import("B1") == 0
    with pytest.raises(JournalError, match="no batch named"):
        journal.batch("B1")


def test_a_complete_batch_is_neither_resumed_nor_discarded(journal: SQLiteJournal,
                                                           mixed: Path,
                                                           policy: IntakeRules) -> None:
    """Importing into a finished batch's name is BatchExistsError; discarding it is refused."""
    policy = IntakeRules(photo=policy.photo, max_line_bytes=4096)
    _import(journal, mixed, policy, workers=0)
    with pytest.raises(JournalError, match="already exists"):
        _import(journal, mixed, policy, workers=0)
    with pytest.raises(JournalError, match="not an unfinished import"):
        journal.discard_import("B1")
    assert journal.batch("B1").applications["pending"] == 12


def test_progress_reaches_the_end_with_a_rate(journal: SQLiteJournal, mixed: Path,
                                              policy: IntakeRules,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress comes in order, ends at the whole file with records/s and no time left."""
    monkeypatch.setattr(batchimport, "PROGRESS_SECONDS", 0.0)
    policy = IntakeRules(photo=policy.photo, max_line_bytes=4096)
    seen: list[Progress] = []
    _import(journal, mixed, policy, workers=2, on_progress=seen.append)
    assert [p.records for p in seen][:-1] == list(range(1, 18))
    final = seen[-1]
    assert (final.records, final.fraction, final.eta_s) == (17, 1.0, 0.0)
    assert final.records_per_s > 0 and final.as_dict()["records_per_s"] > 0


@pytest.mark.slow
def test_the_journal_stays_writable_during_an_import(tmp_path: Path,
                                                     policy: IntakeRules) -> None:
    """While 600 records are imported, a short write from another connection never waits
    long: each chunk is its own short transaction (a generous bound for a shared machine)."""
    path = repeated_file(tmp_path, 600, templates=30)
    waits: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with SQLiteJournal(tmp_path / "journal.db") as other:
            while not done.is_set():
                started = time.perf_counter()
                other.note(None, "test.probe")
                waits.append(time.perf_counter() - started)
                time.sleep(0.02)

    with SQLiteJournal(tmp_path / "journal.db") as journal:
        watcher = threading.Thread(target=probe)
        watcher.start()
        try:
            imported = _import(journal, path, policy, workers=2)
        finally:
            done.set()
            watcher.join()
    assert imported.accepted == 600 and imported.chunks >= 3
    assert imported.longest_write_ms < 2000
    assert len(waits) > 20 and max(waits) < 2.0, max(waits)
