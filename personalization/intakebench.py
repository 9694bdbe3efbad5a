"""Intake figures for ``cardline bench``: a batch imported from an applications file the way
``batch create`` does it, in a child process of its own, measured from outside.

- ``intake_apps_per_s``: records per second through the whole import (read, check, portrait
  re-encoded, journal written) with one worker per core; ``intake_single_core_apps_per_s``:
  the same file with one worker.
- ``intake_peak_mb``: the peak memory of the import — the proportional set size (``Pss`` of
  ``/proc/PID/smaps_rollup``: shared pages split between the processes sharing them) of the
  importing process and its workers together, sampled every 200 ms.
- ``intake_lock_max_ms``: the longest write transaction the import held (its chunk writes and
  its finish, timed by the importer); ``intake_writer_wait_max_ms``: the longest a short write
  of another process (a probe, every 50 ms, on the same journal) waited meanwhile.

The files are made of a few synthesized applicants repeated under fresh ids and ID numbers:
their photos are shared files (drawing thousands of faces would take longer than importing
them), and each record is still read, decoded, cropped, resized and re-encoded on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from personalization.batchimport import import_file
from personalization.journal import Journal
from personalization.profile import load_profile
from personalization.synth import synthesize

TEMPLATES = 200  # distinct synthesized applicants (and photos) the files repeat
SAMPLE_S = 0.2  # reading smaps_rollup costs ~1.5 ms a process: kept well off the CPU
PROBE_S = 0.05


def repeated_file(folder: Path, count: int, seed: int = 2026, templates: int = TEMPLATES,
                  ) -> Path:
    """``count`` valid applications in ``folder/apps-COUNT.jsonl``: ``templates`` synthesized
    ones repeated, each copy with its own application id and ID number (the last six digits,
    the serial, numbered), photos shared."""
    source = folder / "apps.jsonl"
    if not source.exists():
        synthesize(templates, seed, source)
    records = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines()]
    out = folder / f"apps-{count}.jsonl"
    with out.open("w", encoding="utf-8") as handle:
        for index in range(count):
            record = dict(records[index % len(records)])
            record["application_id"] = f"BENCH-{index:08d}"
            record["personal_id"] = record["personal_id"][:6] + f"{index:06d}"
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return out


@dataclass(frozen=True, slots=True)
class ImportRun:
    """One measured import."""

    records: int
    seconds: float
    peak_mb: float
    lock_max_ms: float
    writer_wait_max_ms: float
    accepted: int


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as f:
                    todo += [int(child) for child in f.read().split()]
        except OSError:
            continue  # gone meanwhile
    return found


def _pss_mb(pid: int) -> float:
    total = 0
    for member in _descendants(pid):
        try:
            with open(f"/proc/{member}/smaps_rollup", encoding="ascii") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("Pss:")), 0)
        except OSError:
            continue
    return total / 1024


class _Watch(threading.Thread):
    """Samples a process tree's memory, and times a probe's short writes to the journal."""

    def __init__(self, pid: int, journal: Path) -> None:
        super().__init__(daemon=True)
        self.pid, self.journal = pid, journal
        self.peak_mb = self.wait_max_ms = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        with Journal(self.journal) as probe:
            next_probe = time.monotonic()
            while not self.done.is_set():
                self.peak_mb = max(self.peak_mb, _pss_mb(self.pid))
                if time.monotonic() >= next_probe:
                    started = time.perf_counter()
                    probe.note(None, "bench.probe")
                    self.wait_max_ms = max(self.wait_max_ms,
                                           (time.perf_counter() - started) * 1000)
                    next_probe = time.monotonic() + PROBE_S
                self.done.wait(SAMPLE_S)


def measure_import(path: Path, journal: Path, profile: str, workers: int | None, *,
                   watch: bool = True) -> ImportRun:
    """Import ``path`` into ``journal`` in a child process (``workers``: None for one per
    core), its memory and the journal's write lock watched unless ``watch`` is False (a
    throughput run: the watch's own reads and writes would take CPU from the import)."""
    Journal(journal).close()  # created and migrated before the watch opens it
    command = [sys.executable, "-m", "personalization.intakebench", str(path), str(journal),
               profile, str(-1 if workers is None else workers), "bench"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)  # noqa: S603 - our own module
    watcher = _Watch(child.pid, journal)
    if watch:
        watcher.start()
    out, _ = child.communicate()
    watcher.done.set()
    if watch:
        watcher.join()
    if child.returncode != 0:
        raise RuntimeError(f"the measured import failed (exit {child.returncode})")
    figures: dict[str, Any] = json.loads(out)
    return ImportRun(figures["records"], figures["seconds"], watcher.peak_mb,
                     figures["longest_write_ms"], watcher.wait_max_ms, figures["accepted"])


@contextmanager
def importing(path: Path, journal: Path, profile: str, name: str) -> Iterator[Callable[[], int]]:
    """An import of ``path`` as batch ``name`` running in a child process (one worker per
    core) from its first chunk written on; gives a function that says how many records are
    in so far. The import is stopped when the block ends."""
    Journal(journal).close()
    command = [sys.executable, "-m", "personalization.intakebench", str(path), str(journal),
               profile, "-1", name]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603 - our own module
    try:
        with Journal(journal) as watch:
            def written() -> int:
                if name not in {b.name for b in watch.batches()}:
                    return 0
                info = watch.batch(name)
                return sum(info.applications.values()) + info.quarantined
            while written() == 0 and child.poll() is None:
                time.sleep(0.1)
            yield written
    finally:
        child.kill()
        child.wait()


def _child(path: Path, journal: Path, profile: str, workers: int, name: str) -> dict[str, Any]:
    with Journal(journal) as store:
        imported = import_file(store, path, name, policy=load_profile(profile).intake_rules(),
                               today=date.today(), profile=profile, max_attempts=3,
                               workers=None if workers < 0 else workers)
    return {**imported.as_dict(), "accepted": imported.accepted}


if __name__ == "__main__":
    _path, _journal, _profile, _workers, _name = sys.argv[1:6]
    print(json.dumps(_child(Path(_path), Path(_journal), _profile, int(_workers), _name)))
