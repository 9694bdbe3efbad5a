"""``cardline demo --lines 3 --journal postgresql://…`` on the shipped line.yaml: three line
processes, each with its own two stations, share one batch in a real PostgreSQL journal and
write the usual outputs plus each line's figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from applets.virtual.bank import EncoderBank
from tests.support.pg import TestServer

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[3]


def _cardline(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "CARDLINE_CONFIG")}
    return subprocess.run([sys.executable, "-m", "personalization", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=500, check=False)


def test_three_line_processes_share_the_demo_batch(encoder_bank: EncoderBank,
                                                   pg_server: TestServer,
                                                   tmp_path: Path) -> None:
    """Every card handed out once across the lines, each line's figures in report.json and
    on screen, card faces written; without --journal, --lines is refused with the way out."""
    shutil.copy(ROOT / "line.yaml", tmp_path / "line.yaml")
    database = pg_server.fresh()
    url = pg_server.cluster.url(database)
    encoder_bank.down()  # the demo runs its own pcscd: one per machine
    try:
        assert _cardline(tmp_path, "keys", "setup-embedded").returncode == 0
        refused = _cardline(tmp_path, "demo", "--lines", "3")
        assert refused.returncode != 0 and "--journal" in refused.stderr
        demo = _cardline(tmp_path, "demo", "--lines", "3", "--cards", "12", "--journal", url)
        assert demo.returncode == 0, demo.stdout + demo.stderr
    finally:
        encoder_bank.up()
        pg_server.cluster.drop_database(database)
    report = json.loads((tmp_path / "demo-out" / "report.json").read_text("utf-8"))
    assert report["state"] == "closed" and report["applications"]["handed_out"] == 12
    handed = [c for c in report["cards"] if c["state"] == "handed_out"]
    assert len({c["application_id"] for c in handed}) == 12
    lines = {row["line"]: row for row in report["lines"]}
    assert set(lines) == {"line-1", "line-2", "line-3"}
    assert all(row["exit_code"] == 0 for row in lines.values())
    assert sum(row["handed_out"] for row in lines.values()) == 12
    assert {c["station"] for c in handed} <= {f"l{n}-s{s}" for n in (1, 2, 3) for s in (1, 2)}
    assert lines["line-2"]["stations"] == ["l2-s1", "l2-s2"]
    for card in handed:
        assert (tmp_path / "demo-out" / "cards" / card["application_id"] / "front.png").exists()
    assert "line-3" in demo.stdout and "cards/s" in demo.stdout
