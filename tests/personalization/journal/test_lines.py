"""Lines sharing a batch, checked on every adapter: claims hand each application to one line
at a time, a dead line's claims return to the pool when its lease runs out, its cards in doubt
stay its own until an operator declares its machines emptied."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cardstate import Event, Kind, State, step
from personalization.journal import JournalError, JournalPort, open_journal
from personalization.prep import document_number
from personalization.profile import load_profile
from tests.support.pg import SoftwareKeyWrap

LEASE_S = 30.0


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid][:12]


@pytest.fixture()
def batch(journal: JournalPort, apps: list[Application]) -> str:
    """Batch B1 of twelve applications, two lines joined (each with its own stations)."""
    journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=2,
                         valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                         invalid=[])
    journal.join_line("B1", "line-1", stations=["l1-s1", "l1-s2"], holder="host-a:1")
    journal.join_line("B1", "line-2", stations=["l2-s1"], holder="host-b:2")
    return "B1"


def _feed(journal: JournalPort, app_id: str, station: str, line: str, serial: str,
          kinds: tuple[Kind, ...] = (Kind.FED,)) -> State:
    card = journal.begin_card("B1", app_id, station, line)
    for kind in kinds:
        card = journal.move(card, step(card.machine(2), Event(kind)),
                            chip_serial=serial if kind is Kind.FED else None)
    return card.state


def test_two_lines_claim_disjoint_applications_in_queue_order(
        journal: JournalPort, batch: str, apps: list[Application]) -> None:
    """Each claim takes the next applications of the queue; no application twice; a line
    asking again in the same run gets only new ones."""
    order = [a.application_id for a in apps]
    first = journal.claim(batch, "line-1", "run-a", 3, LEASE_S)
    second = journal.claim(batch, "line-2", "run-b", 4, LEASE_S)
    third = journal.claim(batch, "line-1", "run-a", 3, LEASE_S)
    assert first == order[:3] and second == order[3:7] and third == order[7:10]
    assert journal.claim(batch, "line-2", "run-b", 0, LEASE_S) == []
    rows = {r["line"]: r for r in journal.lines(batch, LEASE_S)}
    assert (rows["line-1"]["claimed"], rows["line-2"]["claimed"]) == (6, 4)
    assert rows["line-1"]["alive"] and rows["line-1"]["stations"] == ["l1-s1", "l1-s2"]


def test_a_line_cannot_start_a_card_for_an_application_another_line_holds(
        journal: JournalPort, batch: str) -> None:
    """The claim is enforced where the card begins, not only by the claimer's good manners."""
    [held] = journal.claim(batch, "line-1", "run-a", 1, LEASE_S)
    with pytest.raises(JournalError, match="held by line 'line-1'"):
        journal.begin_card(batch, held, "l2-s1", "line-2")
    assert _feed(journal, held, "l1-s1", "line-1", "C-1") is State.ENCODING


def test_station_names_are_unique_across_the_lines_of_a_batch(
        journal: JournalPort, batch: str) -> None:
    """A card in doubt is found by its station: two lines may not share a station name."""
    with pytest.raises(JournalError, match=r"line 'line-1' .* station\(s\) l1-s2"):
        journal.join_line(batch, "line-3", stations=["l3-s1", "l1-s2"], holder="host-c:3")
    journal.join_line(batch, "line-3", stations=["l3-s1"], holder="host-c:3")
    assert [r["line"] for r in journal.lines(batch, LEASE_S)] == ["line-1", "line-2", "line-3"]


def test_a_restarted_line_takes_back_its_own_claims_and_a_dead_lines_return_to_the_pool(
        journal: JournalPort, batch: str) -> None:
    """A new run of the same line gets its earlier run's claims at once; another line gets
    them only once the lease has run out; a line that left releases its claims."""
    mine = journal.claim(batch, "line-1", "run-a", 2, LEASE_S)
    theirs = journal.claim(batch, "line-2", "run-b", 2, LEASE_S)
    # line-1 restarts (run-c): its own earlier claims come first again, never line-2's
    again = journal.claim(batch, "line-1", "run-c", 2, LEASE_S)
    assert again == mine
    assert not set(journal.claim(batch, "line-1", "run-c", 12, LEASE_S)) & set(theirs)
    # line-2 stops heartbeating: once its lease (here 0.2 s) is out, line-1 takes its claims
    time.sleep(0.3)
    journal.heartbeat(batch, "line-1")
    lines = {r["line"]: r for r in journal.lines(batch, 0.2)}
    assert lines["line-1"]["alive"] and not lines["line-2"]["alive"]
    assert lines["line-2"]["heartbeat_age_s"] >= 0.2
    journal.leave_line(batch, "line-1", "run-c")
    taken = journal.claim(batch, "line-3", "run-d", 12, 0.2)
    assert set(theirs) <= set(taken) and set(mine) <= set(taken)  # line-1 left: released
    assert {r["line"]: r["left"] for r in journal.lines(batch, 0.2)}["line-1"]


