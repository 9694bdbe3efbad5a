"""One current card per person (issue #16 §2), on every adapter: a renewal or replacement
names the holder's current card and, when its own card is handed out, supersedes it in the
same transaction (with a ``card.superseded`` event); intake refuses a second application in
progress, a first issue for a person who holds a card, a wrong card named, and an unknown
earlier card unless the registry says it predates cardline; the database refuses two current
cards of one person; issuance results for the registry; a v8 SQLite file migrates."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.sqlite import migrate
from personalization.applications.intake import InvalidRecord, read_applications
from personalization.applications.model import Application, FieldError, Supersedes
from personalization.applications.stream import START, Mark
from personalization.cardstate import Event, Kind, State, step
from personalization.journal import JournalError, JournalPort, SQLiteJournal
from personalization.journal.audit_port import AuditPort
from personalization.journal.records import CardRow, dump_application
from personalization.journal.sqlite_schema import MIGRATIONS
from personalization.prep import document_number
from personalization.profile import load_profile
from personalization.reasons import Code, Reason
from personalization.service.audit import verify
from tests.personalization.journal.conftest import Backdoor, Refused

HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]
QA = {"verdict": "pass", "ds_serial": "1F"}


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Validated synthetic applications (first issues), one person each."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid][:4]


def _create(journal: JournalPort, name: str, applications: list[Application],
            invalid: tuple[InvalidRecord, ...] = ()) -> None:
    journal.create_batch(name, source="apps.jsonl", profile="cccd", max_attempts=2,
                         valid=[(i + 1, a, document_number(a))
                                for i, a in enumerate(applications)], invalid=invalid)


def _hand_out(journal: JournalPort, name: str, application_id: str, chip: str) -> CardRow:
    card = journal.begin_card(name, application_id, "s1")
    for kind in HAPPY:
        card = journal.move(card, step(card.machine(2), Event(kind)),
                            chip_serial=chip if kind is Kind.FED else None,
                            qa=QA if kind is Kind.QA_PASSED else None)
    return card


def _renewal(application: Application, new_id: str, **changes: Any) -> Application:
    """The same person's renewal at 40 (naming whatever ``changes`` say)."""
    return dataclasses.replace(application, application_id=new_id, kind="renewal",
                               reason="age-40", **changes)


def _errors(journal: JournalPort, name: str) -> dict[str | None, list[dict[str, Any]]]:
    return {q["application_id"]: q["errors"] for q in journal.quarantined(name)}


def _card_state(journal: JournalPort, name: str, card: int) -> State:
    return next(c.state for c in journal.cards(name) if c.id == card)


def test_a_renewal_supersedes_the_current_card_when_handed_out(
        journal: JournalPort, apps: list[Application]) -> None:
    """A renewal naming the holder's current card is queued; handing its card out makes the
    old one superseded, journaled as card.superseded {by, batch} in the old card's batch;
    nothing of the old batch is open again, its stock still counts the card handed out, and
    the audit replays both batches clean."""
    _create(journal, "B1", apps[:1])
    old = _hand_out(journal, "B1", apps[0].application_id, "CHIP-1")
    _create(journal, "B2", [_renewal(apps[0], "R1", supersedes=Supersedes(card_id=old.id))])
    assert journal.pending("B2") == ["R1"] and journal.quarantined("B2") == []
    new = _hand_out(journal, "B2", "R1", "CHIP-2")
    assert new.state is State.HANDED_OUT
    assert _card_state(journal, "B1", old.id) is State.SUPERSEDED
    last = journal.events("B1")[-1]
    assert (last["kind"], last["card"], last["data"]) == \
        ("card.superseded", old.id, {"by": new.id, "batch": "B2"})
    assert journal.open_cards("B1") == []
    assert journal.stock("B1") == {"fed": 1, "handed_out": 1, "rejected": 0, "in_machine": 0}
    assert journal.verify_chain().ok
    assert isinstance(journal, AuditPort) and verify(journal).ok


def test_a_first_issue_for_a_person_with_a_current_card_is_quarantined(
        journal: JournalPort, apps: list[Application]) -> None:
    """A person who holds a current card gets no first issue: the registry must send a
    renewal or replacement naming the card; other people's applications go on."""
    _create(journal, "B1", apps[:1])
    old = _hand_out(journal, "B1", apps[0].application_id, "CHIP-1")
    again = dataclasses.replace(apps[0], application_id="F2")
    _create(journal, "B2", [again, apps[1]])
    assert journal.pending("B2") == [apps[1].application_id]
    assert _errors(journal, "B2") == {"F2": [{
        "field": "kind", "reason": f"this person already holds a current card (card "
                                   f"{old.id}): a renewal or replacement must name it"}]}


