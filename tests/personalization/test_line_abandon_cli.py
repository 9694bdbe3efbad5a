"""``cardline line abandon``: refused while the line lives, then its cards in doubt are
spoiled and their applications go back to the pool; ``batch status`` shows the lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from personalization.applications.intake import read_applications
from personalization.cardstate import Event, Kind, State, step
from personalization.journal import open_journal
from personalization.prep import document_number
from personalization.profile import load_profile
from tests.support.crew import enrol

CARDLINE = [sys.executable, "-m", "personalization"]


def _cardline(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CARDLINE, *args, "--config", str(config)],
                          env={**os.environ, "COLUMNS": "200"}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_abandoning_a_dead_line_from_the_cli(tmp_path: Path, synth_dir: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """line-2 began two cards and died: while its lease runs the abandon is refused with the
    reason; then both cards are spoiled, the applications are pending again, and status
    shows both lines with line-2's cards no longer in doubt."""
    url = f"sqlite:///{tmp_path / 'journal.db'}"
    config = tmp_path / "line.yaml"
    config.write_text(yaml.safe_dump({
        "line": "line-1", "data_dir": str(tmp_path / "data"),
        "hsm": {"module": "/usr/lib/softhsm/libsofthsm2.so", "token": "t", "pin_source": "env"},
        "journal": {"url": url}, "controller": {"lease_s": 4},
        "stations": [{"name": "l1-s1", "printer": {"port": "/dev/null"},
                      "encoder": {"reader": "Encoder 0"}}]}), encoding="utf-8")
    for key, value in enrol(config).env("an", {}).items():  # an operator declares it
        monkeypatch.setenv(key, value)
    apps = [a for _, a in read_applications(synth_dir / "apps.jsonl",
                                            load_profile("cccd").intake_rules(),
                                            date(2026, 11, 24)).valid][:4]
    with open_journal(url) as journal:
        journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=3,
                             valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                             invalid=[])
        journal.join_line("B1", "line-1", stations=["l1-s1"], holder="a:1")
        journal.join_line("B1", "line-2", stations=["l2-s1"], holder="b:2")
        first, second = journal.claim("B1", "line-2", "run", 2, 30)
        journal.begin_card("B1", first, "l2-s1", "line-2")
        card = journal.begin_card("B1", second, "l2-s1", "line-2")
        journal.move(card, step(card.machine(3), Event(Kind.FED)), chip_serial="C-1")
        journal.heartbeat("B1", "line-2")

    refused = _cardline(config, "line", "abandon", "line-2", "--batch", "B1", "--yes")
    assert refused.returncode != 0
    assert "line 'line-2' is alive" in refused.stderr + refused.stdout
    time.sleep(4.2)  # line-2's lease (4 s here) runs out
    done = _cardline(config, "line", "abandon", "line-2", "--batch", "B1", "--yes")
    assert done.returncode == 0, done.stderr
    assert "line-2: 2 card(s) spoiled" in done.stdout

    with open_journal(url) as journal:
        states = {c.application_id: c.state for c in journal.cards("B1")}
        assert states == {first: State.VOID, second: State.REJECTED}
        assert set(journal.pending("B1")) == {a.application_id for a in apps}
        [event] = [e for e in journal.events("B1") if e["kind"] == "line.abandoned"]
        assert event["data"]["line"] == "line-2" and event["data"]["by"] == "an"
    status = _cardline(config, "batch", "status", "B1", "--json")
    lines = {r["line"]: r for r in json.loads(status.stdout)["lines"]}
    assert set(lines) == {"line-1", "line-2"} and lines["line-2"]["in_doubt"] == 0
    table = _cardline(config, "batch", "status", "B1")
    assert "line-2" in table.stdout and "DEAD" in table.stdout
