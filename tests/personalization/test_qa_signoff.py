"""QA's sign-off of a finished batch: only QA staff, only a closed batch, once; the report
lists who signed off."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personalization.applications.intake import read_applications
from personalization.cli import app
from personalization.journal import Journal
from personalization.profile import load_profile
from tests.personalization.journal.closing import finished_batch
from tests.support.crew import enrol

runner = CliRunner()


def test_qa_signs_off_a_finished_batch_once(tmp_path: Path, synth_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator is refused; QA signs off the closed batch once (a second time and an
    unfinished batch are refused); `batch report` names who signed off."""
    config = tmp_path / "line.yaml"
    config.write_text(f"line: t\ndata_dir: {tmp_path}\n"
                      "hsm: {module: /usr/lib/softhsm/libsofthsm2.so, token: t}\n"
                      f"journal: {{url: 'sqlite:///{tmp_path / 'journal.db'}'}}\n",
                      encoding="utf-8")
    crew = enrol(config)
    apps = [a for _, a in read_applications(synth_dir / "apps.jsonl",
                                            load_profile("cccd").intake_rules(),
                                            date(2026, 11, 24)).valid]
    with Journal(tmp_path / "journal.db") as journal:
        finished_batch(journal, apps[:3], retention=0)
        journal.create_batch("B2", source="x", profile="cccd", max_attempts=1, valid=[],
                             invalid=[])

    def signoff(person: str, batch: str) -> tuple[int, str]:
        for key, value in crew.env(person, {}).items():
            monkeypatch.setenv(key, value)
        done = runner.invoke(app, ["qa", "signoff", batch, "--config", str(config)],
                             env={"COLUMNS": "300"})
        return done.exit_code, done.output

    code, out = signoff("an", "B1")
    assert code == 2 and "may not sign off batches" in out
    code, out = signoff("quy", "B1")
    assert code == 0 and "signed off by quy: 3 handed out" in out, out
    assert signoff("quy", "B1") == (2, "error: batch 'B1' is signed off already\n")
    code, out = signoff("quy", "B2")
    assert code == 2 and "not finished" in out
    for key, value in crew.env("aud", {}).items():
        monkeypatch.setenv(key, value)
    report = runner.invoke(app, ["batch", "report", "B1", "--json", "--config", str(config)])
    assert report.exit_code == 0, report.output
    assert '"qa_signoff": [{"by": "quy"' in report.output
