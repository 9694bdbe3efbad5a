"""The service layer drives the line with no CLI involved, and a second process steers a run
through the journal: pause, continue, stop."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from personalization.service import batches
from personalization.service.setup import LineSetup
from personalization.synth import synthesize
from tests.personalization.line.conftest import Rig

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm]


def _batch(rig: Rig, setup: LineSetup, name: str, count: int) -> None:
    path = rig.root / f"{name}.jsonl"
    synthesize(count, 11, path)
    created = batches.create(setup, rig.signed(path), name, journal=rig.journal)
    assert created.accepted == count and not created.quarantined


def _until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _cli(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "personalization", *args, "--config",
                           str(rig.line_yaml())], env=rig.cli_env(), capture_output=True,
                          text=True, timeout=120, check=False)


def _handed_out(setup: LineSetup, name: str) -> int:
    count: int = batches.status(setup.config, name)[0]["applications"]["handed_out"]
    return count


def test_a_demo_sized_batch_runs_through_the_services_alone(rig: Rig, setup: LineSetup) -> None:
    """create → run → status → report through the services: every card handed out, the
    stock reconciles, and each station's last published state is 'off'."""
    _batch(rig, setup, "S1", 8)
    ticks: list[int] = []
    result = batches.run(setup, "S1", on_tick=lambda views: ticks.append(len(views)))
    assert result.finished and result.handed_out == 8 and not result.errors
    assert ticks and set(ticks) == {2}
    row = batches.status(setup.config, "S1")[0]
    assert row["finished"] and row["state"] == "closed" and row["in_doubt"] == 0
    report = batches.report(setup.config, "S1")
    assert report["applications"]["handed_out"] == 8 and report["stock"]["reconciled"]
    stations = batches.live(setup.config, "S1")
    assert {s["station"] for s in stations} == {"station-1", "station-2"}
    assert all(s["live"]["state"] == "off" and s["live_at"] for s in stations)


def test_a_second_process_pauses_continues_and_stops_a_run(rig: Rig, setup: LineSetup) -> None:
    """`batch pause` from another process: the stations finish the card in hand and hand out
    nothing more; `batch continue` lets the run go on; `batch stop` ends it, and a resumed
    run finishes the batch with every application handed out once."""
    _batch(rig, setup, "S2", 16)
    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(
        first=batches.run(setup, "S2")), daemon=True)
    runner.start()
    _until(lambda: _handed_out(setup, "S2") >= 1, 60, "the first card")

    paused = _cli(rig, "batch", "pause", "S2")
    assert paused.returncode == 0, paused.stderr
    _until(lambda: all(s["live"] and s["live"]["state"] == "paused"
                       for s in batches.live(setup.config, "S2")), 30, "both stations paused")
    held = _handed_out(setup, "S2")
    time.sleep(2.0)  # more than two station cycles: nothing moves while paused
    assert _handed_out(setup, "S2") == held < 16
    assert runner.is_alive()

    assert _cli(rig, "batch", "continue", "S2").returncode == 0
    _until(lambda: _handed_out(setup, "S2") > held, 30, "work after continue")
    stopped = _cli(rig, "batch", "stop", "S2")
    assert stopped.returncode == 0, stopped.stderr
    runner.join(60)
    assert not runner.is_alive()
    first = outcome["first"]
    assert not first.errors
    if not first.finished:  # the stop came before the last card
        second = batches.run(setup, "S2")
        assert second.finished and not second.errors
    kinds = [e["kind"] for e in rig.journal.events("S2")]
    assert kinds.count("run.control") == 3
    report = batches.report(setup.config, "S2")
    assert report["applications"]["handed_out"] == 16 and report["stock"]["reconciled"]
    numbers = [c["document_number"] for c in report["cards"] if c["state"] == "handed_out"]
    assert len(numbers) == len(set(numbers)) == 16


def test_controls_for_an_unknown_or_closed_batch_are_refused(rig: Rig, setup: LineSetup) -> None:
    """Asking a batch that does not exist, or a closed one, to pause is a clear error."""
    unknown = _cli(rig, "batch", "pause", "NOPE")
    assert unknown.returncode == 2 and "no batch named" in unknown.stderr
    _batch(rig, setup, "S3", 2)
    assert batches.run(setup, "S3").finished
    closed = _cli(rig, "batch", "stop", "S3")
    assert closed.returncode == 2 and "closed" in closed.stderr
