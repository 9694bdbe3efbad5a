"""``cardline bench --section intake`` reports its figures as the ratios of their parts (tiny
files here: speed itself is not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from personalization import bench
from personalization.profile import load_profile
from personalization.service.bench import goal_met

pytestmark = [pytest.mark.softhsm, pytest.mark.slow]


def test_the_intake_section_reports_rates_memory_and_locks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both rates and their ratio, the peak at both sizes and their ratio, per 1 000 records,
    and the longest write; each goal reads in its direction."""
    monkeypatch.setattr(bench, "INTAKE_RECORDS", 60)
    monkeypatch.setattr(bench, "INTAKE_SINGLE_RECORDS", 40)
    monkeypatch.setattr(bench, "INTAKE_MEMORY_RECORDS", (40, 200))
    figures = bench.run(tmp_path, load_profile("cccd"), ["intake"], applications=2)
    assert figures["intake_parallel_vs_single"] == pytest.approx(
        figures["intake_apps_per_s"] / figures["intake_single_core_apps_per_s"], rel=0.01)
    assert figures["intake_memory_growth"] == pytest.approx(
        figures["intake_peak_mb_200"] / figures["intake_peak_mb_40"], rel=0.01)
    assert figures["intake_peak_mb_per_1k_200"] == pytest.approx(
        figures["intake_peak_mb_200"] / 0.2, rel=0.01)
    assert 20 < figures["intake_peak_mb_40"] < 1000
    assert figures["intake_lock_max_ms"] > 0 and figures["intake_writer_wait_max_ms"] > 0
    assert goal_met("intake_memory_growth", 1.1) and not goal_met("intake_memory_growth", 2)
    assert goal_met("intake_lock_max_ms", 100) and not goal_met("intake_lock_max_ms", 900)
