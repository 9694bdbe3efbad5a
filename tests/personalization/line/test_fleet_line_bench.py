"""The bench's fleet_vs_bound section on a small run (fast timing, one card a station): three
``cardline batch run`` processes of two stations each on a production-durability PostgreSQL,
against six times one station's bare cycle measured in the same run."""

from __future__ import annotations

from pathlib import Path

import pytest

from applets.virtual.bank import EncoderBank
from personalization.benchkit import bench_hsm
from personalization.fleetline import fleet_line
from personalization.profile import load_profile
from personalization.service.bench import GOALS, SECTIONS
from personalization.service.eacline import bench_pki

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.timeout(600)]


def test_the_fleet_line_figures_are_measured_against_their_bound(encoder_bank: EncoderBank,
                                                                 tmp_path: Path) -> None:
    """Every card handed out by the three lines (the section raises otherwise), and the
    ratio is the throughput over six stations' bare cycles, both printed beside it."""
    assert "fleet-line" in SECTIONS and GOALS["fleet_vs_bound"][1] == 0.95
    encoder_bank.down()  # the section runs its own pcscd: one per machine
    try:
        with bench_hsm(tmp_path, eac=bench_pki) as hsm:  # the shipped profile: EAC chips
            figures = fleet_line(tmp_path, load_profile("cccd"), hsm, base_port=30600,
                                 timing="fast", cards_per_station=1)
    finally:
        encoder_bank.up()
    cycle, throughput = figures["fleet_station_cycle_s"], figures["fleet_line_cards_per_s"]
    assert cycle > 0 and throughput > 0
    assert figures["fleet_bound_cards_per_s"] == pytest.approx(6 / cycle, rel=0.01)
    assert figures["fleet_vs_bound"] == pytest.approx(
        throughput / figures["fleet_bound_cards_per_s"], rel=0.01)
