"""Fixtures: a zero-timing emulator on a real pseudo-terminal or TCP port, a driver, a face."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from PIL import Image, ImageDraw

from printers.driver import PrinterDriver
from printers.emulator import PrinterEmulator
from printers.face import CardFace
from printers.layout import CardLayout
from printers.link import SerialLink

ROOT = Path(__file__).resolve().parents[2]
LAYOUT_FILE = ROOT / "personalization" / "profiles" / "cccd-face.yaml"


class Recorder:
    """An encoding station that remembers what the printer told it."""

    def __init__(self) -> None:
        self.present: set[str] = set()
        self.events: list[tuple[str, str]] = []

    def card_arrived(self, chip_serial: str) -> None:
        self.present.add(chip_serial)
        self.events.append(("arrived", chip_serial))

    def card_left(self, chip_serial: str) -> None:
        self.present.discard(chip_serial)
        self.events.append(("left", chip_serial))


@pytest.fixture
def station() -> Recorder:
    return Recorder()


@pytest.fixture
def emulator(station: Recorder) -> Iterator[PrinterEmulator]:
    with PrinterEmulator("st1", cards=20, station=station) as emu:
        yield emu


@pytest.fixture(params=["pty", "tcp"])
def driver(request: pytest.FixtureRequest, emulator: PrinterEmulator) -> Iterator[PrinterDriver]:
    url = emulator.serve_pty() if request.param == "pty" else emulator.serve_tcp()
    with PrinterDriver(SerialLink(url, timeout=0.5), "st1") as drv:
        drv.set_host_error_mode()
        yield drv


@pytest.fixture(scope="session")
def layout() -> CardLayout:
    return CardLayout.model_validate(yaml.safe_load(LAYOUT_FILE.read_text(encoding="utf-8")))


def portrait() -> bytes:
    image = Image.new("RGB", (300, 400), (210, 220, 235))
    draw = ImageDraw.Draw(image)
    draw.ellipse((90, 60, 210, 200), fill=(205, 160, 130))
    draw.rectangle((50, 220, 250, 400), fill=(30, 50, 110))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def make_face(**changes: object) -> CardFace:
    values: dict[str, object] = dict(
        personal_id="001095012345",
        full_name="Nguyễn Thị Thùy Dương",
        date_of_birth="07/03/1995",
        sex="Nữ",
        nationality="Việt Nam",
        place_of_origin="Xã Đông Sơn, Huyện Thủy Nguyên, Hải Phòng",
        place_of_residence="Số 12 Ngõ 45 Phố Hàng Bạc, Phường Hàng Bạc, Quận Hoàn Kiếm, Hà Nội",
        expiry="07/03/2035",
        identifying_marks="Nốt ruồi C:2cm trên trước đầu lông mày phải",
        issue_date="15/04/2021",
        mrz_lines=(
            "IDVNM0950123457001095012345<<4",
            "9503077F3503078VNM<<<<<<<<<<<6",
            "NGUYEN<<THI<THUY<DUONG<<<<<<<<",
        ),
        photo=portrait(),
    )
    values.update(changes)
    return CardFace(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def face() -> CardFace:
    return make_face()
