"""``cardline bench``: speed figures as ratios against their physical bound, same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personalization import bench
from personalization.benchkit import scratch
from personalization.cli.common import ConfigOption, JsonOption, console, fail, line_config
from personalization.errors import PersonalizationError
from personalization.profile import load_profile

app = typer.Typer(help="Benchmark figures, each against its physical bound measured in the "
                       "same run.", invoke_without_command=True)

# figure → (goal as text, bound, True when the figure must stay at or above the bound)
GOALS: dict[str, tuple[str, float, bool]] = {
    "prep_vs_hsm": ("≥ 0.5", 0.5, True),
    "encode_apdus_vs_min": ("≤ 1.05", 1.05, False),
    "encode_ms_vs_wire": ("≤ 1.3", 1.3, False),
    "qa_ms_vs_wire": ("≤ 1.3", 1.3, False),
    "line_cards_per_s": ("≥ 20", 20.0, True),
    "line_vs_bound": ("≥ 0.95", 0.95, True),
}


def goal_met(name: str, value: float) -> bool | None:
    """Whether a figure meets its goal; None when it has none."""
    if name not in GOALS:
        return None
    _, bound, at_least = GOALS[name]
    return value >= bound if at_least else value <= bound


@app.callback()
def run(
    config: ConfigOption = Path("line.yaml"),
    json_out: JsonOption = False,
    section: Annotated[list[str] | None, typer.Option(
        "--section", "-s", help=f"only these sections ({', '.join(bench.SECTIONS)})")] = None,
    seconds: Annotated[float, typer.Option(help="seconds per throughput figure")] = 2.0,
    cards: Annotated[int, typer.Option(help="cards per per-card figure")] = 12,
) -> None:
    """Measure and print every figure; --json for scripts.

    Runs on throwaway parts (a private SoftHSM token, its own virtual encoder on port 36600,
    synthetic applications), never on the line's keys or chips. Needs the machine's pcscd
    free: stop a running line (`cardline line down`) first.
    """
    sections = section or list(bench.SECTIONS)
    unknown = [s for s in sections if s not in bench.SECTIONS]
    if unknown:
        fail(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(bench.SECTIONS)}")
    line = line_config(config)
    try:
        profile = load_profile(line.profile, config.resolve().parent)
        with scratch() as root, console.status("measuring…"):
            figures = bench.run(root, profile, sections, seconds=seconds, cards=cards)
    except (PersonalizationError, OSError) as exc:
        fail(str(exc))
    if json_out:
        typer.echo(json.dumps(figures))
        return
    table = Table(title="cardline bench")
    for column in ("figure", "value", "goal", ""):
        table.add_column(column)
    for name, value in figures.items():
        met = goal_met(name, value)
        verdict = {None: "", True: "[green]met[/]", False: "[red]missed[/]"}[met]
        table.add_row(name, str(value), GOALS.get(name, ("",))[0], verdict)
    console.print(table)
