"""The batch QA report: counts, failures by reason, the protocols the cards ran, each failed card
with its reasons.

Built from the verdicts' dictionary form (:meth:`qa.verify.Verdict.as_dict`, as the journal
stores it), so a report can be made long after the cards left. Two renderings: JSON for
scripts and a self-contained HTML page (no external assets) for the QA sign-off. Cards are
named by their line identifier only; no personal data is ever part of a verdict.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from qa.reasons import MESSAGES, Reason

CardVerdict = tuple[str, Mapping[str, Any]]  # (card id, Verdict.as_dict())


def build_report(
    batch: str, cards: Iterable[CardVerdict], generated_at: datetime
) -> dict[str, Any]:
    """The report as a JSON-ready dictionary."""
    failed: list[dict[str, Any]] = []
    by_reason: Counter[str] = Counter()
    protocols: Counter[str] = Counter()
    total = 0
    apdus = 0
    for card, verdict in cards:
        total += 1
        apdus += int(verdict.get("apdus", 0))
        ran = _protocols(verdict)
        protocols[ran] += 1
        if verdict.get("verdict") != "pass":
            reasons = list(verdict.get("reasons", []))
            by_reason.update({str(r["code"]) for r in reasons})
            failed.append({"card": card, "reasons": reasons, "protocols": ran})
    return {
        "batch": batch,
        "generated_at": generated_at.isoformat(),
        "cards": total,
        "passed": total - len(failed),
        "failed": len(failed),
        "pass_rate": round((total - len(failed)) / total, 4) if total else None,
        "apdus_per_card": round(apdus / total, 1) if total else None,
        "failures_by_reason": dict(by_reason.most_common()),
        # the protocols each card ran and passed ("PACE PA CA TA AA"), with how many cards
        "protocols": dict(protocols.most_common()),
        "failed_cards": failed,
    }


def _protocols(verdict: Mapping[str, Any]) -> str:
    """The protocols a verdict lists, as one space-separated string ("" for an old verdict)."""
    ran = verdict.get("protocols", [])
    return " ".join(str(p) for p in ran) if isinstance(ran, list) else ""


_STYLE = """body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#eee}.pass{color:#176b2c}.fail{color:#a31515}
code{background:#f4f4f4;padding:0 .2em}"""


def _row(*cells: str, header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>"


def _summary(report: Mapping[str, Any]) -> str:
    state = "pass" if report["failed"] == 0 else "fail"
    word = "ALL PASSED" if state == "pass" else f"{report['failed']} FAILED"
    rows = [_row("cards", str(report["cards"])), _row("passed", str(report["passed"])),
            _row("failed", str(report["failed"])),
            _row("APDUs per card", html.escape(str(report["apdus_per_card"])))]
    return f'<h2 class="{state}">{word}</h2><table>{"".join(rows)}</table>'


def _reason_text(code: str) -> str:
    try:
        return MESSAGES[Reason(code)]
    except ValueError:
        return "(unknown reason code)"


def _by_reason(report: Mapping[str, Any]) -> str:
    if not report["failures_by_reason"]:
        return ""
    rows = [_row("reason", "meaning", "cards", header=True)]
    rows += [_row(f"<code>{html.escape(code)}</code>", html.escape(_reason_text(code)), str(n))
             for code, n in report["failures_by_reason"].items()]
    return "<h2>Failures by reason</h2><table>" + "".join(rows) + "</table>"


def _protocols_run(report: Mapping[str, Any]) -> str:
    if not report.get("protocols"):
        return ""
    rows = [_row("protocols run and passed", "cards", header=True)]
    rows += [_row(html.escape(ran or "(none)"), str(n)) for ran, n in report["protocols"].items()]
    return "<h2>Protocols</h2><table>" + "".join(rows) + "</table>"


def _failed_cards(report: Mapping[str, Any]) -> str:
    if not report["failed_cards"]:
        return ""
    rows = [_row("card", "protocols passed", "reasons", header=True)]
    for entry in report["failed_cards"]:
        items = "".join(f"<li><code>{html.escape(str(r['code']))}</code> "
                        f"{html.escape(str(r['message']))}</li>" for r in entry["reasons"])
        ran = html.escape(str(entry.get("protocols") or "(none)"))
        rows.append(_row(html.escape(str(entry["card"])), ran, f"<ul>{items}</ul>"))
    return "<h2>Failed cards</h2><table>" + "".join(rows) + "</table>"


def render_html(report: Mapping[str, Any]) -> str:
    """A self-contained page a person reads (every value escaped)."""
    batch = html.escape(str(report["batch"]))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>QA report {batch}</title><style>{_STYLE}</style></head><body>"
            f"<h1>QA report — batch {batch}</h1>"
            f"<p>Generated {html.escape(str(report['generated_at']))}</p>"
            + _summary(report) + _protocols_run(report) + _by_reason(report)
            + _failed_cards(report)
            + "</body></html>\n")
