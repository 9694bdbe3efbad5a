"""The journal port's promises, checked on every adapter: transitions, the unique document
number, the hash chain, append-only events, stock and the personal-data purge."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cardstate import Event, Kind, State, step
from personalization.journal import JournalError, JournalPort, open_journal
from personalization.journal.port import BatchExistsError
from personalization.journal.records import dump_application, load_application
from personalization.prep import document_number
from personalization.profile import load_profile
from personalization.reasons import Code, Reason, encode_failed, preparation_failed
from tests.personalization.journal.conftest import Backdoor, Refused


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Validated synthetic applications."""
    profile = load_profile("cccd")
    result = read_applications(synth_dir / "apps.jsonl", profile.intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid]


def _batch(journal: JournalPort, apps: list[Application], name: str = "B1",
           attempts: int = 2) -> None:
    journal.create_batch(name, source="apps.jsonl", profile="cccd", max_attempts=attempts,
                         valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                         invalid=[])


def _drive(journal: JournalPort, name: str, app_id: str, station: str, serial: str,
           kinds: list[Kind], attempts: int = 2) -> State:
    card = journal.begin_card(name, app_id, station)
    for kind in kinds:
        result = step(card.machine(attempts), Event(kind, Reason(Code.NO_CHIP)
                                                     if kind is Kind.FAILED else None))
        card = journal.move(card, result, chip_serial=serial if kind is Kind.FED else None)
    return card.state


HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]
SPOILED = [Kind.FED, Kind.FAILED, Kind.REJECTED]


def test_a_journal_from_a_newer_cardline_is_refused(journal: JournalPort, journal_url: str,
                                                    backdoor: Backdoor) -> None:
    """A schema version above what this code knows is an error, not a silent downgrade."""
    newer = journal.schema_version + 1
    journal.close()
    backdoor.set_schema_version(newer)
    with pytest.raises(JournalError, match="upgrade cardline"):
        open_journal(journal_url)


def test_application_records_round_trip(apps: list[Application]) -> None:
    """What the journal keeps is exactly the validated application."""
    for application in apps:
        assert load_application(dump_application(application)) == application


def test_a_batch_name_is_unique(journal: JournalPort, apps: list[Application]) -> None:
    """Creating a batch twice is refused with a clear error, and nothing of the second
    attempt is written."""
    _batch(journal, apps[:2])
    events = len(journal.events("B1"))
    with pytest.raises(JournalError, match="already exists") as refused:
        _batch(journal, apps[:2])
    assert isinstance(refused.value, BatchExistsError) and refused.value.name == "B1"
    assert len(journal.events("B1")) == events and len(journal.applications("B1")) == 2


def test_cards_move_with_their_applications_and_the_stock(journal: JournalPort,
                                                         apps: list[Application]) -> None:
    """A handed-out card settles its application; a spoiled first attempt requeues it; the
    second spoiled attempt fails it with both reasons; stock counts every chip fed."""
    _batch(journal, apps[:3])
    a, b, c = (x.application_id for x in apps[:3])
    assert _drive(journal, "B1", a, "s1", "CHIP-1", HAPPY) is State.HANDED_OUT
    assert _drive(journal, "B1", b, "s1", "CHIP-2", SPOILED) is State.REJECTED
    assert journal.pending("B1") == [c, b]  # retried applications go to the back
    assert _drive(journal, "B1", b, "s2", "CHIP-3", SPOILED) is State.REJECTED
    rows = {r["application_id"]: r for r in journal.applications("B1")}
    assert rows[a]["state"] == "handed_out"
    assert rows[b]["state"] == "failed" and len(rows[b]["reasons"]) == 2
    assert journal.stock("B1") == {"fed": 3, "handed_out": 1, "rejected": 2, "in_machine": 0}
    card = journal.begin_card("B1", c, "s2")
    journal.move(card, step(card.machine(2), Event(Kind.FED)), chip_serial="CHIP-4")
    assert journal.stock("B1")["in_machine"] == 1
    assert [x.id for x in journal.open_cards("B1")] == [card.id]


def test_nothing_fed_requeues_without_using_an_attempt(journal: JournalPort,
                                                       apps: list[Application]) -> None:
    """A feed that never happened (feeder empty) voids the card and gives the attempt back."""
    _batch(journal, apps[:1])
    app_id = apps[0].application_id
    assert _drive(journal, "B1", app_id, "s1", "", [Kind.NO_CARD]) is State.VOID
    assert journal.applications("B1")[0]["attempts"] == 0
    assert journal.pending("B1") == [app_id]
    assert journal.stock("B1")["fed"] == 0


