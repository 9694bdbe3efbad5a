"""The batch report: what became of every card and application, the stock reconciliation,
station utilisation, reject reasons and throughput — as JSON, and as a page a person reads.

Built from the journal alone, so it works after the personal data is purged: it names
applications by id and cards by chip serial and document number, never by person.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from personalization.cardstate import State
from personalization.journal.audit_port import JOURNAL_CHAIN, AuditPort
from personalization.journal.port import JournalPort
from personalization.journal.records import CardRow, EventRow, StationRow
from personalization.reasons import Reason, render

TIMELINE_POINTS = 60


def reconcile(stock: dict[str, int], stations: Sequence[StationRow],
              fed_by_station: dict[str, int]) -> dict[str, Any]:
    """Stock against itself and against the printers' own counters of cards inserted."""
    differences = []
    if stock["fed"] != stock["handed_out"] + stock["rejected"] + stock["in_machine"]:
        differences.append(f"journal: fed {stock['fed']} ≠ handed out {stock['handed_out']} + "
                           f"rejected {stock['rejected']} + in machine {stock['in_machine']}")
    printer_fed = 0
    for row in stations:
        start, last = row["counter_start"], row["counter_last"]
        if start is None or last is None:
            continue
        counted, journaled = last - start, fed_by_station.get(row["station"], 0)
        printer_fed += counted
        if counted != journaled:
            differences.append(f"{row['station']}: printer counted {counted} card(s) inserted, "
                               f"journal has {journaled}")
    return {**stock, "printer_fed": printer_fed, "reconciled": not differences,
            "differences": differences}


def reject_reasons(cards: Sequence[CardRow]) -> dict[str, int]:
    """Reasons of the rejected cards grouped by kind — the code and the details every card
    failing that way shares (not the status word) — each group named in English."""
    return dict(Counter(render(r.kind) for c in cards if c.state is State.REJECTED
                        for r in c.reasons))


def qa_protocols(cards: Sequence[CardRow]) -> dict[str, int]:
    """How many handed-out cards QA checked with each run of protocols (``PACE+PA+CA+TA+AA``
    for an EAC chip, ``BAC+PA+AA`` for a BAC one), as the verdicts in the journal list them."""
    return dict(Counter("+".join((c.qa or {}).get("protocols") or ()) or "none"
                        for c in cards if c.state.issued))


def reject_codes(cards: Sequence[CardRow]) -> dict[str, int]:
    """Reasons of the rejected cards counted by code alone."""
    return dict(Counter(r.code for c in cards if c.state is State.REJECTED for r in c.reasons))


def _text(reasons: Sequence[dict[str, Any] | str]) -> str:
    """Reasons as the report keeps them (codes), as one line a person reads."""
    return "; ".join(render(Reason.from_dict(r)) for r in reasons)


def station_rows(cards: list[CardRow], span: float) -> list[dict[str, Any]]:
    """Each station's cards fed, handed out and rejected, busy time and utilisation over
    ``span`` seconds (the cards fed, in the report and on the dashboard)."""
    out: dict[str, dict[str, Any]] = {}
    for card in cards:
        row = out.setdefault(card.station, {"name": card.station, "cards": 0,
                                            "handed_out": 0, "rejected": 0, "busy_s": 0.0})
        if card.chip_serial is None:
            continue
        row["cards"] += 1
        row["handed_out"] += card.state.issued  # handed out (and maybe superseded since)
        row["rejected"] += card.state.value == "rejected"
        row["busy_s"] += card.updated_at - card.started_at
    for row in out.values():
        row["busy_s"] = round(row["busy_s"], 3)
        row["utilisation"] = round(row["busy_s"] / span, 3) if span > 0 else 0.0
    return sorted(out.values(), key=lambda r: str(r["name"]))


def timeline(cards: list[CardRow], start: float, span: float) -> list[list[float]]:
    """Cards handed out so far at :data:`TIMELINE_POINTS` moments over ``span`` seconds from
    ``start``: ``[seconds, count]`` pairs (the throughput-over-time chart)."""
    done = sorted(c.updated_at - start for c in cards if c.state.issued)
    if not done or span <= 0:
        return []
    step = span / TIMELINE_POINTS
    points, count = [], 0
    for index in range(1, TIMELINE_POINTS + 1):
        edge = index * step
        while count < len(done) and done[count] <= edge + 1e-9:
            count += 1
        points.append([round(edge, 3), count])
    return points


