"""``cardline bench``: speed figures as ratios against their physical bound, same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personalization.cli.common import ConfigOption, JsonOption, command_group, console, reported
from personalization.service.bench import GOALS, SECTIONS, bench_sections, goal_met, run_bench
from personalization.service.setup import LineSetup

RANGE = "_range"  # a figure's min–max over its repetitions (personalization.bench.spread)
app = command_group(help="Benchmark figures, each against its physical bound measured in the "
                       "same run.", invoke_without_command=True)


@app.callback()
def run(
    config: ConfigOption = Path("line.yaml"),
    json_out: JsonOption = False,
    section: Annotated[list[str] | None, typer.Option(
        "--section", "-s", help=f"only these sections ({', '.join(SECTIONS)})")] = None,
    seconds: Annotated[float, typer.Option(help="seconds per throughput figure")] = 2.0,
    cards: Annotated[int, typer.Option(help="cards per per-card figure")] = 12,
) -> None:
    """Measure and print every figure; --json for scripts.

    Runs on throwaway parts (a private SoftHSM token, its own virtual encoder on port 30600,
    synthetic applications), never on the line's keys or chips. Needs the machine's pcscd
    free: stop a running line (`cardline line down`) first. The fleet section needs neither:
    it starts a private PostgreSQL server (postgresql-15, `make setup`) and removes it after.
    """
    with reported():
        sections = bench_sections(section)
        setup = LineSetup.load(config)
        with console.status("measuring…"):
            figures = run_bench(setup, sections, seconds=seconds, cards=cards)
    if json_out:
        typer.echo(json.dumps(figures))
        return
    table = Table(title="cardline bench", caption="a figure with a min–max is the median of "
                  "its repetitions in this run")
    for column in ("figure", "value", "min–max", "goal", ""):
        table.add_column(column)
    for name, value in figures.items():
        if name.endswith(RANGE) and name.removesuffix(RANGE) in figures:
            continue  # shown beside its figure
        met = goal_met(name, value)
        verdict = {None: "", True: "[green]met[/]", False: "[red]missed[/]"}[met]
        low_high = figures.get(name + RANGE)
        table.add_row(name, str(value), "–".join(map(str, low_high)) if low_high else "",
                      GOALS.get(name, ("",))[0], verdict)
    console.print(table)
