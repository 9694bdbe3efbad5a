"""The journal port: every operation the line, its reports and its front ends ask of the
journal, whatever database keeps it.

An adapter (``sqlite.py``, ``postgres.py``) implements :class:`JournalPort`; nothing outside
it knows which database is underneath. Its promises, which every adapter keeps and the same
tests check:

- a state change and its hash-chained event are one transaction: both or neither;
- events are append-only, numbered 1, 2, 3… without gap or duplicate within their chain
  however many processes append, each hash following from the previous one (SQLite keeps
  one chain; PostgreSQL one per line beside the journal's own, which anchors their heads);
- a card row moves only from the state its caller saw (a stale move is refused);
- one handed-out card per document number and per application, one card per chip serial;
- one current (handed-out) card per person: handing a card out supersedes the holder's
  earlier one in the same transaction, and intake refuses what would break the rule;
- no personal data in events: ids, chip serials, stations, states and reason codes only.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, Self

from personalization.applications.intake import InvalidRecord
from personalization.applications.model import Application
from personalization.applications.stream import Mark
from personalization.cardstate import Step
from personalization.errors import PersonalizationError
from personalization.journal.records import (
    ApplicationRow,
    BatchInfo,
    CardRow,
    ChainCheck,
    EventRow,
    LineRow,
    QuarantineRow,
    StationRow,
)
from personalization.journal.registry_port import RegistryPort
from personalization.journal.shares_port import SharesPort
from personalization.reasons import Reason


class JournalError(PersonalizationError):
    """The journal cannot do what was asked; the message says what and why."""


class BatchExistsError(JournalError):
    """A batch of this name is already in the journal."""

    def __init__(self, name: str) -> None:
        super().__init__(f"a batch named {name!r} already exists")
        self.name = name


class JournalUnavailable(JournalError):  # noqa: N818 - what operators see: the journal is
    """The journal's database cannot be reached now (connection lost, server restarting, only
    a read-only standby answering). Transient: the line waits and asks again. Whether the
    write that raised it was committed is unknown, so a station settles its card as after a
    crash, from the journal as it is then and what the machines show."""


class NotClaimable(JournalError):  # noqa: N818 - what the application is
    """A card cannot begin for this application: it is no longer pending (a card of it is
    under way or it is settled) or another line holds it (this line's lease ran out)."""


class ConflictError(JournalError):
    """A uniqueness rule of the journal refused the change (chip serial, handed-out card)."""


class PurgeIncompleteError(JournalError):
    """Personal data was dropped from the tables but may still sit in the database's log
    (another process held a read open throughout): ``pending`` batches stay not purged and the
    next purge finishes them; ``purged`` ones are done. Batch names only, no personal data."""

    def __init__(self, purged: Sequence[str], pending: Sequence[str]) -> None:
        super().__init__(f"purge incomplete: batch(es) {', '.join(pending)} still pending (another "
                         "process keeps the journal's log open); run `cardline journal purge` "
                         "again when it is done")
        self.purged = list(purged)
        self.pending = list(pending)


@dataclass(frozen=True, slots=True)
class ImportState:
    """A batch being imported in chunks: where it came from and how far its file was read
    (``mark``), with the applications accepted and the records quarantined so far."""

    name: str
    source: str
    profile: str
    max_attempts: int
    mark: Mark
    accepted: int
    quarantined: int


class DataKeyWrap(Protocol):
    """What wraps a batch's data key for a journal that encrypts personal fields (PostgreSQL):
    the key never reaches the database unwrapped. In production a key in the HSM does it.

    ``batch`` is bound to the blob (associated data, or the wrapping key's own choice): a
    blob copied to another batch does not unwrap. Both raise on any failure; an unwrap that
    fails must never return other bytes."""

    def wrap(self, key: bytes, batch: str) -> bytes:
        """``key`` wrapped for ``batch``."""

    def unwrap(self, blob: bytes, batch: str) -> bytes:
        """The key :meth:`wrap` wrapped for ``batch``."""

    def destroy(self, batch: str) -> bool:
        """Destroy ``batch``'s wrapping key: True when it existed, False when already gone.

        The purge calls it before its transaction (a purge that fails afterwards stays due
        and calls it again, so it must be idempotent). Once destroyed, every copy of the
        wrapped blob anywhere (old row versions, WAL, backups) is useless: crypto-shredding
        that does not depend on the database forgetting anything."""


CONTROL_ACTIONS = ("pause", "resume", "stop")


def control_action(action: str) -> str:
    """``action`` when it is one of :data:`CONTROL_ACTIONS`, else :class:`JournalError`."""
    if action not in CONTROL_ACTIONS:
        raise JournalError(f"unknown run control {action!r}; use pause, resume or stop")
    return action


class JournalPort(SharesPort, RegistryPort, Protocol):
    """The journal of one line, as the controller, stations, reports and front ends use it."""

    # -- the journal itself -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Where this journal lives (``sqlite:///PATH``…), to open it again elsewhere."""

    @property
    def schema_version(self) -> int:
        """The number of the last migration applied."""

    def close(self) -> None:
        """Let go of the database."""

    def __enter__(self) -> Self: ...

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def controller_lock(self, line: str) -> AbstractContextManager[None]:
        """Held while a controller drives ``line``; a second one gets :class:`JournalError`
        at once, on any machine that shares the journal. Released when the holder exits,
        even when its process is killed."""

    # -- events -------------------------------------------------------------------------------

    def note(self, batch: str | None, kind: str, **data: Any) -> None:
        """Append an event that changes no state (run started, paused, reconciled…)."""

    def events(self, batch: str) -> list[EventRow]:
        """A batch's events, oldest first."""

    def verify_chain(self) -> ChainCheck:
        """Re-hash the whole event log; report the first event that does not follow."""

    # -- batches ------------------------------------------------------------------------------

    def create_batch(self, name: str, *, source: str, profile: str, max_attempts: int,
                     valid: Sequence[tuple[int, Application, str]],
                     invalid: Sequence[InvalidRecord]) -> BatchInfo:
        """A new batch of ``valid`` (line, application, document number) in queue order and
        ``invalid`` quarantined; so is an application the rule of one current card per person
        refuses (one application in progress per person; a first issue only for a person
        with no current card; a renewal or replacement names that card).
        Raises :class:`BatchExistsError` when the name is taken."""

    # -- chunked import: a batch written a chunk of its file at a time, each chunk one short
    # transaction; runnable only once the whole file is in ---------------------------------

    def begin_import(self, name: str, *, source: str, profile: str,
                     max_attempts: int) -> ImportState:
        """A new batch in state ``importing`` (never run, never finished, never closed), or
        the unfinished import of that name as it was left, to carry on from its mark.
        Raises :class:`BatchExistsError` when a batch of that name is already complete."""

    def import_seen(self, name: str, keys: Collection[bytes]) -> dict[bytes, int]:
        """Of these unique-value keys, those an earlier chunk of the import holds, with the
        line that holds each."""

    def import_chunk(self, name: str, *, start: Mark, end: Mark,
                     valid: Sequence[tuple[int, Application, str]],
                     invalid: Sequence[InvalidRecord],
                     keys: Mapping[bytes, int]) -> list[InvalidRecord]:
        """One chunk in one transaction: ``valid`` queued (as in :meth:`create_batch`, an
        application the rule of one current card per person refuses is quarantined instead),
        ``invalid`` quarantined, ``keys`` (first line by key) kept for later chunks, and the
        import moved from ``start`` to ``end``. Returns the records quarantined.
        :class:`JournalError` when the import is not at ``start`` (another process moved it)."""

    def finish_import(self, name: str, end: Mark) -> BatchInfo | None:
        """The whole file is in, up to ``end``. Each call is one short transaction: it removes
        some of the import's keys and returns None (call again), or, once they are gone,
        makes the batch ``open`` (runnable) and returns it."""

    def discard_import(self, name: str) -> int:
        """Remove an unfinished import and everything it wrote, in short transactions;
        returns the applications removed. :class:`JournalError` for a complete batch."""

    def batch(self, name: str) -> BatchInfo:
        """One batch by name (:class:`JournalError` when there is none)."""

    def batches(self) -> list[BatchInfo]:
        """Every batch, oldest first."""

    def quarantined(self, name: str) -> list[QuarantineRow]:
        """The invalid records of a batch with their reasons."""

    def close_batch(self, name: str, retention_days: int) -> bool:
        """Close a finished batch and purge or schedule the purge of its personal data;
        False when it is not finished. :class:`PurgeIncompleteError` when closed but its purge
        could not complete (the batch stays due; a later purge finishes it)."""

    def purge_due(self, at: datetime | None = None, *,
                  wait_s: float | None = None) -> list[str]:
        """Purge every closed batch whose retention has run out, finishing incomplete purges;
        returns their names. :class:`PurgeIncompleteError` (after trying every one) when some
        could not complete within ``wait_s`` (the adapter's default when None)."""

    def purge(self, name: str, *, wait_s: float | None = None) -> None:
        """Drop a closed batch's personal data; ids, states, reason codes and events stay. The
        batch is marked purged only once the data has left the tables and the database's log;
        :class:`PurgeIncompleteError` when that could not complete within ``wait_s``."""

    # -- applications -------------------------------------------------------------------------

    def pending(self, name: str) -> list[str]:
        """Application ids waiting for a card, in queue order."""

    def application(self, name: str, application_id: str) -> Application:
        """The validated application (until its batch's personal data is purged)."""

    def applications(self, name: str) -> list[ApplicationRow]:
        """Every application's state, attempts and reasons (no personal data)."""

    def issuance_results(self, name: str) -> list[dict[str, Any]]:
        """What became of batch ``name``'s applications, for the registry: one dict per
        application in queue order, then one per quarantined record, each with
        ``application_id``, ``status`` (issued, failed, quarantined or pending), ``reasons``
        (a failed application's reason codes; a quarantined record's ``field: reason``),
        ``card_id``, ``chip_serial`` and ``ds_serial`` of the card issued, the
        ``document_number``, ``issue_date`` and ``expiry_date`` (ISO), ``supersedes``
        ({card_id, document_number} of the card it replaces, or None) and ``kind``. Never a
        name, a birth date or a photo."""

    def fail_application(self, name: str, application_id: str, reason: Reason) -> None:
        """A pending application that cannot be made into a card at all: failed, with why."""

    # -- cards --------------------------------------------------------------------------------

    def begin_card(self, name: str, application_id: str, station: str,
                   line: str | None = None, *, can: str | None = None) -> CardRow:
        """A new card in FEEDING for a pending application (journaled before the feed).
        With ``line``: :class:`JournalError` when another line holds the application.
        With ``can``: the card's printed random CAN (its chip's PACE password, printed on its
        face), kept with the card in the same transaction, as personal data — never in an
        event, kept where the application records are (SQLite) or sealed under the batch's
        data key (PostgreSQL), and purged with them."""

    def card_access_number(self, name: str, card_id: int) -> str | None:
        """The CAN kept with card ``card_id`` of batch ``name`` by :meth:`begin_card`; None
        when none was kept (a CAN derived from the application, a card begun without one)
        or the batch's personal data is purged."""

    def move(self, card: CardRow, result: Step, *, chip_serial: str | None = None,
             qa: dict[str, Any] | None = None) -> CardRow:
        """Journal a card's state change (and its application's, when the card is done);
        :class:`JournalError` when the card is no longer in the state ``card`` says. A card
        handed out supersedes its holder's current card (``card.superseded`` {by, batch}),
        in the same transaction."""

    def cards(self, name: str) -> list[CardRow]:
        """Every card fed (or being fed) for a batch, in order."""

    def open_cards(self, name: str) -> list[CardRow]:
        """Cards not yet in a terminal state: after a crash, the ones in doubt."""

    def card_by_chip(self, chip_serial: str) -> CardRow | None:
        """The card that holds this chip, in any batch."""

    def stock(self, name: str) -> dict[str, int]:
        """Blank stock of a batch: fed, handed_out, rejected, in_machine."""

    # -- stations -----------------------------------------------------------------------------

    def station_counter(self, name: str, station: str, *, before_feed: int | None = None,
                        now: int | None = None) -> None:
        """Record a printer's inserted-cards counter: before its first feed of the batch,
        and the latest reading."""

    def set_alarm(self, name: str, station: str, alarm: str | None) -> None:
        """Raise (text) or clear (None) a station's alarm."""

    def stations(self, name: str) -> list[StationRow]:
        """Each station of a batch: printer counters, alarm and live state."""

    def set_station_live(self, name: str, station: str, live: dict[str, Any]) -> None:
        """Publish what a station is doing now (no event: one short write, called often; no
        personal data: states, card and application ids, status words)."""

    # -- lines sharing a batch: leases, claims ---------------------------------------------
    # Several lines run one batch together. Each line heartbeats its lease; it claims
    # pending applications a few at a time; an application is held by one line at a time
    # (a claim survives requeues of the line's own cards); the claims of a line whose lease
    # ran out (it died or hangs) go back to the pool; its cards in doubt stay its own.

    def join_line(self, name: str, line: str, *, stations: Sequence[str], holder: str) -> None:
        """``line`` (with these stations, run by ``holder``: host and pid) runs batch
        ``name`` from now on; its lease starts. :class:`JournalError` when another line of the
        batch has one of these station names (a card in doubt is found by its station)."""

    def heartbeat(self, name: str, line: str) -> None:
        """The line is alive: its lease runs on from now."""

    def leave_line(self, name: str, line: str, run: str) -> None:
        """The line's run ``run`` ended: the applications it claimed and never started go
        back to the pool now, and its lease ends."""

    def claim(self, name: str, line: str, run: str, count: int, lease_s: float) -> list[str]:
        """Up to ``count`` pending applications for run ``run`` of ``line``, in queue order:
        unclaimed ones, ones this line claimed in an earlier run, and ones whose line's lease
        is older than ``lease_s`` (or which left). Two lines never get the same one."""

    def lines(self, name: str, lease_s: float) -> list[LineRow]:
        """Every line that has run batch ``name``, with its lease and holdings."""

    def abandon_line(self, name: str, line: str, by: str, lease_s: float) -> list[int]:
        """An operator declares ``line``'s machines emptied: its cards in doubt are spoiled
        (void, or rejected when a chip was fed) and their applications requeued (or failed
        when out of attempts); its claims are released. Journaled as ``line.abandoned`` {line,
        by, cards}; returns the card ids. :class:`JournalError` while the line's lease is
        alive."""

    # -- run control --------------------------------------------------------------------------

    def request_control(self, name: str, action: str, by: str) -> None:
        """Ask the process running batch ``name`` to ``pause`` (stations finish the card in
        hand and wait), ``resume`` (carry on) or ``stop`` (the run ends; the batch stays open
        for ``batch resume``). The latest request replaces an earlier one, obeyed or not.
        Journaled as ``run.control`` {action, by}; :class:`JournalError` for an unknown batch
        or action."""

    def control(self, name: str, line: str | None = None) -> str | None:
        """The latest requested action the controller has not acknowledged yet, or None.
        A pause stays in force once acknowledged — the controller keeps its stations waiting
        — until a ``resume`` or ``stop`` is requested; the journal only remembers requests.
        With ``line`` (lines sharing a batch): the latest request ``line`` has not
        acknowledged, whatever the other lines did — every line obeys each request."""

    def ack_control(self, name: str, action: str, line: str | None = None) -> None:
        """The controller carried out ``action``: :meth:`control` stops returning it.
        Journaled as ``run.obeyed`` {action}, once; acknowledging an action that is no longer
        the latest request (a newer one came meanwhile) changes nothing.
        With ``line``: acknowledged for that line only (``run.obeyed`` names it)."""
