"""Intake on every core, in bounded memory: the records of a JSON Lines file checked by a pool
of worker processes and handed back in file order, with where in the file each one ends.

- **Workers**: one process per core this process may run on (``sched_getaffinity``); each
  checks whole records (:func:`~personalization.applications.intake.inspect_line`: JSON,
  fields, the photo read, decoded, cropped, resized and re-encoded). The parent only reads
  lines and puts results back in order.
- **Bounded**: at most ``WINDOW_PER_WORKER`` tasks per worker are in flight, each of at most
  ``TASK_RECORDS`` records and ``TASK_BYTES`` of input, so memory does not grow with the file.
- **Isolation**: a record that kills its worker (the kernel's OOM killer, a crash in a native
  decoder) is checked again on its own in a fresh pool; if it kills that one too it is
  refused as "worker process died", and every other record is still checked.
- **Marks**: :class:`Mark` says how far into the file a run of records goes — the last line,
  the byte after it, and the SHA-256 of every byte before (FIPS 180-4) — so an interrupted
  import resumes only on a file whose bytes so far are the same.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from personalization.applications.intake import (
    Inspected,
    IntakeRules,
    failed_record,
    inspect_line,
    records,
)

TASK_RECORDS = 8  # per task sent to a worker: enough to amortize the pickling round trip
TASK_BYTES = 8 * 1024 * 1024  # of input lines per task (inline photos make long lines)
WINDOW_PER_WORKER = 3  # tasks in flight per worker: one running, the next ones queued
ORPHAN_POLL_S = 0.5  # a worker whose parent died notices within this
_HASH_READ = 1 << 20

Line = tuple[int, bytes | None]  # (line number, bytes, or None for a line over the limit)
Check = Callable[[list[Line]], list["Inspected"]]


def default_workers() -> int:
    """The cores this process may run on (``os.process_cpu_count`` from Python 3.13)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class SourceChangedError(ValueError):
    """The file's first bytes are not those an interrupted import read: not the same file."""


@dataclass(frozen=True, slots=True)
class Mark:
    """How far into a file: the last line read, the byte after it, and the SHA-256 (hex) of
    every byte before that byte."""

    lines: int
    offset: int
    digest: str


START = Mark(0, 0, hashlib.sha256().hexdigest())


# -- the workers' side ---------------------------------------------------------------------

_task_context: tuple[Path, IntakeRules, date] | None = None


def _start_worker(base_dir: Path, policy: IntakeRules, today: date, parent: int) -> None:
    global _task_context  # one per worker process, set once at its start
    _task_context = (base_dir, policy, today)
    # The parent decides when intake stops (Ctrl-C reaches the whole process group): it
    # cancels the pool itself, so a worker does not die mid-record with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_orphan_watch, args=(parent,), daemon=True).start()


def _orphan_watch(parent: int) -> None:
    """End this worker once its parent is gone (killed, even by SIGKILL): the kernel gives an
    orphan a new parent, and nobody would ever read what it checks."""
    while os.getppid() == parent:
        time.sleep(ORPHAN_POLL_S)
    os._exit(1)


def _check_task(lines: list[Line]) -> list[Inspected]:
    """What a worker runs: each record of the task checked on its own."""
    if _task_context is None:
        raise RuntimeError("worker started without its intake context")
    base_dir, policy, today = _task_context
    return [inspect_line(number, line, base_dir, policy, today) for number, line in lines]


