"""Application intake: every kind of bad record gets its own error; good records go on."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from personalization.applications.intake import IntakeRules, read_applications

TODAY = date(2026, 11, 24)


def _write(tmp: Path, synth_dir: Path, records: list[Any]) -> Path:
    """Write records (dicts, or raw strings for broken lines) next to a copy of the photos."""
    photos = synth_dir / "apps-photos"
    (tmp / "apps-photos").mkdir(exist_ok=True)
    for photo in photos.iterdir():
        (tmp / "apps-photos" / photo.name).write_bytes(photo.read_bytes())
    path = tmp / "batch.jsonl"
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _png(width: int, height: int, colour: tuple[int, int, int] | None = None) -> str:
    image = Image.new("RGB", (width, height), colour or (200, 200, 200))
    if colour is None:
        for x in range(0, width, 4):
            image.putpixel((x, x % height), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def test_synthesized_file_is_all_valid(synth_dir: Path, policy: IntakeRules) -> None:
    """Every synthesized application passes intake, with an expiry and a DG2-sized portrait."""
    result = read_applications(synth_dir / "apps.jsonl", policy, TODAY)
    assert result.invalid == []
    assert len(result.valid) == 12
    for _, app in result.valid:
        assert len(app.portrait.jpeg) <= 15_000
        assert app.portrait.jpeg[:3] == b"\xff\xd8\xff"
        assert (app.portrait.width, app.portrait.height) == (360, 480)


def _mutate(record: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for key, value in change.items():
        if value is _DELETE:
            out.pop(key, None)
        else:
            out[key] = value
    return out


_DELETE = object()

# (name, change to a valid record, field expected in the error, a word of the reason)
BAD = [
    ("unknown field", {"nickname": "Tí"}, "nickname", "unknown field"),
    ("missing field", {"mother_name": _DELETE}, "mother_name", "missing"),
    ("not text", {"full_name": 42}, "full_name", "must be text"),
    ("id not 12 digits", {"personal_id": "12345"}, "personal_id", "12 digits"),
    ("unknown province", {"personal_id": "003093047064"}, "personal_id", "province"),
    ("bad date", {"date_of_birth": "1990-02-30"}, "date_of_birth", "real calendar date"),
    ("date format", {"issue_date": "24/11/2026"}, "issue_date", "YYYY-MM-DD"),
    ("future issue", {"issue_date": "2027-01-01"}, "issue_date", "future"),
    ("bad sex", {"sex": "X"}, "sex", "not M or F"),
    ("nationality", {"nationality": "FRA"}, "nationality", "not VNM"),
    ("digits in name", {"full_name": "Nguyễn Văn 3"}, "full_name", "digits"),
    ("control char in name", {"full_name": "Nguyễn\u0007 Văn An"}, "full_name", "control"),
    ("foreign script", {"full_name": "Nguyễn Иван"}, "full_name", "not a Vietnamese letter"),
    ("one-word name", {"full_name": "Nguyễn"}, "full_name", "at least 2 words"),
    ("too long name", {"full_name": "Nguyễn " + "An " * 40}, "full_name", "at most"),
    ("empty place", {"place_of_origin": "  "}, "place_of_origin", "empty"),
    ("former id", {"former_id_number": "12AB"}, "former_id_number", "9 or 12 digits"),
    ("bad app id", {"application_id": "../etc"}, "application_id", "characters"),
    ("photo missing", {"photo": "apps-photos/nope.jpg"}, "photo", "cannot read"),
    ("photo escapes", {"photo": "../secret.jpg"}, "photo", "inside the folder"),
    ("photo not image", {"photo": {"base64": base64.b64encode(b"hello").decode()}}, "photo",
     "cannot be decoded"),
    ("photo bad base64", {"photo": {"base64": "!!!"}}, "photo", "base64"),
    ("photo too small", {"photo": {"base64": _png(100, 120)}}, "photo", "at least"),
    ("photo blank", {"photo": {"base64": _png(400, 520, (128, 128, 128))}}, "photo", "blank"),
    ("photo wrong shape", {"photo": 17}, "photo", "relative path"),
]


@pytest.mark.parametrize(("name", "change", "field", "reason"), BAD, ids=[b[0] for b in BAD])
def test_each_bad_kind_has_its_own_error(tmp_path: Path, synth_dir: Path, policy: IntakeRules,
                                         good_record: dict[str, Any], name: str,
                                         change: dict[str, Any], field: str, reason: str) -> None:
    """A record with one defect is invalid with an error naming that field and reason."""
    path = _write(tmp_path, synth_dir, [_mutate(good_record, change)])
    result = read_applications(path, policy, TODAY)
    assert result.valid == []
    [record] = result.invalid
    assert record.line == 1
    assert any(e.field == field and reason in e.reason for e in record.errors), record.errors


def test_personal_id_digits_must_match_sex_and_birth(tmp_path: Path, synth_dir: Path,
                                                     policy: IntakeRules,
                                                     good_record: dict[str, Any]) -> None:
    """Digit 4 encodes century and sex, digits 5–6 the birth year; each mismatch is reported."""
    pid = good_record["personal_id"]
    wrong_sex = pid[:3] + str(int(pid[3]) ^ 1) + pid[4:]
    wrong_century = pid[:3] + str((int(pid[3]) + 2) % 10) + pid[4:]
    wrong_year = pid[:4] + f"{(int(pid[4:6]) + 1) % 100:02d}" + pid[6:]
    records = [_mutate(good_record, {"personal_id": p, "application_id": f"X{i}"})
               for i, p in enumerate((wrong_sex, wrong_century, wrong_year))]
    result = read_applications(_write(tmp_path, synth_dir, records), policy, TODAY)
    reasons = [" ".join(e.reason for e in r.errors) for r in result.invalid]
    assert "does not match sex" in reasons[0]
    assert "century of date_of_birth" in reasons[1]
    assert "birth year" in reasons[2]


def test_too_young_and_unordered_dates(tmp_path: Path, synth_dir: Path, policy: IntakeRules,
                                       good_record: dict[str, Any]) -> None:
    """Under 14 at issue, and an issue date before birth, are both rejected with reasons."""
    young = _mutate(good_record, {"date_of_birth": "2015-01-01", "personal_id": "001215123456",
                                  "sex": "M", "application_id": "Y1"})
    before = _mutate(good_record, {"issue_date": "1900-01-01", "application_id": "Y2"})
    result = read_applications(_write(tmp_path, synth_dir, [young, before]), policy, TODAY)
    assert "minimum age is 14" in " ".join(e.reason for e in result.invalid[0].errors)
    assert "before date_of_birth" in " ".join(e.reason for e in result.invalid[1].errors)


def test_broken_lines_and_duplicates_do_not_stop_the_others(
        tmp_path: Path, synth_dir: Path, policy: IntakeRules) -> None:
    """A non-JSON line, a non-object and duplicates are invalid records; the rest are valid."""
    lines = (synth_dir / "apps.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    dup_id = dict(json.loads(lines[1]), application_id=first["application_id"])
    dup_pid = dict(json.loads(lines[2]), personal_id=first["personal_id"])
    records: list[Any] = [first, "{not json", "[1, 2]", dup_id, dup_pid,
                          *(json.loads(x) for x in lines[3:6])]
    result = read_applications(_write(tmp_path, synth_dir, records), policy, TODAY)
    assert [r.line for r in result.invalid] == [2, 3, 4, 5]
    assert "not JSON" in result.invalid[0].errors[0].reason
    assert "JSON object" in result.invalid[1].errors[0].reason
    assert result.invalid[2].errors[-1].reason == "duplicate of line 1"
    assert result.invalid[3].errors[-1].field == "personal_id"
    assert len(result.valid) == 4


def test_names_are_stored_nfc(tmp_path: Path, synth_dir: Path, policy: IntakeRules,
                              good_record: dict[str, Any]) -> None:
    """A decomposed (NFD) name is accepted and stored composed (NFC)."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Ánh")
    record = _mutate(good_record, {"full_name": nfd, "sex": "F"})
    pid = record["personal_id"]
    record["personal_id"] = pid[:3] + str(int(pid[3]) | 1) + pid[4:]
    result = read_applications(_write(tmp_path, synth_dir, [record]), policy, TODAY)
    assert result.invalid == [], result.invalid
    assert result.valid[0][1].full_name == unicodedata.normalize("NFC", nfd)
    assert result.valid[0][1].full_name != nfd


