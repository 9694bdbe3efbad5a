"""``cardline bench`` produces its figures as ratios (speed itself is not asserted here)."""

from __future__ import annotations

from pathlib import Path

from personalization import bench
from personalization.profile import load_profile
from personalization.service.bench import goal_met


def test_prep_and_printer_sections_report_their_figures(tmp_path: Path) -> None:
    """The prep section reports both rates and their ratio; printers report render and bytes."""
    figures = bench.run(tmp_path, load_profile("cccd"), ["prep", "printers"], seconds=0.2,
                           cards=2, applications=4)
    assert figures["prep_vs_hsm"] == round(figures["prep_cards_per_s"]
                                           / figures["hsm_signs_per_s"], 3)
    assert figures["prep_cards_per_s"] > 0 and 10_000 < figures["prep_dg2_bytes"] <= 16_000
    assert figures["render_ms_per_card"] > 0 and figures["printer_bytes_per_card"] > 100_000


def test_goals_read_in_the_right_direction() -> None:
    """A ratio above its floor meets it; a time ratio above its ceiling misses it."""
    assert goal_met("prep_vs_hsm", 0.6) and not goal_met("prep_vs_hsm", 0.4)
    assert goal_met("encode_ms_vs_wire", 1.2) and not goal_met("encode_ms_vs_wire", 2.0)
    assert goal_met("render_ms_per_card", 40) is None
