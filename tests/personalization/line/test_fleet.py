"""Three lines, one PostgreSQL journal: three ``cardline batch run`` processes, each with its
own station (printer on its own pseudo-terminal, encoder on the one shared pcscd), drain one
batch together; then the same under a storm of SIGKILLs. Every application is handed out once
or failed with reasons, whichever line made it.

How the lines' encoders coexist on one machine: pcscd serves one socket per machine, so the
three lines share the session's pcscd and each line's ``line.yaml`` names a reader no other
line uses (Encoder 0, 1 and 2; the fourth is the QA desk's)."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from applets.virtual.bank import EncoderBank
from hsm.certificates import certificate_to_pem
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.benchkit import BenchHSM, bench_hsm
from personalization.demoregistry import ensure_demo_registry
from personalization.journal import open_journal
from personalization.line.report import build_report
from personalization.profile import load_profile
from personalization.simline import PrinterLine
from personalization.synth import synthesize
from qa.passive_auth import TrustStore
from tests.personalization.line.conftest import empty_encoders, requalify
from tests.support.browser import dashboard, logged_in
from tests.support.crew import enrol, passphrase
from tests.support.pg import TestServer, TwoSites

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm, pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.timeout(600)]
CARDLINE = [sys.executable, "-m", "personalization"]
LINES = {"line-1": ("l1-s1", 0), "line-2": ("l2-s1", 1), "line-3": ("l3-s1", 2)}
BLANKS = 60  # per feeder: 90 cards and a spoiled card per kill fit in three feeders


@dataclass
class Fleet:
    """Three lines' configurations over one printer emulator, one pcscd, one HSM token and
    one PostgreSQL database."""

    root: Path
    bank: EncoderBank
    printers: PrinterLine
    hsm: BenchHSM
    url: str

    def config(self, line: str) -> Path:
        """``line-N.yaml``: this line's station and the shared journal."""
        station, reader = LINES[line]
        path = self.root / f"{line}.yaml"
        path.write_text(yaml.safe_dump({
            "line": line,
            "profile": "cccd-bac",  # the lines' crash tests run on the BAC chip (faster)
            "data_dir": str(self.hsm.data_dir),
            "hsm": {"module": self.hsm.module, "token": self.hsm.token, "pin_source": "env",
                    "softhsm_conf": os.environ["SOFTHSM2_CONF"]},
            "journal": {"url": self.url},
            "controller": {"max_attempts": 3, "alarm_poll_s": 0.1, "lease_s": 3},
            "registry": {"trust": [str(ensure_demo_registry(self.root).certificate)]},
            "stations": [{"name": station, "printer": {"port": self.printers.port(station)},
                          "encoder": {"reader": self.bank.reader_name(reader)}}],
        }), encoding="utf-8")
        return path

    def env(self) -> dict[str, str]:
        """The environment of a line's process (the HSM PIN from the environment), acting as
        tess of the floor's crew (enrolled once in the shared journal)."""
        if not (self.root / "people").exists():
            enrol(self.config("line-1"), self.root / "people")
        return {**os.environ, "CARDLINE_HSM_PIN": self.hsm.pin, "CARDLINE_LOG_LEVEL": "INFO",
                "CARDLINE_USER": "tess", "CARDLINE_PASSPHRASE": passphrase("tess")}

    def cli(self, *args: str, line: str = "line-1") -> subprocess.CompletedProcess[str]:
        """One ``cardline`` command as an operator of ``line`` types it."""
        return subprocess.run([*CARDLINE, *args, "--config", str(self.config(line))],
                              env=self.env(), capture_output=True, text=True, timeout=300,
                              check=False)

    def start(self, line: str, verb: str = "run") -> subprocess.Popen[bytes]:
        """``cardline batch run|resume B1`` for ``line``, logging to ``line-N.log``."""
        with (self.root / f"{line}.log").open("ab") as sink:
            return subprocess.Popen([*CARDLINE, "batch", verb, "B1", "--config",
                                     str(self.config(line))], env=self.env(), stdout=sink,
                                    stderr=sink, stdin=subprocess.DEVNULL)

    def batch(self, count: int) -> list[Application]:
        """Batch B1 created through the CLI (its personal fields sealed under the HSM)."""
        path = self.root / "B1.jsonl"
        synthesize(count, 11, path)
        moved = self.cli("keys", "move-in")  # the lines share the journal's key inventory
        assert moved.returncode == 0 and "CSCA" in moved.stdout, moved.stdout + moved.stderr
        signed = ensure_demo_registry(self.root).sign_file(path, self.root / "B1.p7m", "RB-B1")
        created = self.cli("batch", "create", str(signed), "--name", "B1")
        assert created.returncode == 0, created.stdout + created.stderr
        profile = load_profile("cccd-bac")
        return [a for _, a in read_applications(path, profile.intake_rules(),
                                                date.today()).valid]

    def log(self, line: str) -> str:
        """The end of a line's log, for a failing assertion."""
        text = (self.root / f"{line}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-40:])

    def check(self, apps: list[Application], runs: int,
              requalified: int | None = None) -> dict[str, Any]:
        """Everything a finished shared batch must be; returns the report. Every handed-out
        card is put back on the QA reader and checked again from its chip, or ``requalified``
        of them (each line's first ones) where the test is about the journal, not the chips
        (each check waits for pcscd's presence polls: ~0.7 s a card)."""
        with open_journal(self.url) as journal:
            report = build_report(journal, "B1")
            states = Counter(a["state"] for a in journal.applications("B1"))
            for application in journal.applications("B1"):
                if application["state"] == "failed":
                    assert application["reasons"], application["application_id"]
            events = journal.events("B1")
            assert journal.verify_chain().ok
        assert report["state"] == "closed" and report["personal_data_purged"]
        assert states["handed_out"] + states["failed"] == len(apps)
        handed = [c for c in report["cards"] if c["state"] == "handed_out"]
        assert len(handed) == states["handed_out"]
        assert len({c["application_id"] for c in handed}) == len(handed)
        assert len({c["document_number"] for c in handed}) == len(handed)
        stock = report["stock"]
        assert stock["reconciled"], stock["differences"]
        assert stock["in_machine"] == 0
        by_line = {row["line"]: row for row in report["lines"]}
        assert set(by_line) == set(LINES)
        for row in by_line.values():  # each line's stock against its own printers' counters
            assert row["stock"]["reconciled"], (row["line"], row["stock"]["differences"])
        assert sum(row["handed_out"] for row in by_line.values()) == len(handed)
        assert Counter(e["kind"] for e in events)["batch.closed"] == 1
        assert Counter(e["kind"] for e in events)["run.started"] == runs
        started = Counter(e["data"]["line"] for e in events if e["kind"] == "run.started")
        assert set(started) == set(LINES)
        trust = TrustStore.from_pem(certificate_to_pem(self.hsm.csca_der).encode("ascii"))
        again, chips = report, handed
        if requalified is not None:
            picked = {c["application_id"] for line in LINES.values()
                      for c in [c for c in handed if c["station"] == line[0]][:requalified]}
            chips = [c for c in handed if c["application_id"] in picked]
            again = {**report, "cards": chips}
            assert len(chips) >= requalified
        assert requalify(self.bank, trust, load_profile("cccd-bac"), again, apps) == len(chips)
        return report


@contextmanager
def _machines(encoder_bank: EncoderBank, tmp_path: Path, url: str) -> Iterator[Fleet]:
    """Three lines' printers (one emulator process), one token, the shared pcscd."""
    stations = {station: reader for station, reader in LINES.values()}
    printers = PrinterLine(tmp_path / "line", stations, encoder_bank.host_socket,
                           encoder_bank.chips_dir, blanks=BLANKS)
    try:
        with printers, bench_hsm(tmp_path) as hsm:
            yield Fleet(tmp_path, encoder_bank, printers, hsm, url)
    finally:
        empty_encoders(encoder_bank, range(len(LINES)))


@pytest.fixture()
def fleet(encoder_bank: EncoderBank, pg_server: TestServer, tmp_path: Path) -> Iterator[Fleet]:
    """Three lines' machines and a fresh shared journal."""
    database = pg_server.fresh()
    try:
        with _machines(encoder_bank, tmp_path, pg_server.cluster.url(database)) as machines:
            yield machines
    finally:
        pg_server.cluster.drop_database(database)


def test_three_lines_drain_one_batch_together(fleet: Fleet) -> None:
    """Three line processes on one batch: each application handed out exactly once, the work
    shared, the last line to finish closes the batch, and status shows every line."""
    apps = fleet.batch(36)
    # the floor's dashboard on the shared PostgreSQL journal, watching the three lines
    with dashboard(fleet.config("line-1"), env=fleet.env()) as url, \
            logged_in(url, "tess") as floor:
        processes = {line: fleet.start(line) for line in LINES}
        seen: set[str] = set()
        while any(p.poll() is None for p in processes.values()):
            snapshot = floor.get("/api/status?batch=B1").json()
            seen |= {row["line"] for row in snapshot["progress"]["lines"] if row["alive"]}
            time.sleep(0.3)
        for line, process in processes.items():
            assert process.wait(timeout=300) == 0, fleet.log(line)
        assert seen == set(LINES)  # each line showed up running while it ran
        done = floor.get("/api/status?batch=B1").json()["progress"]
        assert done["applications"]["handed_out"] == 36 and done["state"] == "closed"
        assert {row["line"] for row in done["lines"]} == set(LINES)
        for page in ("/batches/B1", "/line?batch=B1", "/qa?batch=B1", "/keys", "/audit"):
            assert floor.get(page).status_code == 200, page
    report = fleet.check(apps, runs=len(LINES), requalified=2)
    by_station = Counter(c["station"] for c in report["cards"] if c["state"] == "handed_out")
    assert sum(by_station.values()) == 36 and len(by_station) >= 2, by_station
    status = fleet.cli("batch", "status", "B1", "--json")
    assert status.returncode == 0, status.stderr
    lines = {row["line"]: row for row in json.loads(status.stdout)["lines"]}
    assert set(lines) == set(LINES)
    assert all(row["left"] and row["claimed"] == 0 and row["in_doubt"] == 0
               for row in lines.values())
    # the registry's results from the shared PostgreSQL journal, checked as the registry does
    factory = fleet.cli("keys", "factory", "--out", str(fleet.root / "factory"))
    assert factory.returncode == 0, factory.stderr
    out = fleet.root / "B1-results.p7m"
    made = fleet.cli("batch", "results", "B1", "--out", str(out))
    assert made.returncode == 0, made.stderr
    verified = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                               str(out), "-CAfile", str(fleet.root / "factory" /
                                                        "factory-sign.pem"), "-purpose", "any"],
                              capture_output=True, check=False)
    assert verified.returncode == 0, verified.stderr
    header, *rows = [json.loads(line) for line in verified.stdout.decode().splitlines()]
    assert header["registry_batch"] == "RB-B1" and len(rows) == 36
    assert {row["status"] for row in rows} == {"issued"}


