"""`cardline printers`."""

from __future__ import annotations

import typer

app = typer.Typer(help="printers", no_args_is_help=True)
