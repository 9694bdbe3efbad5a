"""The journal's records, as every adapter hands them out: plain values, no database in sight.

A validated application is kept as one JSON text until the purge; its portrait and its
fingers travel inline (base64 of the normalized JPEG and WSQ images) so a batch never depends
on the files it was created from.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, TypedDict

from personalization.applications.fingerprint import (
    Finger,
    FingerImage,
    Fingerprints,
    MissingFinger,
)
from personalization.applications.model import Application, Supersedes
from personalization.applications.photo import Portrait
from personalization.cardstate import Card, State
from personalization.reasons import Reason

_DATES = ("date_of_birth", "issue_date", "expiry_date")
GENESIS = "0" * 64  # the "previous hash" of the first event


def _dump_finger(finger: Finger) -> dict[str, Any]:
    if isinstance(finger, MissingFinger):
        return {"position": finger.position, "missing": finger.reason}
    return {"position": finger.position, "wsq": base64.b64encode(finger.wsq).decode("ascii"),
            "width": finger.width, "height": finger.height, "ppi": finger.ppi}


def _load_finger(raw: dict[str, Any]) -> Finger:
    if "missing" in raw:
        return MissingFinger(raw["position"], raw["missing"])
    return FingerImage(raw["position"], base64.b64decode(raw["wsq"]), raw["width"],
                       raw["height"], raw["ppi"])


def dump_application(application: Application) -> str:
    """The journal text of one validated application."""
    out: dict[str, Any] = {}
    for item in fields(Application):
        value = getattr(application, item.name)
        if item.name in _DATES:
            value = value.isoformat() if value is not None else None
        elif isinstance(value, Portrait):
            value = {"jpeg": base64.b64encode(value.jpeg).decode("ascii"),
                     "width": value.width, "height": value.height}
        elif isinstance(value, Fingerprints):
            value = {"right_index": _dump_finger(value.right_index),
                     "left_index": _dump_finger(value.left_index)}
        elif isinstance(value, Supersedes):
            value = {"card_id": value.card_id, "document_number": value.document_number,
                     "issue_date": value.issue_date.isoformat() if value.issue_date else None}
        out[item.name] = value
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


def load_application(text: str) -> Application:
    """The application back from its journal text (it was validated when the batch was made).
    A text kept before applications had kinds loads as a first issue, one kept before they
    had fingerprints without them."""
    raw = json.loads(text)
    for name in _DATES:
        raw[name] = date.fromisoformat(raw[name]) if raw[name] is not None else None
    photo = raw["portrait"]
    raw["portrait"] = Portrait(base64.b64decode(photo["jpeg"]), photo["width"], photo["height"])
    earlier = raw.get("supersedes")
    if earlier is not None:
        raw["supersedes"] = Supersedes(
            earlier["card_id"], earlier["document_number"],
            date.fromisoformat(earlier["issue_date"]) if earlier["issue_date"] else None)
    fingers = raw.get("fingerprints")
    if fingers is not None:
        raw["fingerprints"] = Fingerprints(_load_finger(fingers["right_index"]),
                                           _load_finger(fingers["left_index"]))
    return Application(**raw)


def event_hash(prev: str, seq: int, at: str, batch: str | None, card: int | None, kind: str,
               data: str) -> str:
    """SHA-256 over the previous hash and the event's fields, in a fixed JSON form: the same
    in every adapter, so any journal verifies the same way."""
    body = json.dumps([prev, seq, at, batch, card, kind, data], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _decoded(value: Any) -> Any:
    """A JSON column as Python: adapters may hand it over as text or already decoded."""
    return json.loads(value) if isinstance(value, str | bytes) else value


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """One batch and its application counts."""

    name: str
    created_at: str
    source: str
    profile: str
    max_attempts: int
    state: str
    closed_at: str | None
    purged_at: str | None
    applications: dict[str, int]
    quarantined: int

    @property
    def finished(self) -> bool:
        """Every application handed out or failed (never while the batch is importing)."""
        return self.state != "importing" and \
            self.applications.get("pending", 0) + self.applications.get("active", 0) == 0


@dataclass(frozen=True, slots=True)
class CardRow:
    """One physical card fed (or about to be); built only by :meth:`from_mapping`."""

    id: int
    batch: str
    application_id: str
    attempt: int
    station: str
    chip_serial: str | None
    document_number: str
    state: State
    reasons: tuple[Reason, ...]
    qa: dict[str, Any] | None
    started_at: float
    updated_at: float
    holder: str | None = None  # the personal ID whose card it is (None: before migration 9)

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any]) -> CardRow:
        """A card from a stored row (column name → value; ``reasons`` and ``qa`` as JSON)."""
        return cls(int(row["id"]), row["batch"], row["application_id"], int(row["attempt"]),
                   row["station"], row["chip_serial"], row["document_number"],
                   State(row["state"]),
                   tuple(Reason.from_dict(r) for r in _decoded(row["reasons"])),
                   _decoded(row["qa"]) if row["qa"] else None, float(row["started_at"]),
                   float(row["updated_at"]), row.get("holder"))

    def machine(self, max_attempts: int) -> Card:
        """The state machine's view of this card."""
        return Card(self.state, self.attempt, max_attempts, self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """The report's shape of one card."""
        return {
            "card": self.id, "application_id": self.application_id,
            "document_number": self.document_number, "chip_serial": self.chip_serial,
            "station": self.station, "attempt": self.attempt, "state": self.state.value,
            "reasons": [r.as_dict() for r in self.reasons], "qa": self.qa or {},
            "seconds": round(self.updated_at - self.started_at, 3),
        }


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The result of re-hashing the event log."""

    events: int
    broken_at: int | None  # seq of the first event whose hash does not follow

    @property
    def ok(self) -> bool:
        """True when every event's hash follows from its predecessor."""
        return self.broken_at is None


class ApplicationRow(TypedDict):
    """An application's progress, without personal data."""

    application_id: str
    line: int
    document_number: str
    state: str  # pending | active | handed_out | failed
    attempts: int
    # one entry per failed attempt: attempt, card, reasons (each as Reason.as_dict gives it)
    reasons: list[dict[str, Any]]


class QuarantineRow(TypedDict):
    """An input record refused at batch intake, with the reasons per field."""

    line: int
    application_id: str | None
    errors: list[dict[str, Any]]


class StationRow(TypedDict):
    """A station of a batch: its printer's counters, its alarm, and what its controller last
    published of it (``live``, as of ``live_at``)."""

    station: str
    counter_start: int | None
    counter_last: int | None
    alarm: str | None
    live: dict[str, Any] | None
    live_at: str | None


class LineRow(TypedDict):
    """A line that has run a batch: its stations, who holds it, and its lease (alive while it
    heartbeats within the lease and has not left)."""

    line: str
    holder: str
    stations: list[str]
    started_at: str
    heartbeat_age_s: float
    alive: bool
    left: bool
    claimed: int  # applications it holds that no card has been started for yet
    in_doubt: int  # its cards not yet handed out, rejected or void


class EventRow(TypedDict):
    """One event of a batch's log."""

    seq: int
    at: str
    card: int | None
    kind: str
    data: dict[str, Any]
