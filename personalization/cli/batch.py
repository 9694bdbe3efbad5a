"""`cardline batch`: create a batch from approved applications, run it on the line, resume it
after a stop or a crash, steer a running batch from another terminal, and report on it."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from common.errors import CardlineError
from personalization.cli.common import (
    ConfigOption,
    JsonOption,
    UnsignedOption,
    as_person,
    command_group,
    console,
    err_console,
    fail,
    intake_progress,
    line_setup,
    print_batch_summary,
    progress_table,
    reported,
)
from personalization.config import DEFAULT_CONFIG, LineConfig
from personalization.service import audit, batches
from personalization.service import results as issuance
from personalization.service.batches import Control, RunResult, Tick

app = command_group(help="Batches: create one from approved applications, run it on the line, "
                       "resume it, pause or stop it from another terminal, see its status and "
                       "report.", no_args_is_help=True)
BatchArg = Annotated[str, typer.Argument(help="the batch's name (see `cardline batch status`)")]


@app.command()
def create(
    file: Annotated[Path, typer.Argument(
        help="approved applications as the registry signed them (.p7m)")],
    name: Annotated[str, typer.Option("--name", "-n", help="the batch's name")],
    max_attempts: Annotated[int | None, typer.Option(
        min=1, max=10, help="cards per application at most (default: line.yaml)")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
    unsigned: UnsignedOption = False,
) -> None:
    """Verify the registry's signature (registry.trust) and refuse a registry batch already
    received, before reading any record. Check every application (on every core, a progress
    bar with records/s and ETA); accept the valid ones into a new batch, quarantine the rest
    with their reasons. The batch is written a chunk at a time and can run once the whole file
    is in; if this is killed, the same command carries on where it stopped (or `batch discard
    NAME` removes the unfinished batch). Exit 1 when nothing could be accepted."""
    setup = line_setup(config)
    person = as_person(setup.config, "batch.create", name)
    try:
        with reported(), intake_progress(f"batch {name}", as_json) as progress:
            created = batches.create(setup, file, name, max_attempts, on_progress=progress,
                                     unsigned=unsigned, actor=person.name)
    except KeyboardInterrupt:
        fail(f"interrupted: batch {name} is left importing; the same command carries on where "
             f"it stopped, `cardline batch discard {name}` removes it", 130)
    if as_json:
        typer.echo(json.dumps(created.as_dict(), ensure_ascii=False))
    else:
        run = created.imported.progress
        console.print(f"batch {created.name}: {created.accepted} application(s) accepted, "
                      f"{len(created.quarantined)} quarantined ({run.records} records read "
                      f"in {run.seconds:.1f} s, {run.records_per_s:.0f}/s)", highlight=False,
                      markup=False)
        for record in created.quarantined:
            reasons = "; ".join(f"{e.field}: {e.reason}" for e in record.errors)
            console.print(f"  line {record.line} ({record.application_id or '?'}): {reasons}",
                          highlight=False, markup=False)
    if not created.accepted:
        raise typer.Exit(1)


@app.command()
def discard(batch: BatchArg, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Remove a batch whose import never finished (a killed `batch create`) and everything it
    wrote; a complete batch is never removed."""
    cfg = line_setup(config).config
    as_person(cfg, "batch.create", batch)
    with reported():
        removed = batches.discard(cfg, batch)
    console.print(f"batch {batch}: unfinished import removed ({removed} application(s))",
                  highlight=False, markup=False)


def run_with_progress(run: Callable[[Tick, threading.Event], RunResult],
                      title: str) -> RunResult:
    """Call ``run(on_tick, stop)`` with a live progress table and Ctrl-C asking the run to
    stop after the cards in hand."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with Live(console=console, refresh_per_second=4) as live:
            return run(lambda views: live.update(progress_table(title, views)), stop)
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(config_path: Path, name: str, cards_out: Path | None = None) -> None:
    setup = line_setup(config_path)
    as_person(setup.config, "batch.run", name)
    outputs = batches.Outputs(cards_out) if cards_out is not None else None
    with reported():
        result = run_with_progress(
            lambda tick, stop: batches.run(setup, name, on_tick=tick, stop=stop,
                                           outputs=outputs),
            f"batch {name}")
    state = "finished" if result.finished else "stopped" if result.errors else \
        "done on this line" if result.line_done else "paused"
    console.print(f"batch {name} {state} after {result.seconds:.1f} s: {result.handed_out} "
                  f"handed out, {result.rejected} rejected this run", highlight=False,
                  markup=False)
    for error in result.errors:
        console.print(f"[red]error:[/] {escape(error)}", highlight=False)
    if result.line_done and not result.finished and not result.errors:
        console.print(f"other lines still hold cards of {name}; the last of them closes it "
                      f"(see `cardline batch status {name}`)", highlight=False, markup=False)
    elif not result.finished:
        console.print(f"resume with `cardline batch resume {name}`", highlight=False,
                      markup=False)
    _checkpoint(setup.config)
    if result.errors:
        raise typer.Exit(2)


def _checkpoint(config: LineConfig) -> None:
    """Sign the chain heads the run moved (the audit key on the line token), so the trail
    up to the end of this run is vouched for by a signature, not by its hashes alone."""
    try:
        made = audit.checkpoint(config, create=False)  # the key is made at `keys init`
    except CardlineError as exc:  # the run's outcome stands; the trail says what failed
        err_console.print(f"[yellow]warning:[/] no audit checkpoint: {escape(str(exc))}",
                          highlight=False)
        return
    for point in made:
        console.print(f"audit checkpoint: chain {point.chain} at seq {point.seq}",
                      highlight=False, markup=False)


@app.command()
def run(batch: BatchArg, config: ConfigOption = DEFAULT_CONFIG,
        cards_out: Annotated[Path | None, typer.Option(
            "--cards-out", hidden=True,
            help="the demo's synthetic cards: write each card's faces under DIR/cards")] = None,
        ) -> None:
    """Run a batch on the line's stations: progress per station; Ctrl-C stops cleanly (each
    station finishes the card in hand)."""
    _run(config, batch, cards_out)


@app.command()
def resume(batch: BatchArg, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Carry on with a stopped or crashed batch: cards left in doubt are settled first (read
    back from the chip, or spoiled and their applications queued again)."""
    _run(config, batch)


