"""``cardline``: the one command-line interface of the line controller."""

from __future__ import annotations

import faulthandler
import signal

from personalization.cli import (
    applications,
    audit,
    batch,
    bench,
    db,
    journal,
    keys,
    line,
    printers,
    qa,
    users,
)
from personalization.cli.common import command_group, configure_logging
from personalization.cli.demo import demo_command
from personalization.cli.prep import prep
from personalization.cli.serve import serve_command

app = command_group(
    name="cardline",
    help="Chip-card personalization and production-line controller (ICAO 9303, CCCD profile).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print keys, PINs or personal data in tracebacks
)
app.add_typer(applications.app, name="applications")
app.add_typer(keys.app, name="keys")
app.add_typer(printers.app, name="printers")
app.add_typer(line.app, name="line")
app.add_typer(qa.app, name="qa")
app.add_typer(batch.app, name="batch")
app.add_typer(bench.app, name="bench")
app.add_typer(journal.app, name="journal")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")
app.add_typer(audit.app, name="audit")
app.command("prep")(prep)
app.command("demo")(demo_command)
app.command("serve")(serve_command)
app.command("login")(users.login)
app.command("logout")(users.logout)
app.command("whoami")(users.whoami)


def main() -> None:
    """Entry point of the console script."""
    configure_logging()
    # `kill -USR1 PID` prints where every thread of a stuck process is (file, line and
    # function names only: no values), for the operator and the support desk
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    app()