def test_a_retried_application_stays_with_its_line(journal: JournalPort, batch: str) -> None:
    """A card rejected on line-1 sends its application back to the queue held by line-1, so
    the line that will retry it is the one that already has it in hand."""
    [app] = journal.claim(batch, "line-1", "run-a", 1, LEASE_S)
    assert _feed(journal, app, "l1-s1", "line-1", "C-1",
                 (Kind.FED, Kind.FAILED, Kind.REJECTED)) is State.REJECTED
    assert app not in journal.claim(batch, "line-2", "run-b", 12, LEASE_S)
    assert _feed(journal, app, "l1-s2", "line-1", "C-2") is State.ENCODING


def test_claims_racing_from_many_connections_never_overlap(
        journal_url: str, key_wrap: SoftwareKeyWrap, batch: str) -> None:
    """Six lines, each on its own connection, claiming one at a time until the pool is
    empty: every application claimed exactly once (the claims of a line that never joined
    count for nothing: no lease holds them)."""
    got: list[str] = []
    lock = threading.Lock()

    def line(number: int) -> None:
        with open_journal(journal_url, wrap=key_wrap) as own:
            own.join_line("B1", f"race-{number}", stations=[f"r{number}"], holder="test")
            while claimed := own.claim("B1", f"race-{number}", f"run-{number}", 1, LEASE_S):
                with lock:
                    got.extend(claimed)

    threads = [threading.Thread(target=line, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(got) == 12 and len(set(got)) == 12


def test_abandoning_a_dead_line_spoils_its_cards_in_doubt_and_requeues_them(
        journal: JournalPort, batch: str) -> None:
    """Refused while the line lives; then its feeding card is void (no attempt used), its
    encoding card rejected (a retry), both back in the pool for any line; one event names
    who declared it, and the chain still verifies."""
    a, b, c = journal.claim(batch, "line-2", "run-b", 3, LEASE_S)
    assert journal.begin_card(batch, a, "l2-s1", "line-2").state is State.FEEDING
    assert _feed(journal, b, "l2-s1", "line-2", "C-9") is State.ENCODING
    with pytest.raises(JournalError, match="line 'line-2' is alive"):
        journal.abandon_line(batch, "line-2", "officer-an", LEASE_S)
    assert {r["line"]: r["in_doubt"] for r in journal.lines(batch, LEASE_S)}["line-2"] == 2
    time.sleep(0.3)
    spoiled = journal.abandon_line(batch, "line-2", "officer-an", 0.2)
    assert len(spoiled) == 2
    cards = {card.application_id: card for card in journal.cards(batch)}
    assert (cards[a].state, cards[b].state) == (State.VOID, State.REJECTED)
    assert cards[b].reasons[-1].as_dict() == {"code": "line_abandoned", "line": "line-2",
                                              "by": "officer-an"}
    states = {r["application_id"]: (r["state"], r["attempts"])
              for r in journal.applications(batch)}
    assert states[a] == ("pending", 0) and states[b] == ("pending", 1)
    assert states[c] == ("pending", 0)
    assert {a, b, c} <= set(journal.claim(batch, "line-1", "run-e", 12, LEASE_S))
    kinds = Counter(e["kind"] for e in journal.events(batch))
    assert kinds["line.abandoned"] == 1 and kinds["card.void"] == 1
    assert journal.verify_chain().ok
    assert journal.stock(batch) == {"fed": 1, "handed_out": 0, "rejected": 1, "in_machine": 0}
    with pytest.raises(JournalError, match="never run"):
        journal.abandon_line(batch, "line-9", "officer-an", 0.2)


def test_every_line_obeys_each_run_control_request(journal: JournalPort, batch: str) -> None:
    """A pause asked of the batch reaches each line, whichever acknowledges first; a newer
    request reaches them all again; a line's acknowledgement is journaled with its name."""
    journal.request_control(batch, "pause", "operator")
    assert journal.control(batch, "line-1") == journal.control(batch, "line-2") == "pause"
    journal.ack_control(batch, "pause", "line-1")
    assert journal.control(batch, "line-1") is None
    assert journal.control(batch, "line-2") == "pause"
    journal.ack_control(batch, "pause", "line-2")
    journal.ack_control(batch, "pause", "line-2")  # twice: journaled once
    assert journal.control(batch, "line-2") is None
    journal.request_control(batch, "resume", "operator")
    assert journal.control(batch, "line-1") == journal.control(batch, "line-2") == "resume"
    journal.ack_control(batch, "pause", "line-1")  # no longer the request: nothing changes
    assert journal.control(batch, "line-1") == "resume"
    obeyed = [e["data"] for e in journal.events(batch) if e["kind"] == "run.obeyed"]
    assert obeyed == [{"action": "pause", "line": "line-1"},
                      {"action": "pause", "line": "line-2"}]
