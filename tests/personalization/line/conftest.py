"""The line rig: the session's pcscd + card host, simulated printers in their own process,
a private SoftHSM token with a CSCA and a DS, and a fresh journal per test."""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank
from hsm.certificates import certificate_to_pem
from personalization.applications.model import Application
from personalization.benchkit import BenchHSM, bench_hsm
from personalization.demoregistry import DemoRegistry, ensure_demo_registry, verified_batch
from personalization.face import card_layout
from personalization.journal import Journal
from personalization.line.controller import LineController, LineParts
from personalization.line.station import StationSpec
from personalization.prep import Preparer, build_dg13, build_mrz
from personalization.profile import DocumentProfile, load_profile
from personalization.service.setup import LineSetup
from personalization.simline import PrinterLine
from personalization.synth import synthesize
from qa.checks import Expected
from qa.passive_auth import TrustStore
from qa.readback import keys_from_mrz
from qa.verify import verify_card
from tests.support.crew import enrol, passphrase

STATIONS = {"station-1": 0, "station-2": 1}
QA_READER = 3  # the bank's encoder left free for re-checking handed-out cards
# per feeder: enough for the chaos test's 100 cards on two stations plus a card spoiled at
# each station by each of its 22 kills (a feeder run dry is an alarm that waits for an
# operator to refill it — which is how CI once saw that test hang)
BLANKS = 80


@dataclass
class Rig:
    """Everything a controller test needs."""

    bank: EncoderBank
    printers: PrinterLine
    hsm: BenchHSM
    profile: DocumentProfile
    journal: Journal
    root: Path

    def specs(self) -> list[StationSpec]:
        """The stations as the controller sees them."""
        return [StationSpec(name, self.printers.port(name), self.bank.reader_name(index))
                for name, index in self.printers.stations.items()]

    def parts(self, poll_s: float = 0.05) -> LineParts:
        """Preparer on the rig's DS, the rig's CSCA as trust, the CCCD layout."""
        trust = TrustStore.from_pem(certificate_to_pem(self.hsm.csca_der).encode("ascii"))
        return LineParts(Preparer(self.profile, self.hsm.signer), self.profile,
                         card_layout(self.profile), trust, poll_s=poll_s)

    def batch(self, count: int, name: str = "B1", seed: int = 7,
              max_attempts: int = 3) -> list[Application]:
        """A batch of ``count`` synthetic applications in the rig's journal, signed by the
        rig's registry and verified, as `batch create` makes one."""
        path = self.root / f"{name}.jsonl"
        synthesize(count, seed, path)
        return verified_batch(self.journal, name, path, self.registry(),
                              policy=self.profile.intake_rules(), today=date.today(),
                              max_attempts=max_attempts)

    def line_yaml(self) -> Path:
        """A line.yaml for the CLI: the rig's printers, encoders, token and journal."""
        config = {
            "line": "test-line",
            "profile": "cccd-bac",  # the controller's tests run on the BAC chip (faster)
            "data_dir": str(self.hsm.data_dir),  # where the token's key inventory is
            "hsm": {"module": self.hsm.module, "token": self.hsm.token, "pin_source": "env",
                    "softhsm_conf": os.environ["SOFTHSM2_CONF"]},
            "journal": {"url": f"sqlite:///{self.journal.path}"},
            "controller": {"max_attempts": 3, "alarm_poll_s": 0.1},
            "registry": {"trust": [str(self.registry().certificate)]},
            "stations": [{"name": name, "printer": {"port": self.printers.port(name)},
                          "encoder": {"reader": self.bank.reader_name(index)}}
                         for name, index in self.printers.stations.items()],
        }
        path = self.root / "line.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        if not (self.root / "people").exists():  # the rig's crew, once, in its journal
            enrol(path, self.root / "people")
        return path

    def registry(self) -> DemoRegistry:
        """The rig's stand-in registry (its certificate is in the rig's registry.trust)."""
        return ensure_demo_registry(self.root)

    def signed(self, records: Path, registry_id: str | None = None) -> Path:
        """``records`` as the registry sends them: signed, as ``<stem>.p7m`` beside them."""
        return self.registry().sign_file(records, records.with_suffix(".p7m"),
                                         registry_id or f"RB-{records.stem}")

    def cli_env(self, person: str = "tess") -> dict[str, str]:
        """The environment of a ``cardline`` process on the rig (the PIN from the env),
        acting as ``person`` of the rig's crew (tess: operator, QA, officer, auditor)."""
        self.line_yaml()
        return {**os.environ, "CARDLINE_HSM_PIN": self.hsm.pin,
                "CARDLINE_LOG_LEVEL": "WARNING", "CARDLINE_USER": person,
                "CARDLINE_PASSPHRASE": passphrase(person)}

    def feeder(self, station: str) -> list[str]:
        """The blank serials loaded in a station's feeder, in feed order (the chip store is
        shared by the session, so they are the newest ones with the station's prefix)."""
        from applets.virtual.store import ChipStore

        serials = [s for s in ChipStore(self.bank.chips_dir).serials()
                   if s.startswith(f"{station}-")]
        return sorted(serials)[-BLANKS:]

    def requalify(self, report: dict[str, Any], apps: list[Application]) -> int:
        """Put every handed-out card back into a reader and run the full QA on it again,
        with BAC keys from the original application (the journal's copy is purged)."""
        return requalify(self.bank, self.parts().trust, self.profile, report, apps)

    def controller(self, name: str = "B1", parts: LineParts | None = None) -> LineController:
        """A controller for a batch on the rig's stations."""
        return LineController(self.journal, name, self.specs(), parts or self.parts())


