"""Benchmarks: speed figures as ratios against their physical bound, measured in the same run,
on throwaway parts (a private SoftHSM token, its own virtual encoder, synthetic applications).
"""

from __future__ import annotations

from collections.abc import Sequence

from personalization import bench, fleetbench
from personalization.bench import Figures
from personalization.benchkit import scratch
from personalization.service import eacline
from personalization.service.errors import ServiceError
from personalization.service.setup import LineSetup

__all__ = ["GOALS", "SECTIONS", "Figures", "bench_sections", "goal_met", "run_bench"]

FLEET = "fleet"  # lines sharing a PostgreSQL journal (fleetbench.py): no HSM, no pcscd
SECTIONS: tuple[str, ...] = (*bench.SECTIONS, FLEET)

# figure → (goal as text, bound, True when the figure must stay at or above the bound)
GOALS: dict[str, tuple[str, float, bool]] = {
    "prep_vs_hsm": ("≥ 0.5", 0.5, True),
    "encode_apdus_vs_min": ("≤ 1.05", 1.05, False),
    "encode_ms_vs_wire": ("≤ 1.3", 1.3, False),  # out of reach: see encode_floor_vs_wire
    "encode_ms_vs_floor": ("≤ 1.5", 1.5, False),
    "qa_ms_vs_wire": ("≤ 1.3", 1.3, False),  # out of reach: see qa_floor_vs_wire
    "qa_ms_vs_floor": ("≤ 2.0", 2.0, False),
    "line_cards_per_s": ("≥ 20", 20.0, True),
    "line_vs_bound": ("≥ 0.95", 0.95, True),
    "intake_parallel_vs_single": ("≥ 1.7", 1.7, True),
    "intake_memory_growth": ("≤ 1.3", 1.3, False),
    "intake_lock_max_ms": ("≤ 500", 500.0, False),
    "intake_line_vs_bound": ("≥ 0.9", 0.9, True),
    "fleet_vs_pg": ("≥ 0.5", 0.5, True),
    "journal_vs_sqlite": ("≥ 0.5", 0.5, True),
    "fleet_vs_bound": ("≥ 0.95", 0.95, True),
    "dashboard_vs_idle": ("≤ 3", 3.0, False),
    "dashboard_line_vs_bound": ("≥ 0.95", 0.95, True),
}


def goal_met(name: str, value: float) -> bool | None:
    """Whether a figure meets its goal; None when it has none."""
    if name not in GOALS:
        return None
    _, bound, at_least = GOALS[name]
    return value >= bound if at_least else value <= bound


def bench_sections(chosen: Sequence[str] | None) -> list[str]:
    """The sections to run: those chosen (each checked), or every one when none is."""
    sections = list(chosen or SECTIONS)
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        raise ServiceError(f"unknown section(s) {', '.join(unknown)}; "
                           f"choose from {', '.join(SECTIONS)}")
    return sections


def run_bench(setup: LineSetup, sections: Sequence[str] | None = None, *,
              seconds: float = 2.0, cards: int = 12) -> Figures:
    """Measure the figures of ``sections`` (all by default) in a scratch folder removed after."""
    chosen = bench_sections(sections)
    profile = setup.profile()
    others = [s for s in chosen if s != FLEET]
    figures: Figures = {}
    try:
        with scratch() as root:
            if others:
                figures.update(bench.run(root, profile, others, seconds=seconds, cards=cards,
                                         eac=eacline.bench_pki if profile.chip.eac else None))
            if FLEET in chosen:
                figures.update(fleetbench.fleet_section(root, profile, seconds=seconds))
    except OSError as exc:
        raise ServiceError(str(exc)) from exc
    return figures