def _context() -> multiprocessing.context.BaseContext:
    """``fork`` where there is one (Linux, the line's platform): workers share the modules the
    parent imported (copy-on-write), so they start at once and run no main module again
    (``spawn`` and ``forkserver`` re-import the parent's ``__main__`` in every worker). The
    pool forks all its workers at its first task; they take no lock of the parent's (no
    journal, no console, no logging)."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


# -- the parent's side ---------------------------------------------------------------------

Task = list[tuple[int, bytes | None, int]]  # (line number, bytes, end offset)
_Pending = tuple["Future[list[Inspected]]", Task, ProcessPoolExecutor]


class InspectPool:
    """Worker processes checking records; ``workers=0`` checks them in this process (the
    reference path the pool is held to in tests). A context manager: leaving it stops the
    workers, cancelling what they had not started."""

    def __init__(self, base_dir: Path, policy: IntakeRules, today: date, workers: int,
                 check: Check = _check_task) -> None:
        self._args = (base_dir, policy, today)
        self.workers = workers
        self._check = check
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(self.workers, mp_context=_context(),
                                                 initializer=_start_worker,
                                                 initargs=(*self._args, os.getpid()))
        return self._executor

    def _renew(self, broken: ProcessPoolExecutor) -> None:
        """A fresh pool after ``broken`` lost a worker (once, however many tasks saw it)."""
        if self._executor is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def inspect(self, items: Iterable[tuple[int, bytes | None, int]],
                ) -> Iterator[tuple[Inspected, int]]:
        """Each record checked, with its end offset, in the order of ``items``."""
        if self.workers == 0:
            base_dir, policy, today = self._args
            for number, line, end in items:
                yield inspect_line(number, line, base_dir, policy, today), end
            return
        pending: deque[_Pending] = deque()
        for task in _tasks(items):
            pool = self._pool()
            pending.append((pool.submit(self._check, [(n, b) for n, b, _ in task]), task, pool))
            while len(pending) >= self.workers * WINDOW_PER_WORKER:
                yield from self._results(pending.popleft())
        while pending:
            yield from self._results(pending.popleft())

    def _results(self, item: _Pending) -> Iterator[tuple[Inspected, int]]:
        future, task, pool = item
        try:
            checked = future.result()
        except BrokenProcessPool:
            self._renew(pool)
            checked = [self._alone(number, line) for number, line, _ in task]
        except Exception:  # the task itself failed (its results could not come back): retry
            checked = [self._alone(number, line) for number, line, _ in task]
        yield from zip(checked, (end for _, _, end in task), strict=True)

    def _alone(self, number: int, line: bytes | None) -> Inspected:
        """One record in a task of its own, after its task failed with others in it."""
        pool = self._pool()
        try:
            return pool.submit(self._check, [(number, line)]).result()[0]
        except BrokenProcessPool:
            self._renew(pool)
            return failed_record(number, "worker process died")
        except Exception as exc:
            return failed_record(number, exc.__class__.__name__)


def _tasks(items: Iterable[tuple[int, bytes | None, int]]) -> Iterator[Task]:
    task: Task = []
    size = 0
    for item in items:
        task.append(item)
        size += len(item[1] or b"")
        if len(task) >= TASK_RECORDS or size >= TASK_BYTES:
            yield task
            task, size = [], 0
    if task:
        yield task


class RecordFile:
    """A JSON Lines file read from the start or from a mark (:meth:`resume`): its records
    numbered as in the whole file, and the mark at any record's end. A context manager that
    opens the file (``OSError`` when it cannot) and closes it."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self._limit = limit
        self.start = START
        self._handle: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self._hashed = 0
        self.size = 0
        self.lines = 0  # the number of the last record read

    def __enter__(self) -> Self:
        self._handle = self.path.open("rb")
        self.size = os.fstat(self._handle.fileno()).st_size
        return self

    def resume(self, mark: Mark) -> None:
        """Read on from ``mark``; :class:`SourceChangedError` when the file's bytes before it
        are not the ones the mark was taken on."""
        self._hash_to(mark.offset)
        if self._hashed != mark.offset or self._hash.hexdigest() != mark.digest:
            raise SourceChangedError(f"the first {mark.offset} bytes differ from those read "
                                     "before")
        self.start, self.lines = mark, mark.lines
        if self._handle is not None:
            self._handle.seek(mark.offset)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._handle is not None:
            self._handle.close()

    def records(self) -> Iterator[tuple[int, bytes | None, int]]:
        """``(line number, bytes or None, end offset)`` from the mark on."""
        if self._handle is None:
            raise ValueError("the file is not open")
        for number, line, end in records(self._handle, self._limit):
            self.lines = self.start.lines + number
            yield self.lines, line, end

    @property
    def offset(self) -> int:
        """Where reading has got to (the end of the file once :meth:`records` is done)."""
        if self._handle is None:
            raise ValueError("the file is not open")
        return self._handle.tell()

    def mark(self, lines: int, offset: int) -> Mark:
        """The mark at ``offset`` (the end of line ``lines``), hashing what is new since the
        last mark (read again with ``pread``: the page cache still holds it)."""
        self._hash_to(offset)
        return Mark(lines, offset, self._hash.copy().hexdigest())

    def _hash_to(self, offset: int) -> None:
        if self._handle is None:
            raise ValueError("the file is not open")
        while self._hashed < offset:
            data = os.pread(self._handle.fileno(), min(_HASH_READ, offset - self._hashed),
                            self._hashed)
            if not data:
                return
            self._hash.update(data)
            self._hashed += len(data)
