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

# figure → (goal as text, check) for the figures with a goal in the issues
GOALS = {
    "prep_vs_hsm": ("≥ 0.5", lambda v: v >= 0.5),
    "encode_apdus_vs_min": ("≤ 1.05", lambda v: v <= 1.05),
    "encode_ms_vs_wire": ("≤ 1.3", lambda v: v <= 1.3),
    "qa_ms_vs_wire": ("≤ 1.3", lambda v: v <= 1.3),
}


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
            figures, notes = bench.run(root, profile, sections, seconds=seconds, cards=cards)
    except (PersonalizationError, OSError) as exc:
        fail(str(exc))
    if json_out:
        typer.echo(json.dumps(figures))
        return
    table = Table(title="cardline bench")
    for column in ("figure", "value", "goal", ""):
        table.add_column(column)
    for name, value in figures.items():
        goal, check = GOALS.get(name, ("", None))
        verdict = "" if check is None else ("[green]met[/]" if check(value) else "[red]missed[/]")
        table.add_row(name, str(value), goal, verdict)
    console.print(table)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
