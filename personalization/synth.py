"""Synthetic approved applications for demos, tests and benchmarks: Vietnamese names with
diacritics, real province codes, valid ID numbers, drawn faces and drawn fingerprints of no
real person.

Deterministic for a seed (``random.Random``; not for secrets — nothing here is one). A
person's fingerprints are drawn from their personal ID, so a renewal carries the fingers of
the first issue, and the other fields draw the same values as before fingerprints existed.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageMath

from personalization.applications.lines import REGISTRY_HEADER
from personalization.applications.provinces import PROVINCES

SURNAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng",
            "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Đinh", "Trịnh", "Đoàn", "Lương")
MIDDLE_M = ("Văn", "Hữu", "Đức", "Minh", "Quang", "Công", "Thành", "Xuân", "Đình", "Gia")
MIDDLE_F = ("Thị", "Ngọc", "Thu", "Thanh", "Phương", "Mỹ", "Kim", "Diệu", "Bảo", "Hồng")
GIVEN_M = ("An", "Bình", "Cường", "Dũng", "Đạt", "Hải", "Hiếu", "Hùng", "Khánh", "Long",
           "Nam", "Phúc", "Quân", "Sơn", "Thắng", "Trung", "Tuấn", "Việt", "Vinh", "Hoàng Anh")
GIVEN_F = ("Anh", "Châu", "Giang", "Hà", "Hạnh", "Hoa", "Hương", "Lan", "Linh", "Mai",
           "Nga", "Ngân", "Nhung", "Phương", "Quỳnh", "Thảo", "Trang", "Tuyết", "Vy", "Yến")
ETHNICITIES = ("Kinh",) * 12 + ("Tày", "Thái", "Mường", "Khmer", "Hoa", "Nùng", "H'Mông")
RELIGIONS = ("Không",) * 10 + ("Phật giáo", "Công giáo", "Cao Đài", "Hòa Hảo", "Tin Lành")
MARKS = ("Nốt ruồi C:1cm dưới sau mép trái", "Sẹo chấm C:2cm trên trước đuôi mắt phải",
         "Nốt ruồi C:1,5cm trên đầu lông mày trái", "Sẹo chấm C:1cm dưới cằm",
         "Nốt ruồi C:3cm dưới trước dái tai phải", "Sẹo dài 2cm trên mu bàn tay trái")
STREETS = ("Lê Lợi", "Trần Hưng Đạo", "Nguyễn Huệ", "Hai Bà Trưng", "Lý Thường Kiệt",
           "Quang Trung", "Phan Đình Phùng", "Điện Biên Phủ", "Hùng Vương", "Bà Triệu")
WARDS = ("Phường Bến Nghé", "Phường Tràng Tiền", "Phường 7", "Xã Tân Phú", "Phường Hòa Cường Bắc",
         "Thị trấn Đông Anh", "Phường Cửa Nam", "Xã Phước Kiển", "Phường An Hải Bắc")
DISTRICTS = ("Quận 1", "Quận Hoàn Kiếm", "Quận Hải Châu", "Huyện Nhà Bè", "Quận Ninh Kiều",
             "Huyện Đông Anh", "Thành phố Thủ Đức", "Quận Sơn Trà", "Huyện Củ Chi")
SKIN = ((241, 204, 170), (224, 182, 146), (204, 160, 120), (232, 190, 160), (198, 148, 110))
HAIR = ((20, 16, 14), (35, 28, 24), (52, 40, 30), (70, 60, 55), (120, 120, 120))
SHIRT = ((240, 240, 240), (30, 40, 80), (60, 60, 60), (200, 200, 210), (90, 30, 40))
# Fingerprint pattern classes (Henry) and about how often they occur
PATTERNS = ("loop-left", "loop-right", "whorl", "arch")
PATTERN_WEIGHTS = (33, 32, 30, 5)
FINGER_SIZE = (256, 320)  # a FAP 10 single-finger capture at 500 ppi (12.8 × 16.3 mm)
_GRID = 16  # pixels between the points where the ridge phase is computed, then interpolated
_RIDGE = [round(127.5 + 127.5 * math.cos(2 * math.pi * i / 256)) for i in range(256)]
ISSUE_FROM = date(2026, 1, 5)   # fixed, so output depends on the seed only
ISSUE_DAYS = 290


@dataclass(frozen=True, slots=True)
class Synthesized:
    """What ``synth`` wrote."""

    path: Path
    count: int


def _person(rng: random.Random, index: int, used: set[str]) -> dict[str, Any]:
    sex = rng.choice("MF")
    issue = ISSUE_FROM + timedelta(days=rng.randrange(ISSUE_DAYS))
    age_days = rng.randrange(14 * 366, 85 * 365)
    birth = issue - timedelta(days=age_days)
    province = rng.choice(sorted(PROVINCES))
    digit = (birth.year // 100 - 19) * 2 + (0 if sex == "M" else 1)
    while True:
        pid = f"{province}{digit}{birth.year % 100:02d}{rng.randrange(10**6):06d}"
        if pid not in used:
            used.add(pid)
            break
    surname = rng.choice(SURNAMES)
    middle = rng.choice(MIDDLE_M if sex == "M" else MIDDLE_F)
    given = rng.choice(GIVEN_M if sex == "M" else GIVEN_F)
    record: dict[str, Any] = {
        "application_id": f"APP-{index:08d}",
        "personal_id": pid,
        "full_name": f"{surname} {middle} {given}",
        "date_of_birth": birth.isoformat(),
        "issue_date": issue.isoformat(),
        "sex": sex,
        "nationality": "VNM",
        "ethnicity": rng.choice(ETHNICITIES),
        "religion": rng.choice(RELIGIONS),
        "place_of_origin": f"{rng.choice(WARDS)}, {rng.choice(DISTRICTS)}, "
                           f"{PROVINCES[rng.choice(sorted(PROVINCES))]}",
        "place_of_residence": f"Số {rng.randrange(1, 300)} {rng.choice(STREETS)}, "
                              f"{rng.choice(WARDS)}, {rng.choice(DISTRICTS)}, "
                              f"{PROVINCES[province]}",
        "identifying_marks": rng.choice(MARKS),
        "father_name": f"{surname} {rng.choice(MIDDLE_M)} {rng.choice(GIVEN_M)}",
        "mother_name": f"{rng.choice(SURNAMES)} Thị {rng.choice(GIVEN_F)}",
    }
    if age_days > 24 * 365 and rng.random() < 0.6:
        other = "F" if sex == "M" else "M"
        record["spouse_name"] = (f"{rng.choice(SURNAMES)} "
                                 f"{rng.choice(MIDDLE_M if other == 'M' else MIDDLE_F)} "
                                 f"{rng.choice(GIVEN_M if other == 'M' else GIVEN_F)}")
    if age_days > 20 * 365 and rng.random() < 0.5:
        record["former_id_number"] = f"{rng.randrange(10**8, 10**9)}"
    return record


def draw_face(rng: random.Random, sex: str, width: int = 480, height: int = 640) -> bytes:
    """A drawn passport-style portrait of no real person, as JPEG."""
    image = Image.new("RGB", (width, height), (236, 242, 250))
    draw = ImageDraw.Draw(image)
    skin, hair, shirt = rng.choice(SKIN), rng.choice(HAIR), rng.choice(SHIRT)
    cx, cy = width // 2 + rng.randrange(-12, 13), int(height * 0.42)
    hw, hh = rng.randrange(105, 130), rng.randrange(140, 165)
    draw.ellipse((cx - 230, height - 170, cx + 230, height + 200), fill=shirt)
    draw.rectangle((cx - 45, cy + hh - 40, cx + 45, height - 140), fill=skin)
    long_hair = sex == "F" and rng.random() < 0.8
    if long_hair:
        draw.rounded_rectangle((cx - hw - 25, cy - hh - 20, cx + hw + 25, cy + hh + 60),
                               radius=90, fill=hair)
    draw.ellipse((cx - hw - 14, cy - 25, cx - hw + 16, cy + 35), fill=skin)
    draw.ellipse((cx + hw - 16, cy - 25, cx + hw + 14, cy + 35), fill=skin)
    draw.ellipse((cx - hw, cy - hh, cx + hw, cy + hh), fill=skin)
    draw.chord((cx - hw - 6, cy - hh - 18, cx + hw + 6, cy + rng.randrange(-30, 10)),
               180, 360, fill=hair)
    eye_y, gap = cy - rng.randrange(5, 25), rng.randrange(38, 52)
    for side in (-1, 1):
        ex = cx + side * gap
        draw.ellipse((ex - 20, eye_y - 9, ex + 20, eye_y + 9), fill=(250, 250, 250))
        draw.ellipse((ex - 8, eye_y - 8, ex + 8, eye_y + 8), fill=(45, 30, 25))
        draw.line((ex - 24, eye_y - 24, ex + 22, eye_y - 27), fill=hair, width=6)
    nose_y = eye_y + rng.randrange(45, 60)
    draw.line((cx, eye_y + 10, cx - 6, nose_y), fill=tuple(c - 40 for c in skin), width=3)
    draw.line((cx - 12, nose_y, cx + 10, nose_y), fill=tuple(c - 45 for c in skin), width=3)
    mouth_y, mw = nose_y + rng.randrange(30, 42), rng.randrange(26, 38)
    draw.arc((cx - mw, mouth_y - 12, cx + mw, mouth_y + 12), 10, 170, fill=(150, 70, 70), width=4)
    noise = Image.frombytes("L", (120, 160), rng.randbytes(120 * 160)).resize(
        (width, height), Image.Resampling.BICUBIC)
    image = Image.blend(image, Image.merge("RGB", (noise, noise, noise)), 0.06)
    image = image.filter(ImageFilter.GaussianBlur(0.8))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue()


def _distance_to_segment(x: float, y: float, a: tuple[float, float],
                         b: tuple[float, float]) -> float:
    vx, vy = b[0] - a[0], b[1] - a[1]
    t = min(1.0, max(0.0, ((x - a[0]) * vx + (y - a[1]) * vy) / (vx * vx + vy * vy)))
    return math.hypot(x - a[0] - t * vx, y - a[1] - t * vy)


def _ridge_distance(rng: random.Random, width: int, height: int, period: float,
                    ) -> Callable[[float, float], float]:
    """How far across the ridges a point lies from the core: ridges follow its level lines.
    A loop's ridges are U-shaped around a ray from the core, a whorl's are ovals around a
    short segment, an arch's are bumps."""
    kind = rng.choices(PATTERNS, PATTERN_WEIGHTS)[0]
    cx, cy = width * rng.uniform(0.4, 0.6), height * rng.uniform(0.35, 0.5)
    tilt = rng.uniform(-0.3, 0.3)
    if kind == "arch":
        rise, spread = height * rng.uniform(0.15, 0.3), width * rng.uniform(0.25, 0.4)
        return lambda x, y: (y - cy) - rise * math.exp(-(((x - cx) / spread) ** 2))
    if kind == "whorl":
        half = rng.uniform(5, 30)
        dx, dy = half * math.cos(1.2 + tilt), half * math.sin(1.2 + tilt)
        start, end = (cx - dx, cy - dy), (cx + dx, cy + dy)
    else:
        side = -1 if kind == "loop-left" else 1
        start = (cx, cy)
        end = (cx + side * width * math.cos(1.0 + tilt), cy + width * math.sin(1.0 + tilt))
    soft = period * 0.9  # rounds the innermost ridge instead of a kink
    return lambda x, y: math.hypot(_distance_to_segment(x, y, start, end), soft)