def test_a_person_with_an_application_in_progress_is_quarantined(
        journal: JournalPort, apps: list[Application]) -> None:
    """An application of a person whose application another batch already holds is
    quarantined at intake, before any blank is spent on it, without the ID in the reason."""
    _batch(journal, apps[:2], "B1")
    _batch(journal, apps[1:3], "B2")
    assert journal.pending("B2") == [apps[2].application_id]
    [held] = journal.quarantined("B2")
    assert held["application_id"] == apps[1].application_id
    assert held["errors"] == [{"field": "personal_id", "reason": "this person already has an "
                                                                 "application in progress "
                                                                 "(batch 'B1')"}]


def test_a_document_number_belongs_to_one_handed_out_card(journal: JournalPort,
                                                          apps: list[Application],
                                                          backdoor: Backdoor) -> None:
    """Should two applications ever carry the same number, the unique index refuses the
    second handed-out card."""
    _batch(journal, apps[:2], "B1")
    _drive(journal, "B1", apps[0].application_id, "s1", "CHIP-1", HAPPY)
    backdoor.execute(f"UPDATE applications SET document_number = '{document_number(apps[0])}' "  # noqa: S608 - test values
                     f"WHERE application_id = '{apps[1].application_id}'")
    with pytest.raises(JournalError, match="UNIQUE"):
        _drive(journal, "B1", apps[1].application_id, "s1", "CHIP-2", HAPPY)
    assert journal.cards("B1")[-1].state is State.EJECTING


def test_a_chip_serial_is_recorded_once(journal: JournalPort, apps: list[Application]) -> None:
    """One physical chip cannot be two cards."""
    _batch(journal, apps[:2])
    _drive(journal, "B1", apps[0].application_id, "s1", "CHIP-1", SPOILED)
    with pytest.raises(JournalError, match="UNIQUE"):
        _drive(journal, "B1", apps[1].application_id, "s1", "CHIP-1", [Kind.FED])


def test_a_stale_card_is_not_overwritten(journal: JournalPort, apps: list[Application]) -> None:
    """Moving a card from a state it is no longer in is refused."""
    _batch(journal, apps[:1])
    card = journal.begin_card("B1", apps[0].application_id, "s1")
    journal.move(card, step(card.machine(2), Event(Kind.FED)), chip_serial="C")
    with pytest.raises(JournalError, match="no longer feeding"):
        journal.move(card, step(card.machine(2), Event(Kind.NO_CARD)))


def test_the_event_chain_verifies_and_detects_a_changed_event(
        journal: JournalPort, apps: list[Application], backdoor: Backdoor) -> None:
    """Every event follows from the one before; editing one (around the append-only
    triggers, as an attacker with the file would) breaks the chain at that event."""
    _batch(journal, apps[:2])
    _drive(journal, "B1", apps[0].application_id, "s1", "CHIP-1", HAPPY)
    check = journal.verify_chain()
    assert check.ok and check.events >= 7
    backdoor.edit_event(4, '{"station": "s9"}')
    assert journal.verify_chain().broken_at == 4


def test_events_are_append_only(journal: JournalPort, backdoor: Backdoor) -> None:
    """UPDATE and DELETE on the event log are refused by the database itself."""
    for statement in ("UPDATE events SET kind = 'x'", "DELETE FROM events"):
        with pytest.raises(Refused, match="append-only"):
            backdoor.execute(statement)


