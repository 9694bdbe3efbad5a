"""`cardline qa`: check a chip at a QA desk, dump its files, report on a batch.

Exit codes: 0 pass, 1 the card failed QA, 2 an operational error (no such reader, no card,
unreadable trust store, malformed keys) with a message saying what to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from personalization.cli.common import (
    JsonOption,
    command_group,
    console,
    line_setup,
    person_for,
    reported,
)
from personalization.config import DEFAULT_CONFIG
from personalization.service.qa import (
    Verdict,
    access_keys,
    dump_card,
    qa_report,
    trust_store,
    verify_chip,
)
from personalization.service.qa import (
    signoff as qa_signoff,
)

app = command_group(help="Verify chips over PC/SC: QA desk check, file dump, batch report; "
                  "QA sign-off of a finished batch.",
                  no_args_is_help=True)

ReaderOption = Annotated[str, typer.Option(
    "--reader", help="PC/SC reader name, e.g. 'Encoder 0 00 00'")]
MRZOption = Annotated[str | None, typer.Option(
    "--mrz", help="the full TD1 MRZ (90 characters, or 3 lines); also checked against DG1")]
NumberOption = Annotated[str | None, typer.Option("--document-number", help="MRZ document number")]
BirthOption = Annotated[str | None, typer.Option("--birth", help="date of birth YYMMDD")]
ExpiryOption = Annotated[str | None, typer.Option(
    "--expiry", help="date of expiry YYMMDD, or '<<<<<<' for a card without expiry")]
TrustOption = Annotated[list[Path] | None, typer.Option(
    "--trust", help="CSCA certificate PEM file (repeatable); default <data_dir>/csca.pem")]
ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", help="line.yaml (for data_dir)", envvar="CARDLINE_CONFIG")]
WaitOption = Annotated[float, typer.Option("--wait", help="seconds to wait for a card")]
AAOption = Annotated[bool, typer.Option(
    "--require-aa/--no-require-aa", help="fail chips without Active Authentication (DG15)")]
CANOption = Annotated[str | None, typer.Option(
    "--can", help="an EAC chip's card access number (6 digits): PACE, then Chip and Terminal "
    "Authentication with the desk's inspection-system key, and DG3")]
PACEOption = Annotated[bool, typer.Option(
    "--pace", help="an EAC chip opened with PACE and the MRZ (--mrz or its fields) instead of BAC")]
AllowBACOption = Annotated[bool, typer.Option(
    "--allow-bac", help="with --can or --pace: use BAC (the MRZ keys) on a chip without PACE")]
DeadlineOption = Annotated[float | None, typer.Option(
    "--deadline", min=0.0, help="seconds the check may take; past them the card fails 'deadline'")]


def _show(verdict: Verdict, reader: str, trust_paths: tuple[Path, ...]) -> None:
    if verdict.passed:
        console.print("[bold green]PASS[/]", highlight=False)
    else:
        console.print("[bold red]FAIL[/]", highlight=False)
    for title, findings, style in (("Reasons", verdict.reasons, "red"),
                                   ("Warnings", verdict.warnings, "yellow")):
        if findings:
            table = Table(title=title, title_style=style)
            table.add_column("code", style=style)
            table.add_column("what it means")
            for finding in findings:
                table.add_row(finding.code, finding.message)
            console.print(table)
    for note in verdict.skipped:
        console.print(f"[dim]skipped: {note}[/]", highlight=False)
    files = ", ".join(f"{name} ({len(data)} B)" for name, data in verdict.files.items())
    console.print(f"protocols {', '.join(verdict.protocols) or 'none'}", highlight=False)
    console.print(f"reader {reader}; trust {', '.join(map(str, trust_paths))}", highlight=False)
    console.print(f"read {files or 'nothing'}; {verdict.apdus} APDUs in "
                  f"{verdict.timings_ms['total']:.1f} ms", highlight=False)


@app.command("verify")
def verify(reader: ReaderOption, mrz: MRZOption = None, document_number: NumberOption = None,
           birth: BirthOption = None, expiry: ExpiryOption = None, can: CANOption = None,
           pace: PACEOption = False, allow_bac: AllowBACOption = False,
           trust: TrustOption = None, config: ConfigOpt = None, wait: WaitOption = 0.0,
           require_aa: AAOption = True, deadline: DeadlineOption = None,
           as_json: JsonOption = False) -> None:
    """Check the chip in READER: access (BAC; PACE, CA and TA with --can or --pace), passive
    and active authentication, lock, DG1, DG3."""
    with reported():  # what was typed is checked first; then who types it
        access = access_keys(mrz, document_number, birth, expiry, can=can, pace=pace,
                             allow_bac=allow_bac)
        trusted = trust_store(trust or (), config=config)
    person_for(config, "qa.verify")
    with reported():
        verdict = verify_chip(reader, access, trusted.store, wait=wait, require_aa=require_aa,
                              deadline_s=deadline, config=config)
    if as_json:
        print(json.dumps({**verdict.as_dict(), "reader": reader}, ensure_ascii=False))
    else:
        _show(verdict, reader, trusted.paths)
    if not verdict.passed:
        raise typer.Exit(1)


@app.command("dump")
def dump(reader: ReaderOption,
         out: Annotated[Path, typer.Option("--out", help="folder for EF.*.bin and summary.json")],
         mrz: MRZOption = None, document_number: NumberOption = None, birth: BirthOption = None,
         expiry: ExpiryOption = None, can: CANOption = None, pace: PACEOption = False,
         allow_bac: AllowBACOption = False, trust: TrustOption = None,
         config: ConfigOpt = None, wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Read every file of the chip in READER into OUT (exact bytes) with a summary.json."""
    with reported():
        access = access_keys(mrz, document_number, birth, expiry, can=can, pace=pace,
                             allow_bac=allow_bac)
        trusted = trust_store(trust or (), config=config)
    person_for(config, "qa.dump")
    with reported():
        done = dump_card(reader, out, access, trusted.store, wait=wait, config=config)
    if as_json:
        print(json.dumps(done.summary))
    else:
        console.print(f"wrote {len(done.verdict.files)} file(s) and summary.json to {out}; "
                      "verdict " + ("[green]pass[/]" if done.verdict.passed else "[red]fail[/]"),
                      highlight=False)
    if not done.verdict.files:
        raise typer.Exit(1)


