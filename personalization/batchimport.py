"""A batch from an applications file at national scale: records checked on every core and
written to the journal in chunks, each one short transaction, so memory stays flat and a line
running on the same journal keeps its write lock within reach.

All-or-nothing for the operator: the batch is ``importing`` — never run, never finished —
until the whole file is in (:meth:`~personalization.journal.port.JournalPort.finish_import`).
An import that is killed leaves that marked, partial batch: importing the same file under the
same name carries on after the last chunk written (the file's bytes up to there must be the
same, by SHA-256), and ``discard_import`` removes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from personalization.applications.intake import Inspected, IntakeRules, InvalidRecord, screen
from personalization.applications.stream import (
    InspectPool,
    Mark,
    RecordFile,
    SourceChangedError,
    default_workers,
)
from personalization.errors import PersonalizationError
from personalization.journal.port import ImportState, JournalPort
from personalization.prep import document_number

CHUNK_RECORDS = 128  # records per write transaction: ~3 MB of portraits and text
CHUNK_SECONDS = 2.0  # and at least this often, so a killed import loses little work
PROGRESS_SECONDS = 0.25  # at most this often to ``on_progress`` (and always at the end)

Clock = Callable[[], float]


class IntakeError(PersonalizationError):
    """An import cannot go on as asked; the message says what to do instead."""


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a run over a file has gone: records checked in this run, bytes of the file
    behind it (a resumed import starts past 0), and seconds."""

    records: int
    done_bytes: int
    total_bytes: int
    start_bytes: int
    seconds: float

    @property
    def records_per_s(self) -> float:
        """Records checked per second in this run."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def fraction(self) -> float:
        """Share of the file behind us, 0 to 1."""
        return min(1.0, self.done_bytes / self.total_bytes) if self.total_bytes else 1.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at this run's pace through the file's bytes; None before any."""
        read = self.done_bytes - self.start_bytes
        if read <= 0 or self.seconds <= 0:
            return None
        return max(0.0, self.total_bytes - self.done_bytes) * self.seconds / read

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of progress (``--json``)."""
        eta = self.eta_s
        return {"records": self.records, "seconds": round(self.seconds, 3),
                "records_per_s": round(self.records_per_s, 1),
                "fraction": round(self.fraction, 4),
                "eta_s": None if eta is None else round(eta, 1),
                "bytes": self.done_bytes, "total_bytes": self.total_bytes}


OnProgress = Callable[[Progress], None]


class _Meter:
    """Progress of one run, handed to ``on_progress`` at most every ``PROGRESS_SECONDS``."""

    def __init__(self, total: int, start: int, on_progress: OnProgress | None,
                 clock: Clock) -> None:
        self._total, self._start, self._call, self._clock = total, start, on_progress, clock
        self._began = self._last = clock()
        self.records, self._done = 0, start

    def tick(self, end: int) -> None:
        self.records += 1
        self._done = end
        if self._call is not None and self._clock() - self._last >= PROGRESS_SECONDS:
            self._last = self._clock()
            self._call(self.progress())

    def progress(self) -> Progress:
        return Progress(self.records, self._done, max(self._total, self._done), self._start,
                        self._clock() - self._began)

    def done(self) -> Progress:
        final = self.progress()
        if self._call is not None:
            self._call(final)
        return final


@dataclass(frozen=True, slots=True)
class Imported:
    """An import that reached the end of its file: totals over every run of it, this run's
    progress, and the longest write transaction this run held (the lock a line waits for)."""

    name: str
    accepted: int
    quarantined: int
    resumed_from_line: int
    progress: Progress
    chunks: int
    longest_write_ms: float

    def as_dict(self) -> dict[str, Any]:
        """Figures of the import (``batch create --json``)."""
        return {"resumed_from_line": self.resumed_from_line, "chunks": self.chunks,
                "longest_write_ms": round(self.longest_write_ms, 1),
                **self.progress.as_dict()}


@dataclass(slots=True)
class _ChunkWriter:
    """Records gathered into chunks; each chunk checked for repeated values against the ones
    before it and written in one journal transaction."""

    journal: JournalPort
    name: str
    mark: Mark
    clock: Clock
    records: list[Inspected] = field(default_factory=list)
    accepted: int = 0
    quarantined: int = 0
    chunks: int = 0
    longest_s: float = 0.0
    since: float = 0.0

    def add(self, record: Inspected) -> None:
        if not self.records:
            self.since = self.clock()
        self.records.append(record)

    def due(self) -> bool:
        return len(self.records) >= CHUNK_RECORDS or \
            (bool(self.records) and self.clock() - self.since >= CHUNK_SECONDS)

    def write(self, end: Mark) -> None:
        if not self.records:
            return
        keys = [key for record in self.records for _, key in record.keys]
        found = screen(self.records, self.journal.import_seen(self.name, keys))
        valid = [(line, a, document_number(a)) for line, a in found.valid]
        started = self.clock()
        refused = self.journal.import_chunk(self.name, start=self.mark, end=end, valid=valid,
                                            invalid=found.invalid, keys=found.keys)
        self.longest_s = max(self.longest_s, self.clock() - started)
        self.quarantined += len(refused)
        self.accepted += len(valid) + len(found.invalid) - len(refused)
        self.mark, self.records, self.chunks = end, [], self.chunks + 1


def _resume(file: RecordFile, state: ImportState) -> None:
    """Carry on from where an unfinished import of this name stopped, on the same file."""
    again = f"import that file to carry on, or remove it with `cardline batch discard " \
            f"{state.name}`"
    if state.source != str(file.path.resolve()):
        raise IntakeError(f"batch {state.name!r} is an unfinished import of {state.source}: "
                          + again)
    try:
        file.resume(state.mark)
    except SourceChangedError as exc:
        raise IntakeError(f"batch {state.name!r} is an unfinished import of a file whose first "
                          f"{state.mark.offset} bytes differ from this one's: " + again) from exc


def import_file(journal: JournalPort, path: Path, name: str, *, policy: IntakeRules,
                today: date, profile: str, max_attempts: int, workers: int | None = None,
                on_progress: OnProgress | None = None, base: Path | None = None,
                clock: Clock = time.perf_counter) -> Imported:
    """Import ``path`` as batch ``name`` (or carry on with its unfinished import), chunk by
    chunk. ``workers``: processes checking records (default: one per core; 0: this one).

    Raises ``OSError`` when the file cannot be read (before anything is written),
    :class:`IntakeError` when an unfinished import of that name came from another file."""
    source = str(path.resolve())
    count = default_workers() if workers is None else workers
    with RecordFile(path, policy.max_line_bytes) as file:  # an unreadable file starts nothing
        state = journal.begin_import(name, source=source, profile=profile,
                                     max_attempts=max_attempts)
        _resume(file, state)
        writer = _ChunkWriter(journal, name, state.mark, clock)
        with InspectPool(base or path.parent, policy, today, count) as pool:
            meter = _Meter(file.size, state.mark.offset, on_progress, clock)
            for record, end in pool.inspect(file.records()):
                writer.add(record)
                meter.tick(end)
                if writer.due():
                    writer.write(file.mark(record.line, end))
        end_mark = file.mark(file.lines, file.offset)
        writer.write(end_mark)
    while True:
        started = clock()
        finished = journal.finish_import(name, end_mark)
        writer.longest_s = max(writer.longest_s, clock() - started)
        if finished is not None:
            break
    return Imported(name, state.accepted + writer.accepted,
                    state.quarantined + writer.quarantined, state.mark.lines, meter.done(),
                    writer.chunks, writer.longest_s * 1000.0)


@dataclass(frozen=True, slots=True)
class Checked:
    """A file checked without keeping what it holds: how many records are valid, every
    invalid one with its reasons, and the run's progress."""

    valid: int
    invalid: list[InvalidRecord]
    progress: Progress
    # a signed file: the registry's batch id and who signed it (None: accepted unsigned)
    registry_batch: str | None = None
    signer: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """``{"valid": n, "invalid": [...], "progress": {...}, "registry_batch", "signer"}``."""
        return {"valid": self.valid, "invalid": [r.as_dict() for r in self.invalid],
                "progress": self.progress.as_dict(), "registry_batch": self.registry_batch,
                "signer": self.signer}


def check_file(path: Path, policy: IntakeRules, today: date, *, workers: int | None = None,
               on_progress: OnProgress | None = None, base: Path | None = None,
               clock: Clock = time.perf_counter) -> Checked:
    """Check every record of ``path`` on every core; valid applications are counted, not
    kept (the digests of the values that must be unique are: 16 bytes a record)."""
    seen: dict[bytes, int] = {}
    valid, invalid = 0, []
    count = default_workers() if workers is None else workers
    with RecordFile(path, policy.max_line_bytes) as file, \
            InspectPool(base or path.parent, policy, today, count) as pool:
        meter = _Meter(file.size, 0, on_progress, clock)
        for record, end in pool.inspect(file.records()):
            found = screen([record], seen)
            seen.update(found.keys)
            valid += len(found.valid)
            invalid += found.invalid
            meter.tick(end)
    return Checked(valid, invalid, meter.done())
