"""``cardline demo``: the whole line on the embedded default, from synthetic applications to
handed-out cards, with a report."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Literal, cast

import typer
from rich.live import Live
from rich.table import Table

from personalization.cli.common import (
    ConfigOption,
    console,
    fail,
    line_setup,
    print_batch_summary,
    progress_table,
    reported,
)
from personalization.service.batches import StationLive
from personalization.service.demo import DemoOptions, DemoStart, dashboard_setup, run_demo
from personalization.service.demopeople import OPERATOR, passphrase_file
from personalization.service.fleetdemo import FleetDemoResult, run_fleet_demo
from personalization.service.setup import LineSetup
from personalization.web.serve import serving


def demo_command(
    cards: Annotated[int, typer.Option("--cards", "-n", min=1, help="applications")] = 8,
    stations: Annotated[int, typer.Option("--stations", "-k", min=1, max=8,
                                          help="printer + encoder stations")] = 2,
    timing: Annotated[str, typer.Option(help="fast (no mechanical delays) or realistic")] = "fast",
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("demo-out"),
    dump_chips: Annotated[bool, typer.Option("--dump-chips",
                                             help="also write the files QA read")] = False,
    seed: Annotated[int | None, typer.Option(
        help="seed of the synthetic applications (default: one more than the demo batches "
             "so far, so each demo issues new people's cards)")] = None,
    lines: Annotated[int, typer.Option(
        "--lines", min=1, max=4, help="line processes sharing the batch (needs --journal)")] = 1,
    journal: Annotated[str | None, typer.Option(
        "--journal", help="the shared PostgreSQL journal of --lines (postgresql://…)")] = None,
    serve: Annotated[bool, typer.Option(
        "--serve", help="open the operator's dashboard on the demo's line while it runs, "
                        "and keep it open afterwards until Ctrl-C")] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535,
                                      help="the dashboard's port (with --serve)")] = 8080,
    config: ConfigOption = Path("line.yaml"),
) -> None:
    """Run the main job on the embedded default and write OUT/report.json, report.html,
    csca.pem, applications.jsonl and OUT/cards/<application_id>/front.png, back.png.

    Sets up what is missing (HSM keys, pcscd with virtual encoders, emulated printers), creates
    a batch in the demo's own journal and runs it through the journaled line controller. With
    --lines N --journal postgresql://…, N line processes (--stations each) share one batch in
    that journal, and the report adds each line's figures.
    """
    if timing not in ("fast", "realistic"):
        fail("--timing must be fast or realistic")
    options = DemoOptions(cards, stations, cast(Literal["fast", "realistic"], timing), out,
                          dump_chips, seed)
    setup = line_setup(config)
    if lines > 1 or journal is not None:
        if journal is None:
            fail("--lines shares one batch in a PostgreSQL journal: add --journal "
                 "postgresql://… (`cardline db start` prints one)")
        if serve:
            fail("--serve watches the single-line demo; for lines sharing a PostgreSQL "
                 "journal, run `cardline serve --config` with one of their line.yaml files")
        _fleet(setup, options, lines, journal)
        return
    if not serve:
        _single(setup, options)
        return
    with reported():
        watched = dashboard_setup(setup)
    operator = passphrase_file(watched.config, OPERATOR)
    with reported(), serving(watched, "127.0.0.1", port) as url:
        console.print(f"dashboard: {url} — log in as {OPERATOR} (passphrase in {operator})",
                      highlight=False, markup=False, soft_wrap=True)
        _single(setup, options)
        console.print("the dashboard stays open on the demo's line; Ctrl-C ends it",
                      highlight=False, markup=False)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            console.print("dashboard closed", highlight=False, markup=False)


def _single(setup: LineSetup, options: DemoOptions) -> None:
    stations, timing = options.stations, options.timing
    live: Live | None = None

    def started(start: DemoStart) -> None:
        nonlocal live
        console.print(f"{start.batch}: {start.cards} cards (seed {start.seed}) on {stations} "
                      f"station(s), {timing} timing", highlight=False, markup=False)
        if console.is_terminal:
            live = Live(console=console, refresh_per_second=4)
            live.start()

    def tick(views: list[StationLive]) -> None:
        if live is not None:
            live.update(progress_table("demo", views))

    try:
        with reported():
            result = run_demo(setup, options, on_start=started, on_tick=tick)
    except OSError as exc:
        fail(str(exc))
    finally:
        if live is not None:
            live.stop()
    print_batch_summary(result.report)
    json_file, html_file = result.report_files
    console.print(f"report: {json_file}, {html_file}; cards: {result.cards_dir}",
                  highlight=False, markup=False)
    if result.qa_desk:
        console.print("put a card of this demo on the QA desk:", highlight=False)
        for command in result.qa_desk:
            console.print(f"  {command}", highlight=False, markup=False, soft_wrap=True)
    if result.run.errors or not result.run.finished:
        fail("the demo batch did not finish: " + "; ".join(result.run.errors))


def _fleet(setup: LineSetup, options: DemoOptions, lines: int, url: str) -> None:
    def started(start: DemoStart) -> None:
        console.print(f"{start.batch}: {start.cards} cards (seed {start.seed}) on {lines} "
                      f"lines of {options.stations} station(s), {options.timing} timing",
                      highlight=False, markup=False)

    with reported():
        result = run_fleet_demo(setup, options, lines, url, on_start=started)
    _print_lines(result)
    print_batch_summary(result.report)
    json_file, html_file = result.report_files
    console.print(f"report: {json_file}, {html_file}; cards: {result.cards_dir}",
                  highlight=False, markup=False)
    if not result.finished:
        bad = [f"{f.line} (exit {f.exit_code}, log {f.log})" for f in result.lines
               if f.exit_code != 0]
        fail("the demo batch did not finish" + (": " + "; ".join(bad) if bad else ""))


def _print_lines(result: FleetDemoResult) -> None:
    table = Table("line", "stations", "handed out", "rejected", "busy s", "cards/s", "exit")
    for figures in result.lines:
        row = figures.as_dict()
        table.add_row(figures.line, ", ".join(figures.stations), str(row["handed_out"]),
                      str(row["rejected"]), f"{row['seconds']:.1f}", f"{row['cards_per_s']:g}",
                      str(figures.exit_code))
    console.print(table)
