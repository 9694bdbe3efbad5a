"""The card state machine: pure, no I/O — (state, event) → (state, commands).

One row per physical card fed. The controller journals the new state *before* it carries out
the commands, so a crash leaves the card in the state naming the step that was under way:

    FEEDING ──fed──▶ ENCODING ──encoded──▶ VERIFYING ──qa_passed──▶ PRINTING ──printed──▶
    EJECTING ──ejected──▶ HANDED_OUT
    any working state ──failure──▶ REJECTING ──rejected──▶ REJECTED (application retried or failed)
    FEEDING ──no_card──▶ VOID (nothing was fed; the application goes back to the queue)
    HANDED_OUT ──superseded──▶ SUPERSEDED (its holder's next card was handed out: not a step
        of the line, see :func:`supersede`)

After a crash or a station alarm the card is *in doubt*. :func:`settle` turns what the
station observes (where the card is, what the chip says) into the event that settles it;
it never assumes a step happened that it cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from personalization.reasons import Code, Reason


class State(StrEnum):
    """Where one physical card is in its life."""

    FEEDING = "feeding"
    ENCODING = "encoding"
    VERIFYING = "verifying"
    PRINTING = "printing"
    EJECTING = "ejecting"
    REJECTING = "rejecting"
    HANDED_OUT = "handed_out"
    REJECTED = "rejected"
    VOID = "void"
    SUPERSEDED = "superseded"  # handed out, then its holder's next card was handed out

    @property
    def terminal(self) -> bool:
        """No command is ever issued for a card in this state again."""
        return self in TERMINAL

    @property
    def in_machine(self) -> bool:
        """A fed card that has not left the printer."""
        return not self.terminal and self is not State.FEEDING

    @property
    def issued(self) -> bool:
        """The card left the line as its holder's card (current, or superseded since)."""
        return self in (State.HANDED_OUT, State.SUPERSEDED)


TERMINAL = frozenset({State.HANDED_OUT, State.REJECTED, State.VOID, State.SUPERSEDED})


class Kind(StrEnum):
    """What happened to a card."""

    FED = "fed"
    NO_CARD = "no_card"
    ENCODED = "encoded"
    QA_PASSED = "qa_passed"
    PRINTED = "printed"
    EJECTED = "ejected"
    FAILED = "failed"  # a step failed on this card: it is to be rejected
    REJECTED = "rejected"
    MISSING = "missing"  # the card is not where it must be and cannot be moved any more
    SUPERSEDED = "superseded"  # its holder's next card was handed out (never a step: supersede)


class Command(StrEnum):
    """What the station is to do next."""

    ENCODE = "encode"
    VERIFY = "verify"
    PRINT = "print"
    EJECT = "eject"
    REJECT = "reject"


class Outcome(StrEnum):
    """What becomes of the application when its card reaches a terminal state."""

    HANDED_OUT = "handed_out"
    RETRY = "retry"  # back to the queue, on a new blank
    FAILED = "failed"  # out of attempts: reported with every reason
    REQUEUE = "requeue"  # nothing was fed: back to the queue, no attempt used


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened; ``reason`` says why for failures."""

    kind: Kind
    reason: Reason | None = None


@dataclass(frozen=True, slots=True)
class Card:
    """What the state machine knows of one card."""

    state: State
    attempt: int  # 1 for the application's first card
    max_attempts: int
    reasons: tuple[Reason, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one event: the card's new state, the next command, the application's fate."""

    card: Card
    command: Command | None = None
    outcome: Outcome | None = None
    reasons: tuple[Reason, ...] = field(default=())


class IllegalTransition(ValueError):  # noqa: N818 - the name says what it is
    """The event cannot happen to a card in this state (a bug or a corrupted journal)."""

    def __init__(self, state: State, kind: Kind) -> None:
        super().__init__(f"event {kind.value} cannot happen to a card in state {state.value}")
        self.state, self.kind = state, kind


_FORWARD: dict[tuple[State, Kind], tuple[State, Command | None]] = {
    (State.FEEDING, Kind.FED): (State.ENCODING, Command.ENCODE),
    (State.ENCODING, Kind.ENCODED): (State.VERIFYING, Command.VERIFY),
    (State.VERIFYING, Kind.QA_PASSED): (State.PRINTING, Command.PRINT),
    (State.PRINTING, Kind.PRINTED): (State.EJECTING, Command.EJECT),
}
_WORKING = frozenset({State.ENCODING, State.VERIFYING, State.PRINTING})


