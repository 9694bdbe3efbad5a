"""Batches, for operators: create one from approved applications, run it on the line (or
resume it), pause / resume / stop a run from another process, its status, live stations and
report."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

import structlog

from applets.transport.pcsc import ReaderError
from common.files import write_private
from personalization.applications.intake import InvalidRecord
from personalization.applications.model import FieldError
from personalization.batchimport import Imported, IntakeError, OnProgress, Progress, import_file
from personalization.config import LineConfig
from personalization.face import card_layout
from personalization.journal import open_journal as open_journal_at
from personalization.journal.port import JournalPort as Journal
from personalization.journal.port import PurgeIncompleteError
from personalization.journal.records import StationRow
from personalization.journal.registry_port import ReplayError
from personalization.line.context import Outputs
from personalization.line.controller import (
    LineController,
    LineParts,
    RunResult,
    StationLive,
)
from personalization.line.report import build_report, render_html
from personalization.line.signatures import signature_recorder
from personalization.line.station import StationSpec
from personalization.prep import OnSigned, Preparer
from personalization.profile import DocumentProfile
from personalization.service import eacline
from personalization.service.errors import ServiceError
from personalization.service.keys import (
    csca_pem_or_explain,
    journal_key_wrap,
    open_inventory,
    open_signer,
)
from personalization.service.line import station_specs
from personalization.service.registry import embedded_default, receive, staged_path
from personalization.service.setup import LineSetup
from qa.passive_auth import TrustStore

__all__ = [
    "Control",
    "Created",
    "Journal",
    "OnProgress",
    "Outputs",
    "Progress",
    "RunResult",
    "StationLive",
    "StationSpec",
    "Tick",
    "abandon_line",
    "clear_alarm",
    "create",
    "discard",
    "live",
    "open_journal",
    "report",
    "request",
    "run",
    "status",
    "write_report",
]

_log = structlog.get_logger(__name__)
Control = Literal["pause", "resume", "stop"]
Tick = Callable[[list[StationLive]], None]


@contextmanager
def open_journal(config: LineConfig, *, purge: bool = False,
                 sealed: bool = False) -> Iterator[Journal]:
    """The line's journal (created and migrated as needed); with ``purge``, closed batches
    whose retention has run out lose their personal data first. ``sealed`` (and ``purge``)
    give a PostgreSQL journal the line's HSM to wrap each batch's data key, for what reads or
    writes personal fields or shreds them: creating and running batches, purging."""
    with ExitStack() as stack:
        wrap = None
        if (sealed or purge) and config.journal.url.startswith(("postgresql:", "postgres:")):
            wrap = stack.enter_context(journal_key_wrap(config))
        journal = stack.enter_context(open_journal_at(config.journal.url, wrap=wrap))
        if purge:
            _purge_due(journal)
        yield journal


def _purge_due(journal: Journal) -> None:
    """Purge what is due; an incomplete purge (another process reading the journal) is an
    alarm, logged with batch names only, that stops nothing: the next purge finishes it."""
    try:
        journal.purge_due()
    except PurgeIncompleteError as exc:
        _log.error("journal.purge_incomplete", batches=exc.pending)


@dataclass(frozen=True, slots=True)
class Created:
    """A new batch: how many applications it took, the records quarantined at intake, and how
    the import went."""

    name: str
    accepted: int
    quarantined: list[InvalidRecord]
    imported: Imported

    def as_dict(self) -> dict[str, Any]:
        """``batch create --json``."""
        return {"batch": self.name, "accepted": self.accepted,
                "quarantined": [r.as_dict() for r in self.quarantined],
                "import": self.imported.as_dict()}


def create(setup: LineSetup, file: Path, name: str, max_attempts: int | None = None,
           journal: Journal | None = None, *, workers: int | None = None,
           on_progress: OnProgress | None = None, unsigned: bool = False,
           actor: str | None = None) -> Created:
    """Verify the registry's signature on ``file`` (see :mod:`.registry`; ``unsigned``: a
    plain file, on the embedded default only), then check every application on every core
    (``workers`` processes) and write the batch a chunk at a time: valid ones queued, the rest
    quarantined with their reasons (``journal``: another journal than the line's). The batch
    can run once the whole file is in; a batch of that name left half-imported (a killed
    ``batch create``) carries on from its last chunk when the same file is given again. A
    registry batch id already received for another batch is refused as a replay."""
    profile = setup.profile()
    try:
        with receive(setup.config, file, unsigned=unsigned) as got, \
                _journal(setup.config, journal, purge=True) as store:
            if got.signed:
                store.receive(got.row(name), actor=actor)
            imported = import_file(
                store, got.records, name, policy=got.rules(profile.intake_rules()),
                today=date.today(),
                profile=profile.name, workers=workers, on_progress=on_progress,
                max_attempts=max_attempts or setup.config.controller.max_attempts,
                base=got.base)
            quarantined = [InvalidRecord(r["line"], r["application_id"],
                                         tuple(FieldError(**e) for e in r["errors"]))
                           for r in store.quarantined(name)]
    except OSError as exc:
        raise ServiceError(f"{file}: cannot read: {exc.strerror}") from exc
    except (IntakeError, ReplayError) as exc:
        raise ServiceError(str(exc)) from exc
    return Created(name, imported.accepted, quarantined, imported)


def discard(config: LineConfig, name: str) -> int:
    """Remove a batch whose import never finished (a killed ``batch create``) and all it
    wrote; returns the applications removed. A complete batch is never discarded."""
    with open_journal(config) as journal:
        if journal.batch(name).state != "importing":
            raise ServiceError(f"batch {name!r} is complete: only an unfinished import can be "
                               "discarded")
        received = journal.received_for(name)
        removed = journal.discard_import(name)
    if received is not None:  # a killed import of a signed file left its private copy
        staged_path(config, received.registry_id).unlink(missing_ok=True)
    return removed


@contextmanager
def _journal(config: LineConfig, given: Journal | None, *, purge: bool = False,
             sealed: bool = True) -> Iterator[Journal]:
    if given is not None:
        yield given
        return
    with open_journal(config, purge=purge, sealed=sealed) as journal:
        yield journal


@contextmanager
def line_parts(config: LineConfig, profile: DocumentProfile,
               outputs: Outputs | None = None,
               on_signed: OnSigned | None = None) -> Iterator[LineParts]:
    """Signer, trust store and card layout for a run on this line's keys (``on_signed``:
    told each EF.SOD signed, before it goes to a chip)."""
    with open_inventory(config) as inventory, ExitStack() as stack:
        trust = TrustStore.from_pem(csca_pem_or_explain(inventory).encode("ascii"))
        line_eac = stack.enter_context(eacline.line_eac(config)) if profile.chip.eac else None
        with open_signer(config, inventory) as signer:
            yield LineParts(Preparer(profile, signer, on_signed), profile,
                            card_layout(profile), trust,
                            outputs or Outputs(), config.controller.alarm_poll_s,
                            config.journal.retention_days, config.controller.qa_deadline_s,
                            config.controller.stop_grace_s, config.line,
                            config.controller.lease_s, line_eac)


def run(setup: LineSetup, name: str, *, specs: list[StationSpec] | None = None,
        outputs: Outputs | None = None,
        on_tick: Tick | None = None, stop: threading.Event | None = None,
        journal: Journal | None = None) -> RunResult:
    """Run a batch on the line's stations until it is done, an operator stops it, or
    ``stop`` is set (the CLI sets it on Ctrl-C). Any open batch runs, whenever an earlier run
    ended or died: cards it left in doubt are settled first.

    ``specs`` and ``journal`` default to the line's own (the demo passes its private line).
    """
    config = setup.config
    with _journal(config, journal) as store:
        if store.batch(name).state == "importing":  # a clear error when there is no such batch
            raise ServiceError(f"batch {name!r} is still being imported: finish it with "
                               f"`cardline batch create FILE --name {name}` or remove it with "
                               f"`cardline batch discard {name}`")
        if store.received_for(name) is None and not embedded_default(config):
            raise ServiceError(f"batch {name!r} was not made from a file the registry signed: "
                               "a factory line signs chip data for verified batches only")
        if journal is None:
            _purge_due(store)
        stations = specs if specs is not None else station_specs(config)
        with store.controller_lock(config.line), \
                line_parts(config, setup.profile(), outputs,
                           signature_recorder(store, name, "batch run")) as parts:
            controller = LineController(store, name, stations, parts, stop=stop)
            tick = None if on_tick is None else (lambda c: on_tick(c.live()))
            try:
                return controller.run(tick)
            except ReaderError as exc:
                raise ServiceError(f"the line's encoders: {exc}") from exc


def request(config: LineConfig, name: str, action: Control, by: str) -> None:
    """Ask the process running batch ``name`` to pause, resume or stop (it obeys within a
    tick, a quarter of a second); ``by`` names who asked, for the event log."""
    if action not in ("pause", "resume", "stop"):
        raise ServiceError(f"unknown run control {action!r}; use pause, resume or stop")
    with open_journal(config) as journal:
        if journal.batch(name).state == "closed":
            raise ServiceError(f"batch {name!r} is closed: there is no run to {action}")
        journal.request_control(name, action, by)


def clear_alarm(config: LineConfig, name: str, station: str, by: str) -> None:
    """An operator says a station's alarm is dealt with: it is cleared (``station.cleared``;
    the caller audits who, as ``people.acted``). A station whose trouble is still there
    raises it again at its next look (``controller.alarm_poll_s``); one that works again
    carries on."""
    with open_journal(config) as journal:
        rows = {row["station"]: row for row in journal.stations(name)}
        if station not in rows:
            raise ServiceError(f"batch {name!r} has no station {station!r}")
        if rows[station]["alarm"] is None:
            raise ServiceError(f"station {station!r} has no alarm to clear")
        journal.set_alarm(name, station, None)
    _log.info("station.alarm_cleared", batch=name, station=station, by=by)


def live(config: LineConfig, name: str) -> list[StationRow]:
    """Each station of a batch as its controller last published it (``live_at`` says when)."""
    with open_journal(config) as journal:
        journal.batch(name)
        return journal.stations(name)


def _status_of(journal: Journal, name: str, lease_s: float) -> dict[str, Any]:
    info = journal.batch(name)
    return {"batch": name, "state": info.state, "finished": info.finished,
            "created_at": info.created_at, "applications": info.applications,
            "quarantined": info.quarantined, "stock": journal.stock(name),
            "in_doubt": len(journal.open_cards(name)),
            "alarms": {s["station"]: s["alarm"] for s in journal.stations(name) if s["alarm"]},
            "lines": journal.lines(name, lease_s),
            "personal_data_purged": info.purged_at is not None}


def status(config: LineConfig, name: str | None = None) -> list[dict[str, Any]]:
    """Where each batch (or the one named) stands: applications, stock, cards in doubt,
    station alarms, and every line that has run it (its lease, claims, cards in doubt)."""
    with open_journal(config) as journal:
        names = [name] if name else [b.name for b in journal.batches()]
        return [_status_of(journal, n, config.controller.lease_s) for n in names]


def abandon_line(config: LineConfig, name: str, line: str, by: str) -> list[int]:
    """An operator declares a dead line's machines emptied: its cards in doubt in batch
    ``name`` are spoiled and their applications go back to the pool for the other lines.
    Journaled with who declared it. Refused while the line heartbeats (stop it first)."""
    with open_journal(config) as journal:
        if journal.batch(name).state == "closed":
            raise ServiceError(f"batch {name!r} is closed: nothing of it is in doubt")
        spoiled = journal.abandon_line(name, line, by, config.controller.lease_s)
    _log.warning("line.abandoned", batch=name, line=line, by=by, cards=len(spoiled))
    return spoiled


def report(config: LineConfig, name: str, journal: Journal | None = None) -> dict[str, Any]:
    """The batch report: every card fed, applications, stock reconciliation, reject reasons,
    station utilisation and throughput."""
    with _journal(config, journal, sealed=False) as store:
        return build_report(store, name)


def write_report(result: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``report.json`` and ``report.html`` into ``out``, owner-only (they list document
    numbers, which on a CCCD are made from the holder's personal ID); returns both paths."""
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        paths = out / "report.json", out / "report.html"
        texts = json.dumps(result, ensure_ascii=False, indent=2) + "\n", render_html(result)
        for path, text in zip(paths, texts, strict=True):
            write_private(path, text)  # 0600 even over an older report written 0644
    except OSError as exc:
        raise ServiceError(f"cannot write the report into {out}: {exc.strerror}") from exc
    return paths


def summary_rows(result: dict[str, Any]) -> list[tuple[str, int]]:
    """The counts of a report, as (``group.key``, count) rows for a summary table."""
    return [(f"{group}.{key}", value) for group in ("applications", "stock", "qa_protocols")
            for key, value in result.get(group, {}).items()
            if isinstance(value, int) and not isinstance(value, bool)]
