"""Rules every journal adapter applies the same way, whatever its SQL: plain functions over
rows already read, so the SQLite and PostgreSQL adapters cannot drift apart on them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from personalization.applications.intake import InvalidRecord
from personalization.applications.model import Application, FieldError
from personalization.journal.port import JournalError
from personalization.journal.records import LineRow, QuarantineRow
from personalization.reasons import Reason


@dataclass(frozen=True, slots=True)
class CurrentCard:
    """A handed-out card the journal holds for a document number: its holder (None: a card
    whose holder was never recorded, matched by its document number as before holders were
    kept) and the issue date of its application (ISO; None when unknown)."""

    id: int
    holder: str | None
    document_number: str
    issue_date: str | None


@dataclass(frozen=True, slots=True)
class InProgress:
    """A pending or active application the journal holds for a document number."""

    holder: str | None
    document_number: str
    batch: str


@dataclass(frozen=True, slots=True)
class Holdings:
    """What the journal holds for the document numbers of a chunk: the current cards and
    the applications in progress. A person's document number is the last nine digits of
    their personal ID, so one lookup by document number (indexed) finds all of a person's."""

    cards: Sequence[CurrentCard] = ()
    applications: Sequence[InProgress] = ()


class Queued(NamedTuple):
    """An application accepted at intake, with the card it supersedes (resolved now)."""

    line: int
    application: Application
    number: str
    supersedes_card: int | None


def _mine(holder: str, their_holder: str | None) -> bool:
    """Whether a row of the same document number is this person's: the same holder, or no
    holder kept (the number was the key of the rule then)."""
    return their_holder is None or their_holder == holder


def _refusal(application: Application, current: CurrentCard | None) -> FieldError | None:
    """Why a renewal or replacement cannot supersede what it names (None: it can)."""
    named = application.supersedes
    if current is None:
        if application.predates_cardline:
            return None
        return FieldError("supersedes", "no earlier card of this person is known to cardline "
                                        "(this person holds no current card); the registry "
                                        "must say predates_cardline")
    if application.predates_cardline or named is None:
        return FieldError("supersedes", "predates_cardline is true, but this person holds a "
                                        f"current card (card {current.id}): a renewal or "
                                        "replacement must name it")
    if named.card_id is not None:
        if named.card_id == current.id:
            return None
        return FieldError("supersedes", f"names card {named.card_id}, which is not this "
                                        f"person's current card (card {current.id} is)")
    issued = named.issue_date.isoformat() if named.issue_date else None
    if (named.document_number, issued) == (current.document_number, current.issue_date):
        return None
    return FieldError("supersedes", "names a card (by document_number and issue_date) which "
                                    f"is not this person's current card (card {current.id} is)")


@dataclass
class _Held:
    """:class:`Holdings` by document number, growing with the applications accepted."""

    name: str
    cards: dict[str, list[CurrentCard]] = field(default_factory=dict)
    applications: dict[str, list[InProgress]] = field(default_factory=dict)

    def current(self, holder: str, number: str) -> CurrentCard | None:
        return next((c for c in self.cards.get(number, ()) if _mine(holder, c.holder)), None)

    def check(self, application: Application, number: str) -> FieldError | None:
        """The first rule of one current card per person that ``application`` breaks."""
        holder = application.personal_id
        others = self.applications.get(number, [])
        for other in sorted(others, key=lambda o: not _mine(holder, o.holder))[:1]:
            if _mine(holder, other.holder):
                where = "earlier in this file" if other.batch == self.name else \
                    f"batch {other.batch!r}"
                return FieldError("personal_id", "this person already has an application in "
                                                 f"progress ({where})")
            return FieldError("personal_id", "the document number (the last 9 digits of "
                                             "personal_id) is already held by another "
                                             f"person's application (batch {other.batch!r})")
        for card in self.cards.get(number, ()):
            if not _mine(holder, card.holder):
                return FieldError("personal_id", "the document number (the last 9 digits of "
                                                 "personal_id) is already held by another "
                                                 f"person's card (card {card.id})")
        current = self.current(holder, number)
        if application.kind != "first":
            return _refusal(application, current)
        if current is None:
            return None
        return FieldError("kind", f"this person already holds a current card (card "
                                  f"{current.id}): a renewal or replacement must name it")


def person_columns(queued: Queued) -> tuple[str, str, str, str | None, int | None, bool]:
    """The values of an application's columns ``holder, kind, issue_date, expiry_date,
    supersedes_card, predates`` (dates in ISO form)."""
    application = queued.application
    expiry = application.expiry_date
    return (application.personal_id, application.kind, application.issue_date.isoformat(),
            expiry.isoformat() if expiry else None, queued.supersedes_card,
            application.predates_cardline)