def test_a_renewal_naming_another_card_is_quarantined(journal: JournalPort,
                                                      apps: list[Application]) -> None:
    """Naming a card id that is not the holder's current card, or a document number and
    issue date that are not its, is refused; naming it by number and date is accepted and
    resolved to its card id."""
    _create(journal, "B1", apps[:2])
    old = _hand_out(journal, "B1", apps[0].application_id, "CHIP-1")
    other = _hand_out(journal, "B1", apps[1].application_id, "CHIP-2")
    number = document_number(apps[0])
    wrong_date = apps[0].issue_date - timedelta(days=365)
    _create(journal, "B2", [
        _renewal(apps[0], "R1", supersedes=Supersedes(card_id=other.id)),
        _renewal(apps[0], "R2", supersedes=Supersedes(None, number, wrong_date)),
        _renewal(apps[0], "R3", supersedes=Supersedes(None, number, apps[0].issue_date))])
    assert journal.pending("B2") == ["R3"]
    assert _errors(journal, "B2") == {
        "R1": [{"field": "supersedes", "reason": f"names card {other.id}, which is not this "
                                                 f"person's current card (card {old.id} is)"}],
        "R2": [{"field": "supersedes", "reason": "names a card (by document_number and "
                                                 "issue_date) which is not this person's "
                                                 f"current card (card {old.id} is)"}]}
    [result] = [r for r in journal.issuance_results("B2") if r["status"] == "pending"]
    assert result["supersedes"] == {"card_id": old.id, "document_number": number}


def test_an_earlier_card_cardline_never_made_needs_the_registry_to_say_so(
        journal: JournalPort, apps: list[Application]) -> None:
    """A renewal for a person cardline knows no card of is refused unless the registry says
    the earlier card predates cardline; a person who holds a cardline card cannot be renewed
    as if their card predated it."""
    _create(journal, "B1", apps[:1])
    old = _hand_out(journal, "B1", apps[0].application_id, "CHIP-1")
    _create(journal, "B2", [
        _renewal(apps[1], "R1", supersedes=Supersedes(card_id=old.id)),
        _renewal(apps[1], "R2", predates_cardline=True),
        _renewal(apps[0], "R3", predates_cardline=True)])
    assert journal.pending("B2") == ["R2"]
    assert _errors(journal, "B2") == {
        "R1": [{"field": "supersedes", "reason": "no earlier card of this person is known to "
                                                 "cardline (this person holds no current "
                                                 "card); the registry must say "
                                                 "predates_cardline"}],
        "R3": [{"field": "supersedes", "reason": "predates_cardline is true, but this person "
                                                 f"holds a current card (card {old.id}): a "
                                                 "renewal or replacement must name it"}]}
    card = _hand_out(journal, "B2", "R2", "CHIP-2")  # nothing of cardline's to supersede
    assert card.state is State.HANDED_OUT and journal.cards("B1")[0].state is State.HANDED_OUT


def test_one_application_in_progress_per_person(journal: JournalPort,
                                                apps: list[Application]) -> None:
    """Two applications of one person in one file: the later is quarantined; in a chunked
    import the rule holds across chunks, and against another batch."""
    second = dataclasses.replace(apps[0], application_id="A2")
    _create(journal, "B1", [apps[0], second])
    assert _errors(journal, "B1") == {"A2": [{
        "field": "personal_id",
        "reason": "this person already has an application in progress (earlier in this file)"}]}
    state = journal.begin_import("B2", source="b2.jsonl", profile="cccd", max_attempts=2)
    middle = Mark(1, 10, "d1")
    refused = journal.import_chunk("B2", start=START, end=middle, keys={},
                                   valid=[(1, apps[1], document_number(apps[1]))], invalid=[])
    assert refused == [] and state.mark == START
    third = dataclasses.replace(apps[1], application_id="A3")
    refused = journal.import_chunk("B2", start=middle, end=Mark(3, 20, "d2"), keys={},
                                   valid=[(2, third, document_number(third)),
                                          (3, second, document_number(second))], invalid=[])
    assert [(r.application_id, r.errors) for r in refused] == [
        ("A3", (FieldError("personal_id", "this person already has an application in "
                                          "progress (earlier in this file)"),)),
        ("A2", (FieldError("personal_id", "this person already has an application in "
                                          "progress (batch 'B1')"),))]