def test_concurrent_writers_keep_the_chain(journal_url: str) -> None:
    """Two connections (as two processes would) writing at once: the adapter serialises
    them, no write is lost and the chain still verifies."""
    first, second = open_journal(journal_url), open_journal(journal_url)

    def write(journal: JournalPort) -> None:
        for index in range(50):
            journal.note(None, "test.note", index=index)

    threads = [threading.Thread(target=write, args=(j,)) for j in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check = first.verify_chain()
    assert check.ok and check.events == 101  # + the migration event


def _append_notes(url: str, writer: str, count: int) -> None:
    """Append ``count`` notes through a journal of one's own (a thread's or a process's)."""
    with open_journal(url) as journal:
        for index in range(count):
            journal.note("T", "test.note", writer=writer, index=index)


def test_threads_and_processes_appending_at_once_number_events_without_gaps(
        journal: JournalPort, journal_url: str) -> None:
    """Three processes and three threads (two with their own handle, one sharing the test's)
    append at once: the events are numbered 1..N with no gap or duplicate, every note is
    there exactly once and the chain verifies."""
    count = 30
    spawn = multiprocessing.get_context("spawn")
    processes = [spawn.Process(target=_append_notes, args=(journal_url, f"p{i}", count))
                 for i in range(3)]
    threads = [threading.Thread(target=_append_notes, args=(journal_url, f"t{i}", count))
               for i in range(2)]
    threads.append(threading.Thread(target=lambda: [
        journal.note("T", "test.note", writer="shared", index=i) for i in range(count)]))
    for worker in [*processes, *threads]:
        worker.start()
    for thread in threads:
        thread.join()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    notes = journal.events("T")
    assert len(notes) == 6 * count
    assert len({(e["data"]["writer"], e["data"]["index"]) for e in notes}) == 6 * count
    check = journal.verify_chain()
    assert check.ok and check.events == 6 * count + 1  # + the migration event
    assert sorted(e["seq"] for e in notes) == list(range(2, check.events + 1))


def test_closing_purges_personal_data_but_keeps_the_audit(journal: JournalPort,
                                                          apps: list[Application]) -> None:
    """A finished batch closes; with retention 0 its application records go at once, while
    ids, states, document numbers and the event chain stay."""
    _batch(journal, apps[:1])
    assert not journal.close_batch("B1", 0)  # not finished yet
    _drive(journal, "B1", apps[0].application_id, "s1", "CHIP-1", HAPPY)
    assert journal.close_batch("B1", 0)
    with pytest.raises(JournalError, match="purged"):
        journal.application("B1", apps[0].application_id)
    assert journal.cards("B1")[0].document_number == document_number(apps[0])
    assert journal.verify_chain().ok


def test_a_batch_purged_again_is_purged_once_in_the_audit(journal: JournalPort,
                                                          apps: list[Application]) -> None:
    """Every line that finishes a shared batch closes and purges it (retention 0): a purge of
    a purged batch does nothing new, and the chain says ``batch.purged`` once."""
    _batch(journal, apps[:1])
    _drive(journal, "B1", apps[0].application_id, "s1", "CHIP-1", HAPPY)
    assert journal.close_batch("B1", 0)
    journal.purge("B1")
    assert journal.close_batch("B1", 0)
    kinds = [e["kind"] for e in journal.events("B1")]
    assert kinds.count("batch.purged") == 1 and kinds.count("batch.closed") == 1
    assert journal.verify_chain().ok


def test_retention_days_delay_the_purge(journal: JournalPort, apps: list[Application]) -> None:
    """With a retention of N days the data stays until then, and purge_due removes it."""
    _batch(journal, apps[:1])
    _drive(journal, "B1", apps[0].application_id, "s1", "CHIP-1", HAPPY)
    journal.close_batch("B1", 7)
    assert journal.application("B1", apps[0].application_id) == apps[0]
    assert journal.purge_due(datetime.now(UTC) + timedelta(days=6)) == []
    assert journal.purge_due(datetime.now(UTC) + timedelta(days=8)) == ["B1"]
    with pytest.raises(JournalError, match="purged"):
        journal.application("B1", apps[0].application_id)


def test_reasons_are_kept_as_codes(journal: JournalPort, apps: list[Application]) -> None:
    """A rejected card's reasons and a failed application's come back as the codes and
    details they went in with, and its events carry the code, not prose."""
    _batch(journal, apps[:2], attempts=1)
    card = journal.begin_card("B1", apps[0].application_id, "s1")
    why = encode_failed("lock", 0x6985)
    for event in (Event(Kind.FED), Event(Kind.FAILED, why), Event(Kind.REJECTED)):
        card = journal.move(card, step(card.machine(1), event),
                            chip_serial="C1" if event.kind is Kind.FED else None)
    assert journal.cards("B1")[0].reasons == (why,)
    journal.fail_application("B1", apps[1].application_id, preparation_failed(ValueError()))
    rows = {r["application_id"]: r for r in journal.applications("B1")}
    assert rows[apps[0].application_id]["reasons"][0]["reasons"] == [
        {"code": "encode_failed", "step": "lock", "sw": "6985"}]
    assert rows[apps[1].application_id]["reasons"][0]["reasons"] == [
        {"code": "preparation_failed", "error": "ValueError"}]
    rejecting = [e for e in journal.events("B1") if e["kind"] == "card.rejecting"]
    assert rejecting[0]["data"]["reason"] == why.as_dict()
