"""The fleet demo: several lines, each a ``cardline batch run`` process of its own with its own
stations, draining one batch in a shared PostgreSQL journal — as lines in two halls would.

The machines are simulated on this one computer: one pcscd (it serves one socket per
machine) with a virtual encoder per station, the lines' readers disjoint; one printer
emulator process with a pseudo-terminal per station. Everything the demo writes is under
``<data_dir>/demo-fleet`` and the output folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from applets.virtual.bank import EncoderBank
from personalization.fleetline import wait_lines
from personalization.journal import open_journal
from personalization.service import batches, demopeople
from personalization.service.demo import DemoOptions, DemoStart
from personalization.service.demopeople import ensure_keys
from personalization.service.errors import ServiceError
from personalization.service.keys import move_in
from personalization.service.setup import LineSetup
from personalization.simline import PrinterLine
from personalization.synth import synthesize

LINE_WAIT_S = 900.0  # a line process that has not ended by then is stopped and reported


@dataclass(frozen=True, slots=True)
class LineFigures:
    """What one line did in the fleet demo."""

    line: str
    stations: list[str]
    exit_code: int | None
    handed_out: int
    rejected: int
    seconds: float
    log: Path

    def as_dict(self) -> dict[str, Any]:
        """For ``report.json``'s ``lines``."""
        return {"line": self.line, "stations": self.stations, "exit_code": self.exit_code,
                "handed_out": self.handed_out, "rejected": self.rejected,
                "seconds": round(self.seconds, 2),
                "cards_per_s": round(self.handed_out / self.seconds, 2) if self.seconds else 0}


@dataclass(frozen=True, slots=True)
class FleetDemoResult:
    """How the fleet demo ended."""

    start: DemoStart
    lines: list[LineFigures]
    report: dict[str, Any]
    report_files: tuple[Path, Path]
    cards_dir: Path

    @property
    def finished(self) -> bool:
        """Every line ended well and the batch is closed."""
        return self.report["state"] == "closed" and all(f.exit_code == 0 for f in self.lines)


def _line_yaml(setup: LineSetup, url: str, line: str,
               stations: list[tuple[str, str, str]]) -> dict[str, Any]:
    """A line's configuration: the demo line's own, with its name, stations and the shared
    journal."""
    raw: dict[str, Any] = setup.config.model_dump(mode="json")
    raw["line"] = line
    raw["journal"] = {**raw["journal"], "url": url}
    raw["stations"] = [{"name": name, "printer": {"port": port},
                        "encoder": {"reader": reader}} for name, port, reader in stations]
    beside = setup.base / setup.config.profile  # a profile file named relative to line.yaml
    raw["profile"] = str(beside) if beside.exists() else setup.config.profile
    return raw


def run_fleet_demo(setup: LineSetup, options: DemoOptions, lines: int, url: str,
                   on_start: Callable[[DemoStart], None] | None = None) -> FleetDemoResult:
    """Synthesize applications, create one batch in the PostgreSQL journal at ``url``, run
    ``lines`` line processes (``options.stations`` stations each) on it at once, and write the
    usual outputs plus each line's figures (``report.json``: ``lines``)."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise ServiceError("lines sharing a batch share a PostgreSQL journal: give --journal "
                           "postgresql://… (`cardline db start` runs one here)")
    config, out = setup.config, options.out
    shared = LineSetup(config.model_copy(update={"journal": config.journal.model_copy(
        update={"url": url})}), setup.base)
    out.mkdir(parents=True, exist_ok=True)
    (out / "csca.pem").write_text(ensure_keys(config), encoding="ascii")
    move_in(shared.config)  # the lines read their keys from the shared inventory
    folder = config.data_dir / "demo-fleet"
    total = lines * options.stations
    bank = EncoderBank(folder, total, config.simulation.base_port, timing=options.timing,
                       chips_dir=config.data_dir / "chips")
    names = {f"l{line + 1}-s{station + 1}": line * options.stations + station
             for line in range(lines) for station in range(options.stations)}
    blanks = max(10, -(-options.cards * config.controller.max_attempts // total) + 5)
    printers = PrinterLine(folder, names, bank.host_socket, bank.chips_dir, options.timing,
                           blanks)
    name = f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    seed = options.seed
    if seed is None:
        with open_journal(url) as journal:
            seed = 1000 + len(journal.batches())
    synthesize(options.cards, seed, out / "applications.jsonl")
    demopeople.ensure_people(shared.config)  # the lines act as the demo operator there
    acting = demopeople.operator_env(config)
    shared, registry = demopeople.trusting_demo(shared)  # the demo's registry signs the batch
    signed = registry.sign_file(out / "applications.jsonl", out / "applications.p7m", name)
    with bank, printers:
        created = batches.create(shared, signed, name)
        start = DemoStart(name, created.accepted, seed)
        if on_start is not None:
            on_start(start)
        processes: dict[str, tuple[subprocess.Popen[bytes], Path, list[str]]] = {}
        for number in range(1, lines + 1):
            line = f"line-{number}"
            own = [(n, printers.port(n), bank.reader_name(i)) for n, i in names.items()
                   if n.startswith(f"l{number}-")]
            path = folder / f"{line}.yaml"
            path.write_text(yaml.safe_dump(_line_yaml(setup, url, line, own)),
                            encoding="utf-8")
            log = folder / f"{line}.log"
            with log.open("wb") as sink:
                command = [sys.executable, "-m", "personalization", "batch", "run", name,
                           "--config", str(path), "--cards-out", str(out)]
                child = subprocess.Popen(command, stdout=sink, stderr=sink,  # noqa: S603 - our own module
                                         stdin=subprocess.DEVNULL,
                                         env={**os.environ, **acting, "COLUMNS": "100"})
                processes[line] = (child, log, [n for n, _, _ in own])
        codes = wait_lines({line: p for line, (p, _, _) in processes.items()}, LINE_WAIT_S)
        report = batches.report(shared.config, name)
    figures = _figures(url, name, processes, codes)
    for row in report["lines"]:  # the journal's per-line figures, with each process's own
        mine = next((f.as_dict() for f in figures if f.line == row["line"]), {})
        row.update({k: v for k, v in mine.items()
                    if k in ("exit_code", "seconds", "cards_per_s")})
    files = batches.write_report(report, out)
    return FleetDemoResult(start, figures, report, files, out / "cards")


def _figures(url: str, name: str,
             processes: dict[str, tuple[subprocess.Popen[bytes], Path, list[str]]],
             codes: dict[str, int | None]) -> list[LineFigures]:
    """Each line's cards and busy time, from the journal's run events (no personal data)."""
    handed: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    with open_journal(url) as journal:
        for event in journal.events(name):
            data = event["data"]
            if event["kind"] in ("run.finished", "run.done", "run.paused", "run.stopped") \
                    and "line" in data:
                handed[data["line"]] += data["handed_out"]
                rejected[data["line"]] += data["rejected"]
                seconds[data["line"]] += data["seconds"]
    return [LineFigures(line, stations, codes[line], handed[line], rejected[line],
                        seconds[line], log)
            for line, (_, log, stations) in processes.items()]
