"""``cardline bench`` produces its figures as ratios (speed itself is not asserted here)."""

from __future__ import annotations

from pathlib import Path

from personalization import bench
from personalization.profile import load_profile
from personalization.service.bench import goal_met


def test_prep_and_printer_sections_report_their_figures(tmp_path: Path) -> None:
    """The prep section reports both rates and their ratio, each the median of its slices
    with the min–max beside it, with DG3 in the card data on the shipped profile; printers
    report render and bytes."""
    figures = bench.run(tmp_path, load_profile("cccd"), ["prep", "printers"], seconds=0.2,
                           cards=2, applications=4)
    for name in ("prep_vs_hsm", "prep_cards_per_s", "hsm_signs_per_s"):
        low, high = figures[f"{name}_range"]
        assert 0 < low <= figures[name] <= high, name
    # each slice's ratio is its own two rates divided: the median ratio lies between theirs
    assert figures["prep_vs_hsm_range"][0] <= (figures["prep_cards_per_s_range"][1]
                                               / figures["hsm_signs_per_s_range"][0])
    assert figures["prep_cards_per_s"] > 0 and 10_000 < figures["prep_dg2_bytes"] <= 16_000
    assert 1_000 < figures["prep_dg3_bytes"] <= load_profile("cccd").dg3.max_bytes
    assert figures["render_ms_per_card"] > 0 and figures["printer_bytes_per_card"] > 100_000


def test_goals_read_in_the_right_direction() -> None:
    """A ratio above its floor meets it; a time ratio above its ceiling misses it."""
    assert goal_met("prep_vs_hsm", 0.6) and not goal_met("prep_vs_hsm", 0.4)
    assert goal_met("encode_ms_vs_wire", 1.2) and not goal_met("encode_ms_vs_wire", 2.0)
    assert goal_met("encode_ms_vs_floor", 1.4) and not goal_met("encode_ms_vs_floor", 1.6)
    assert goal_met("qa_ms_vs_floor", 1.9) and not goal_met("qa_ms_vs_floor", 2.1)
    assert goal_met("render_ms_per_card", 40) is None