def test_the_database_refuses_two_current_cards_of_one_person(
        journal: JournalPort, apps: list[Application], backdoor: Backdoor) -> None:
    """Even with another document number, a person's superseded card cannot be made current
    again beside their new one: the unique index on the holder refuses it."""
    _create(journal, "B1", apps[:1])
    old = _hand_out(journal, "B1", apps[0].application_id, "CHIP-1")
    _create(journal, "B2", [_renewal(apps[0], "R1", supersedes=Supersedes(card_id=old.id))])
    _hand_out(journal, "B2", "R1", "CHIP-2")
    backdoor.execute(f"UPDATE cards SET document_number = '999999999' WHERE id = {old.id}")  # noqa: S608 - test values
    with pytest.raises(Refused, match="holder"):
        backdoor.execute(f"UPDATE cards SET state = 'handed_out' WHERE id = {old.id}")  # noqa: S608 - test values


def test_supersession_and_hand_out_are_one_transaction(
        journal: JournalPort, journal_url: str, apps: list[Application],
        backdoor: Backdoor) -> None:
    """When the superseded card's event cannot be written (after its UPDATE ran), the hand-out
    fails whole: the old card is still current, the new one still ejecting, no event added —
    a process killed at any point leaves one current card, never two or none. Once the
    event can be written the same move succeeds."""
    _create(journal, "B1", apps[:1])
    old = _hand_out(journal, "B1", apps[0].application_id, "CHIP-1")
    _create(journal, "B2", [_renewal(apps[0], "R1", supersedes=Supersedes(card_id=old.id))])
    card = journal.begin_card("B2", "R1", "s1")
    for kind in HAPPY[:-1]:
        card = journal.move(card, step(card.machine(2), Event(kind)),
                            chip_serial="CHIP-2" if kind is Kind.FED else None)
    if journal_url.startswith("sqlite"):
        backdoor.execute("CREATE TRIGGER no_supersession BEFORE INSERT ON events WHEN "
                         "NEW.kind = 'card.superseded' BEGIN SELECT RAISE(ABORT, "
                         "'refused for the test'); END")
    else:
        backdoor.execute("CREATE TRIGGER no_supersession BEFORE INSERT ON events FOR EACH ROW "
                         "WHEN (NEW.kind = 'card.superseded') EXECUTE FUNCTION "
                         "journal_refuse('refused for the test')")
    events = journal.verify_chain().events
    with pytest.raises(JournalError, match="refused for the test"):
        journal.move(card, step(card.machine(2), Event(Kind.EJECTED)))
    assert _card_state(journal, "B1", old.id) is State.HANDED_OUT
    assert _card_state(journal, "B2", card.id) is State.EJECTING
    assert [a["state"] for a in journal.applications("B2")] == ["active"]
    assert journal.verify_chain().events == events and journal.verify_chain().ok
    backdoor.execute("DROP TRIGGER no_supersession" if journal_url.startswith("sqlite")
                     else "DROP TRIGGER no_supersession ON events")
    assert journal.move(card, step(card.machine(2), Event(Kind.EJECTED))).state \
        is State.HANDED_OUT
    assert _card_state(journal, "B1", old.id) is State.SUPERSEDED


def test_issuance_results_say_what_became_of_each_record(
        journal: JournalPort, apps: list[Application]) -> None:
    """One result per application in queue order (issued with its card, chip, dates and DS
    serial; failed with its reason codes; pending), then one per quarantined record with its
    field and reason; no name, birth date or photo anywhere."""
    _create(journal, "B1", apps[:1])
    old = _hand_out(journal, "B1", apps[0].application_id, "CHIP-1")
    refused = InvalidRecord(9, "BAD-9", (FieldError("personal_id", "must be exactly 12 digits"),))
    renewal = _renewal(apps[0], "R1", supersedes=Supersedes(card_id=old.id))
    _create(journal, "B2", [renewal, apps[1], apps[2]], (refused,))
    new = _hand_out(journal, "B2", "R1", "CHIP-2")
    journal.fail_application("B2", apps[1].application_id,
                             Reason(Code.PREPARATION_FAILED, {"error": "ValueError"}))
    results = journal.issuance_results("B2")
    expiry = renewal.expiry_date.isoformat() if renewal.expiry_date else None
    assert results[0] == {
        "application_id": "R1", "status": "issued", "reasons": [], "card_id": new.id,
        "document_number": document_number(renewal), "chip_serial": "CHIP-2",
        "issue_date": renewal.issue_date.isoformat(), "expiry_date": expiry,
        "ds_serial": "1F", "kind": "renewal",
        "supersedes": {"card_id": old.id, "document_number": document_number(apps[0])}}
    assert results[1] | {"issue_date": None, "expiry_date": None} == {
        "application_id": apps[1].application_id, "status": "failed",
        "reasons": ["preparation_failed"], "card_id": None,
        "document_number": document_number(apps[1]), "chip_serial": None, "issue_date": None,
        "expiry_date": None, "ds_serial": None, "supersedes": None, "kind": "first"}
    assert (results[2]["application_id"], results[2]["status"]) == \
        (apps[2].application_id, "pending")
    assert results[3] == {
        "application_id": "BAD-9", "status": "quarantined",
        "reasons": ["personal_id: must be exactly 12 digits"], "card_id": None,
        "document_number": None, "chip_serial": None, "issue_date": None, "expiry_date": None,
        "ds_serial": None, "supersedes": None, "kind": None}
    assert journal.issuance_results("B1")[0]["status"] == "issued"  # superseded since
    text = json.dumps(results, ensure_ascii=False)
    for application in apps[:3]:
        assert application.full_name not in text
        assert application.date_of_birth.isoformat() not in text


