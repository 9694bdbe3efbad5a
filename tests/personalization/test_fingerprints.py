"""Applications carry fingerprints: each index finger decoded, checked, brought to 500 ppi and
re-encoded as WSQ within the profile's DG3 budget, or missing with a reason code the profile
lists; refusals name the record, the finger and the rule, never the image."""

from __future__ import annotations

import base64
import io
import json
import random
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

from personalization.applications import stream, wsqcodec
from personalization.applications.fingerintake import check_fingerprints
from personalization.applications.fingerprint import (
    LEFT_INDEX,
    RIGHT_INDEX,
    FingerImage,
    FingerprintError,
    Fingerprints,
    FingerSpec,
    MissingFinger,
    normalize_finger,
)
from personalization.applications.intake import IntakeRules, InvalidRecord, read_applications
from personalization.applications.model import Application, FieldError, FingerprintsIn
from personalization.applications.stream import InspectPool, RecordFile
from personalization.journal import SQLiteJournal
from personalization.journal.records import dump_application, load_application
from personalization.prep import document_number
from personalization.profile import DocumentProfile, load_profile
from personalization.synth import draw_fingerprint, synthesize, synthesize_renewals
from tests.personalization.journal.closing import finished_batch

TODAY = date(2026, 11, 24)
SPEC = FingerSpec()


def _finger(seed: int = 1, size: tuple[int, int] = (256, 320)) -> Image.Image:
    return draw_fingerprint(random.Random(seed), *size)


def _encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    if fmt == "WSQ":
        return wsqcodec.encode(image, 0.75, options.get("ppi", 500))
    image.save(out, format=fmt, **options)
    return out.getvalue()


def _decoded(finger: FingerImage) -> Image.Image:
    image = Image.open(io.BytesIO(finger.wsq), formats=("WSQ",))
    image.load()
    return image


def _b64(data: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode("ascii")}


@pytest.fixture(scope="module")
def cccd() -> IntakeRules:
    """The CCCD profile's intake rules (fingerprints required, DG3 within 40 000 bytes)."""
    return load_profile("cccd").intake_rules()


@pytest.fixture(scope="module")
def record(synth_dir: Path) -> dict[str, Any]:
    """A valid synthesized record, its fingers replaced by inline PNGs drawn here."""
    line = (synth_dir / "apps.jsonl").read_text(encoding="utf-8").splitlines()[0]
    good: dict[str, Any] = json.loads(line)
    good["fingerprints"] = {"right_index": _b64(_encoded(_finger(1), "PNG")),
                            "left_index": _b64(_encoded(_finger(2), "PNG"))}
    return good


def _intake(folder: Path, synth_dir: Path, records: list[dict[str, Any]],
            rules: IntakeRules) -> tuple[list[Application], list[InvalidRecord]]:
    path = folder / "batch.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    result = read_applications(path, rules, TODAY, base=synth_dir)
    return [a for _, a in result.valid], result.invalid


def _refusal(tmp_path: Path, synth_dir: Path, record: dict[str, Any],
             rules: IntakeRules) -> InvalidRecord:
    valid, invalid = _intake(tmp_path, synth_dir, [record], rules)
    assert valid == []
    [refused] = invalid
    return refused


# --- one finger -------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "options"), [("PNG", {"dpi": (500, 500)}),
                                              ("JPEG", {"quality": 90, "dpi": (500, 500)}),
                                              ("WSQ", {})])
def test_a_good_finger_becomes_wsq_within_its_budget(fmt: str, options: dict[str, Any]) -> None:
    """PNG, JPEG and WSQ fingers come out as WSQ at 500 ppi, the same size, within budget."""
    finger = normalize_finger(_encoded(_finger(), fmt, **options), SPEC, RIGHT_INDEX)
    assert finger.wsq[:2] == b"\xff\xa0" and len(finger.wsq) <= SPEC.max_bytes
    assert (finger.position, finger.width, finger.height, finger.ppi) == (2, 256, 320, 500)
    back, ppi = wsqcodec.decode(finger.wsq, 256, 320)
    assert (back.mode, back.size, ppi) == ("L", (256, 320), 500)
    assert _decoded(finger).size == (256, 320)