def test_a_signed_batch_names_each_photo_file_with_its_sha256(
        tmp_path: Path, synth_dir: Path, policy: IntakeRules,
        good_record: dict[str, Any]) -> None:
    """When photo digests are required (a signed batch: its signature then covers the photos),
    a photo file whose bytes are not the recorded SHA-256, a malformed digest and a bare path
    are each refused with their reason; the recorded digest of the real file passes."""
    signed = replace(policy, photo_digests=True)
    photo = good_record["photo"]  # {"path", "sha256"}, as the synthesizer writes it
    assert set(photo) == {"path", "sha256"}
    cases = {
        "right": (photo, None),
        "changed": ({**photo, "sha256": "0" * 64}, "changed after the registry signed"),
        "malformed": ({**photo, "sha256": "xyz"}, "64 hexadecimal digits"),
        "bare path": (photo["path"], "carries the SHA-256 of its bytes"),
        "extra key": ({**photo, "size": 1}, "relative path"),
    }
    for case, (value, reason) in cases.items():
        folder = tmp_path / case.replace(" ", "-")
        folder.mkdir()
        path = _write(folder, synth_dir, [_mutate(good_record, {"photo": value})])
        result = read_applications(path, signed, TODAY)
        if reason is None:
            assert len(result.valid) == 1 and result.invalid == [], (case, result.invalid)
            continue
        [record] = result.invalid
        assert any(e.field == "photo" and reason in e.reason for e in record.errors), (
            case, record.errors)
    unsigned = read_applications(
        _write(tmp_path, synth_dir, [_mutate(good_record, {"photo": photo["path"]})]),
        policy, TODAY)
    assert len(unsigned.valid) == 1  # a bare path is still taken from an unsigned file