def requalify(bank: EncoderBank, trust: TrustStore, profile: DocumentProfile,
              report: dict[str, Any], apps: list[Application]) -> int:
    """Put every card the report says was handed out back into a reader and run the full QA
    on it again, with BAC keys from the original application; returns how many. The cards
    are shared among the bank's readers that are empty now (the run is over: the stations'
    readers too), one thread each: every check waits for pcscd's presence polls (~0.7 s a
    card), which readers wait for side by side."""
    by_id = {a.application_id: a for a in apps}
    cards = deque(c for c in report["cards"] if c["state"] == "handed_out")
    lock = threading.Lock()

    def reader(index: int) -> int:
        client, passed = bank.client(), 0
        with PCSCTransport(bank.reader_name(index)) as transport:
            while True:
                with lock:
                    if not cards:
                        return passed
                    card = cards.popleft()
                application = by_id[card["application_id"]]
                mrz = build_mrz(application, profile)
                client.insert(index, card["chip_serial"])
                transport.wait_for_card(5)
                verdict = verify_card(
                    transport, keys_from_mrz(mrz.text), trust, at=datetime.now(UTC),
                    expected=Expected(mrz=mrz.text, dg13=build_dg13(application, profile),
                                      dg2_image=application.portrait.jpeg))
                client.remove(index)
                transport.wait_for_removal(5)
                assert verdict.passed, (card["chip_serial"], verdict.codes)
                passed += 1

    empty = [index for index, serial in sorted(bank.client().status().items())
             if serial is None]
    assert QA_READER in empty, "the QA reader holds a chip"
    with ThreadPoolExecutor(len(empty)) as pool:
        return sum(pool.map(reader, empty))


@pytest.fixture()
def rig(encoder_bank: EncoderBank, tmp_path: Path) -> Iterator[Rig]:
    """Fresh printers (full feeders) and journal on the shared encoder bank."""
    printers = PrinterLine(tmp_path / "line", STATIONS, encoder_bank.host_socket,
                           encoder_bank.chips_dir, blanks=BLANKS)
    with printers, bench_hsm(tmp_path) as hsm, Journal(tmp_path / "journal.db") as journal:
        yield Rig(encoder_bank, printers, hsm, load_profile("cccd-bac"), journal, tmp_path)
    empty_encoders(encoder_bank, range(ENCODERS_USED))


@pytest.fixture()
def setup(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> LineSetup:
    """The rig as the services see it (its line.yaml, the PIN from the environment)."""
    monkeypatch.setenv("CARDLINE_HSM_PIN", rig.hsm.pin)
    return LineSetup.load(rig.line_yaml())


ENCODERS_USED = 3  # the stations' two, and one a test may give a printer of its own


def empty_encoders(bank: EncoderBank, indexes: range) -> None:
    """Take out chips a test left in the rig's encoders (a card left in a printer keeps its
    chip in the reader), and wait until pcscd has seen each reader empty."""
    client = bank.client()
    for index in indexes:
        if client.remove(index) is not None:
            with PCSCTransport(bank.reader_name(index)) as reader:
                reader.wait_for_removal(5)