def _ridge_phase(rng: random.Random, width: int, height: int) -> Image.Image:
    """The ridge phase (256 per ridge period) as a float image: computed on a coarse grid,
    where it is smooth, then interpolated, so only a few hundred points cost Python time."""
    period = rng.uniform(8.5, 10.5)  # pixels from ridge to ridge at 500 ppi (0.43–0.53 mm)
    distance = _ridge_distance(rng, width, height, period)
    cols, rows = width // _GRID + 2, height // _GRID + 2
    # three gentle bends, a sin(u·x + v·y + p) each, split into terms of x and of y
    bends = []
    for _ in range(3):
        u, v, p, a = (rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02),
                      rng.uniform(0, 2 * math.pi), rng.uniform(4, 14))
        bends.append(([(a * math.sin(u * c * _GRID), a * math.cos(u * c * _GRID))
                       for c in range(cols)],
                      [(math.cos(v * r * _GRID + p), math.sin(v * r * _GRID + p))
                       for r in range(rows)]))
    values = []
    for row in range(rows):
        for col in range(cols):
            bend = sum(xs[col][0] * ys[row][0] + xs[col][1] * ys[row][1] for xs, ys in bends)
            values.append((distance(col * _GRID, row * _GRID) + bend) * 256 / period)
    grid = Image.new("F", (cols, rows))
    grid.putdata(values)
    return grid.resize((width, height), Image.Resampling.BICUBIC,
                       box=(0, 0, width / _GRID, height / _GRID))


