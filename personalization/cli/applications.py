"""``cardline applications``: check a registry file, or synthesize one."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    UnsignedOption,
    as_person,
    command_group,
    console,
    fail,
    intake_progress,
    reported,
)
from personalization.service.applications import (
    Checked,
    check_applications,
    synthesize_applications,
    synthesize_renewals_of,
)
from personalization.service.setup import LineSetup

app = command_group(help="Approved applications: validate a JSON Lines file, or synthesize one.",
                  no_args_is_help=True)

AsOfOption = Annotated[
    str | None,
    typer.Option("--as-of", help="check dates against this day (YYYY-MM-DD) instead of today"),
]


def _as_of(value: str | None) -> date:
    if value is None:
        return date.today()
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail(f"--as-of {value!r} is not a date YYYY-MM-DD")


def _print_report(result: Checked) -> None:
    if result.invalid:
        table = Table(title="Invalid applications", show_lines=False)
        for column in ("line", "application_id", "field", "reason"):
            table.add_column(column)
        for record in result.invalid:
            for index, error in enumerate(record.errors):
                first = index == 0
                table.add_row(str(record.line) if first else "",
                              (record.application_id or "—") if first else "",
                              error.field, error.reason)
        console.print(table)
    run = result.progress
    if result.registry_batch is not None:
        console.print(f"registry batch {result.registry_batch}, signed by {result.signer}",
                      markup=False, highlight=False)
    console.print(f"[bold]{result.valid}[/] valid, "
                  f"[bold {'red' if result.invalid else 'green'}]{len(result.invalid)}[/] invalid"
                  f" ({run.records} records in {run.seconds:.1f} s, {run.records_per_s:.0f}/s)")


@app.command()
def check(
    file: Annotated[Path, typer.Argument(
        help="applications as the registry signed them (.p7m: JSON Lines inside)")],
    config: ConfigOption = Path("line.yaml"),
    json_out: JsonOption = False,
    as_of: AsOfOption = None,
    unsigned: UnsignedOption = False,
) -> None:
    """Verify the registry's signature and that its batch was not received before (a
    refusal exits 1 before any record is read); then check every record on every core (a
    progress bar with records/s and ETA); list each
    invalid one with its line, id and reasons.

    Exit status 1 when any record is invalid. With --json prints
    {"valid": n, "invalid": [{"line", "application_id", "errors": [{"field", "reason"}]}],
    "progress": {"records", "seconds", "records_per_s", ...}}, and while checking one
    {"progress": {...}} line a second on stderr.
    """
    today = _as_of(as_of)
    with reported():
        setup = LineSetup.load(config)
        as_person(setup.config, "applications.read")
        with intake_progress(str(file), json_out) as progress:
            result = check_applications(file, setup, today, on_progress=progress,
                                        unsigned=unsigned)
    if json_out:
        typer.echo(json.dumps(result.as_dict(), ensure_ascii=False))
    else:
        _print_report(result)
    raise typer.Exit(1 if result.invalid else 0)


@app.command()
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="JSON Lines file to write")],
    count: Annotated[int | None, typer.Option(
        "--count", "-n", min=1, help="how many applications")] = None,
    seed: Annotated[int, typer.Option("--seed", help="same seed, same applications")] = 1,
    inline_photos: Annotated[
        bool, typer.Option("--inline-photos", help='embed photos as {"base64": …}')
    ] = False,
    registry_batch: Annotated[str | None, typer.Option(
        "--registry-batch", help="open the file with the registry's header line naming this "
                                 "batch id (what the registry signs)")] = None,
    renewals_of: Annotated[str | None, typer.Option(
        "--renewals-of", help="renewals for the people of this issued batch (reads the "
                              "journal: an operator or QA account)")] = None,
    config: ConfigOption = Path("line.yaml"),
) -> None:
    """Synthesize realistic applications (drawn faces of no real person) for demos and tests:
    --count new people, or with --renewals-of B one renewal per card batch B handed out
    (the same personal ID, naming the card it supersedes).

    Photos go to OUT-photos/ beside the file, named with their SHA-256, unless --inline-photos
    is given.
    """
    if (count is None) == (renewals_of is None):
        fail("give either --count N or --renewals-of BATCH")
    with reported():
        if renewals_of is not None:
            setup = LineSetup.load(config)
            as_person(setup.config, "applications.read", renewals_of)
            result = synthesize_renewals_of(setup, renewals_of, seed, out,
                                            registry_batch=registry_batch)
        else:
            assert count is not None  # noqa: S101 - checked above
            result = synthesize_applications(count, seed, out, inline_photos=inline_photos,
                                             registry_batch=registry_batch)
    console.print(f"wrote {result.count} applications to {result.path}")