def step(card: Card, event: Event) -> Step:
    """Apply one event to one card."""
    state, kind = card.state, event.kind
    if (state, kind) in _FORWARD:
        new, command = _FORWARD[state, kind]
        return Step(_with(card, new), command)
    if state is State.FEEDING and kind is Kind.NO_CARD:
        return Step(_with(card, State.VOID), None, Outcome.REQUEUE)
    # a rejected card always says why
    why = event.reason or Reason(Code.UNEXPLAINED, {"event": kind.value})
    if state in _WORKING and kind is Kind.FAILED:
        return Step(_with(card, State.REJECTING, why), Command.REJECT)
    if state is State.EJECTING and kind is Kind.EJECTED:
        return Step(_with(card, State.HANDED_OUT), None, Outcome.HANDED_OUT)
    if (state is State.REJECTING and kind is Kind.REJECTED) or (
            not state.terminal and state is not State.FEEDING and kind is Kind.MISSING):
        done = _with(card, State.REJECTED, why if kind is Kind.MISSING else None)
        outcome = Outcome.RETRY if card.attempt < card.max_attempts else Outcome.FAILED
        return Step(done, None, outcome, done.reasons)
    raise IllegalTransition(state, kind)


def spoiled(card: Card, reason: Reason) -> Step:
    """A card in doubt in machines an operator declared emptied: void while it was still
    feeding (no chip is known to have been fed: the application goes back to the queue, no
    attempt used), else rejected with ``reason`` (retried on a new blank, or failed when out
    of attempts)."""
    if card.state.terminal:
        raise IllegalTransition(card.state, Kind.MISSING)
    if card.state is State.FEEDING:
        return Step(_with(card, State.VOID, reason), None, Outcome.REQUEUE)
    return step(card, Event(Kind.MISSING, reason))


def supersede(card: Card) -> Card:
    """A handed-out card once its holder's next card is handed out: at most one card per
    person is current (a renewal or replacement keeps the document number). The only way to
    SUPERSEDED, and only from HANDED_OUT; no command follows and no application changes (the
    journal does it in the transaction that hands the next card out)."""
    if card.state is not State.HANDED_OUT:
        raise IllegalTransition(card.state, Kind.SUPERSEDED)
    return _with(card, State.SUPERSEDED)


def _with(card: Card, state: State, reason: Reason | None = None) -> Card:
    reasons = card.reasons + ((reason,) if reason else ())
    return Card(state, card.attempt, card.max_attempts, reasons)


class Place(StrEnum):
    """Where the station sees the card (the printer's position sensor)."""

    NONE = "none"  # no card inside the printer
    ENCODER = "encoder"  # at the encoding station
    PRINT = "print"  # at the print head


@dataclass(frozen=True, slots=True)
class Observation:
    """What a station can see of its in-doubt card.

    ``chip_ok`` is the verdict of reading the chip back (BAC + full QA against the prepared
    data) when the card sits at the encoder; None when it was not, or could not be, read.
    """

    place: Place
    chip_ok: bool | None = None


def needs_chip_check(state: State, place: Place) -> bool:
    """Whether settling this card needs its chip read back first."""
    return state is State.ENCODING and place is Place.ENCODER


def settle(card: Card, seen: Observation) -> Event | Command:
    """What to do with an in-doubt card: an event to apply, or a command to carry out again.

    Only what is seen counts. A card can leave the printer only by EJECTING or REJECTING, so
    a missing card in any other state is reported, never assumed handed out.
    """
    state, place = card.state, seen.place
    if state.terminal:
        raise IllegalTransition(state, Kind.MISSING)
    if state is State.FEEDING:
        # fed (wherever it stopped: a card at the head then fails its encoding and is rejected)
        return Event(Kind.NO_CARD) if place is Place.NONE else Event(Kind.FED)
    if place is Place.NONE:
        if state is State.EJECTING:
            return Event(Kind.EJECTED)
        if state is State.REJECTING:
            return Event(Kind.REJECTED)
        return Event(Kind.MISSING, Reason(Code.CARD_MISSING, {"state": state.value}))
    return _settle_inside(card, seen)


def _settle_inside(card: Card, seen: Observation) -> Event | Command:
    state, place = card.state, seen.place
    if state in (State.EJECTING, State.REJECTING):
        return Command.EJECT if state is State.EJECTING else Command.REJECT
    if state is State.ENCODING:
        if place is Place.ENCODER and seen.chip_ok:
            return Event(Kind.ENCODED)  # written in full before the crash: QA runs again next
        return Event(Kind.FAILED, Reason(Code.ENCODING_INTERRUPTED))
    if state is State.VERIFYING:
        return Command.VERIFY if place is Place.ENCODER else Event(
            Kind.FAILED, Reason(Code.LEFT_ENCODER_BEFORE_QA))
    # PRINTING: at the encoder nothing was printed yet; at the head the print may be partial
    if place is Place.ENCODER:
        return Command.PRINT
    return Event(Kind.FAILED, Reason(Code.PRINTING_INTERRUPTED))
