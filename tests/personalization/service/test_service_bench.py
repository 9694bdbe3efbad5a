"""The bench service called directly: which sections run, and figures from a scratch area."""

from __future__ import annotations

from pathlib import Path

import pytest

from personalization.service.bench import SECTIONS, bench_sections, goal_met, run_bench
from personalization.service.errors import ServiceError
from personalization.service.setup import LineSetup

ROOT = Path(__file__).resolve().parents[3]


def test_no_choice_means_every_section() -> None:
    """Without a choice every section runs, in their order."""
    assert bench_sections(None) == list(SECTIONS) and "line-realistic" in SECTIONS


def test_unknown_section_is_refused_with_the_choices() -> None:
    """A misspelt section raises ServiceError listing the known ones."""
    with pytest.raises(ServiceError, match=r"unknown section\(s\) prepp; choose from prep, "):
        bench_sections(["printers", "prepp"])


def test_unknown_section_stops_before_measuring() -> None:
    """run_bench checks the sections before it builds any throwaway part."""
    with pytest.raises(ServiceError, match="unknown section"):
        run_bench(LineSetup.load(ROOT / "line.yaml"), ["nope"])


@pytest.mark.softhsm
def test_printers_section_gives_its_figures() -> None:
    """The printers section measured in a scratch area reports render time and bytes per card."""
    figures = run_bench(LineSetup.load(ROOT / "line.yaml"), ["printers"], seconds=0.2, cards=1)
    assert figures["render_ms_per_card"] > 0 and figures["printer_bytes_per_card"] > 100_000
    assert goal_met("render_ms_per_card", figures["render_ms_per_card"]) is None
