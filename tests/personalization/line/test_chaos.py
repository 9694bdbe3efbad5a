"""The chaos test: ``cardline batch run`` on 100 cards, killed with SIGKILL at random moments
more than twenty times and resumed each time — the printers, encoders and HSM live on, as in
a factory when the controller's machine dies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from personalization.line.report import build_report
from tests.personalization.line.conftest import BLANKS, STATIONS, Rig

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.slow, pytest.mark.timeout(600)]
CARDS = 100
KILLS = 22
CARDLINE = [sys.executable, "-m", "personalization"]
# every kill may spoil the card in hand at each station: the feeders must cover that too, or
# the run ends waiting for an operator to refill them
assert CARDS + KILLS * len(STATIONS) <= BLANKS * len(STATIONS)


def _last_event(rig: Rig) -> int:
    return int(rig.journal._read("SELECT coalesce(max(seq), 0) FROM events")[0][0])


def _runs(rig: Rig) -> int:
    return int(rig.journal._read("SELECT count(*) FROM events WHERE kind = 'run.started'")[0][0])


def _controller(rig: Rig, config: Path, log: Path) -> subprocess.Popen[bytes]:
    verb = "resume" if rig.journal.cards("B1") else "run"
    with log.open("ab") as sink:
        return subprocess.Popen([*CARDLINE, "batch", verb, "B1", "--config", str(config)],
                                env={**rig.cli_env(), "CARDLINE_LOG_LEVEL": "INFO"},
                                stdout=sink, stderr=sink,
                                stdin=subprocess.DEVNULL)


def _last_words(log: Path) -> str:
    """The end of the controllers' log: the last run's settling, alarms and errors."""
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(lines[-60:])


def test_killed_twenty_times_every_application_is_settled_exactly_once(rig: Rig) -> None:
    """After more than twenty SIGKILLs and resumes: every application handed out once or
    failed with reasons, no document number twice, stock reconciled with the printers'
    counters, the event chain verified, every handed-out card passing QA from its chip."""
    apps = rig.batch(CARDS)
    config, log = rig.line_yaml(), rig.root / "controller.log"
    rng = random.Random(20261124)
    kills = 0
    while kills < KILLS:
        runs = _runs(rig)
        process = _controller(rig, config, log)
        deadline = time.monotonic() + 60
        while process.poll() is None and _runs(rig) == runs and time.monotonic() < deadline:
            time.sleep(0.005)  # the run has begun (the command's own audit event came first)
        target = _last_event(rig) + rng.randint(0, 13)  # a random moment: events into the run…
        while process.poll() is None and _last_event(rig) < target \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))  # …and a random instant after it
        if process.poll() is not None:
            break  # the batch finished before this kill
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills == KILLS, f"the batch ended after {kills} kills; see {log}"
    final = _controller(rig, config, log)
    try:
        code = final.wait(timeout=300)
    except subprocess.TimeoutExpired:
        final.send_signal(signal.SIGUSR1)  # where each thread is stuck, into the log
        time.sleep(2)
        final.kill()
        final.wait()
        code = None
    assert code == 0, _last_words(log)

    report = build_report(rig.journal, "B1")
    assert report["state"] == "closed" and report["personal_data_purged"]
    states = Counter(a["state"] for a in rig.journal.applications("B1"))
    assert states["handed_out"] + states["failed"] == CARDS
    for application in rig.journal.applications("B1"):
        if application["state"] == "failed":
            assert application["reasons"], application["application_id"]
    handed = [c for c in report["cards"] if c["state"] == "handed_out"]
    assert len(handed) == states["handed_out"]
    assert len({c["application_id"] for c in handed}) == len(handed)
    assert len({c["document_number"] for c in handed}) == len(handed)
    stock = report["stock"]
    assert stock["reconciled"], stock["differences"]
    assert stock["in_machine"] == 0 and stock["fed"] == stock["handed_out"] + stock["rejected"]
    assert report["journal"]["chain_ok"]
    runs = [e for e in rig.journal.events("B1") if e["kind"] == "run.started"]
    assert len(runs) == KILLS + 1
    assert rig.requalify(report, apps) == len(handed)