def test_lines_killed_twenty_times_settle_every_application_exactly_once(fleet: Fleet) -> None:
    """Three lines on 90 applications, line controllers killed with SIGKILL at random moments
    more than twenty times in all and restarted (`batch resume`) each time: every application
    handed out once or failed with reasons, no document number twice, the stock reconciled
    with the printers' counters, the chain whole, every handed-out chip re-qualifying."""
    apps = fleet.batch(90)
    rng = random.Random(20261130)
    running = {line: fleet.start(line) for line in LINES}
    kills = 0
    while kills < 20:
        time.sleep(rng.uniform(0.2, 1.2))
        started = _started_pids(fleet.url)  # a kill lands in a run, not in a start-up
        alive = [line for line, p in running.items()
                 if p.poll() is None and p.pid in started]
        if not alive:
            if all(p.poll() is not None for p in running.values()):
                break
            continue
        victim = rng.choice(alive)
        os.kill(running[victim].pid, signal.SIGKILL)
        running[victim].wait()
        kills += 1
        running[victim] = fleet.start(victim, "resume")
    assert kills == 20, f"the batch ended after {kills} kills"
    for line, process in running.items():
        assert process.wait(timeout=300) == 0, fleet.log(line)
    fleet.check(apps, runs=len(LINES) + kills)


