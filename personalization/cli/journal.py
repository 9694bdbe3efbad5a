"""`cardline journal`: upkeep of the line's journal, for scheduled jobs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    as_person,
    command_group,
    console,
    err_console,
    line_setup,
    reported,
)
from personalization.config import DEFAULT_CONFIG
from personalization.service import journal

app = command_group(help="The line's journal: upkeep for scheduled jobs.",
                    no_args_is_help=True)
WaitOption = Annotated[float, typer.Option(
    "--wait", min=0, help="seconds to wait for other processes reading the journal")]


@app.command()
def purge(config: ConfigOption = DEFAULT_CONFIG, wait: WaitOption = 10.0,
          as_json: JsonOption = False) -> None:
    """Drop the personal data of every closed batch whose retention has run out and finish
    purges left incomplete. Exit 0 when all is done, 1 when some is still pending (another
    process kept the journal open): run it again later."""
    with reported():
        cfg = line_setup(config).config
        as_person(cfg, "journal.purge")
        result = journal.purge(cfg, wait_s=wait)
    if as_json:
        console.print_json(json.dumps({"purged": result.purged, "pending": result.pending}))
    elif result.purged:
        console.print(f"purged: {', '.join(result.purged)}", markup=False, highlight=False)
    elif result.complete:
        console.print("nothing to purge", markup=False)
    if not result.complete:
        err_console.print(f"error: purge incomplete: {', '.join(result.pending)} still pending "
                          "(another process keeps the journal open); run `cardline journal "
                          "purge` again when it has finished", markup=False, highlight=False)
        raise typer.Exit(1)
