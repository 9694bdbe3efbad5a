"""`cardline journal purge` for a scheduled job: exit 1 and a clear message while another
process keeps the journal open, exit 0 once the pending purge is finished."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cli import app
from personalization.journal import SQLiteJournal
from personalization.journal.port import PurgeIncompleteError
from personalization.profile import load_profile
from tests.personalization.journal.closing import finished_batch, reader
from tests.support.crew import enrol

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Two validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid][:2]


def _line_yaml(tmp_path: Path) -> Path:
    text = (ROOT / "line.yaml").read_text(encoding="utf-8")
    path = tmp_path / "line.yaml"
    path.write_text(text.replace("data_dir: .cardline", f"data_dir: {tmp_path / 'data'}")
                    .replace("sqlite:///.cardline/journal.db",
                             f"sqlite:///{tmp_path / 'data' / 'journal.db'}"), encoding="utf-8")
    return path


def test_journal_purge_reports_pending_then_finishes(tmp_path: Path, apps: list[Application],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A purge blocked by a reader exits 1 naming the batch; once the reader is gone the same
    command purges it and exits 0; with nothing due it says so and exits 0."""
    config = _line_yaml(tmp_path)
    for key, value in enrol(config).env("an", {}).items():  # an operator purges
        monkeypatch.setenv(key, value)
    with SQLiteJournal(tmp_path / "data" / "journal.db") as journal:
        journal.purge_wait_s = 0.2
        with reader(journal.path):
            with pytest.raises(PurgeIncompleteError):
                finished_batch(journal, apps, retention=0)
            blocked = runner.invoke(app, ["journal", "purge", "--wait", "0.2",
                                          "--config", str(config)])
        assert blocked.exit_code == 1
        assert "purge incomplete" in blocked.output and "B1" in blocked.output
        done = runner.invoke(app, ["journal", "purge", "--config", str(config)])
        assert done.exit_code == 0 and "purged: B1" in done.output
        assert journal.batch("B1").purged_at is not None
    again = runner.invoke(app, ["journal", "purge", "--config", str(config)])
    assert again.exit_code == 0 and "nothing to purge" in again.output