def _started_pids(url: str) -> set[int]:
    with open_journal(url) as journal:
        return {e["data"]["pid"] for e in journal.events("B1") if e["kind"] == "run.started"}


def _handed_out(url: str) -> int:
    with open_journal(url) as journal:
        return journal.batch("B1").applications["handed_out"]


def test_the_lines_ride_out_two_database_restarts(fleet: Fleet, pg_server: TestServer) -> None:
    """PostgreSQL stopped with ``-m immediate`` twice mid-batch and started again a few
    seconds later: the lines wait for it (their stations show the outage), reconnect and
    carry on; nothing committed is lost and nothing is done twice."""
    apps = fleet.batch(45)
    with dashboard(fleet.config("line-1"), env=fleet.env()) as url, \
            logged_in(url, "tess") as floor:
        running = {line: fleet.start(line) for line in LINES}
        for threshold in (8, 25):
            deadline = time.monotonic() + 120
            while _handed_out(fleet.url) < threshold:
                assert time.monotonic() < deadline, "the lines made no progress"
                assert all(p.poll() is None for p in running.values()), "a line ended early"
                time.sleep(0.2)
            pg_server.cluster.stop("immediate")
            time.sleep(1)  # past the dashboard's half-second snapshot
            away = floor.get("/api/status?batch=B1")  # the floor's screen says so
            assert away.status_code == 503 and "error" in away.json()
            with httpx.Client(base_url=url) as newcomer:  # and nobody can log in meanwhile
                form = newcomer.get("/login?lang=en").text
                token = re.search(r'name="csrf" value="([^"]+)"', form)
                assert token is not None
                refused = newcomer.post("/login", data={"csrf": token.group(1), "name": "an",
                                                        "passphrase": passphrase("an")})
                assert refused.status_code == 503 and "does not answer" in refused.text
            time.sleep(2)
            pg_server.cluster.start()
        for line, process in running.items():
            assert process.wait(timeout=300) == 0, fleet.log(line)
        deadline = time.monotonic() + 30  # the dashboard is back with the journal
        while (back := floor.get("/api/status?batch=B1")).status_code != 200:
            assert time.monotonic() < deadline, back.text
            time.sleep(0.5)
        assert back.json()["progress"]["applications"]["handed_out"] == 45
    logs = "".join((fleet.root / f"{line}.log").read_text() for line in LINES)
    assert "station.journal_unavailable" in logs and "station.journal_back" in logs
    fleet.check(apps, runs=len(LINES), requalified=2)


