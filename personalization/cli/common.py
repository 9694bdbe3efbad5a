"""What every CLI command shares: the console, the line configuration option, log set-up."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, TaskProgressColumn, TextColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table

from common.errors import CardlineError
from personalization.config import DEFAULT_CONFIG, LineConfig, load_config
from personalization.service.applications import OnProgress, Progress
from personalization.service.batches import StationLive, summary_rows
from personalization.service.people import Person
from personalization.service.setup import LineSetup

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="the line configuration file", envvar="CARDLINE_CONFIG"),
]
UnsignedOption = Annotated[bool, typer.Option(
    "--unsigned", help="accept a plain JSON Lines file the registry did not sign: the embedded "
                       "default only (demos, tests of the line); a factory line refuses it")]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


def command_group(**options: Any) -> typer.Typer:
    """A typer app whose hard-wrapped docstrings reflow in ``--help`` (Markdown: a single line
    break joins, a blank line starts a paragraph)."""
    return typer.Typer(rich_markup_mode="markdown", **options)


def configure_logging() -> None:
    """structlog: JSON when CARDLINE_LOG_JSON=1 (production), readable in a terminal otherwise."""
    level = getattr(logging, os.environ.get("CARDLINE_LOG_LEVEL", "WARNING").upper(), 30)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if os.environ.get("CARDLINE_LOG_JSON") == "1"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )


def line_config(path: Path) -> LineConfig:
    """Load ``line.yaml`` or exit with its error."""
    try:
        return load_config(path)
    except CardlineError as exc:
        fail(str(exc))


def line_setup(path: Path) -> LineSetup:
    """Load ``line.yaml`` as the services take it, or exit with its error."""
    try:
        return LineSetup.load(path)
    except CardlineError as exc:
        fail(str(exc))


def as_person(config: LineConfig, action: str, target: str | None = None) -> Person:
    """The person running this command (``cardline login``, or CARDLINE_USER with
    CARDLINE_PASSPHRASE), allowed to do ``action`` (on ``target``: a batch, a key label);
    otherwise exit with why not. Both are audited in the journal."""
    from personalization.service.people import acting  # the journal only when a command acts

    with reported():
        return acting(config, action, target)


def person_for(path: Path | None, action: str, target: str | None = None) -> Person:
    """:func:`as_person` for a command whose line configuration is optional (QA desk)."""
    return as_person(line_setup(path or DEFAULT_CONFIG).config, action, target)


def print_batch_summary(result: dict[str, Any]) -> None:
    """A batch report's counts as a table."""
    table = Table(title=escape(f"batch {result['batch']}"))
    table.add_column("")
    table.add_column("count")
    for key, value in summary_rows(result):
        table.add_row(key, str(value))
    console.print(table)


def progress_table(title: str, stations: list[StationLive], waiting: int | None = None) -> Table:
    """Each station's progress in this run, as a live table."""
    table = Table(title=title, expand=False)
    for column in ("station", "handed out", "rejected", "busy s", "now"):
        table.add_column(column)
    for station in stations:
        now = station.state
        if station.alarm:
            now = f"[red]ALARM[/] {escape(station.alarm)}"
        table.add_row(station.station, str(station.handed_out), str(station.rejected),
                      f"{station.busy_s:.1f}", now)
    done = sum(s.handed_out for s in stations)
    table.caption = f"{done} handed out this run" + (
        f"; {waiting} application(s) were waiting" if waiting is not None else "")
    return table


@contextmanager
def intake_progress(title: str, as_json: bool) -> Iterator[OnProgress]:
    """A progress callback for a run over an applications file: a bar with records, records/s
    and ETA on stderr — or, with ``--json``, the same numbers as a JSON line a second there."""
    if as_json:
        shown = [-1.0]

        def emit(progress: Progress) -> None:
            if progress.seconds - shown[0] >= 1.0:
                shown[0] = progress.seconds
                typer.echo(json.dumps({"progress": progress.as_dict()}), err=True)
        yield emit
        return
    # no auto-refresh: no thread of ours is running when intake forks its workers
    bar = ProgressBar(TextColumn(escape(title)), BarColumn(), TaskProgressColumn(),
                      TextColumn("{task.fields[detail]}"), console=err_console,
                      auto_refresh=False)
    task = bar.add_task(title, total=1.0, detail="")

    def show(progress: Progress) -> None:
        eta = "—" if progress.eta_s is None else f"{progress.eta_s:.0f} s"
        bar.update(task, completed=progress.fraction, detail=(
            f"{progress.records} records · {progress.records_per_s:.0f}/s · ETA {eta}"))
        bar.refresh()
    with bar:
        yield show


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error for a person and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def reported() -> Iterator[None]:
    """Turn any cardline error raised inside the block into :func:`fail` with its message."""
    try:
        yield
    except CardlineError as exc:
        fail(str(exc))
