"""Reason codes and the batch report (JSON and a self-contained HTML page)."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from qa.reasons import MESSAGES, Finding, Reason
from qa.report import build_report, render_html
from qa.verify import Verdict
from tests.qa.cards import AT

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"bac_failed", "read_failed", "sod_malformed", "sod_signature_invalid",
            "ds_not_trusted", "ds_expired", "ds_not_yet_valid", "ds_outside_usage_period",
            "ds_document_type_missing", "ds_document_type_mismatch", "dg_hash_mismatch",
            "dg_missing", "com_inconsistent", "aa_failed", "aa_key_missing", "dg1_mismatch",
            "dg13_mismatch", "dg2_mismatch", "not_locked", "plain_read_allowed"}


def test_every_required_code_exists_with_a_message() -> None:
    """The issue's reason codes are all defined, unique, and each has a sentence for people."""
    assert {r.value for r in Reason} >= REQUIRED
    assert set(MESSAGES) == set(Reason)
    assert len(set(MESSAGES.values())) == len(MESSAGES)
    assert all(m.endswith(".") and len(m) > 20 for m in MESSAGES.values())


def test_finding_message_carries_the_detail() -> None:
    """A finding's JSON form is its code and the message with its detail."""
    finding = Finding(Reason.DG_HASH_MISMATCH, "DG2")
    assert finding.as_dict() == {"code": "dg_hash_mismatch",
                                 "message": MESSAGES[Reason.DG_HASH_MISMATCH] + " (DG2)"}


def _verdicts() -> list[tuple[str, dict[str, Any]]]:
    good = Verdict(reasons=(), apdus=21, files={"EF.DG1": b"x" * 95}).as_dict()
    bad = Verdict(reasons=(Finding(Reason.AA_FAILED), Finding(Reason.DG_MISSING, "DG13")),
                  apdus=19).as_dict()
    return [("card-1", good), ("card-2", bad), ("card-3", good)]


def test_report_counts_and_lists_failed_cards() -> None:
    """Counts, failures by reason and each failed card with its reasons."""
    report = build_report("B-7", _verdicts(), AT)
    assert (report["cards"], report["passed"], report["failed"]) == (3, 2, 1)
    assert report["failures_by_reason"] == {"aa_failed": 1, "dg_missing": 1}
    assert report["failed_cards"][0]["card"] == "card-2"
    assert [r["code"] for r in report["failed_cards"][0]["reasons"]] == ["aa_failed", "dg_missing"]
    json.dumps(report)


def test_verdict_json_has_sizes_not_contents() -> None:
    """A verdict's JSON gives file sizes only: the chip's personal data never leaves QA."""
    verdict = _verdicts()[0][1]
    assert verdict["files"] == {"EF.DG1": 95} and verdict["verdict"] == "pass"


def test_empty_batch() -> None:
    """A batch without cards reports zeros and no pass rate."""
    report = build_report("B-0", [], AT)
    assert report["cards"] == 0 and report["pass_rate"] is None
    assert "ALL PASSED" in render_html(report)


@given(st.text(min_size=1, max_size=40))
def test_html_escapes_every_value(card: str) -> None:
    """Whatever a card id holds, it appears escaped in the page, never as markup."""
    bad = Verdict(reasons=(Finding(Reason.NOT_LOCKED, "<b>x</b>"),)).as_dict()
    page = render_html(build_report("<script>", [(card, bad)], AT))
    assert "<script>" not in page and "<b>x</b>" not in page
    assert html.escape(card) in page


def test_cli_report(tmp_path: Path) -> None:
    """`cardline qa report` reads verdict lines and writes JSON and the HTML page."""
    lines = [json.dumps({"card": card, **verdict}) for card, verdict in _verdicts()]
    source = tmp_path / "verdicts.jsonl"
    source.write_text("\n".join(lines) + "\n")
    page = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-c", "from personalization.cli import main; main()", "qa", "report",
         str(source), "--batch", "B-7", "--html", str(page), "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["failed"] == 1
    assert "card-2" in page.read_text()