def build_report(journal: JournalPort, batch: str) -> dict[str, Any]:
    """The report of one batch (the ``report.json`` shape of the line issue, and more)."""
    info = journal.batch(batch)
    cards = journal.cards(batch)
    fed = [c for c in cards if c.chip_serial is not None]
    start = min((c.started_at for c in fed), default=0.0)
    end = max((c.updated_at for c in fed), default=start)
    span = end - start
    handed = sum(1 for c in fed if c.state.issued)
    fed_by_station = Counter(c.station for c in fed)
    apps = info.applications
    chain = journal.verify_chain()
    events = journal.events(batch)
    return {
        "batch": batch,
        "state": info.state,
        "finished": info.finished,
        "created_at": info.created_at,
        "closed_at": info.closed_at,
        "personal_data_purged": info.purged_at is not None,
        "cards": [c.as_dict() for c in fed],
        "applications": {"handed_out": apps["handed_out"], "failed": apps["failed"],
                         "pending": apps["pending"] + apps["active"]},
        "failed_applications": [
            {"application_id": a["application_id"], "attempts": a["attempts"],
             "reasons": a["reasons"]}
            for a in journal.applications(batch) if a["state"] == "failed"],
        "quarantined": journal.quarantined(batch),
        "stock": reconcile(journal.stock(batch), journal.stations(batch), fed_by_station),
        "stations": station_rows(fed, span),
        "alarms": [{"at": e["at"], **e["data"]} for e in events
                   if e["kind"] in ("station.alarm", "station.cleared")],
        "qa_protocols": qa_protocols(fed),
        "reject_reasons": reject_reasons(fed),
        "reject_codes": reject_codes(fed),
        "throughput": {"seconds": round(span, 3),
                       "cards_per_hour": round(handed / span * 3600, 1) if span > 0 else 0.0,
                       "timeline": timeline(fed, start, span)},
        "journal": {"events": chain.events, "chain_ok": chain.ok,
                    "heads": chain_heads(journal, batch)},
        "lines": _lines(journal, batch, fed, events),
        "qa_signoff": [{"by": e["data"].get("actor"), "at": e["at"]} for e in events
                       if e["kind"] == "qa.signed_off"],
    }


def chain_heads(journal: JournalPort, batch: str) -> list[dict[str, Any]]:
    """The heads of the event chains that hold the batch's events, as of this report: the
    journal's own and each of its lines' (PostgreSQL). Printed on the report, so that a signed
    checkpoint made later can be compared with what the report covered."""
    if not isinstance(journal, AuditPort):
        return []
    wanted = {JOURNAL_CHAIN} | {f"line:{line['line']}"
                                for line in journal.lines(batch, lease_s=float("inf"))}
    return [{"chain": chain, "seq": seq, "hash": digest}
            for chain, (seq, digest) in sorted(journal.chain_heads().items(),
                                               key=lambda h: (h[0] != JOURNAL_CHAIN, h[0]))
            if chain in wanted]


def _lines(journal: JournalPort, batch: str, fed: list[CardRow],
           events: list[EventRow]) -> list[dict[str, Any]]:
    """Each line that ran the batch: its cards, and its stock reconciled with its own
    printers' counters; its events are in the journal's one chain (verified as a whole)."""
    stations = journal.stations(batch)
    rows = []
    for line in journal.lines(batch, lease_s=float("inf")):
        own = set(line["stations"])
        cards = [c for c in fed if c.station in own]
        stock = dict.fromkeys(("fed", "handed_out", "rejected", "in_machine"), 0)
        for card in cards:
            stock["fed"] += 1
            key = "handed_out" if card.state.issued else \
                card.state.value if card.state is State.REJECTED else "in_machine"
            stock[key] += 1
        rows.append({
            "line": line["line"], "stations": line["stations"],
            "handed_out": stock["handed_out"], "rejected": stock["rejected"],
            "stock": reconcile(stock, [s for s in stations if s["station"] in own],
                               Counter(c.station for c in cards)),
            "events": sum(1 for e in events if e["data"].get("station") in own
                          or e["data"].get("line") == line["line"])})
    return rows


# -- the page ---------------------------------------------------------------------------------

_STYLE = ("body{font-family:sans-serif;margin:2em;color:#222}td,th{padding:2px 8px;"
          "text-align:left}table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}"
          ".handed_out{color:#070}.rejected,.bad{color:#b00}.ok{color:#070}"
          "svg{background:#fafafa;border:1px solid #ddd;margin:4px 0}")


def _e(value: object) -> str:
    return html.escape(str(value))


def _line_chart(points: list[list[float]], width: int = 560, height: int = 180) -> str:
    if not points:
        return "<p>No card handed out yet.</p>"
    top = max(p[1] for p in points) or 1
    right = points[-1][0] or 1
    coords = " ".join(f"{40 + p[0] / right * (width - 50):.1f},"
                      f"{height - 20 - p[1] / top * (height - 30):.1f}" for p in points)
    return (f"<svg width='{width}' height='{height}' role='img' aria-label='cards handed out "
            f"over time'><polyline fill='none' stroke='#2a6' stroke-width='2' "
            f"points='40,{height - 20} {coords}'/><text x='4' y='14' font-size='11'>{top:g}"
            f"</text><text x='{width - 60}' y='{height - 4}' font-size='11'>{right:.0f} s</text>"
            f"</svg>")


