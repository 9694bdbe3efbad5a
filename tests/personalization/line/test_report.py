"""The batch report from a journal alone: reject reasons grouped by kind and counted by
code, each card's reasons rendered at the edge, reasons journaled as prose still shown."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cardstate import Event, Kind, step
from personalization.journal import SQLiteJournal
from personalization.line.report import build_report, render_html
from personalization.prep import document_number
from personalization.profile import load_profile
from personalization.reasons import Code, Reason, encode_failed

HAPPY = [Event(k) for k in (Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED,
                            Kind.EJECTED)]


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid]


def _card(journal: SQLiteJournal, app: Application, serial: str, events: list[Event]) -> None:
    card = journal.begin_card("B1", app.application_id, "s1")
    for event in events:
        card = journal.move(card, step(card.machine(3), event),
                            chip_serial=serial if event.kind is Kind.FED else None)


def _spoiled(why: Reason) -> list[Event]:
    return [Event(Kind.FED), Event(Kind.FAILED, why), Event(Kind.REJECTED)]


def test_reject_reasons_group_by_kind_and_count_by_code(tmp_path: Path,
                                                        apps: list[Application]) -> None:
    """Two chips refusing the lock with different status words are one kind of reject; the
    printing interruption another; the page shows each card's reason with its status word."""
    with SQLiteJournal(tmp_path / "j.db") as journal:
        journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=3,
                             valid=[(i, a, document_number(a)) for i, a in enumerate(apps[:3])],
                             invalid=[])
        _card(journal, apps[0], "C1", _spoiled(encode_failed("lock", 0x6985)))
        _card(journal, apps[1], "C2", _spoiled(encode_failed("lock", 0x6A82)))
        _card(journal, apps[2], "C3", _spoiled(Reason(Code.PRINTING_INTERRUPTED)))
        _card(journal, apps[2], "C4", HAPPY)
        report = build_report(journal, "B1")
    assert report["reject_reasons"] == {"encode: lock failed": 2,
                                        "in doubt: printing interrupted": 1}
    assert report["reject_codes"] == {"encode_failed": 2, "printing_interrupted": 1}
    assert report["cards"][0]["reasons"] == [{"code": "encode_failed", "step": "lock",
                                              "sw": "6985"}]
    json.dumps(report)  # the JSON report holds codes, nothing that is not JSON
    page = render_html(report)
    assert "encode: lock failed (SW 6985)" in page and "encode: lock failed (SW 6A82)" in page


def test_reasons_journaled_as_prose_still_show(tmp_path: Path, apps: list[Application]) -> None:
    """A journal written before reason codes keeps its prose: the report shows it as it was."""
    path = tmp_path / "j.db"
    with SQLiteJournal(path) as journal:
        journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=3,
                             valid=[(1, apps[0], document_number(apps[0]))], invalid=[])
        _card(journal, apps[0], "C1", _spoiled(Reason(Code.NO_CHIP)))
    db = sqlite3.connect(path)
    db.execute("""UPDATE cards SET reasons = '["encode: lock failed (SW 6985)"]'""")
    db.commit()
    db.close()
    with SQLiteJournal(path) as journal:
        report = build_report(journal, "B1")
    assert report["reject_reasons"] == {"encode: lock failed (SW 6985)": 1}
    assert "encode: lock failed (SW 6985)" in render_html(report)


def test_the_report_counts_the_protocols_qa_ran(tmp_path: Path, apps: list[Application]) -> None:
    """Each handed-out card's QA protocols, as its verdict listed them, are counted by run
    (a spoiled card's are not), and the page says so."""
    eac = {"verdict": "pass", "protocols": ["PACE", "PA", "CA", "TA", "AA"]}
    with SQLiteJournal(tmp_path / "j.db") as journal:
        journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=3,
                             valid=[(i, a, document_number(a)) for i, a in enumerate(apps[:4])],
                             invalid=[])
        for app, serial, qa in ((apps[0], "C1", eac), (apps[1], "C2", eac),
                                (apps[2], "C3", {"verdict": "pass", "protocols": ["BAC", "PA"]})):
            card = journal.begin_card("B1", app.application_id, "s1")
            for event in HAPPY:
                card = journal.move(card, step(card.machine(3), event),
                                    chip_serial=serial if event.kind is Kind.FED else None,
                                    qa=qa if event.kind is Kind.QA_PASSED else None)
        _card(journal, apps[3], "C4", _spoiled(Reason(Code.NO_CHIP)))
        report = build_report(journal, "B1")
    assert report["qa_protocols"] == {"PACE+PA+CA+TA+AA": 2, "BAC+PA": 1}
    assert "QA ran PACE+PA+CA+TA+AA on 2 card(s), BAC+PA on 1 card(s)." in render_html(report)
