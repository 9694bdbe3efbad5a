"""``cardline batch`` end to end: create (with quarantine), run, status, report — the CLI as an
operator runs it, in its own process, on the rig's printers, encoders and token."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from personalization.synth import synthesize
from tests.personalization.line.conftest import Rig

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm]


def _cardline(rig: Rig, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "personalization", *args, "--config",
                           str(rig.line_yaml())], env=rig.cli_env(), capture_output=True,
                          text=True, timeout=300, check=False)


def test_an_operator_runs_a_batch_from_file_to_report(rig: Rig) -> None:
    """Invalid records are quarantined with their line and reasons, the rest run to the end
    (`batch resume` on a batch never run runs it); status says finished; the report has the
    issue's shape and the HTML page its charts."""
    apps = rig.root / "apps.jsonl"
    synthesize(4, 5, apps)
    lines = apps.read_text(encoding="utf-8").splitlines()
    broken = json.loads(lines[0])
    broken.update(application_id="BAD-1", personal_id="12345")
    apps.write_text("\n".join([*lines, json.dumps(broken, ensure_ascii=False), "{not json"])
                    + "\n", encoding="utf-8")

    signed = rig.signed(apps)  # the registry's header line comes first: records from line 2
    created = _cardline(rig, "batch", "create", str(signed), "--name", "B7", "--json")
    assert created.returncode == 0, created.stderr
    summary = json.loads(created.stdout)
    assert summary["accepted"] == 4
    assert [(q["line"], q["application_id"]) for q in summary["quarantined"]] == [
        (6, "BAD-1"), (7, None)]
    assert any(e["field"] == "personal_id" for e in summary["quarantined"][0]["errors"])

    again = _cardline(rig, "batch", "create", str(signed), "--name", "B7")
    assert again.returncode == 2 and "already received" in again.stderr
    other = _cardline(rig, "batch", "create", str(rig.signed(apps, "RB-apps-2")), "--name", "B7")
    assert other.returncode == 2 and "already exists" in other.stderr
    status = json.loads(_cardline(rig, "batch", "status", "B7", "--json").stdout)
    assert status["finished"] is False and status["applications"]["pending"] == 4

    ran = _cardline(rig, "batch", "resume", "B7")  # any open batch resumes, even unstarted
    assert ran.returncode == 0, ran.stderr
    assert "finished" in ran.stdout

    status = json.loads(_cardline(rig, "batch", "status", "B7", "--json").stdout)
    assert status["finished"] is True and status["state"] == "closed"
    assert status["personal_data_purged"] is True and status["in_doubt"] == 0

    out = rig.root / "report"
    report = json.loads(_cardline(rig, "batch", "report", "B7", "--json", "--out",
                                  str(out)).stdout)
    assert report["batch"] == "B7"
    assert report["applications"] == {"handed_out": 4, "failed": 0, "pending": 0}
    assert {k: report["stock"][k] for k in ("fed", "handed_out", "rejected", "in_machine")} == {
        "fed": 4, "handed_out": 4, "rejected": 0, "in_machine": 0}
    for card in report["cards"]:
        assert {"application_id", "document_number", "chip_serial", "state", "qa"} <= set(card)
        assert card["state"] == "handed_out" and card["qa"]["verdict"] == "pass"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") >= 2 and "Stock reconciles" in page
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report

    closed = _cardline(rig, "batch", "run", "B7")
    assert closed.returncode == 2 and "closed" in closed.stderr
    unknown = _cardline(rig, "batch", "report", "NOPE")
    assert unknown.returncode == 2 and "no batch named" in unknown.stderr