def draw_fingerprint(rng: random.Random, width: int = FINGER_SIZE[0],
                     height: int = FINGER_SIZE[1]) -> Image.Image:
    """A drawn flat impression of a finger of no real person: dark ridges on light paper,
    8-bit grey at 500 ppi."""
    phase = _ridge_phase(rng, width, height)
    wrapped = ImageMath.lambda_eval(lambda m: m["convert"](m["p"], "I") & 255, p=phase)
    ridges = wrapped.convert("L").point(_RIDGE)
    small = (width // 4, height // 4)
    pad = Image.new("L", small, 0)
    ImageDraw.Draw(pad).ellipse((small[0] * rng.uniform(0.04, 0.12),
                                 small[1] * rng.uniform(0.02, 0.1),
                                 small[0] * rng.uniform(0.88, 0.96),
                                 small[1] * rng.uniform(1.0, 1.3)), fill=255)
    blotches = Image.frombytes("L", (width // 16, height // 16),
                               rng.randbytes((width // 16) * (height // 16)))
    pressure = ImageChops.multiply(pad.filter(ImageFilter.GaussianBlur(1.5)),
                                   blotches.resize(small, Image.Resampling.BICUBIC)
                                   .point(lambda v: min(255, 110 + v)))
    ink = ImageChops.multiply(ImageChops.invert(ridges),
                              pressure.resize((width, height), Image.Resampling.BILINEAR))
    paper = Image.new("L", (width, height), 245)
    return ImageChops.subtract(paper, ink)


def draw_fingers(personal_id: str) -> dict[str, bytes]:
    """Both index fingers of the holder of ``personal_id``, as JPEG at 500 ppi: the same
    person gets the same fingers in every file, two people or two fingers differ."""
    out = {}
    for finger in ("right_index", "left_index"):
        rng = random.Random(f"cardline synthetic finger {personal_id} {finger}")
        data = io.BytesIO()
        draw_fingerprint(rng).save(data, format="JPEG", quality=90, dpi=(500, 500))
        out[finger] = data.getvalue()
    return out


def _attach_images(record: dict[str, Any], jpeg: bytes, photo_dir: Path | None) -> None:
    """The photo and both fingers into ``record``: inline base64 (``photo_dir`` None), or
    files in ``photo_dir`` named with their SHA-256."""
    images = {"photo": jpeg, **draw_fingers(record["personal_id"])}
    refs: dict[str, Any] = {}
    for key, data in images.items():
        if photo_dir is None:
            refs[key] = {"base64": base64.b64encode(data).decode("ascii")}
            continue
        name = (f"{record['application_id']}.jpg" if key == "photo"
                else f"{record['application_id']}.{key}.jpg")
        (photo_dir / name).write_bytes(data)
        refs[key] = {"path": f"{photo_dir.name}/{name}",
                     "sha256": hashlib.sha256(data).hexdigest()}
    record["photo"] = refs.pop("photo")
    record["fingerprints"] = refs


def _renewal(rng: random.Random, index: int, card_id: int, pid: str,
             issue: date) -> dict[str, Any]:
    """A renewal of card ``card_id`` for the holder of ``pid``: the same number, sex and birth
    year (digits 4-6 say them), new everything else, as a data change or an age renewal."""
    record = _person(rng, index, {pid})
    century, sex = 1900 + int(pid[3]) // 2 * 100, "M" if int(pid[3]) % 2 == 0 else "F"
    birth = date(century + int(pid[4:6]), rng.randrange(1, 13), rng.randrange(1, 29))
    if birth >= issue - timedelta(days=14 * 366):  # never younger than the minimum age
        birth = birth.replace(year=issue.year - 15)
    surname = rng.choice(SURNAMES)
    given = rng.choice(GIVEN_M if sex == "M" else GIVEN_F)
    middle = rng.choice(MIDDLE_M if sex == "M" else MIDDLE_F)
    age = (issue - birth).days // 365
    record.update(personal_id=pid, sex=sex, date_of_birth=birth.isoformat(),
                  issue_date=issue.isoformat(), full_name=f"{surname} {middle} {given}",
                  kind="renewal", supersedes={"card_id": card_id},
                  reason=f"age-{age}" if age in (25, 40, 60) else "data-change")
    record.pop("spouse_name", None)
    record.pop("former_id_number", None)
    return record


def synthesize_renewals(cards: list[tuple[int, str]], seed: int, out: Path, *,
                        issue: date, registry_batch: str | None = None) -> Synthesized:
    """Renewal applications (kind renewal, naming the card they supersede) for the holders of
    ``cards`` — (card id, personal ID) of handed-out cards — issued on ``issue``; photos and
    the holder's fingers beside the file with their SHA-256, as :func:`synthesize` writes
    them."""
    rng = random.Random(seed)
    photo_dir = out.parent / f"{out.stem}-photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        if registry_batch is not None:
            handle.write(json.dumps({REGISTRY_HEADER: registry_batch}) + "\n")
        for index, (card_id, pid) in enumerate(cards, start=1):
            record = _renewal(rng, seed * 1_000_000 + index, card_id, pid, issue)
            record["application_id"] = f"REN-{seed:04d}-{index:06d}"
            _attach_images(record, draw_face(rng, record["sex"]), photo_dir)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Synthesized(out, len(cards))


def synthesize(count: int, seed: int, out: Path, *, inline_photos: bool = False,
               registry_batch: str | None = None) -> Synthesized:
    """Write ``count`` applications to ``out`` (JSON Lines); photos and fingers beside it
    (``<out stem>-photos/``) or inline.
    With ``registry_batch`` the file opens with the registry's header line naming its batch
    (what the registry signs)."""
    rng = random.Random(seed)
    used: set[str] = set()
    photo_dir = out.parent / f"{out.stem}-photos"
    if not inline_photos:
        photo_dir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        if registry_batch is not None:
            handle.write(json.dumps({REGISTRY_HEADER: registry_batch}) + "\n")
        for index in range(1, count + 1):
            record = _person(rng, seed * 1_000_000 + index, used)
            _attach_images(record, draw_face(rng, record["sex"]),
                           None if inline_photos else photo_dir)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Synthesized(out, count)
