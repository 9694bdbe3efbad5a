"""``cardline bench --section dashboard`` on a small run (fast timing, four cards a station, a
short look alone): the dashboard served in a process of its own on the line's journal, 20
live streams and 20 pollers on it while the line runs (speed itself is not asserted here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from applets.virtual.bank import EncoderBank
from personalization import bench, dashbench
from personalization.benchkit import bench_hsm
from personalization.profile import load_profile
from personalization.service.bench import GOALS, SECTIONS, goal_met

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.slow]

CARDS = 8


def test_the_dashboard_figures_are_measured_while_the_line_runs(
        encoder_bank: EncoderBank, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every card handed out under the load; the status API answered hundreds of times under
    it and every stream received events; each ratio is its two figures' and reads in the
    direction of its goal."""
    assert "dashboard" in SECTIONS and "dashboard" in bench.SECTIONS
    assert GOALS["dashboard_vs_idle"][1:] == (3.0, False)
    assert GOALS["dashboard_line_vs_bound"][1:] == (0.95, True)
    monkeypatch.setattr(dashbench, "IDLE_REQUESTS", 20)
    monkeypatch.setattr(dashbench, "HOT_REQUESTS", 50)
    encoder_bank.down()  # the section runs its own pcscd: one per machine
    try:
        with bench_hsm(tmp_path) as hsm:
            figures = dashbench.measure(tmp_path / "line-dashboard", load_profile("cccd-bac"), hsm,
                                        stations=2, cards=CARDS, timing="fast",
                                        base_port=bench.BENCH_BASE_PORT)
    finally:
        encoder_bank.up()
    assert figures["dashboard_line_cards"] == CARDS
    assert figures["dashboard_requests"] > 100 and figures["dashboard_failed_requests"] == 0
    assert figures["dashboard_stream_events"] > 0
    assert figures["dashboard_streams_flowing"] == dashbench.STREAMS
    assert figures["dashboard_hot_p95_ms"] > 0 and figures["dashboard_idle_p95_ms"] > 0
    assert 0 < figures["dashboard_p50_ms"] <= figures["dashboard_p95_ms"] < 1000
    assert figures["dashboard_vs_idle"] == pytest.approx(
        figures["dashboard_p95_ms"] / figures["dashboard_idle_p95_ms"], rel=0.01)
    assert figures["dashboard_vs_hot"] == pytest.approx(
        figures["dashboard_p95_ms"] / figures["dashboard_hot_p95_ms"], rel=0.01)
    assert 0 < figures["dashboard_line_vs_bound"] < 2
    assert goal_met("dashboard_vs_idle", 2.5) and not goal_met("dashboard_vs_idle", 3.5)
    assert goal_met("dashboard_line_vs_bound", 0.96)
    assert not goal_met("dashboard_line_vs_bound", 0.9)