def _control(config: Path, name: str, action: Control) -> None:
    with reported():
        cfg = line_setup(config).config
        batches.request(cfg, name, action, as_person(cfg, "batch.control", name).name)
    console.print(f"batch {name}: {action} requested; the running line obeys within a second",
                  highlight=False, markup=False)


@app.command()
def pause(batch: BatchArg, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Ask the line running BATCH (from any terminal) to pause: each station finishes the card
    in hand and waits for `batch continue`."""
    _control(config, batch, "pause")


@app.command("continue")
def continue_(batch: BatchArg, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Let a paused run carry on."""
    _control(config, batch, "resume")


@app.command()
def stop(batch: BatchArg, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Ask the line running BATCH to stop after the cards in hand; `batch resume` carries on
    later."""
    _control(config, batch, "stop")


@app.command()
def status(
    batch: Annotated[str | None, typer.Argument(help="one batch (default: all)")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
    stations: Annotated[bool, typer.Option(
        "--stations", help="also each station's live state (one batch)")] = False,
) -> None:
    """Where each batch stands: applications, stock, cards in doubt, station alarms."""
    cfg = line_setup(config).config
    with reported():
        rows = batches.status(cfg, batch)
        if stations and batch:
            rows[0]["stations"] = batches.live(cfg, batch)
    if as_json:
        typer.echo(json.dumps(rows[0] if batch else rows, ensure_ascii=False))
        return
    table = Table("batch", "state", "handed out", "failed", "pending", "fed", "in doubt",
                  "alarms")
    for row in rows:
        apps = row["applications"]
        table.add_row(escape(row["batch"]), "finished" if row["finished"] else row["state"],
                      str(apps["handed_out"]), str(apps["failed"]),
                      str(apps["pending"] + apps["active"]), str(row["stock"]["fed"]),
                      str(row["in_doubt"]), escape(", ".join(f"{k}: {v}" for k, v in
                                                             row["alarms"].items())))
    console.print(table)
    if batch and len(rows[0]["lines"]) > 1:
        _print_lines(rows[0]["lines"])
    if stations and batch:
        _print_live(rows[0]["stations"])


def _print_lines(lines: list[dict[str, Any]]) -> None:
    table = Table("line", "lease", "held by", "stations", "claimed", "in doubt")
    for row in lines:
        lease = "left" if row["left"] else \
            f"{'alive' if row['alive'] else 'DEAD'} ({row['heartbeat_age_s']:g} s ago)"
        table.add_row(escape(row["line"]), lease, escape(row["holder"]),
                      escape(", ".join(row["stations"])), str(row["claimed"]),
                      str(row["in_doubt"]))
    console.print(table)


def _print_live(stations: list[dict[str, Any]]) -> None:
    table = Table("station", "state", "application", "alarm", "encoder", "as of")
    for row in stations:
        live = row.get("live") or {}
        table.add_row(row["station"], str(live.get("state", "—")),
                      str(live.get("application") or ""), escape(str(live.get("alarm") or "")),
                      str(live.get("encoder", "")), str(row.get("live_at") or "—"))
    console.print(table)


@app.command()
def report(
    batch: BatchArg,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="write report.json and report.html into this folder")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """The batch report: every card fed, applications, stock reconciliation, reject reasons,
    station utilisation and throughput (JSON, and an HTML page with charts)."""
    cfg = line_setup(config).config
    as_person(cfg, "report.read", batch)
    with reported():
        result = batches.report(cfg, batch)
        files = batches.write_report(result, out) if out is not None else None
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    elif files is not None:
        console.print(f"report: {files[0]}, {files[1]}", highlight=False, markup=False)
    else:
        print_batch_summary(result)
        stock = result["stock"]
        console.print("stock reconciles" if stock["reconciled"] else
                      "stock does NOT reconcile: " + "; ".join(stock["differences"]),
                      highlight=False, markup=False)


@app.command()
def results(
    batch: BatchArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="the signed results file (.p7m)")],
    config: ConfigOption = DEFAULT_CONFIG,
) -> None:
    """Write the issuance results of a closed batch for the registry: one JSON line per
    application (status, reason codes, card, document number, chip serial, dates, DS
    certificate serial, the card it superseded), signed by the factory key (CMS, DER). Made
    once; later calls write the same bytes. `openssl cms -verify -binary -inform DER -in OUT
    -CAfile factory-sign.pem` checks it."""
    setup = line_setup(config)
    person = as_person(setup.config, "batch.results", batch)
    with reported():
        made = issuance.issuance_results(setup.config, batch, out, actor=person.name)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(made.counts.items()))
    console.print(f"batch {batch}: issuance results written to {out} ({counts or 'empty'})",
                  markup=False)
