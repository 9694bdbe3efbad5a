"""What the operator's dashboard shows, read through one journal the dashboard holds open: the
line's stations live, a batch's progress and ETA, QA verdicts, the key inventory and the audit
trail's state. Plain JSON-ready values, no personal data (a card is named by its id, chip serial
and document number; an application by its id) — except :func:`qa_card`, for QA investigating
one card, whose caller audits the read.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from personalization.config import LineConfig
from personalization.journal import open_journal
from personalization.journal.people_port import people
from personalization.journal.port import JournalError, JournalPort
from personalization.journal.records import CardRow, EventRow
from personalization.line.report import reconcile, reject_codes, station_rows, timeline
from personalization.people import Person
from personalization.reasons import Lang, Reason, render
from personalization.service import keys as key_service
from personalization.service.audit import audit_journal, verify
from personalization.service.errors import NotFound
from personalization.service.people import NotLoggedIn, browser_person
from qa.reasons import message as qa_message

__all__ = ["Watch", "audit_view", "batch_view", "current_batch", "keys_view", "line_view",
           "qa_card", "qa_view"]

RATE_WINDOW_S = 300.0  # the ETA's rate: cards handed out over the last five minutes
EXPIRY_WARNING_DAYS = 30  # a key whose usage ends sooner is flagged
USAGE_WARNING = 0.9  # a DS past this share of its document limit is flagged
RECENT_EVENTS = 50


def current_batch(journal: JournalPort) -> str | None:
    """The batch the line is on: the newest one not closed, else the newest one."""
    batches = sorted(journal.batches(), key=lambda b: b.created_at)
    open_ = [b for b in batches if b.state != "closed"]
    chosen = open_[-1] if open_ else batches[-1] if batches else None
    return None if chosen is None else chosen.name


def line_view(journal: JournalPort, batch: str) -> dict[str, Any]:
    """Each station of ``batch`` as its controller last published it, with the card in hand
    (card id and application id, never a name) and its alarm."""
    journal.batch(batch)  # NotFound-like error for an unknown batch
    in_hand = {c.station: c.id for c in journal.open_cards(batch)}
    stations = []
    for row in journal.stations(batch):
        live = row["live"] or {}
        stations.append({
            "station": row["station"], "state": live.get("state", "off"),
            "application": live.get("application"), "card": in_hand.get(row["station"]),
            "alarm": row["alarm"], "encoder": live.get("encoder"),
            "printer": live.get("printer_status") or {},
            "handed_out": live.get("handed_out", 0), "rejected": live.get("rejected", 0),
            "busy_s": live.get("busy_s", 0.0), "live_at": row["live_at"]})
    return {"batch": batch, "stations": stations}  # the lines sharing it: batch_view's


def _rate(cards: list[CardRow], now: float) -> float:
    """Cards handed out per second over the last :data:`RATE_WINDOW_S` (the ETA's rate)."""
    recent = [c for c in cards if c.state.issued and c.updated_at >= now - RATE_WINDOW_S]
    started = min((c.started_at for c in cards), default=now)
    window = min(RATE_WINDOW_S, now - started) if recent else 0.0
    return len(recent) / window if window > 0 else 0.0


def batch_view(journal: JournalPort, config: LineConfig, batch: str, lang: Lang = "en",
               *, now: float | None = None) -> dict[str, Any]:
    """A batch's progress (with an ETA from the last minutes' rate), throughput over time,
    stock reconciliation, reject reasons (in ``lang``), station utilisation and its lines."""
    now = time.time() if now is None else now
    info = journal.batch(batch)
    cards = journal.cards(batch)
    fed = [c for c in cards if c.chip_serial is not None]
    apps = info.applications
    total = sum(apps.values())
    done = apps.get("handed_out", 0) + apps.get("failed", 0)
    remaining = total - done
    rate = _rate(fed, now)
    eta = None
    if remaining and rate > 0 and info.state != "closed":
        eta = datetime.fromtimestamp(now, UTC) + timedelta(seconds=remaining / rate)
    start = min((c.started_at for c in fed), default=now)
    span = max((c.updated_at for c in fed), default=now) - start
    stations = journal.stations(batch)
    stock = reconcile(journal.stock(batch), stations, Counter(c.station for c in fed))
    reasons = Counter(render(r, lang) for c in fed if c.state.value == "rejected"
                      for r in c.reasons)
    return {
        "batch": batch, "state": info.state, "finished": info.finished,
        "created_at": info.created_at, "closed_at": info.closed_at,
        "applications": {"total": total, "done": done, **apps},
        "quarantined": info.quarantined,
        "progress": round(done / total, 4) if total else 0.0,
        "eta": None if eta is None else eta.isoformat(timespec="seconds"),
        "cards_per_hour": round(rate * 3600, 1), "timeline": timeline(fed, start, span),
        "stock": {k: v for k, v in stock.items() if k != "differences"},
        "stock_differences": len(stock["differences"]),
        "reject_reasons": dict(reasons), "reject_codes": reject_codes(fed),
        "utilisation": [{"station": row["name"], "utilisation": row["utilisation"]}
                        for row in station_rows(fed, span)],
        "alarms": {s["station"]: s["alarm"] for s in stations if s["alarm"]},
        "lines": journal.lines(batch, config.controller.lease_s),
        "personal_data_purged": info.purged_at is not None,
        "signed_off": any(e["kind"] == "qa.signed_off" for e in journal.events(batch))
        if info.state == "closed" else False,
    }


def _qa_reasons(qa: dict[str, Any], lang: Lang) -> list[dict[str, str]]:
    return [{"code": r.get("code", ""), "text": qa_message(r.get("code", ""), lang)
             or r.get("message", "")} for r in qa.get("reasons", [])]


def qa_view(journal: JournalPort, batch: str, lang: Lang = "en") -> dict[str, Any]:
    """Every card of ``batch`` that reached QA: its verdict and reason codes (no person)."""
    info = journal.batch(batch)
    rows, codes = [], Counter[str]()
    for card in journal.cards(batch):
        if card.qa is None:
            continue
        reasons = _qa_reasons(card.qa, lang)
        codes.update(r["code"] for r in reasons)
        rows.append({"card": card.id, "chip_serial": card.chip_serial,
                     "document_number": card.document_number, "station": card.station,
                     "state": card.state.value, "verdict": card.qa.get("verdict"),
                     "reasons": reasons, "ms": card.qa.get("ms")})
    verdicts = Counter(r["verdict"] for r in rows)
    return {"batch": batch, "state": info.state, "cards": rows,
            "passed": verdicts.get("pass", 0), "failed": verdicts.get("fail", 0),
            "codes": dict(codes),
            "signed_off": any(e["kind"] == "qa.signed_off" for e in journal.events(batch))}


def qa_card(journal: JournalPort, batch: str, card_id: int, lang: Lang = "en") -> dict[str, Any]:
    """One card for QA investigating it: its journal row, QA detail, and the holder's data
    when not purged yet (the caller audits this read of personal data)."""
    info = journal.batch(batch)
    card = next((c for c in journal.cards(batch) if c.id == card_id), None)
    if card is None:
        raise NotFound(f"batch {batch!r} has no card {card_id}")
    holder: dict[str, Any] | None = None
    if info.purged_at is None:
        app = journal.application(batch, card.application_id)
        holder = {"name": app.full_name, "personal_id": app.personal_id,
                  "date_of_birth": app.date_of_birth.isoformat()}
    qa = card.qa or {}
    return {"card": card.id, "batch": batch, "application_id": card.application_id,
            "chip_serial": card.chip_serial, "document_number": card.document_number,
            "station": card.station, "attempt": card.attempt, "state": card.state.value,
            "reasons": [render(Reason.from_dict(r.as_dict()), lang) for r in card.reasons],
            "verdict": qa.get("verdict"), "qa_reasons": _qa_reasons(qa, lang),
            "qa_ms": qa.get("ms"), "ds_serial": qa.get("ds_serial"), "holder": holder}


def keys_view(keys: list[dict[str, Any]], crls: list[dict[str, Any]],
              *, now: datetime | None = None) -> dict[str, Any]:
    """The key inventory with DS usage against its limits and expiry warnings, and the CRLs'
    due dates (from :func:`personalization.service.keys.key_rows` / ``crl_schedule``)."""
    now = datetime.now(UTC) if now is None else now
    soon = now + timedelta(days=EXPIRY_WARNING_DAYS)
    rows = []
    for key in keys:
        ends = datetime.fromisoformat(str(key["usage_not_after"]))
        limit = key["max_documents"]
        usage = key["signed"] / limit if limit else None
        warnings = []
        if key["status"] == "active" and ends <= now:
            warnings.append("expired")
        elif key["status"] == "active" and ends <= soon:
            warnings.append("expires_soon")
        if usage is not None and usage >= USAGE_WARNING and key["status"] == "active":
            warnings.append("near_limit")
        rows.append({**key, "usage": None if usage is None else round(usage, 4),
                     "days_left": (ends - now).days, "warnings": warnings})
    latest = crls[0] if crls else None
    crl_due = None if latest is None else latest["next_update"]
    overdue = crl_due is not None and datetime.fromisoformat(str(crl_due)) <= now
    return {"keys": rows, "crls": crls, "crl_due": crl_due, "crl_overdue": overdue}


def audit_view(result: dict[str, Any], events: Sequence[EventRow]) -> dict[str, Any]:
    """The audit trail's verdict (``audit verify``'s) and the recent events about people,
    newest first, by actor."""
    recent = [{"seq": e["seq"], "at": e["at"], "kind": e["kind"],
               "actor": e["data"].get("actor"), "action": e["data"].get("action"),
               "target": e["data"].get("target"), "reason": e["data"].get("reason")}
              for e in reversed(events[-RECENT_EVENTS:])]
    return {"verdict": result, "events": recent,
            "actors": dict(Counter(str(e["actor"]) for e in recent if e["actor"]))}


class Watch:
    """The dashboard's reads of one line: one journal held open (opened on first use) for
    every screen, so that a look costs a query, not a connection. Thread-safe as the journal
    is. An unknown batch is :class:`NotFound`."""

    def __init__(self, config: LineConfig) -> None:
        self.config = config
        self._journal: JournalPort | None = None
        self._lock = threading.Lock()

    def _open(self) -> JournalPort:
        with self._lock:
            if self._journal is None:
                self._journal = open_journal(self.config.journal.url)
            return self._journal

    def close(self) -> None:
        """Let go of the journal."""
        with self._lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None

    def _known(self, batch: str) -> JournalPort:
        journal = self._open()
        try:
            journal.batch(batch)
        except JournalError as exc:
            raise NotFound(str(exc)) from exc
        return journal

    def person(self, token: str) -> Person | None:
        """Whose browser session this is; None when nobody's (unknown, ended, expired)."""
        try:
            return browser_person(self.config, token, self._open())
        except NotLoggedIn:
            return None

    def current_batch(self) -> str | None:
        """The batch the line is on (see :func:`current_batch`)."""
        return current_batch(self._open())

    def snapshot(self, batch: str | None, lang: Lang) -> dict[str, Any]:
        """The line's stations and ``batch``'s progress (the current batch when None)."""
        name = batch or self.current_batch()
        if name is None:
            return {"batch": None, "line": None, "progress": None, "at": time.time()}
        journal = self._known(name)
        return {"batch": name, "at": time.time(),
                "line": line_view(journal, name),
                "progress": batch_view(journal, self.config, name, lang)}

    def qa(self, batch: str | None, lang: Lang) -> dict[str, Any] | None:
        """QA verdicts of ``batch`` (the current one when None; None when there is none)."""
        name = batch or self.current_batch()
        return None if name is None else qa_view(self._known(name), name, lang)

    def qa_card(self, batch: str, card: int, lang: Lang) -> dict[str, Any]:
        """One card for QA (the caller audits a read of its holder's data)."""
        return qa_card(self._known(batch), batch, card, lang)

    def keys(self) -> dict[str, Any]:
        """The key inventory and the CRLs' due dates."""
        return keys_view(key_service.key_rows(key_service.list_keys(self.config)),
                         key_service.crl_schedule(self.config))

    def audit(self) -> dict[str, Any]:
        """The audit trail's verdict and recent events about people."""
        journal = self._open()
        result = verify(audit_journal(journal)).as_dict()
        return audit_view(result, people(journal).people_events())
