"""Kinds of application (issue #16 §2): a first issue, a renewal or a replacement, its reason
and the earlier card it names; each wrong combination is its own error naming the field and
never the value; a renewal's expiry follows the 25/40/60 rule from its own issue date; the
journal's text of an application keeps the kind, and an older text loads as a first issue."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from personalization.applications.expiry import derive_expiry
from personalization.applications.intake import IntakeRules, read_applications
from personalization.applications.model import Application, Supersedes
from personalization.journal.records import dump_application, load_application

TODAY = date(2026, 11, 24)
CARD = {"card_id": 41}
NUMBER = {"document_number": "093047064", "issue_date": "2021-04-01"}


def _check(tmp_path: Path, synth_dir: Path, policy: IntakeRules,
           records: list[dict[str, Any]]) -> tuple[list[Application], list[list[tuple[str, str]]]]:
    """Valid applications, and the (field, reason) pairs of each invalid record."""
    path = tmp_path / "batch.jsonl"
    (tmp_path / "apps-photos").mkdir(exist_ok=True)
    for photo in (synth_dir / "apps-photos").iterdir():
        (tmp_path / "apps-photos" / photo.name).write_bytes(photo.read_bytes())
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    result = read_applications(path, policy, TODAY)
    return ([a for _, a in result.valid],
            [[(e.field, e.reason) for e in r.errors] for r in result.invalid])


def test_each_kind_is_accepted_with_what_it_names(tmp_path: Path, synth_dir: Path,
                                                  policy: IntakeRules,
                                                  good_record: dict[str, Any]) -> None:
    """No kind is a first issue; a renewal by card id, a replacement by document number and
    issue date, and a renewal whose earlier card predates cardline are all valid."""
    records = [
        good_record,
        dict(good_record, application_id="R1", kind="renewal", reason="age-40",
             supersedes=CARD),
        dict(good_record, application_id="R2", kind="replacement", reason="lost",
             supersedes=NUMBER),
        dict(good_record, application_id="R3", kind="renewal", reason="data-change",
             predates_cardline=True),
    ]
    valid, invalid = _check(tmp_path, synth_dir, policy, records[:1])
    assert invalid == []
    assert (valid[0].kind, valid[0].reason, valid[0].supersedes,
            valid[0].predates_cardline) == ("first", None, None, False)
    for record, expected in zip(records[1:], [
            ("renewal", "age-40", Supersedes(card_id=41), False),
            ("replacement", "lost", Supersedes(None, "093047064", date(2021, 4, 1)), False),
            ("renewal", "data-change", None, True)], strict=True):
        valid, invalid = _check(tmp_path, synth_dir, policy, [record])
        assert invalid == []
        [application] = valid
        assert (application.kind, application.reason, application.supersedes,
                application.predates_cardline) == expected


SHAPE = ('must be {"card_id": N} or {"document_number": "9 digits", '
         '"issue_date": "YYYY-MM-DD"}')
# (name, keys added to a valid record, the (field, reason) pairs expected)
BAD: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    ("unknown kind", {"kind": "reissue"},
     [("kind", "must be first, renewal or replacement")]),
    ("kind not text", {"kind": 2}, [("kind", "must be text (a JSON string)")]),
    ("first with the rest", {"kind": "first", "reason": "lost", "supersedes": CARD,
                             "predates_cardline": True},
     [("reason", "must be absent for a first issue"),
      ("supersedes", "must be absent for a first issue"),
      ("predates_cardline", "must be absent for a first issue")]),
    ("renewal without reason", {"kind": "renewal", "supersedes": CARD},
     [("reason", "is required for a renewal: age-25, age-40, age-60 or data-change")]),
    ("renewal for a lost card", {"kind": "renewal", "reason": "lost", "supersedes": CARD},
     [("reason", "must be age-25, age-40, age-60 or data-change for a renewal")]),
    ("replacement at 25", {"kind": "replacement", "reason": "age-25", "supersedes": CARD},
     [("reason", "must be lost or damaged for a replacement")]),
    ("names no card", {"kind": "replacement", "reason": "damaged"},
     [("supersedes", "is required for a replacement unless predates_cardline is true")]),
    ("both ways", {"kind": "renewal", "reason": "age-25", "supersedes": {**CARD, **NUMBER}},
     [("supersedes", SHAPE)]),
    ("neither way", {"kind": "renewal", "reason": "age-25", "supersedes": {}},
     [("supersedes", SHAPE)]),
    ("half a number", {"kind": "renewal", "reason": "age-25",
                       "supersedes": {"document_number": "093047064"}},
     [("supersedes", SHAPE)]),
    ("unknown key", {"kind": "renewal", "reason": "age-25",
                     "supersedes": {"card_id": 4, "serial": "x"}}, [("supersedes", SHAPE)]),
    ("card id as text", {"kind": "renewal", "reason": "age-25", "supersedes": {"card_id": "4"}},
     [("supersedes", SHAPE)]),
    ("not an object", {"kind": "renewal", "reason": "age-25", "supersedes": [4]},
     [("supersedes", SHAPE)]),
    ("card id zero", {"kind": "renewal", "reason": "age-25", "supersedes": {"card_id": 0}},
     [("supersedes", "card_id must be a positive card id")]),
    ("card id past 64 bits", {"kind": "renewal", "reason": "age-25",
                              "supersedes": {"card_id": 2**63}},
     [("supersedes", "card_id must be a positive card id")]),
    ("card id and predates", {"kind": "renewal", "reason": "age-25", "supersedes": CARD,
                              "predates_cardline": True},
     [("supersedes", "a card_id names a card cardline made, but predates_cardline says the "
                     "earlier card predates cardline")]),
    ("short number", {"kind": "renewal", "reason": "age-25",
                      "supersedes": {**NUMBER, "document_number": "12345678"}},
     [("supersedes", "document_number must be exactly 9 digits")]),
    ("earlier date not a date", {"kind": "renewal", "reason": "age-25",
                                 "supersedes": {**NUMBER, "issue_date": "2021-02-30"}},
     [("supersedes", "issue_date is not a real date in the form YYYY-MM-DD")]),
    ("earlier card issued later", {"kind": "renewal", "reason": "age-25",
                                   "issue_date": "2026-11-01",
                                   "supersedes": {**NUMBER, "issue_date": "2026-11-20"}},
     [("supersedes", "issue_date is after the issue_date of this application")]),
    ("predates as text", {"kind": "renewal", "reason": "age-25", "predates_cardline": "yes"},
     [("predates_cardline", "must be true or false")]),
]


@pytest.mark.parametrize(("name", "change", "expected"), BAD, ids=[b[0] for b in BAD])
def test_each_wrong_kind_has_its_own_error(tmp_path: Path, synth_dir: Path,
                                           policy: IntakeRules, good_record: dict[str, Any],
                                           name: str, change: dict[str, Any],
                                           expected: list[tuple[str, str]]) -> None:
    """A kind, reason or earlier card that does not fit is invalid, with exactly the errors
    that name its field and rule, never the value given."""
    valid, invalid = _check(tmp_path, synth_dir, policy, [dict(good_record, **change)])
    assert valid == [] and invalid == [expected]
    for _, reason in expected:
        assert "12345678" not in reason and "reissue" not in reason


def test_a_renewal_at_25_gets_the_expiry_at_40(tmp_path: Path, synth_dir: Path,
                                               policy: IntakeRules,
                                               good_record: dict[str, Any]) -> None:
    """Renewed on the 25th birthday (or within the two years before it), a card runs to the
    40th: the expiry is derived from the renewal's own issue date."""
    assert derive_expiry(date(2001, 3, 10), date(2026, 3, 10)) == date(2041, 3, 10)
    assert derive_expiry(date(2001, 3, 10), date(2024, 6, 1)) == date(2041, 3, 10)
    pid = good_record["personal_id"]
    digit = "2" if good_record["sex"] == "M" else "3"  # born 2000–2099
    record = dict(good_record, personal_id=pid[:3] + digit + "01" + pid[6:],
                  date_of_birth="2001-03-10", issue_date="2026-03-10", kind="renewal",
                  reason="age-25", supersedes=CARD)
    valid, invalid = _check(tmp_path, synth_dir, policy, [record])
    assert invalid == []
    assert (valid[0].issue_date, valid[0].expiry_date) == (date(2026, 3, 10), date(2041, 3, 10))


def test_the_journal_text_keeps_the_kind_and_older_texts_are_first_issues(
        tmp_path: Path, synth_dir: Path, policy: IntakeRules,
        good_record: dict[str, Any]) -> None:
    """dump/load round-trips kind, reason, the earlier card and the predates flag; a text
    written before applications had kinds loads as a first issue."""
    changes: list[dict[str, Any]] = [
        {"kind": "replacement", "reason": "damaged", "supersedes": NUMBER},
        {"kind": "renewal", "reason": "age-60", "supersedes": CARD},
        {"kind": "renewal", "reason": "age-25", "predates_cardline": True}]
    records = [dict(good_record, application_id=f"K{i}", **change)
               for i, change in enumerate(changes)]
    for record in records:
        [application], _ = _check(tmp_path, synth_dir, policy, [record])
        assert load_application(dump_application(application)) == application
    text = json.loads(dump_application(application))
    for key in ("kind", "reason", "supersedes", "predates_cardline"):
        del text[key]
    old = load_application(json.dumps(text))
    assert (old.kind, old.reason, old.supersedes, old.predates_cardline) == \
        ("first", None, None, False)
