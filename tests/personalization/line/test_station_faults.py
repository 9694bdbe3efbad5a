"""Station faults an operator sorts out: a chip serial the journal already holds, a foreign
chip at the encoder of a card in doubt — each raised once and kept, never a crash; and a stop
that the cards in hand cannot hold up past the stop grace."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import yaml

from applets.virtual.hostile import Hostile
from applets.virtual.store import ChipStore
from personalization.cardstate import Event, Kind, State, step
from personalization.line.controller import LineController, RunResult
from personalization.simline import PrinterLine
from personalization.synth import synthesize
from printers.driver import PrinterDriver
from printers.link import SerialLink
from tests.personalization.line.conftest import Rig

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm]


def _alarms(rig: Rig, station: str) -> list[str]:
    return [e["data"]["alarm"] for e in rig.journal.events("B1")
            if e["kind"] == "station.alarm" and e["data"]["station"] == station]


def _run_until_alarm(rig: Rig, station: str, hold_s: float = 2.0) -> tuple[RunResult, list[str]]:
    """Run B1 until ``station`` alarms, keep it running ``hold_s`` more, then stop it."""
    controller = rig.controller()
    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(result=controller.run()))
    runner.start()
    deadline = time.monotonic() + 60
    while not _alarms(rig, station):
        assert time.monotonic() < deadline and runner.is_alive(), "no alarm was raised"
        time.sleep(0.05)
    time.sleep(hold_s)  # poll_s is 0.05 s: a flapping alarm would be raised dozens of times
    controller.stop.set()
    runner.join(60)
    return outcome["result"], _alarms(rig, station)


def test_a_chip_serial_the_journal_holds_alarms_once(rig: Rig) -> None:
    """The printer reports a chip serial another card already holds: the station alarms once
    (naming the serial), the other station goes on, and the run ends without a crash."""
    [other] = rig.batch(1, name="OTHER", seed=99)
    held = rig.feeder("station-1")[0]
    card = rig.journal.begin_card("OTHER", other.application_id, "elsewhere")
    rig.journal.move(card, step(card.machine(3), Event(Kind.FED)), chip_serial=held)
    rig.batch(2)
    result, alarms = _run_until_alarm(rig, "station-1")
    assert not result.errors
    assert alarms == [alarms[0]] and held in alarms[0] and "already holds" in alarms[0]
    cards = rig.journal.cards("B1")
    assert any(c.station == "station-2" and c.state is State.HANDED_OUT for c in cards)
    assert [c.state for c in cards if c.station == "station-1"] == [State.FEEDING]


def test_a_foreign_chip_at_the_encoder_is_never_taken_for_the_card(rig: Rig) -> None:
    """A card in doubt journaled with one chip while the printer holds another at its encoder:
    the station alarms naming both, once, and the card stays in doubt (not settled as it)."""
    [app] = rig.batch(1)
    card = rig.journal.begin_card("B1", app.application_id, "station-1")
    rig.journal.move(card, step(card.machine(3), Event(Kind.FED)), chip_serial="JOURNALED-1")
    with PrinterDriver(SerialLink(rig.printers.port("station-1")), "station-1") as printer:
        there = printer.feed_to_encoder()
    result, alarms = _run_until_alarm(rig, "station-1")
    assert not result.errors and not result.finished
    assert alarms == [alarms[0]] and there in alarms[0] and "JOURNALED-1" in alarms[0]
    [still] = rig.journal.open_cards("B1")
    assert still.state is State.ENCODING and still.chip_serial == "JOURNALED-1"


def test_a_stop_ends_the_run_within_its_grace(rig: Rig) -> None:
    """Ctrl-C while a slow printer prints: the run ends within `controller.stop_grace_s`
    (1 s here, against ~15 s of printing left), says which station it left, and the card in
    hand stays in doubt for `batch resume`."""
    slow = PrinterLine(rig.root / "slow", {"station-1": 2}, rig.bank.host_socket,
                       rig.bank.chips_dir, timing="realistic", blanks=5)
    with slow:
        config = yaml.safe_load(rig.line_yaml().read_text(encoding="utf-8"))
        config["stations"] = [{"name": "station-1", "printer": {"port": slow.port("station-1")},
                               "encoder": {"reader": "Encoder 2"}}]
        config["controller"]["stop_grace_s"] = 1
        line_yaml = rig.root / "slow.yaml"
        line_yaml.write_text(yaml.safe_dump(config), encoding="utf-8")
        apps = rig.root / "slow.jsonl"
        synthesize(2, 21, apps)
        base = [sys.executable, "-m", "personalization"]
        made = subprocess.run([*base, "batch", "create", str(rig.signed(apps)), "--name", "B1",
                               "--config",
                               str(line_yaml)], env=rig.cli_env(), capture_output=True,
                              text=True, timeout=120, check=False)
        assert made.returncode == 0, made.stderr
        run = subprocess.Popen([*base, "batch", "run", "B1", "--config", str(line_yaml)],
                               env=rig.cli_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while not any(c.state is State.PRINTING for c in rig.journal.cards("B1")):
                assert time.monotonic() < deadline and run.poll() is None
                time.sleep(0.05)
            asked = time.monotonic()
            run.send_signal(signal.SIGINT)
            out, err = run.communicate(timeout=30)
            took = time.monotonic() - asked
        finally:
            if run.poll() is None:
                run.kill()
    assert took < 6, took
    said = " ".join((out + err).split())
    assert run.returncode == 2 and "did not finish the card in hand within 1 s" in said
    assert [c.state for c in rig.journal.open_cards("B1")] == [State.PRINTING]


EXPECTED = {Hostile.GET_RESPONSE_FOREVER: "read_failed", Hostile.HUGE_FILE: "read_failed",
            Hostile.UNKNOWN_OID_DG15: "dg_malformed", Hostile.RSA_32768: "dg_malformed",
            Hostile.GARBAGE_TLV: "malformed", Hostile.WRONG_LENGTH: "malformed",
            Hostile.LONGER_THAN_LE: "response_too_long", Hostile.SLOW: "deadline"}


def test_hostile_chips_on_the_line_are_rejected_and_the_line_goes_on(rig: Rig) -> None:
    """A feeder whose first eight blanks turn hostile once locked, one per mode: QA rejects
    each with its reason code within the per-card deadline, every application is then handed
    out on good blanks, and the station never stops."""
    modes = list(EXPECTED)
    store = ChipStore(rig.bank.chips_dir)
    feeder = rig.feeder("station-1")
    for serial, mode in zip(feeder, modes, strict=False):
        store.set_hostile(serial, mode)
    rig.batch(3, max_attempts=10)
    parts = rig.parts()
    parts.qa_deadline_s = 1.0
    [one] = [s for s in rig.specs() if s.name == "station-1"]
    result = LineController(rig.journal, "B1", [one], parts).run()
    assert result.finished and not result.errors and result.handed_out == 3
    cards = {c.chip_serial: c for c in rig.journal.cards("B1")}
    for serial, mode in zip(feeder, modes, strict=False):
        card = cards[serial]
        codes = [r["code"] for r in (card.qa or {}).get("reasons", [])]
        assert card.state is State.REJECTED, (mode, card.state)
        assert EXPECTED[mode] in codes, (mode, codes)
        took = card.updated_at - card.started_at
        assert took < parts.qa_deadline_s + 5, (mode, took)
    assert not _alarms(rig, "station-1")