def test_a_1000_ppi_finger_is_resampled_to_500() -> None:
    """A finger declared at 1000 ppi is halved; one declaring nothing is taken as 500 ppi."""
    large = _finger(3, (512, 640))
    finger = normalize_finger(_encoded(large, "PNG", dpi=(1000, 1000)), SPEC, LEFT_INDEX)
    assert (finger.width, finger.height) == (256, 320) == _decoded(finger).size
    undeclared = normalize_finger(_encoded(_finger(3), "PNG"), SPEC, LEFT_INDEX)
    assert (undeclared.width, undeclared.height) == (256, 320)


def test_a_wsq_finger_at_1000_ppi_is_resampled_too() -> None:
    """The resolution in a WSQ file's NISTCOM comment counts like a PNG's."""
    data = _encoded(_finger(4, (512, 640)), "WSQ", ppi=1000)
    finger = normalize_finger(data, SPEC, RIGHT_INDEX)
    assert (finger.width, finger.height) == (256, 320)
    assert wsqcodec.decode(finger.wsq, 256, 320)[1] == 500


def test_a_colour_finger_is_converted_to_grey() -> None:
    """An RGB scan of a finger is accepted and kept as 8-bit grey."""
    colour = Image.merge("RGB", (_finger(5), _finger(5), _finger(5).point(lambda v: v // 2)))
    finger = normalize_finger(_encoded(colour, "PNG"), SPEC, RIGHT_INDEX)
    assert _decoded(finger).mode == "L"


def _two_tone() -> Image.Image:
    image = Image.new("L", (256, 320), 240)
    ImageDraw.Draw(image).rectangle((0, 0, 127, 319), fill=20)
    return image


@pytest.mark.parametrize(("image", "words"), [
    (Image.new("L", (256, 320), 255), "blank or uniform"),
    (Image.new("L", (256, 320), 128), "blank or uniform"),
    (Image.linear_gradient("L").resize((256, 320)), "shows ridges over"),
    (_two_tone(), "shows ridges over"),
])
def test_a_blank_or_uniform_finger_is_refused(image: Image.Image, words: str) -> None:
    """White, grey, a smooth gradient or two flat halves show no ridges: refused."""
    with pytest.raises(FingerprintError, match=words):
        normalize_finger(_encoded(image, "PNG"), SPEC, RIGHT_INDEX)


def test_the_ridge_thresholds_come_from_the_spec() -> None:
    """A faint finger passes the default thresholds and fails a stricter profile's."""
    faint = _finger(6).point(lambda v: 150 + v // 3)
    normalize_finger(_encoded(faint, "PNG"), SPEC, RIGHT_INDEX)
    with pytest.raises(FingerprintError, match="deviation"):
        normalize_finger(_encoded(faint, "PNG"), replace(SPEC, min_contrast=40), RIGHT_INDEX)


@pytest.mark.parametrize(("data", "words"), [
    (lambda: _encoded(_finger(7, (150, 200)), "PNG"), "150x200 pixels at 500 ppi"),
    (lambda: _encoded(_finger(7, (900, 1100)), "JPEG"), "900x1100 pixels at 500 ppi"),
    (lambda: _encoded(_finger(7), "PNG", dpi=(72, 72)), "declares 72 ppi"),
    (lambda: _encoded(Image.new("L", (3000, 3000)), "PNG"), "more than 4000000 pixels"),
    (lambda: b"\x89PNG" + bytes(SPEC.max_source_bytes), "larger than 512000 bytes"),
    (lambda: b"", "empty"),
    (lambda: b"not an image at all", "cannot be decoded"),
    (lambda: _encoded(_finger(7), "WSQ")[:300], "cannot be decoded"),
    (lambda: _encoded(_finger(7), "GIF"), "cannot be decoded"),
    (lambda: _encoded(Image.new("I;16", (256, 320)), "PNG"), "not 8-bit grey or colour"),
])
def test_a_finger_of_the_wrong_size_or_kind_is_refused(data: Any, words: str) -> None:
    """Too small, too large, an implausible resolution, too many pixels or bytes, not an
    image, or not grey or colour: each refused with its own reason."""
    with pytest.raises(FingerprintError, match=words):
        normalize_finger(data(), SPEC, RIGHT_INDEX)


def _mutations(good: bytes, count: int) -> list[bytes]:
    """``count`` copies of ``good`` with a few bytes changed, cut out or put in (seeded)."""
    rng, out = random.Random(7), []
    for _ in range(count):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 6)):
            op, at = rng.randrange(3), rng.randrange(len(data))
            if op == 0:
                data[at] = rng.randrange(256)
            elif op == 1:
                del data[at:at + rng.randrange(1, 50)]
            else:
                data[at:at] = rng.randbytes(rng.randrange(1, 20))
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data))]
        out.append(bytes(data))
    return out


