"""`cardline batch`: create a batch from approved applications, run it on the line, resume it
after a stop or a crash, and report on it."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from applets.errors import CardError
from applets.transport.pcsc import list_readers
from hsm import ceremony
from hsm.errors import HSMError
from personalization.applications.intake import read_applications
from personalization.cli.common import ConfigOption, JsonOption, console, fail, line_config
from personalization.cli.keys import open_inventory, open_signer
from personalization.config import DEFAULT_CONFIG, LineConfig
from personalization.errors import PersonalizationError
from personalization.face import card_layout
from personalization.journal import Journal
from personalization.line.context import Outputs
from personalization.line.controller import LineController, LineParts, RunResult, line_lock
from personalization.line.report import build_report, render_html
from personalization.line.station import StationSpec
from personalization.prep import Preparer, document_number
from personalization.profile import DocumentProfile, load_profile
from printers.errors import PrinterError
from qa.passive_auth import TrustStore

app = typer.Typer(help="Batches: create one from approved applications, run it on the line, "
                       "resume it, see its status and report.", no_args_is_help=True)
BatchArg = Annotated[str, typer.Argument(help="the batch's name (see `cardline batch status`)")]


def open_journal(config: LineConfig, *, purge: bool = False) -> Journal:
    """The line's journal (created and migrated as needed); with ``purge``, closed batches
    whose retention has run out lose their personal data first."""
    try:
        journal = Journal.open(config.journal.url)
        if purge:
            journal.purge_due()
    except PersonalizationError as exc:
        fail(str(exc))
    return journal


def _profile(config: LineConfig, config_path: Path) -> DocumentProfile:
    try:
        return load_profile(config.profile, config_path.resolve().parent)
    except PersonalizationError as exc:
        fail(str(exc))


@app.command()
def create(
    file: Annotated[Path, typer.Argument(help="approved applications, JSON Lines")],
    name: Annotated[str, typer.Option("--name", "-n", help="the batch's name")],
    max_attempts: Annotated[int | None, typer.Option(
        min=1, max=10, help="cards per application at most (default: line.yaml)")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Check every application; accept the valid ones into a new batch, quarantine the rest
    with their reasons. Exit 1 when nothing could be accepted."""
    cfg = line_config(config)
    profile = _profile(cfg, config)
    try:
        intake = read_applications(file, profile.intake_rules(), date.today())
    except OSError as exc:
        fail(f"{file}: cannot read: {exc.strerror}")
    valid = [(line, a, document_number(a)) for line, a in intake.valid]
    with open_journal(cfg, purge=True) as journal:
        try:
            info = journal.create_batch(
                name, source=str(file.resolve()), profile=profile.name,
                max_attempts=max_attempts or cfg.controller.max_attempts, valid=valid,
                invalid=intake.invalid)
        except PersonalizationError as exc:
            fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"batch": name, "accepted": len(valid),
                               "quarantined": [r.as_dict() for r in intake.invalid]},
                              ensure_ascii=False))
    else:
        console.print(f"batch {info.name}: {len(valid)} application(s) accepted, "
                      f"{len(intake.invalid)} quarantined", highlight=False)
        for record in intake.invalid:
            reasons = "; ".join(f"{e.field}: {e.reason}" for e in record.errors)
            console.print(f"  line {record.line} ({record.application_id or '?'}): {reasons}",
                          highlight=False, markup=False)
    if not valid:
        raise typer.Exit(1)


def station_specs(config: LineConfig) -> list[StationSpec]:
    """The stations of line.yaml with their printer ports and PC/SC reader names resolved."""
    try:
        readers = list_readers()
    except CardError:
        readers = []
    specs = []
    for station in config.stations:
        port = station.printer.port
        if port == "auto":
            pty = config.data_dir / "printers" / f"{station.name}.pty"
            try:
                port = pty.read_text(encoding="utf-8").strip()
            except OSError:
                fail(f"station {station.name}: printer port is 'auto' but no simulated printer "
                     f"runs (no {pty}); start the line with `cardline line up`")
        wanted = station.encoder.reader
        found = [r for r in readers if r == wanted or r.startswith(wanted + " ")]
        specs.append(StationSpec(station.name, port, found[0] if len(found) == 1 else wanted))
    return specs


@contextmanager
def line_parts(config: LineConfig, profile: DocumentProfile,
               outputs: Outputs | None = None) -> Iterator[LineParts]:
    """Signer, trust store and card layout for a run on this line's keys."""
    with open_inventory(config) as inventory:
        try:
            trust = TrustStore.from_pem(ceremony.export_csca_pem(inventory).encode("ascii"))
        except HSMError as exc:
            fail(f"{exc} (a security officer creates the CSCA and DS with `cardline keys`)")
        with open_signer(config, inventory) as signer:
            yield LineParts(Preparer(profile, signer), profile, card_layout(profile), trust,
                            outputs or Outputs(), config.controller.alarm_poll_s,
                            config.journal.retention_days)


def _progress(controller: LineController, total: int) -> Table:
    table = Table(title=f"batch {controller.batch}", expand=False)
    for column in ("station", "handed out", "rejected", "busy s", "now"):
        table.add_column(column)
    for station in controller.stations:
        stats = station.stats
        now = f"[red]ALARM {stats.alarm}[/]" if stats.alarm else (stats.current and "card") or ""
        table.add_row(station.name, str(stats.handed_out), str(stats.rejected),
                      f"{stats.busy_s:.1f}", now)
    done = sum(s.stats.handed_out for s in controller.stations)
    table.caption = f"{done} handed out this run; {total} application(s) were waiting"
    return table


