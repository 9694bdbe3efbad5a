"""Run control and live station state through the journal: what another process asks of a
running controller, and what the controller publishes of its stations."""

from __future__ import annotations

import pytest

from personalization.journal import JournalError, JournalPort, open_journal


def _empty_batch(journal: JournalPort, name: str = "B1") -> None:
    journal.create_batch(name, source="apps.jsonl", profile="cccd", max_attempts=3, valid=[],
                         invalid=[])


def test_a_request_is_seen_by_another_connection_until_obeyed(journal: JournalPort,
                                                              journal_url: str) -> None:
    """pause then stop from a second connection: the controller sees the latest request only,
    and after it acknowledges it sees none; both are events, and the chain holds."""
    _empty_batch(journal)
    assert journal.control("B1") is None
    with open_journal(journal_url) as desk:
        desk.request_control("B1", "pause", "an")
        assert journal.control("B1") == "pause"
        desk.request_control("B1", "stop", "binh")
    assert journal.control("B1") == "stop"
    journal.ack_control("B1", "pause")  # an older request: nothing to acknowledge
    assert journal.control("B1") == "stop"
    journal.ack_control("B1", "stop")
    assert journal.control("B1") is None
    kinds = [(e["kind"], e["data"]) for e in journal.events("B1")]
    assert ("run.control", {"action": "pause", "by": "an"}) in kinds
    assert ("run.control", {"action": "stop", "by": "binh"}) in kinds
    assert kinds.count(("run.obeyed", {"action": "stop"})) == 1
    assert journal.verify_chain().ok


def test_live_state_is_published_per_station_without_events(journal: JournalPort) -> None:
    """A station's live snapshot replaces the previous one, carries its time, keeps the
    station's alarm and counters, and adds nothing to the event log."""
    _empty_batch(journal)
    before = len(journal.events("B1"))
    journal.set_station_live("B1", "station-1", {"state": "busy", "application": "A1"})
    journal.set_alarm("B1", "station-1", "printer: ribbon out")
    journal.set_station_live("B1", "station-1", {"state": "alarm", "application": None})
    [row] = journal.stations("B1")
    assert row["live"] == {"state": "alarm", "application": None}
    assert row["live_at"] and row["alarm"] == "printer: ribbon out"
    kinds = [e["kind"] for e in journal.events("B1")[before:]]
    assert kinds == ["station.alarm"]


def test_unknown_actions_and_batches_are_refused(journal: JournalPort) -> None:
    """Only pause, resume and stop, only for a batch that exists; a refusal writes nothing."""
    _empty_batch(journal)
    before = journal.verify_chain().events
    with pytest.raises(JournalError, match="unknown run control 'halt'"):
        journal.request_control("B1", "halt", "an")
    with pytest.raises(JournalError, match="no batch named 'B9'"):
        journal.request_control("B9", "stop", "an")
    assert journal.control("B1") is None and journal.verify_chain().events == before


def test_pause_then_resume_each_acknowledged_once(journal: JournalPort) -> None:
    """A pause, once acknowledged, is no longer returned (the controller holds its stations);
    the resume that follows is; acknowledging twice is journaled once."""
    _empty_batch(journal)
    journal.request_control("B1", "pause", "an")
    journal.ack_control("B1", "pause")
    journal.ack_control("B1", "pause")
    assert journal.control("B1") is None
    journal.request_control("B1", "resume", "an")
    assert journal.control("B1") == "resume"
    journal.ack_control("B1", "resume")
    assert journal.control("B1") is None
    obeyed = [e["data"]["action"] for e in journal.events("B1") if e["kind"] == "run.obeyed"]
    assert obeyed == ["pause", "resume"]


def test_a_station_without_a_snapshot_has_none(journal: JournalPort) -> None:
    """Counters recorded but nothing published yet: live and live_at are None."""
    _empty_batch(journal)
    journal.station_counter("B1", "station-2", before_feed=10, now=10)
    [row] = journal.stations("B1")
    assert row["live"] is None and row["live_at"] is None and row["counter_start"] == 10