def test_mutated_wsq_files_never_take_this_process_down() -> None:
    """Mutated WSQ files whose header still parses, among them ones that crash the NBIS
    decoder (heap corruption, segmentation fault), are decoded in a child process: each is
    refused or decoded, and this process goes on."""
    mutated = _mutations(wsqcodec.encode(_finger(1), 0.75, 500), 490)
    for data in (mutated[227], mutated[473], mutated[489]):
        Image.open(io.BytesIO(data), formats=("WSQ",))  # the header parses: NBIS gets it
        try:
            normalize_finger(data, SPEC, RIGHT_INDEX)
        except FingerprintError as exc:
            assert "cannot be decoded" in str(exc) or "blank" in str(exc)


def test_a_decoder_killed_by_a_signal_refuses_the_finger(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoder child that dies of a segmentation fault is a refused finger, not a crash."""
    monkeypatch.setattr(wsqcodec, "_CHILD", "import os, signal\n"
                                            "os.kill(os.getpid(), signal.SIGSEGV)\n")
    data = wsqcodec.encode(_finger(1), 0.75, 500)
    with pytest.raises(wsqcodec.WSQError, match=r"exit status -11"):
        wsqcodec.decode(data, 256, 320)
    with pytest.raises(FingerprintError, match=r"cannot be decoded .* \(WSQError\)"):
        normalize_finger(data, SPEC, RIGHT_INDEX)


def test_the_bitrate_is_lowered_until_the_finger_fits() -> None:
    """A tight budget lowers the WSQ bit rate until it fits; one below the minimum refuses."""
    data = _encoded(_finger(8, (400, 500)), "PNG")
    roomy = normalize_finger(data, SPEC, RIGHT_INDEX)
    tight = normalize_finger(data, replace(SPEC, max_bytes=14_000), RIGHT_INDEX)
    assert len(tight.wsq) <= 14_000 < len(roomy.wsq)
    assert _decoded(tight).size == (400, 500)
    with pytest.raises(FingerprintError, match="does not fit its DG3 share of 6000 bytes"):
        normalize_finger(data, replace(SPEC, max_bytes=6_000), RIGHT_INDEX)


# --- records ----------------------------------------------------------------------------


def test_a_record_carries_both_fingers_as_wsq(tmp_path: Path, synth_dir: Path,
                                              record: dict[str, Any], cccd: IntakeRules) -> None:
    """The validated application holds right index (2) and left index (7) as WSQ."""
    [app], invalid = _intake(tmp_path, synth_dir, [record], cccd)
    assert invalid == []
    assert app.fingerprints is not None
    right, left = app.fingerprints.right_index, app.fingerprints.left_index
    assert isinstance(right, FingerImage) and isinstance(left, FingerImage)
    assert (right.position, left.position) == (RIGHT_INDEX, LEFT_INDEX)
    assert right.wsq != left.wsq
    assert len(right.wsq) + len(left.wsq) <= 40_000 - 256


@pytest.mark.parametrize("reason", ["amputated", "bandaged", "unreadable"])
def test_a_finger_missing_with_a_listed_reason_is_accepted(
        tmp_path: Path, synth_dir: Path, record: dict[str, Any], cccd: IntakeRules,
        reason: str) -> None:
    """One finger missing with a code the profile lists: the other is kept, the code too."""
    fingers = dict(record["fingerprints"], left_index={"missing": reason})
    [app], _ = _intake(tmp_path, synth_dir, [dict(record, fingerprints=fingers)], cccd)
    assert app.fingerprints is not None
    assert app.fingerprints.left_index == MissingFinger(LEFT_INDEX, reason)
    assert [f.position for f in app.fingerprints.images()] == [RIGHT_INDEX]


def _reasons(refused: InvalidRecord) -> dict[str, str]:
    return {e.field: e.reason for e in refused.errors}


def test_an_unknown_reason_or_both_missing_is_refused(tmp_path: Path, synth_dir: Path,
                                                     record: dict[str, Any],
                                                     cccd: IntakeRules) -> None:
    """A code the profile does not list is refused for that finger; two missing fingers are
    refused for the record, whatever their codes."""
    unknown = dict(record["fingerprints"], right_index={"missing": "lost-in-the-mail"})
    refused = _refusal(tmp_path, synth_dir, dict(record, fingerprints=unknown), cccd)
    assert _reasons(refused) == {"fingerprints.right_index": "missing reason is not one of "
                                                             "amputated, bandaged, unreadable"}
    both = {"right_index": {"missing": "amputated"}, "left_index": {"missing": "bandaged"}}
    refused = _refusal(tmp_path, synth_dir, dict(record, fingerprints=both), cccd)
    assert "both index fingers are missing" in _reasons(refused)["fingerprints"]


def test_a_refusal_names_record_finger_and_reason_never_the_image(
        tmp_path: Path, synth_dir: Path, record: dict[str, Any], cccd: IntakeRules) -> None:
    """A blank right index and a left index that is no image: the record's id, each finger
    and its reason, and no base64 text or image bytes anywhere in the refusal."""
    blank = _b64(_encoded(Image.new("L", (256, 320), 200), "PNG"))
    junk = _b64(b"\xff\xa0\xff\xa8" + bytes(range(256)) * 4)
    fingers = {"right_index": blank, "left_index": junk}
    refused = _refusal(tmp_path, synth_dir, dict(record, fingerprints=fingers), cccd)
    assert refused.application_id == record["application_id"]
    reasons = _reasons(refused)
    assert "blank or uniform" in reasons["fingerprints.right_index"]
    assert "cannot be decoded" in reasons["fingerprints.left_index"]
    shown = json.dumps(refused.as_dict())
    for encoded in (blank["base64"], junk["base64"]):
        for at in range(0, len(encoded) - 12, 12):
            assert encoded[at:at + 12] not in shown
    assert "\\u00ff" not in shown and "\\xff" not in shown


def test_a_wrong_shape_names_the_finger(tmp_path: Path, synth_dir: Path,
                                        record: dict[str, Any], cccd: IntakeRules) -> None:
    """A finger given as a number, or an unknown finger, is a shape error of that key."""
    wrong = dict(record["fingerprints"], left_index=17)
    assert "fingerprints.left_index" in _reasons(
        _refusal(tmp_path, synth_dir, dict(record, fingerprints=wrong), cccd))
    extra = dict(record["fingerprints"], thumb={"missing": "amputated"})
    assert "fingerprints" in _reasons(
        _refusal(tmp_path, synth_dir, dict(record, fingerprints=extra), cccd))


def test_required_fingerprints_and_profiles_without_them(
        tmp_path: Path, synth_dir: Path, record: dict[str, Any], cccd: IntakeRules) -> None:
    """CCCD requires fingerprints; a profile where they are optional takes a record without
    them, and one without DG3 ignores them (never read, never kept)."""
    bare = {k: v for k, v in record.items() if k != "fingerprints"}
    refused = _refusal(tmp_path, synth_dir, bare, cccd)
    assert _reasons(refused) == {"fingerprints": "required field is missing"}
    assert cccd.fingerprints is not None
    optional = replace(cccd, fingerprints=replace(cccd.fingerprints, required=False))
    [app], _ = _intake(tmp_path, synth_dir, [bare], optional)
    assert app.fingerprints is None
    unreadable = dict(record, fingerprints={"right_index": "nope.png", "left_index": "nope.png"})
    [app], _ = _intake(tmp_path, synth_dir, [unreadable], replace(cccd, fingerprints=None))
    assert app.fingerprints is None


def test_a_signed_batch_names_each_finger_file_with_its_sha256(
        synth_dir: Path, cccd: IntakeRules) -> None:
    """With digests required a bare finger path is refused, and a changed file too."""
    line = (synth_dir / "apps.jsonl").read_text(encoding="utf-8").splitlines()[0]
    good: dict[str, Any] = json.loads(line)
    path = good["fingerprints"]["left_index"]["path"]
    fingers = dict(good["fingerprints"], right_index=path,
                   left_index={"path": path, "sha256": "0" * 64})
    errors: list[FieldError] = []
    assert cccd.fingerprints is not None
    check_fingerprints(FingerprintsIn.model_validate(fingers), synth_dir, cccd.fingerprints,
                       True, errors)
    reasons = {e.field: e.reason for e in errors}
    assert "SHA-256 of its bytes" in reasons["fingerprints.right_index"]
    assert "changed after the registry signed" in reasons["fingerprints.left_index"]


def test_worker_processes_check_fingers_as_this_process_does(
        tmp_path: Path, synth_dir: Path, record: dict[str, Any], cccd: IntakeRules) -> None:
    """The pool's workers give the same WSQ fingers and refusals as checking here."""
    blank = _b64(_encoded(Image.new("L", (256, 320), 200), "PNG"))
    bad = dict(record, application_id="APP-BLANK", personal_id=record["personal_id"][:-1] + "9",
               fingerprints=dict(record["fingerprints"], left_index=blank))
    path = tmp_path / "batch.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (record, bad)), encoding="utf-8")
    with RecordFile(path, cccd.max_line_bytes) as file, \
            InspectPool(synth_dir, cccd, TODAY, 2, stream._check_task) as pool:
        pooled = [inspected for inspected, _ in pool.inspect(file.records())]
    reference = read_applications(path, cccd, TODAY, base=synth_dir)
    assert pooled[0].application == reference.valid[0][1]
    assert pooled[0].application is not None and pooled[0].application.fingerprints
    assert pooled[1].errors == reference.invalid[0].errors
    assert [e.field for e in pooled[1].errors] == ["fingerprints.left_index"]


# --- synth, journal, profile ------------------------------------------------------------


def test_synth_draws_two_distinct_ridged_fingers_per_applicant(synth_dir: Path,
                                                              cccd: IntakeRules) -> None:
    """Every synthesized applicant has two fingers that pass intake, all different."""
    result = read_applications(synth_dir / "apps.jsonl", cccd, TODAY)
    assert result.invalid == [] and len(result.valid) == 12
    seen: set[bytes] = set()
    for _, app in result.valid:
        assert app.fingerprints is not None and len(app.fingerprints.images()) == 2
        seen.update(f.wsq for f in app.fingerprints.images())
    assert len(seen) == 24


def test_synth_fingers_are_deterministic_and_follow_the_person(tmp_path: Path) -> None:
    """One seed gives the same finger files; a renewal carries the holder's first fingers."""
    first = synthesize(2, 11, tmp_path / "a" / "apps.jsonl")
    again = synthesize(2, 11, tmp_path / "b" / "apps.jsonl")
    assert first.path.read_bytes() == again.path.read_bytes()
    records = [json.loads(line) for line in first.path.read_text("utf-8").splitlines()]
    for finger in ("right_index", "left_index"):
        name = records[0]["fingerprints"][finger]["path"]
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    renewals = synthesize_renewals([(1, records[0]["personal_id"])], 5,
                                   tmp_path / "a" / "renewals.jsonl", issue=TODAY)
    renewal = json.loads(renewals.path.read_text("utf-8"))
    assert renewal["fingerprints"]["right_index"]["sha256"] == \
        records[0]["fingerprints"]["right_index"]["sha256"]


def test_the_journal_text_keeps_fingers_and_missing_codes(tmp_path: Path, synth_dir: Path,
                                                          record: dict[str, Any],
                                                          cccd: IntakeRules) -> None:
    """dump_application / load_application give back the same WSQ bytes and codes; a text
    from before fingerprints loads without them."""
    fingers = dict(record["fingerprints"], right_index={"missing": "unreadable"})
    [app], _ = _intake(tmp_path, synth_dir, [dict(record, fingerprints=fingers)], cccd)
    assert load_application(dump_application(app)) == app
    assert isinstance(app.fingerprints, Fingerprints)
    old = json.loads(dump_application(app))
    del old["fingerprints"]
    assert load_application(json.dumps(old)) == replace(app, fingerprints=None)


def test_the_purge_leaves_no_finger_in_the_sqlite_file(tmp_path: Path, synth_dir: Path,
                                                      cccd: IntakeRules) -> None:
    """Once a closed batch is purged, neither the WSQ bytes nor their base64 remain in the
    journal file or its WAL."""
    result = read_applications(synth_dir / "apps.jsonl", cccd, TODAY)
    apps = [a for _, a in result.valid[:2]]
    fingers = [f.wsq for a in apps if a.fingerprints for f in a.fingerprints.images()]
    assert len(fingers) == 4

    def stored(journal: SQLiteJournal) -> bytes:
        return journal.path.read_bytes() + Path(f"{journal.path}-wal").read_bytes()

    kept = SQLiteJournal(tmp_path / "kept.db")  # the same batch, not closed: fingers stored
    kept.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=2,
                      valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                      invalid=[])
    assert all(base64.b64encode(wsq)[60:120] in stored(kept) for wsq in fingers)
    journal = SQLiteJournal(tmp_path / "journal.db")
    finished_batch(journal, apps, 0)
    raw = stored(journal)
    for wsq in fingers:
        assert wsq[40:72] not in raw and wsq[-32:] not in raw
        assert base64.b64encode(wsq)[60:120] not in raw


def test_the_cccd_profile_sets_the_dg3_budget_and_thresholds() -> None:
    """The CCCD profile requires fingers, splits 40 000 bytes between them, and refuses a line
    cap too small for a photo and two inline fingers."""
    spec = load_profile("cccd").intake_rules().fingerprints
    assert spec is not None and spec.required
    assert spec.max_bytes == (40_000 - 256) // 2
    assert spec.missing_reasons == ("amputated", "bandaged", "unreadable")
    raw = load_profile("cccd").model_dump()
    raw["dg3"]["max_source_bytes"] = 1024 * 1024
    with pytest.raises(ValueError, match="two fingers"):
        DocumentProfile.model_validate(raw)
    raw = load_profile("cccd").model_dump()
    raw["dg3"]["missing_reasons"] = ["amputated", "lazy"]
    with pytest.raises(ValueError, match="missing_reasons"):
        DocumentProfile.model_validate(raw)
    raw = load_profile("cccd-bac").model_dump()  # a profile without DG3 may drop the section
    del raw["dg3"]
    assert DocumentProfile.model_validate(raw).intake_rules().fingerprints is None
