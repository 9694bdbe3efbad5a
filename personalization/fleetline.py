"""``fleet_vs_bound`` for ``cardline bench``: three lines of two real (simulated) stations each,
at realistic printer timing, as three ``cardline batch run`` processes on one PostgreSQL
journal with production durability — against the bound ``6 / one station's bare cycle``,
the cycle measured in the same run (one card through one station's physical steps, no
journal, no controller).

Throughput is the batch's handed-out cards over the span from the first card begun to the
last card done (the lines' start-up is not the machines' time).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from applets.virtual.bank import EncoderBank
from hsm import eac as hsm_eac
from hsm.ceremony import init_csca, new_ds
from hsm.inventory import AuditEntry, InventoryPort, KeyInventory
from hsm.keywrap import HSMKeyWrap
from hsm.pkcs11 import HSM
from personalization.benchkit import BenchHSM
from personalization.demoregistry import ensure_demo_registry, verified_batch
from personalization.errors import PersonalizationError
from personalization.fleetbench import BATCH, production_cluster
from personalization.journal import JournalPort, open_journal
from personalization.journal.people_port import AccountRow
from personalization.journal.people_port import people as people_of
from personalization.journal.pg_inventory import PostgresKeyInventory
from personalization.journal.pgcluster import LINE, OWNER
from personalization.line.report import build_report
from personalization.line.station import StationSpec
from personalization.linebench import bare_cycle, line_parts
from personalization.people import hash_passphrase
from personalization.profile import DocumentProfile
from personalization.simline import PrinterLine
from personalization.synth import synthesize

LINES = 3
STATIONS_PER_LINE = 2
CARDS_PER_STATION = 4
OFFICERS = ("Bench Officer A", "Bench Officer B")
LINE_WAIT_S = 900.0
BENCH_OPERATOR = "bench-operator"  # the one account of the bench's journal


class FleetLineError(PersonalizationError):
    """A line of the realistic fleet run did not finish; the message says which and where
    its log is."""


def _line_yaml(hsm: BenchHSM, url: str, line: str, data_dir: Path,
               stations: list[tuple[str, str, str]], profile: str) -> dict[str, Any]:
    return {
        "line": line, "profile": profile, "data_dir": str(data_dir),
        "hsm": {"module": hsm.module, "token": hsm.token, "pin_source": "env",
                "softhsm_conf": os.environ.get("SOFTHSM2_CONF")},
        "journal": {"url": url},
        "controller": {"max_attempts": 3, "alarm_poll_s": 0.1},
        "stations": [{"name": name, "printer": {"port": port}, "encoder": {"reader": reader}}
                     for name, port, reader in stations],
    }


def fleet_line(root: Path, profile: DocumentProfile, hsm: BenchHSM, *, base_port: int,
               timing: str = "realistic", cards_per_station: int = CARDS_PER_STATION,
               ) -> dict[str, float]:
    """Measure the bare cycle and the three lines' throughput; the figures of the section."""
    if profile.chip.eac and hsm.eac is None:
        raise FleetLineError(f"profile {profile.name!r} makes EAC chips: the fleet line needs "
                             "the EAC PKI on the bench token (bench_hsm's eac)")
    stations = LINES * STATIONS_PER_LINE
    names = {f"l{n + 1}-s{s + 1}": n * STATIONS_PER_LINE + s
             for n in range(LINES) for s in range(STATIONS_PER_LINE)}
    cards = stations * cards_per_station
    records = root / "fleet-line" / "apps" / "applications.jsonl"
    synthesize(cards, 61, records)
    bank = EncoderBank(root / "fleet-line" / "bank", stations, base_port, timing=timing)
    blanks = cards_per_station * 3 + 4
    with bank, PrinterLine(root / "fleet-line" / "bank", names, bank.host_socket,
                           bank.chips_dir, timing, blanks) as printers, \
            production_cluster() as cluster:
        specs = {n: StationSpec(n, printers.port(n), bank.reader_name(i))
                 for n, i in names.items()}
        cycle = bare_cycle(specs["l1-s1"], line_parts(profile, hsm), hsm, root, 1)
        cluster.create_database("fleet")
        open_journal(cluster.url("fleet", OWNER)).close()  # migrated by its owner
        url = cluster.url("fleet", LINE)
        with HSM(hsm.module, hsm.token, hsm.pin) as token, \
                PostgresKeyInventory(url) as inventory:
            now = datetime.now(UTC)
            init_csca(token, inventory, officers=OFFICERS, at=now, label="CSCA-FLEET")
            new_ds(token, inventory, officers=OFFICERS, at=now, usage_days=30,
                   max_documents=1_000_000, label_prefix="DS-FLEET")
            if profile.chip.eac:  # the lines' trust point and QA terminal, as the token has them
                _share_eac_keys(hsm, inventory, now)
            with open_journal(url, wrap=HSMKeyWrap(token)) as journal:
                # signed and verified as `batch create` takes it: lines run verified batches
                verified_batch(journal, BATCH, records, ensure_demo_registry(root / "fleet-line"),
                               policy=profile.intake_rules(), today=date.today(),
                               profile=profile.name)
                acting = _operator(journal)
        codes = _run_lines(root / "fleet-line", hsm, url, specs, acting, profile.name)
        with open_journal(url) as journal:
            report = build_report(journal, BATCH)
    bad = {line: code for line, code in codes.items() if code != 0}
    if bad or report["applications"]["handed_out"] != cards:
        raise FleetLineError(f"fleet line: lines {bad or 'all exited 0'}, "
                             f"{report['applications']['handed_out']} of {cards} handed out; "
                             f"logs under {root / 'fleet-line'}")
    throughput = cards / report["throughput"]["seconds"]
    bound = stations / cycle
    return {"fleet_station_cycle_s": round(cycle, 4),
            "fleet_line_cards_per_s": round(throughput, 4),
            "fleet_bound_cards_per_s": round(bound, 4),
            "fleet_vs_bound": round(throughput / bound, 3)}