def run_batch(config: LineConfig, profile: DocumentProfile, name: str, journal: Journal,
              specs: list[StationSpec], outputs: Outputs | None = None,
              show: bool = True) -> RunResult:
    """Run (or resume) a batch on these stations until it is done or Ctrl-C pauses it."""
    with line_lock(journal.path), line_parts(config, profile, outputs) as parts:
        total = journal.batch(name).applications["pending"]
        controller = LineController(journal, name, specs, parts)
        previous = signal.signal(signal.SIGINT, lambda *_: controller.stop.set())
        try:
            if show:
                with Live(console=console, refresh_per_second=4) as live:
                    result = controller.run(
                        lambda c: live.update(_progress(c, total)))
                    live.update(_progress(controller, total))
            else:
                result = controller.run()
        finally:
            signal.signal(signal.SIGINT, previous)
    return result


def _run(config_path: Path, name: str, resume: bool) -> None:
    cfg = line_config(config_path)
    profile = _profile(cfg, config_path)
    with open_journal(cfg) as journal:
        try:
            journal.batch(name)
        except PersonalizationError:
            fail(f"no batch named {name!r} (create it with `cardline batch create`)")
        started = bool(journal.cards(name))
    if resume and not started:
        fail(f"batch {name!r} has not been run yet; use `cardline batch run {name}`")
    try:
        with open_journal(cfg, purge=True) as journal:
            result = run_batch(cfg, profile, name, journal, station_specs(cfg))
    except (PersonalizationError, HSMError, CardError, PrinterError, OSError) as exc:
        fail(str(exc))
    state = "finished" if result.finished else "stopped" if result.errors else "paused"
    console.print(f"batch {name} {state} after {result.seconds:.1f} s: {result.handed_out} "
                  f"handed out, {result.rejected} rejected this run", highlight=False)
    for error in result.errors:
        console.print(f"[red]error:[/] {error}", highlight=False)
    if not result.finished:
        console.print(f"resume with `cardline batch resume {name}`", highlight=False)
    if result.errors:
        raise typer.Exit(2)


@app.command()
def run(batch: BatchArg, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Run a batch on the line's stations: progress per station; Ctrl-C pauses cleanly (each
    station finishes the card in hand)."""
    _run(config, batch, resume=False)


@app.command()
def resume(batch: BatchArg, config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Carry on with a paused or crashed batch: cards left in doubt are settled first (read
    back from the chip, or spoiled and their applications queued again)."""
    _run(config, batch, resume=True)


def _status_of(journal: Journal, name: str) -> dict[str, Any]:
    info = journal.batch(name)
    return {"batch": name, "state": info.state, "finished": info.finished,
            "created_at": info.created_at, "applications": info.applications,
            "quarantined": info.quarantined, "stock": journal.stock(name),
            "in_doubt": len(journal.open_cards(name)),
            "alarms": {s["station"]: s["alarm"] for s in journal.stations(name) if s["alarm"]},
            "personal_data_purged": info.purged_at is not None}


@app.command()
def status(
    batch: Annotated[str | None, typer.Argument(help="one batch (default: all)")] = None,
    config: ConfigOption = DEFAULT_CONFIG,
    as_json: JsonOption = False,
) -> None:
    """Where each batch stands: applications, stock, cards in doubt, station alarms."""
    cfg = line_config(config)
    with open_journal(cfg) as journal:
        try:
            names = [batch] if batch else [b.name for b in journal.batches()]
            rows = [_status_of(journal, n) for n in names]
        except PersonalizationError as exc:
            fail(str(exc))
    if as_json:
        typer.echo(json.dumps(rows[0] if batch else rows, ensure_ascii=False))
        return
    table = Table("batch", "state", "handed out", "failed", "pending", "fed", "in doubt",
                  "alarms")
    for row in rows:
        apps = row["applications"]
        table.add_row(row["batch"], "finished" if row["finished"] else row["state"],
                      str(apps["handed_out"]), str(apps["failed"]),
                      str(apps["pending"] + apps["active"]), str(row["stock"]["fed"]),
                      str(row["in_doubt"]), ", ".join(f"{k}: {v}" for k, v in
                                                      row["alarms"].items()))
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
    cfg = line_config(config)
    with open_journal(cfg) as journal:
        try:
            result = build_report(journal, batch)
        except PersonalizationError as exc:
            fail(str(exc))
    if out is not None:
        write_report(result, out)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    elif out is not None:
        console.print(f"report: {out / 'report.json'}, {out / 'report.html'}")
    else:
        _print_summary(result)


def write_report(result: dict[str, Any], out: Path) -> None:
    """``report.json`` and ``report.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n",
                                     encoding="utf-8")
    (out / "report.html").write_text(render_html(result), encoding="utf-8")


def _print_summary(result: dict[str, Any]) -> None:
    table = Table(title=f"batch {result['batch']}")
    table.add_column("")
    table.add_column("count")
    for group in ("applications", "stock"):
        for key, value in result[group].items():
            if isinstance(value, int):
                table.add_row(f"{group}.{key}", str(value))
    console.print(table)
    stock = result["stock"]
    console.print("stock reconciles" if stock["reconciled"] else
                  "stock does NOT reconcile: " + "; ".join(stock["differences"]),
                  highlight=False)
