"""`cardline line`."""

from __future__ import annotations

import typer

app = typer.Typer(help="line", no_args_is_help=True)
