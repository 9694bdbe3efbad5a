"""``cardline prep``: approved applications → the exact chip files of each card."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TaskID

from personalization.cli.common import (
    ConfigOption,
    UnsignedOption,
    as_person,
    console,
    reported,
)
from personalization.service.prep import prepare_cards
from personalization.service.setup import LineSetup


@contextmanager
def _bar() -> Iterator[Callable[[int, int], None]]:
    """A progress bar that appears with the first card, once the HSM is open (and its PIN in)."""
    progress = Progress(console=console, transient=True)
    tasks: list[TaskID] = []

    def show(done: int, total: int) -> None:
        if not tasks:
            progress.start()
            tasks.append(progress.add_task("preparing", total=total))
        progress.update(tasks[0], completed=done)

    try:
        yield show
    finally:
        if tasks:
            progress.stop()


def prep(
    applications: Annotated[Path, typer.Argument(
        help="approved applications as the registry signed them (.p7m)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="folder for the prepared cards")],
    config: ConfigOption = Path("line.yaml"),
    unsigned: UnsignedOption = False,
) -> None:
    """Prepare and sign the chip files of every valid application.

    Writes OUT/<application_id>/EF.COM.bin, EF.DG1.bin, EF.DG2.bin, EF.DG13.bin, EF.SOD.bin
    (exact bytes, tag and length included) and OUT/prep.json listing the prepared and the
    rejected applications with reasons. Invalid applications never stop the others.
    Signing uses the line's active Document Signer key in the HSM; the file must carry the
    registry's signature (registry.trust), and each signature is recorded in the journal.
    """
    with reported():
        setup = LineSetup.load(config)
    person = as_person(setup.config, "prep.sign")
    with reported(), _bar() as progress:
        result = prepare_cards(applications, setup, out, today=date.today(),
                               progress=progress, actor=person.name, unsigned=unsigned)
    rejected = len(result.rejected)
    console.print(f"prepared [bold green]{len(result.prepared)}[/], rejected "
                  f"[bold {'red' if rejected else 'green'}]{rejected}[/] → {out}")
    raise typer.Exit(1 if rejected else 0)
