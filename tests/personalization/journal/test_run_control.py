"""Run control and live station state through the journal: what another process asks of a
running controller, and what the controller publishes of its stations."""

from __future__ import annotations

from personalization.journal import JournalPort, open_journal


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