def _bar_chart(values: dict[str, float], unit: str = "", scale: float | None = None) -> str:
    if not values:
        return "<p>None.</p>"
    top = scale or max(values.values()) or 1
    rows = []
    for index, (label, value) in enumerate(values.items()):
        y = 6 + index * 22
        width = max(1.0, value / top * 300)
        rows.append(f"<text x='4' y='{y + 13}' font-size='12'>{_e(label)[:40]}</text>"
                    f"<rect x='260' y='{y}' width='{width:.1f}' height='16' fill='#48c'/>"
                    f"<text x='{266 + width:.1f}' y='{y + 13}' font-size='12'>"
                    f"{value:g}{unit}</text>")
    return (f"<svg width='640' height='{12 + len(values) * 22}' role='img'>"
            + "".join(rows) + "</svg>")


def _table(headers: tuple[str, ...], rows: Sequence[tuple[object, ...]], state_col: int = -1,
           ) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f"<td class='{_e(row[state_col]) if i == state_col else ''}'>{_e(cell)}</td>"
            for i, cell in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained page (inline SVG charts, every value escaped)."""
    stock = report["stock"]
    verdict = ("<p class='ok'>Stock reconciles.</p>" if stock["reconciled"] else
               "<p class='bad'>Stock does not reconcile:</p><ul>" + "".join(
                   f"<li>{_e(d)}</li>" for d in stock["differences"]) + "</ul>")
    utilisation = {s["name"]: round(s["utilisation"] * 100, 1) for s in report["stations"]}
    cards = [(c["application_id"], c["document_number"], c["chip_serial"], c["station"],
              c["attempt"], _text(c["reasons"]) or c["qa"].get("verdict", ""), c["state"])
             for c in report["cards"]]
    failed = [(a["application_id"], a["attempts"],
               " | ".join(_text(r["reasons"]) for r in a["reasons"]))
              for a in report["failed_applications"]]
    return "".join([
        f"<!doctype html><html lang='en'><meta charset='utf-8'><title>cardline batch "
        f"{_e(report['batch'])}</title><style>{_STYLE}</style>",
        f"<h1>Batch {_e(report['batch'])}</h1>",
        f"<p>State: {_e(report['state'])}; journal events {report['journal']['events']}, "
        f"hash chain {'verifies' if report['journal']['chain_ok'] else 'BROKEN'}; "
        f"{report['throughput']['cards_per_hour']:g} cards/hour.</p>",
        *([f"<p>QA ran {_e(', '.join(f'{k} on {v} card(s)' for k, v in runs.items()))}.</p>"]
          if (runs := report.get("qa_protocols")) else []),
        *(["<h2>Event chains</h2><p>The report covers the journal up to these chain heads:"
            "</p>", _table(("chain", "seq", "hash"),
                           [(h["chain"], h["seq"], h["hash"])
                            for h in report["journal"].get("heads", [])])]
          if report["journal"].get("heads") else []),
        "<h2>Applications</h2>",
        _table(("handed out", "failed", "pending", "quarantined"),
               [(report["applications"]["handed_out"], report["applications"]["failed"],
                 report["applications"]["pending"], len(report["quarantined"]))]),
        "<h2>Stock reconciliation</h2>",
        _table(("fed", "handed out", "rejected", "in machine", "printers counted"),
               [(stock["fed"], stock["handed_out"], stock["rejected"], stock["in_machine"],
                 stock["printer_fed"])]), verdict,
        *(["<h2>Lines</h2>", _table(
            ("line", "stations", "handed out", "rejected", "stock"),
            [(r["line"], ", ".join(r["stations"]), r["handed_out"], r["rejected"],
              "reconciled" if r["stock"]["reconciled"] else "; ".join(r["stock"]["differences"]))
             for r in report.get("lines", [])])] if len(report.get("lines", [])) > 1 else []),
        "<h2>Throughput</h2>", _line_chart(report["throughput"]["timeline"]),
        "<h2>Station utilisation</h2>", _bar_chart(utilisation, " %", 100.0),
        "<h2>Reject reasons</h2>", _bar_chart(dict(report["reject_reasons"])),
        "<h2>Failed applications</h2>",
        _table(("application", "attempts", "reasons"), failed) if failed else "<p>None.</p>",
        "<h2>Cards</h2>",
        _table(("application", "document", "chip", "station", "attempt", "QA / reasons",
                "state"), cards, state_col=6),
        "<script type='application/json' id='report'>"
        + json.dumps({k: report[k] for k in ("applications", "stock")}).replace("</", "<\\/")
        + "</script>",
        "</html>",
    ])