def _v8_file(path: Path, apps: list[Application]) -> None:
    """A journal file as cardline left it before migration 9: batch B0 with a card handed
    out to apps[0] (its record kept, written before records had kinds) after a rejected one,
    and one to apps[1] whose record was purged."""
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, [m for m in MIGRATIONS if m[0] < 9], path, JournalError)
    record = json.loads(dump_application(apps[0]))
    for key in ("kind", "reason", "supersedes", "predates_cardline"):
        del record[key]
    db.execute("INSERT INTO batches (name, created_at, source, profile, max_attempts, state) "
               "VALUES ('B0', '2026-01-01', 'b0.jsonl', 'cccd', 2, 'open')")
    db.executemany("INSERT INTO applications (batch, application_id, seq, line, "
                   "document_number, state, record) VALUES ('B0', ?, ?, ?, ?, 'handed_out', ?)",
                   [(apps[0].application_id, 0, 1, document_number(apps[0]),
                     json.dumps(record, ensure_ascii=False)),
                    (apps[1].application_id, 1, 2, document_number(apps[1]), None)])
    db.executemany("INSERT INTO cards (id, batch, application_id, attempt, station, chip_serial, "
                   "document_number, state, started_at, updated_at) VALUES "
                   "(?, 'B0', ?, ?, 's1', ?, ?, ?, 1.0, 2.0)",
                   [(1, apps[0].application_id, 1, "C-1", document_number(apps[0]), "rejected"),
                    (2, apps[0].application_id, 2, "C-2", document_number(apps[0]),
                     "handed_out"),
                    (3, apps[1].application_id, 1, "C-3", document_number(apps[1]),
                     "handed_out")])
    db.close()


def test_a_v8_sqlite_file_keeps_its_cards_and_gets_their_holders(
        tmp_path: Path, apps: list[Application]) -> None:
    """Migrations 9 and 10: 9 rebuilds the cards table with its rows, ids and indexes, fills in the
    holder and dates from the records still kept (a purged one stays unknown), and makes
    every old application a first issue; a card whose holder is unknown is still found by
    its document number, so a renewal must name it and then supersedes it."""
    path = tmp_path / "v8.db"
    _v8_file(path, apps)
    with SQLiteJournal(path) as journal:
        cards = journal._read("SELECT id, state, chip_serial, holder FROM cards ORDER BY id")
        assert [tuple(r) for r in cards] == [(1, "rejected", "C-1", apps[0].personal_id),
                                             (2, "handed_out", "C-2", apps[0].personal_id),
                                             (3, "handed_out", "C-3", None)]
        rows = journal._read("SELECT holder, kind, issue_date, predates FROM applications "
                             "ORDER BY seq")
        assert [tuple(r) for r in rows] == [
            (apps[0].personal_id, "first", apps[0].issue_date.isoformat(), 0),
            (None, "first", None, 0)]
        indexes = {r[0] for r in journal._read("SELECT name FROM sqlite_master WHERE "
                                               "type = 'index' AND tbl_name = 'cards'")}
        assert {"one_card_per_document", "one_card_per_application", "cards_batch",
                "one_current_card_per_holder"} <= indexes
        assert journal.application("B0", apps[0].application_id).kind == "first"
        # migration 10 moved the kept record to a table of its own; the purged one stays so
        assert journal._read("SELECT count(*) FROM application_records")[0][0] == 1
        with pytest.raises(JournalError, match="already purged"):
            journal.application("B0", apps[1].application_id)
        _create(journal, "B1", [dataclasses.replace(apps[1], application_id="F1"),
                                _renewal(apps[1], "R1", supersedes=Supersedes(card_id=3))])
        assert journal.pending("B1") == ["R1"]
        assert _errors(journal, "B1")["F1"][0]["reason"].startswith(
            "this person already holds a current card (card 3)")
        _hand_out(journal, "B1", "R1", "CHIP-R1")
        assert [c.state for c in journal.cards("B0")] == \
            [State.REJECTED, State.HANDED_OUT, State.SUPERSEDED]
        assert journal.verify_chain().ok
