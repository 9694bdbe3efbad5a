"""What every CLI command shares: the console, the line configuration option, log set-up."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import structlog
import typer
from rich.console import Console

from common.errors import CardlineError
from personalization.config import LineConfig, load_config
from personalization.errors import PersonalizationError

console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="the line configuration file", envvar="CARDLINE_CONFIG"),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]


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
    except PersonalizationError as exc:
        fail(str(exc))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print an error for a person and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


@contextmanager
def reported() -> Iterator[None]:
    """Turn any cardline error raised inside the block into :func:`fail` with its message."""
    try:
        yield
    except CardlineError as exc:
        fail(str(exc))