def test_the_lines_finish_the_batch_on_the_promoted_standby(encoder_bank: EncoderBank,
                                                           tmp_path: Path) -> None:
    """Two data centres: the lines reach the journal through a multi-host URL (Hà Nội's
    primary, TP.HCM's synchronous standby). The primary is killed mid-batch and the standby
    promoted: the lines wait, reconnect to the new primary and finish the batch; every card
    the journal had acknowledged is there (nothing handed out twice, the stock reconciled
    with the printers' counters, every chain whole)."""
    sites = TwoSites()
    sites.up()
    try:
        with _machines(encoder_bank, tmp_path, sites.url(connect_timeout_s=3)) as fleet:
            apps = fleet.batch(45)
            running = {line: fleet.start(line) for line in LINES}
            deadline = time.monotonic() + 120
            while _handed_out(fleet.url) < 12:
                assert time.monotonic() < deadline, "the lines made no progress"
                assert all(p.poll() is None for p in running.values()), "a line ended early"
                time.sleep(0.2)
            sites.primary.stop("immediate")
            time.sleep(1)
            sites.standby.promote()
            for line, process in running.items():
                assert process.wait(timeout=300) == 0, fleet.log(line)
            fleet.check(apps, runs=len(LINES), requalified=2)
    finally:
        sites.down()
