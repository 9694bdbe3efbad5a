"""``cardline bench --section fleet``: dry lines on a private PostgreSQL and one on SQLite,
each against the bare commit rate of the same database in the same run (a small fleet here:
speed itself is not asserted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from personalization import fleetbench
from personalization.profile import load_profile
from personalization.service.bench import GOALS, SECTIONS, goal_met

LINES, APPLICATIONS = 2, 60


def _processes_naming(folder: Path) -> list[str]:
    """The command lines of running processes that name ``folder`` (a server left behind)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if str(folder) in text:
            found.append(text)
    return found


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory,
             ) -> tuple[fleetbench.Figures, list[fleetbench.FleetRun]]:
    """One small run of the section: two lines on PostgreSQL, one on SQLite."""
    return fleetbench.measure(tmp_path_factory.mktemp("fleet"), load_profile("cccd"),
                              lines=(LINES,), applications=APPLICATIONS, seconds=0.5)


@pytest.mark.postgres
def test_the_figures_are_there_positive_and_the_ratios_come_from_their_parts(
        measured: tuple[fleetbench.Figures, list[fleetbench.FleetRun]]) -> None:
    """Every figure is positive; fleet_vs_pg and journal_vs_sqlite are the products and
    quotients of the figures printed beside them; the campaign multiple is the rate over 5."""
    figures, _ = measured
    for key in ("fleet_cards_per_s", "fleet_commits_per_card", "pg_commits_per_s",
                "fleet_vs_pg", "journal_cards_per_s", "journal_commits_per_card",
                "sqlite_commits_per_s", "journal_vs_sqlite", "fleet_campaign_times",
                f"fleet_vs_pg_{LINES}", f"fleet_writes_per_card_{LINES}"):
        assert figures[key] > 0, key
    assert figures["fleet_lines"] == LINES
    # the bare rate is the mean of one measurement before the lines' run and one after, and
    # the drift between them is their change over that mean
    before, after = figures[f"pg_commits_before_{LINES}"], figures[f"pg_commits_after_{LINES}"]
    assert before > 0 and after > 0
    assert figures["pg_commits_per_s"] == pytest.approx((before + after) / 2, abs=0.1)
    assert figures[f"pg_commits_drift_{LINES}"] == pytest.approx(
        (after - before) / figures["pg_commits_per_s"], abs=0.002)
    assert figures["fleet_vs_pg"] == pytest.approx(
        figures["fleet_cards_per_s"] * figures["fleet_commits_per_card"]
        / figures["pg_commits_per_s"], rel=0.01)
    assert figures["journal_vs_sqlite"] == pytest.approx(
        figures["journal_cards_per_s"] * figures["journal_commits_per_card"]
        / figures["sqlite_commits_per_s"], rel=0.01)
    assert figures["fleet_campaign_times"] == pytest.approx(
        figures["fleet_cards_per_s"] / 5, abs=0.06)
    # a card is at least begin_card and five moves, each its own transaction
    assert figures["fleet_commits_per_card"] >= 6 and figures["journal_commits_per_card"] >= 6


@pytest.mark.postgres
def test_every_application_is_handed_out_exactly_once_in_each_run(
        measured: tuple[fleetbench.Figures, list[fleetbench.FleetRun]]) -> None:
    """Each run's own journal shows every application handed out once, by one card, with a
    chip of its own and an intact chain; every line did some of the work."""
    _, runs = measured
    assert [r.lines for r in runs] == [LINES, 1]
    for run in runs:
        assert run.once.ok, run.once
        assert run.cards == run.once.handed_out == APPLICATIONS
        assert all(t.handed_out > 0 for t in run.tallies) and len(run.tallies) == run.lines


@pytest.mark.postgres
def test_the_bench_removes_its_cluster(
        measured: tuple[fleetbench.Figures, list[fleetbench.FleetRun]]) -> None:
    """The PostgreSQL cluster's folder is gone and no process of its server is left."""
    _, runs = measured
    folder = runs[0].cluster
    assert folder is not None and not folder.exists()
    assert _processes_naming(folder) == []


def test_a_second_card_for_an_application_fails_the_check() -> None:
    """The exactly-once check fails on a repeated hand-out, a chip used twice, a broken chain
    or an application left behind."""
    good = fleetbench.OnceCheck(3, 3, 3, 0, 0, True)
    assert good.ok
    for bad in (fleetbench.OnceCheck(3, 3, 4, 1, 0, True), fleetbench.OnceCheck(3, 3, 3, 0, 1,
                True), fleetbench.OnceCheck(3, 3, 3, 0, 0, False),
                fleetbench.OnceCheck(3, 2, 2, 0, 0, True)):
        assert not bad.ok


def test_the_fleet_section_and_its_goals_are_registered() -> None:
    """``--section fleet`` is a choice; both ratios have the goal ≥ 0.5."""
    assert "fleet" in SECTIONS
    for name in ("fleet_vs_pg", "journal_vs_sqlite"):
        assert GOALS[name][0] == "≥ 0.5"
        assert goal_met(name, 0.5) and not goal_met(name, 0.49)
