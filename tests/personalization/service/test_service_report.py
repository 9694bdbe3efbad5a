"""Batch reports are written owner-only: they list document numbers, made on a CCCD from the
holder's personal ID."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from personalization.journal import open_journal
from personalization.line.report import build_report
from personalization.service.batches import write_report


def test_report_files_are_owner_only_even_over_an_older_world_readable_one(
        tmp_path: Path) -> None:
    """report.json and report.html are 0600 in a folder created 0700, also when an earlier
    report there was 0644; the JSON reads back as written."""
    with open_journal(f"sqlite:///{tmp_path / 'journal.db'}") as journal:
        journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=3,
                             valid=[], invalid=[])
        report = build_report(journal, "B1")
    out = tmp_path / "reports" / "B1"
    out.mkdir(parents=True)
    (out / "report.json").write_text("{}", encoding="utf-8")
    os.chmod(out / "report.json", 0o644)
    old_umask = os.umask(0o022)
    try:
        json_file, html_file = write_report(report, out)
        fresh_json, _ = write_report(report, tmp_path / "new")
    finally:
        os.umask(old_umask)
    for path in (json_file, html_file, fresh_json):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert json.loads(json_file.read_text(encoding="utf-8")) == report
