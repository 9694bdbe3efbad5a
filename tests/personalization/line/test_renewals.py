"""The registry's round trip on the line: a signed batch issued, its signed issuance results
checked by openssl against the journal, then a renewal batch for every person of it — each
old card superseded, one current card per person, even with the run killed in the middle."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from personalization.service import audit, batches
from personalization.service.applications import synthesize_renewals_of
from personalization.service.results import factory_keys, issuance_results
from personalization.service.setup import LineSetup
from personalization.synth import synthesize
from tests.personalization.line.conftest import Rig

pytestmark = [pytest.mark.pcscd, pytest.mark.softhsm]


def _issue(rig: Rig, setup: LineSetup, name: str, records: Path) -> None:
    created = batches.create(setup, rig.signed(records, f"RB-{name}"), name)
    assert created.accepted > 0 and not created.quarantined, created.quarantined
    result = batches.run(setup, name)
    assert result.handed_out == created.accepted


def _verified(results: Path, factory: Path) -> list[dict[str, object]]:
    """The results as the registry reads them: `openssl cms -verify` against the factory's
    signing certificate, then one JSON object a line (the first is the header)."""
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                           str(results), "-CAfile", str(factory / "factory-sign.pem"),
                           "-purpose", "any"], capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]


def _current_cards(rig: Rig) -> dict[str, list[int]]:
    """Each person's handed-out (current) cards, straight from the journal's table."""
    db = sqlite3.connect(rig.journal.path)
    try:
        found: dict[str, list[int]] = {}
        for holder, card in db.execute(
                "SELECT holder, id FROM cards WHERE state = 'handed_out' ORDER BY id"):
            found.setdefault(holder, []).append(card)
        return found
    finally:
        db.close()


def test_results_go_back_signed_and_renewals_supersede_every_card(
        rig: Rig, setup: LineSetup) -> None:
    """B1 issued; its results verify with openssl and say what the journal says, the same
    bytes every time; B2 renews everyone of B1: every B1 card superseded, B2's results name
    the card each renewal superseded, every signature is on record and the audit holds."""
    config = setup.config
    apps = rig.root / "B1.jsonl"
    synthesize(4, 31, apps)
    _issue(rig, setup, "B1", apps)
    factory = rig.root / "factory"
    factory_keys(config, factory)

    made = issuance_results(config, "B1", rig.root / "B1-results.p7m", actor="tess")
    header, *rows = _verified(made.out, factory)
    assert header["batch"] == "B1" and header["registry_batch"] == "RB-B1"
    assert header["records"] == 4 == len(rows) and made.counts == {"issued": 4}
    cards = {c.application_id: c for c in rig.journal.cards("B1")}
    for row in rows:
        card = cards[str(row["application_id"])]
        assert (row["status"], row["card_id"], row["chip_serial"], row["document_number"]) == (
            "issued", card.id, card.chip_serial, card.document_number)
        assert row["ds_serial"] and row["issue_date"] and row["supersedes"] is None
        assert "expiry_date" in row  # None: a card issued after 58 has no expiry
        assert not {"full_name", "date_of_birth", "personal_id", "photo"} & set(row)
    again = issuance_results(config, "B1", rig.root / "again.p7m")
    assert again.document == made.document  # made once: the registry may import it twice

    renewals = rig.root / "B2.jsonl"
    made_renewals = subprocess.run(
        [sys.executable, "-m", "personalization", "applications", "synth", "--renewals-of",
         "B1", "--seed", "5", "--out", str(renewals), "--registry-batch", "RB-B2",
         "--config", str(rig.line_yaml())], env=rig.cli_env("an"), capture_output=True,
        text=True, timeout=120, check=False)  # an operator reads the people of B1
    assert made_renewals.returncode == 0, made_renewals.stderr
    header_line, *records = renewals.read_text(encoding="utf-8").splitlines()
    assert json.loads(header_line) == {"registry_batch": "RB-B2"} and len(records) == 4
    assert {json.loads(r)["kind"] for r in records} == {"renewal"}
    _issue(rig, setup, "B2", renewals)
    old = {c.holder: c for c in rig.journal.cards("B1")}
    assert {c.state.value for c in old.values()} == {"superseded"}
    current = _current_cards(rig)
    new = {c.holder: c for c in rig.journal.cards("B2")}
    assert current == {holder: [card.id] for holder, card in new.items()}
    assert set(current) == set(old)  # the same people, each with one current card

    header, *rows = _verified(issuance_results(config, "B2", rig.root / "B2.p7m").out, factory)
    assert {str(r["application_id"]): r["supersedes"] for r in rows} == {
        c.application_id: {"card_id": old[c.holder].id,
                           "document_number": old[c.holder].document_number}
        for c in new.values()}
    assert issuance_results(config, "B1", rig.root / "B1-late.p7m").document == made.document

    ds = {str(r["ds_serial"]) for r in rows}
    assert len(ds) == 1
    signed = [s for label in _ds_labels(rig) for s in rig.journal.signatures(label)]
    assert sorted((s.batch, s.document_number) for s in signed) == sorted(
        [(c.batch, c.document_number) for c in [*old.values(), *new.values()]])
    assert {s.command for s in signed} == {"batch run"}
    assert audit.verify_line(config).ok


def _ds_labels(rig: Rig) -> list[str]:
    db = sqlite3.connect(rig.journal.path)
    try:
        return [str(label) for (label,) in db.execute("SELECT DISTINCT ds FROM ds_signatures")]
    finally:
        db.close()


def test_a_renewal_run_killed_mid_way_leaves_one_current_card_per_person(
        rig: Rig, setup: LineSetup) -> None:
    """`batch run` of a renewal batch is SIGKILLed once some renewals are handed out; after
    `batch resume` every person holds exactly one current card, the new one, and every old
    card is superseded — never two current cards, never none."""
    apps = rig.root / "K1.jsonl"
    synthesize(8, 41, apps)
    _issue(rig, setup, "K1", apps)
    renewals = rig.root / "K2.jsonl"
    synthesize_renewals_of(setup, "K1", 6, renewals)
    created = batches.create(setup, rig.signed(renewals, "RB-K2"), "K2")
    assert created.accepted == 8
    command = [sys.executable, "-m", "personalization", "batch", "run", "K2", "--config",
               str(rig.line_yaml())]
    run = subprocess.Popen(command, env=rig.cli_env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    try:
        while not any(c.state.value == "handed_out" for c in rig.journal.cards("K2")):
            assert time.monotonic() < deadline and run.poll() is None, "no renewal handed out"
            time.sleep(0.02)
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    cut = _current_cards(rig)
    assert all(len(cards) == 1 for cards in cut.values()) and len(cut) == 8
    assert 0 < sum(c.state.value == "superseded" for c in rig.journal.cards("K1")) < 8

    resumed = subprocess.run([*command[:4], "resume", *command[5:]], env=rig.cli_env(),
                             capture_output=True, text=True, timeout=180, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    current = _current_cards(rig)
    new = {c.holder: c.id for c in rig.journal.cards("K2") if c.state.value == "handed_out"}
    assert current == {holder: [card] for holder, card in new.items()} and len(new) == 8
    assert {c.state.value for c in rig.journal.cards("K1")} == {"superseded"}
