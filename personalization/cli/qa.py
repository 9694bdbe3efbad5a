"""`cardline qa`."""

from __future__ import annotations

import typer

app = typer.Typer(help="qa", no_args_is_help=True)
