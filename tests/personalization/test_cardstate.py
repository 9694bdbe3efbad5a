"""The card state machine, property-tested: every path a card can take, and settling an
in-doubt card from what the station sees."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from personalization.cardstate import (
    TERMINAL,
    Card,
    Command,
    Event,
    IllegalTransition,
    Kind,
    Observation,
    Outcome,
    Place,
    State,
    needs_chip_check,
    settle,
    step,
    supersede,
)
from personalization.reasons import Code, Reason, encode_failed, qa_failed, render

kinds = st.sampled_from(list(Kind))
events = st.builds(Event, kinds, st.one_of(st.none(), st.sampled_from(
    [Reason(Code.NO_CHIP), qa_failed(["aa_failed"])])))
attempts = st.integers(1, 5).flatmap(lambda m: st.tuples(st.integers(1, m), st.just(m)))


def _walk(card: Card, script: list[Event]) -> tuple[Card, list[Kind], list[Outcome]]:
    seen, outcomes = [], []
    for event in script:
        try:
            result = step(card, event)
        except IllegalTransition:
            continue
        seen.append(event.kind)
        card = result.card
        if result.outcome is not None:
            outcomes.append(result.outcome)
    return card, seen, outcomes


@given(attempts, st.lists(events, max_size=30))
def test_any_event_sequence_keeps_the_invariants(attempt: tuple[int, int],
                                                  script: list[Event]) -> None:
    """Whatever happens: one outcome at most, exactly when the card becomes terminal; a card
    is handed out only after QA passed and it was printed; retry only with attempts left."""
    number, most = attempt
    card, seen, outcomes = _walk(Card(State.FEEDING, number, most), script)
    assert len(outcomes) == (1 if card.state in TERMINAL else 0)
    if card.state is State.HANDED_OUT:
        assert seen.index(Kind.QA_PASSED) < seen.index(Kind.PRINTED) < seen.index(Kind.EJECTED)
        assert outcomes == [Outcome.HANDED_OUT]
    if card.state is State.REJECTED:
        assert outcomes == [Outcome.RETRY if number < most else Outcome.FAILED]
        assert card.reasons  # a rejected card always says why
    if card.state is State.VOID:
        assert seen == [Kind.NO_CARD] and outcomes == [Outcome.REQUEUE]


@pytest.mark.parametrize("state", sorted(TERMINAL))
@given(event=events)
def test_a_terminal_card_accepts_no_event(state: State, event: Event) -> None:
    """Nothing happens to a card that is done: no command can ever be issued for it again."""
    with pytest.raises(IllegalTransition):
        step(Card(state, 1, 3), event)


def test_the_happy_path_issues_each_command_once() -> None:
    """FEEDING → … → HANDED_OUT issues encode, verify, print, eject, in that order."""
    card, commands = Card(State.FEEDING, 1, 3), []
    for kind in (Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED):
        result = step(card, Event(kind))
        card = result.card
        commands.append(result.command)
    assert commands == [Command.ENCODE, Command.VERIFY, Command.PRINT, Command.EJECT, None]
    assert card.state is State.HANDED_OUT


def test_a_failure_rejects_and_the_last_attempt_fails_the_application() -> None:
    """A failed step sends the card to the reject box; with no attempt left the application
    is failed with every reason."""
    card = step(Card(State.ENCODING, 3, 3), Event(Kind.FAILED, encode_failed("lock", None))).card
    assert card.state is State.REJECTING
    result = step(card, Event(Kind.REJECTED))
    assert result.outcome is Outcome.FAILED
    assert tuple(render(r) for r in result.reasons) == ("encode: lock failed",)


non_terminal = st.sampled_from([s for s in State if s not in TERMINAL])
observations = st.builds(Observation, st.sampled_from(list(Place)),
                         st.one_of(st.none(), st.booleans()))


@given(non_terminal, observations, attempts)
def test_settling_is_always_a_legal_move(state: State, seen: Observation,
                                         attempt: tuple[int, int]) -> None:
    """Settling an in-doubt card yields an event the machine accepts, or a command the card's
    state allows — never an illegal transition."""
    card = Card(state, *attempt)
    found = settle(card, seen)
    if isinstance(found, Event):
        step(card, found)  # raises if illegal
    else:
        assert (state, found) in {
            (State.VERIFYING, Command.VERIFY), (State.PRINTING, Command.PRINT),
            (State.EJECTING, Command.EJECT), (State.REJECTING, Command.REJECT)}


@given(non_terminal, observations)
def test_settling_never_guesses(state: State, seen: Observation) -> None:
    """A card counts as handed out only when it was being ejected and is gone; an interrupted
    encoding counts as written only when the chip read back passes QA; a missing card that
    was not being moved out is reported, not assumed."""
    found = settle(Card(state, 1, 3), seen)
    if found == Event(Kind.EJECTED):
        assert state is State.EJECTING and seen.place is Place.NONE
    if found == Event(Kind.ENCODED):
        assert state is State.ENCODING and seen.chip_ok is True
        assert needs_chip_check(state, seen.place)
    if found == Event(Kind.REJECTED):
        assert state is State.REJECTING and seen.place is Place.NONE
    if seen.place is Place.NONE and state not in (State.EJECTING, State.REJECTING,
                                                  State.FEEDING):
        assert isinstance(found, Event) and found.kind is Kind.MISSING


def test_a_partial_print_is_spoiled_and_an_unprinted_card_is_printed_again() -> None:
    """PRINTING at the head may be half printed: spoiled. At the encoder nothing was printed."""
    at_head = settle(Card(State.PRINTING, 1, 3), Observation(Place.PRINT))
    assert isinstance(at_head, Event) and at_head.kind is Kind.FAILED
    assert settle(Card(State.PRINTING, 1, 3), Observation(Place.ENCODER)) is Command.PRINT


@pytest.mark.parametrize("state", list(State))
def test_only_a_handed_out_card_is_superseded(state: State) -> None:
    """Supersession (its holder's next card handed out) takes a handed-out card, and only
    one, to SUPERSEDED, a terminal state no event of the line leads to or out of."""
    if state is State.HANDED_OUT:
        assert supersede(Card(state, 2, 3)) == Card(State.SUPERSEDED, 2, 3)
        assert State.SUPERSEDED.terminal and State.SUPERSEDED.issued
    else:
        with pytest.raises(IllegalTransition, match="superseded"):
            supersede(Card(state, 1, 3))
    assert state.issued is (state in (State.HANDED_OUT, State.SUPERSEDED))