@app.command("report")
def report(verdicts: Annotated[Path, typer.Argument(help="JSON Lines: one verdict per card, "
                                                    "with a 'card' key")],
           batch: Annotated[str, typer.Option("--batch", help="batch identifier")],
           html_out: Annotated[Path | None, typer.Option("--html", help="write the page")] = None,
           as_json: JsonOption = False) -> None:
    """Batch QA report: counts, failures by reason, each failed card with its reasons."""
    with reported():
        result = qa_report(verdicts, batch, html=html_out)
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    colour = "green" if result["failed"] == 0 else "red"
    console.print(f"[bold {colour}]{result['passed']}/{result['cards']} passed[/]")
    for code, count in result["failures_by_reason"].items():
        console.print(f"  {code}: {count}", highlight=False)


@app.command("signoff")
def signoff(batch: Annotated[str, typer.Argument(help="the finished batch")],
            config: ConfigOpt = None) -> None:
    """QA's sign-off of a finished batch, recorded with your account in the journal (the
    batch report lists it)."""
    person = person_for(config, "qa.signoff", batch)
    with reported():
        done = qa_signoff(line_setup(config or DEFAULT_CONFIG).config, person.name, batch)
    console.print(f"batch {batch} signed off by {person.name}: {done['handed_out']} handed out, "
                  f"{done['failed']} failed", markup=False, highlight=False)
