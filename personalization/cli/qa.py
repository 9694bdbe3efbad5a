"""`cardline qa`: check a chip at a QA desk, dump its files, report on a batch.

Exit codes: 0 pass, 1 the card failed QA, 2 an operational error (no such reader, no card,
unreadable trust store, malformed keys) with a message saying what to do.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from applets.transport.pcsc import PCSCTransport, ReaderError
from personalization.cli.common import JsonOption, console, fail, line_config
from qa.checks import Expected
from qa.errors import QAError
from qa.passive_auth import TrustStore
from qa.readback import DocumentKeys, keys_from_fields, keys_from_mrz, normalize_mrz
from qa.report import build_report, render_html
from qa.verify import Policy, Verdict, verify_card

app = typer.Typer(help="Verify chips over PC/SC: QA desk check, file dump, batch report.",
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


def _keys(mrz: str | None, number: str | None, birth: str | None,
          expiry: str | None) -> tuple[DocumentKeys, Expected]:
    try:
        if mrz is not None:
            return keys_from_mrz(mrz), Expected(mrz=normalize_mrz(mrz))
        if number is None or birth is None or expiry is None:
            fail("give --mrz, or all of --document-number, --birth and --expiry")
        return keys_from_fields(number, birth, expiry), Expected()
    except QAError as exc:
        fail(f"access keys: {exc}")


def _trust(paths: list[Path] | None, config: Path | None) -> tuple[TrustStore, list[Path]]:
    if not paths:
        data_dir = line_config(config).data_dir if config is not None else Path(".cardline")
        default = data_dir / "csca.pem"
        if not default.is_file():
            fail(f"no trust store: give --trust CSCA.pem, or export the CSCA with "
                 f"`cardline keys export-csca --out {default}`")
        paths = [default]
    try:
        return TrustStore.from_files(paths), paths
    except QAError as exc:
        fail(str(exc))


@contextmanager
def _reader(name: str, wait: float) -> Iterator[PCSCTransport]:
    try:
        with PCSCTransport(name) as transport:
            if not transport.connected:
                transport.wait_for_card(wait)
            yield transport
    except ReaderError as exc:
        fail(f"{exc} (is the reader attached and a card in it?)")


def _check(reader: str, wait: float, keys: DocumentKeys, expected: Expected,
           trust: TrustStore, require_aa: bool) -> Verdict:
    policy = Policy(require_active_authentication=require_aa, usage_period_is_failure=False)
    try:
        with _reader(reader, wait) as transport:
            return verify_card(transport, keys, trust, at=datetime.now(UTC), expected=expected,
                               policy=policy, rng=secrets.token_bytes)
    except QAError as exc:
        fail(str(exc))


def _show(verdict: Verdict, reader: str, trust_paths: list[Path]) -> None:
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
    console.print(f"reader {reader}; trust {', '.join(map(str, trust_paths))}", highlight=False)
    console.print(f"read {files or 'nothing'}; {verdict.apdus} APDUs in "
                  f"{verdict.timings_ms['total']:.1f} ms", highlight=False)


@app.command("verify")
def verify(reader: ReaderOption, mrz: MRZOption = None, document_number: NumberOption = None,
           birth: BirthOption = None, expiry: ExpiryOption = None, trust: TrustOption = None,
           config: ConfigOpt = None, wait: WaitOption = 0.0, require_aa: AAOption = True,
           as_json: JsonOption = False) -> None:
    """Check the chip in READER: access, passive and active authentication, lock, DG1."""
    keys, expected = _keys(mrz, document_number, birth, expiry)
    store, paths = _trust(trust, config)
    verdict = _check(reader, wait, keys, expected, store, require_aa)
    if as_json:
        print(json.dumps({**verdict.as_dict(), "reader": reader}, ensure_ascii=False))
    else:
        _show(verdict, reader, paths)
    if not verdict.passed:
        raise typer.Exit(1)


def _summary(verdict: Verdict, reader: str) -> dict[str, Any]:
    files = {name: {"file": f"{name}.bin", "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest()}
             for name, data in verdict.files.items()}
    return {**verdict.as_dict(), "reader": reader, "files": files}


@app.command("dump")
def dump(reader: ReaderOption,
         out: Annotated[Path, typer.Option("--out", help="folder for EF.*.bin and summary.json")],
         mrz: MRZOption = None, document_number: NumberOption = None, birth: BirthOption = None,
         expiry: ExpiryOption = None, trust: TrustOption = None, config: ConfigOpt = None,
         wait: WaitOption = 0.0, as_json: JsonOption = False) -> None:
    """Read every file of the chip in READER into OUT (exact bytes) with a summary.json."""
    keys, expected = _keys(mrz, document_number, birth, expiry)
    store, _ = _trust(trust, config)
    verdict = _check(reader, wait, keys, expected, store, require_aa=False)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in verdict.files.items():
            (out / f"{name}.bin").write_bytes(data)
        summary = _summary(verdict, reader)
        (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write to {out}: {exc.strerror}")
    if as_json:
        print(json.dumps(summary))
    else:
        console.print(f"wrote {len(verdict.files)} file(s) and summary.json to {out}; verdict "
                      + ("[green]pass[/]" if verdict.passed else "[red]fail[/]"), highlight=False)
    if not verdict.files:
        raise typer.Exit(1)


def _read_verdicts(path: Path) -> list[tuple[str, dict[str, Any]]]:
    cards: list[tuple[str, dict[str, Any]]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            cards.append((str(record["card"]), record))
        except (ValueError, KeyError, TypeError):
            fail(f"{path} line {number}: not a verdict with a 'card' key")
    return cards


@app.command("report")
def report(verdicts: Annotated[Path, typer.Argument(help="JSON Lines: one verdict per card, "
                                                    "with a 'card' key")],
           batch: Annotated[str, typer.Option("--batch", help="batch identifier")],
           html_out: Annotated[Path | None, typer.Option("--html", help="write the page")] = None,
           as_json: JsonOption = False) -> None:
    """Batch QA report: counts, failures by reason, each failed card with its reasons."""
    result = build_report(batch, _read_verdicts(verdicts), datetime.now(UTC))
    if html_out is not None:
        html_out.write_text(render_html(result), encoding="utf-8")
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
        return
    colour = "green" if result["failed"] == 0 else "red"
    console.print(f"[bold {colour}]{result['passed']}/{result['cards']} passed[/]")
    for code, count in result["failures_by_reason"].items():
        console.print(f"  {code}: {count}", highlight=False)
