"""Synthetic approved applications for demos, tests and benchmarks: Vietnamese names with
diacritics, real province codes, valid ID numbers, and drawn faces of no real person.

Deterministic for a seed (``random.Random``; not for secrets — nothing here is one).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

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
    ``cards`` — (card id, personal ID) of handed-out cards — issued on ``issue``; photos
    beside the file with their SHA-256, as :func:`synthesize` writes them."""
    rng = random.Random(seed)
    photo_dir = out.parent / f"{out.stem}-photos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as handle:
        if registry_batch is not None:
            handle.write(json.dumps({REGISTRY_HEADER: registry_batch}) + "\n")
        for index, (card_id, pid) in enumerate(cards, start=1):
            record = _renewal(rng, seed * 1_000_000 + index, card_id, pid, issue)
            record["application_id"] = f"REN-{seed:04d}-{index:06d}"
            jpeg = draw_face(rng, record["sex"])
            name = f"{record['application_id']}.jpg"
            (photo_dir / name).write_bytes(jpeg)
            record["photo"] = {"path": f"{photo_dir.name}/{name}",
                               "sha256": hashlib.sha256(jpeg).hexdigest()}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Synthesized(out, len(cards))


def synthesize(count: int, seed: int, out: Path, *, inline_photos: bool = False,
               registry_batch: str | None = None) -> Synthesized:
    """Write ``count`` applications to ``out`` (JSON Lines); photos beside it or inline.
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
            jpeg = draw_face(rng, record["sex"])
            if inline_photos:
                record["photo"] = {"base64": base64.b64encode(jpeg).decode("ascii")}
            else:
                name = f"{record['application_id']}.jpg"
                (photo_dir / name).write_bytes(jpeg)
                record["photo"] = {"path": f"{photo_dir.name}/{name}",
                                   "sha256": hashlib.sha256(jpeg).hexdigest()}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Synthesized(out, count)