def hold_once(name: str, valid: Sequence[tuple[int, Application, str]],
              invalid: Sequence[InvalidRecord], held: Holdings,
              ) -> tuple[list[Queued], list[InvalidRecord]]:
    """Split ``valid`` (line, application, document number) into the applications to queue
    and those quarantined by the rule of one current card per person (issue #16 §2): one
    application in progress per person (in any batch, or earlier in this file); a first
    issue only for a person holding no current card; a renewal or replacement names that
    person's current card, or says (``predates_cardline``) the earlier card predates
    cardline when cardline knows none of theirs. A document number is one person's. Reasons
    never quote the personal ID."""
    index = _Held(name)
    for card in held.cards:
        index.cards.setdefault(card.document_number, []).append(card)
    for other in held.applications:
        index.applications.setdefault(other.document_number, []).append(other)
    accepted: list[Queued] = []
    refused = list(invalid)
    for line, application, number in valid:
        error = index.check(application, number)
        if error is not None:
            refused.append(InvalidRecord(line, application.application_id, (error,)))
            continue
        current = index.current(application.personal_id, number)
        supersedes = current.id if current is not None and application.kind != "first" \
            else None
        index.applications.setdefault(number, []).append(
            InProgress(application.personal_id, number, name))
        accepted.append(Queued(line, application, number, supersedes))
    return accepted, refused


def no_station_clash(name: str, others: Iterable[tuple[str, Sequence[str]]],
                     stations: Sequence[str]) -> None:
    """:class:`JournalError` when another line of batch ``name`` (``others``: each line and
    its stations) has one of ``stations``: a card in doubt is found by its station."""
    for other, theirs in others:
        shared = sorted(set(theirs) & set(stations))
        if shared:
            raise JournalError(f"line {other!r} of batch {name!r} already has station(s) "
                               f"{', '.join(shared)}: the lines sharing a batch need station "
                               "names of their own (line.yaml: stations)")


def line_row(row: Mapping[str, Any], stations: list[str], age_s: float, lease_s: float,
             claimed: Mapping[str, int], open_by_station: Mapping[str, int]) -> LineRow:
    """A line of a batch as :meth:`JournalPort.lines` gives it: alive while it has
    heartbeat within the lease and not left."""
    left = row["left_at"] is not None
    age = max(0.0, age_s)
    return LineRow(line=row["line"], holder=row["holder"], stations=stations,
                   started_at=row["started_at"], heartbeat_age_s=round(age, 1),
                   alive=not left and age < lease_s, left=left,
                   claimed=claimed.get(row["line"], 0),
                   in_doubt=sum(open_by_station.get(s, 0) for s in stations))


# -- issuance results for the registry ---------------------------------------------------------

_STATUS = {"handed_out": "issued", "failed": "failed", "pending": "pending", "active": "pending"}
# the columns an adapter selects for :func:`issuance_result`: the application's, its issued
# card's (handed out, or superseded since; NULL when none) and the card it supersedes
ISSUANCE_COLUMNS = (
    "a.application_id, a.state, a.reasons, a.document_number, a.issue_date, a.expiry_date, "
    "a.kind, a.supersedes_card, c.id AS card_id, c.chip_serial, c.qa, "
    "s.document_number AS supersedes_document")
ISSUANCE_JOINS = (
    "LEFT JOIN cards c ON c.batch = a.batch AND c.application_id = a.application_id "
    "AND c.state IN ('handed_out', 'superseded') LEFT JOIN cards s ON s.id = a.supersedes_card")


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _codes(reasons: Any) -> list[str]:
    """The reason codes of an application's failed attempts, in order."""
    return [Reason.from_dict(r).code for entry in _json(reasons) or []
            for r in entry.get("reasons", [])]


def issuance_result(row: Mapping[str, Any]) -> dict[str, Any]:
    """One application's result for the registry (ids, numbers, dates and codes; never a
    name, a birth date or a photo), from a row of :data:`ISSUANCE_COLUMNS`."""
    status = _STATUS.get(row["state"], "pending")
    issued = status == "issued" and row["card_id"] is not None
    qa = (_json(row["qa"]) or {}) if issued else {}
    return {
        "application_id": row["application_id"], "status": status,
        "reasons": _codes(row["reasons"]) if status == "failed" else [],
        "card_id": int(row["card_id"]) if issued else None,
        "document_number": row["document_number"],
        "chip_serial": row["chip_serial"] if issued else None,
        "issue_date": row["issue_date"], "expiry_date": row["expiry_date"],
        "ds_serial": qa.get("ds_serial") if isinstance(qa, dict) else None,
        "supersedes": None if row["supersedes_card"] is None else {
            "card_id": int(row["supersedes_card"]),
            "document_number": row["supersedes_document"]},
        "kind": row["kind"],
    }


def quarantine_result(row: QuarantineRow) -> dict[str, Any]:
    """A quarantined record's result: each error as ``field: reason`` (reasons name the field
    and the rule, never a value)."""
    return {"application_id": row["application_id"], "status": "quarantined",
            "reasons": [f"{e['field']}: {e['reason']}" for e in row["errors"]],
            "card_id": None, "document_number": None, "chip_serial": None, "issue_date": None,
            "expiry_date": None, "ds_serial": None, "supersedes": None, "kind": None}
