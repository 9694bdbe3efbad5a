"""``cardline batch create`` killed with SIGKILL half-way: what it leaves is a batch marked
'importing' that nothing runs, which the same command finishes or ``batch discard`` removes,
and no worker process outlives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from personalization.config import load_config
from personalization.demoregistry import ensure_demo_registry
from personalization.intakebench import repeated_file
from personalization.journal import SQLiteJournal
from personalization.service.registry import staged_path
from tests.support.crew import enrol

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 900


def _signed(line_yaml: Path, count: int, registry_id: str) -> Path:
    """``count`` applications as the registry sends them: signed by the stand-in registry the
    shipped line.yaml trusts, its header line first (the records from line 2)."""
    apps = repeated_file(line_yaml.parent, count, templates=30)
    return ensure_demo_registry(load_config(line_yaml).data_dir).sign_file(
        apps, apps.with_suffix(".p7m"), registry_id)

pytestmark = pytest.mark.slow


@pytest.fixture()
def line_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The embedded line's configuration with its journal in the test's folder; the
    `cardline` processes act as an operator of its crew."""
    text = (ROOT / "line.yaml").read_text(encoding="utf-8").replace(
        "sqlite:///.cardline/journal.db", f"sqlite:///{tmp_path / 'journal.db'}")
    path = tmp_path / "line.yaml"
    path.write_text(text, encoding="utf-8")
    for key, value in enrol(path).env("an", {}).items():
        monkeypatch.setenv(key, value)
    return path


def _cardline(line_yaml: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "personalization", *args, "--config",
                           str(line_yaml)], capture_output=True, text=True, timeout=300,
                          check=False, cwd=ROOT)


def _kill_after_first_chunk(line_yaml: Path, apps: Path, name: str) -> None:
    """Start ``batch create`` and SIGKILL it once a chunk is in the journal, before the end."""
    child = subprocess.Popen([sys.executable, "-m", "personalization", "batch", "create",
                              str(apps), "--name", name, "--config", str(line_yaml), "--json"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if _written(line_yaml.parent / "journal.db", name) > 0:
                break
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert 0 < _written(line_yaml.parent / "journal.db", name) < RECORDS


def _written(journal: Path, name: str) -> int:
    if not journal.exists():
        return 0
    with SQLiteJournal(journal) as opened:
        names = [b.name for b in opened.batches()]
        if name not in names:
            return 0
        info = opened.batch(name)
        return sum(info.applications.values()) + info.quarantined


def _workers_left(apps: Path) -> list[str]:
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if str(apps).encode() in command:
            left.append(pid)
    return left


def test_a_killed_import_is_never_run_and_the_same_command_finishes_it(
        tmp_path: Path, line_yaml: Path) -> None:
    """After SIGKILL mid-way the batch is 'importing' (status says so, `batch run` refuses
    it), its workers are gone, and `batch create` again finishes it with every record once,
    in file order."""
    apps = _signed(line_yaml, RECORDS, "RB-KILL-1")
    _kill_after_first_chunk(line_yaml, apps, "K")
    staged = staged_path(load_config(line_yaml), "RB-KILL-1")
    assert staged.exists()  # the killed import's private copy of the records, owner-only
    assert staged.stat().st_mode & 0o077 == 0

    status = json.loads(_cardline(line_yaml, "batch", "status", "K", "--json").stdout)
    assert (status["state"], status["finished"]) == ("importing", False)
    ran = _cardline(line_yaml, "batch", "run", "K")
    assert ran.returncode == 2 and "still being imported" in ran.stderr
    time.sleep(1.5)  # workers poll for their parent twice a second
    assert _workers_left(apps) == []

    again = _cardline(line_yaml, "batch", "create", str(apps), "--name", "K", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["accepted"] == RECORDS and summary["quarantined"] == []
    assert summary["import"]["resumed_from_line"] > 0
    # the header line is read but is no record: 901 lines hold the 900 records
    assert summary["import"]["records"] == RECORDS + 1 - summary["import"]["resumed_from_line"]
    with SQLiteJournal(tmp_path / "journal.db") as journal:
        assert journal.batch("K").state == "open"
        assert [row["line"] for row in journal.applications("K")] == list(
            range(2, RECORDS + 2))
    assert not staged.exists()  # no private copy left


def test_a_killed_import_can_be_discarded(tmp_path: Path, line_yaml: Path) -> None:
    """`batch discard` removes an unfinished import and everything it wrote, and says so in
    the event log; a complete batch is refused."""
    apps = _signed(line_yaml, RECORDS, "RB-KILL-2")
    _kill_after_first_chunk(line_yaml, apps, "K")
    staged = staged_path(load_config(line_yaml), "RB-KILL-2")
    assert staged.exists()  # the killed import's private copy of the records

    gone = _cardline(line_yaml, "batch", "discard", "K")
    assert gone.returncode == 0, gone.stderr
    assert "unfinished import removed" in gone.stdout
    with SQLiteJournal(tmp_path / "journal.db") as journal:
        assert journal.batches() == []
        assert [e["kind"] for e in journal.events("K")] == ["registry.received",
                                                            "batch.importing",
                                                            "batch.discarded"]
    assert not staged.exists()  # discarded with its import
    small = _signed(line_yaml, 5, "RB-KILL-3")
    assert _cardline(line_yaml, "batch", "create", str(small), "--name", "C").returncode == 0
    refused = _cardline(line_yaml, "batch", "discard", "C")
    assert refused.returncode == 2 and "only an unfinished import" in refused.stderr