def _operator(journal: JournalPort) -> dict[str, str]:
    """The bench's operator, the one account of its journal: the environment the line
    processes act in (a random passphrase, kept nowhere else)."""
    phrase = secrets.token_urlsafe(18)
    now = datetime.now(UTC)
    people_of(journal).add_account(
        AccountRow(BENCH_OPERATOR, ("operator",), hash_passphrase(phrase), False, 0, None, now,
                   "bench", now), actor="bench", first=True)
    return {"CARDLINE_USER": BENCH_OPERATOR, "CARDLINE_PASSPHRASE": phrase}


def _share_eac_keys(hsm: BenchHSM, shared: InventoryPort, now: datetime) -> None:
    """The EAC keys of the bench token (CVCA, DV, QA desk IS), entered in the lines' shared
    inventory as a second line's officers enter the keys of a token it shares."""
    with KeyInventory(hsm.data_dir / "hsm" / "inventory.db") as own:
        for role in (hsm_eac.CVCA, hsm_eac.DV, hsm_eac.IS):
            record = own.active(role)
            if record is None:
                raise FleetLineError(f"the bench token has no active {role} key")
            shared.add_key(record, AuditEntry(now, "bench-share", record.label, OFFICERS,
                                              f"role={role}"))


def _run_lines(folder: Path, hsm: BenchHSM, url: str, specs: dict[str, StationSpec],
               acting: Mapping[str, str], profile: str) -> dict[str, int | None]:
    """Start the three ``cardline batch run`` processes together; their exit codes."""
    processes: dict[str, subprocess.Popen[bytes]] = {}
    env = {**os.environ, "CARDLINE_HSM_PIN": hsm.pin, **acting}
    for number in range(1, LINES + 1):
        line = f"line-{number}"
        own = [(s.name, s.printer_port, s.reader) for n, s in specs.items()
               if n.startswith(f"l{number}-")]
        config = folder / f"{line}.yaml"
        config.write_text(yaml.safe_dump(_line_yaml(hsm, url, line, folder / line, own,
                                                     profile)), encoding="utf-8")
        with (folder / f"{line}.log").open("wb") as sink:
            processes[line] = subprocess.Popen(  # noqa: S603 - our own module
                [sys.executable, "-m", "personalization", "batch", "run", BATCH, "--config",
                 str(config)], stdout=sink, stderr=sink, stdin=subprocess.DEVNULL, env=env)
    return wait_lines(processes, LINE_WAIT_S)


def wait_lines(processes: Mapping[str, subprocess.Popen[bytes]],
               seconds: float) -> dict[str, int | None]:
    """Each line process's exit code; one still running after ``seconds`` in all is
    terminated and has None."""
    deadline = time.monotonic() + seconds
    codes: dict[str, int | None] = {}
    for line, process in processes.items():
        try:
            codes[line] = process.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.terminate()
            process.wait()
            codes[line] = None
    return codes
