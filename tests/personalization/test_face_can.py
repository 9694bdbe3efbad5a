"""The CAN on the card face: printed on the front under a printed-random profile, never for
a CCCD (personal-id-last6), a layout and a profile that disagree about it refused at load,
and the CAN in no log line, repr or error message."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat
from structlog.testing import capture_logs

from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.face import card_face, card_layout
from personalization.line.dispatch import Work
from personalization.line.station import Station, StationSpec
from personalization.prep import CardData, Preparer
from personalization.profile import DocumentProfile, load_profile
from printers.errors import FaceError, LayoutError
from printers.face import CardFace, RenderedCard, draw_text, render_card
from printers.layout import CardLayout, Text
from printers.panels import SIZE
from printers.protocol import Position
from tests.personalization.conftest import TODAY_ISO
from tests.support.signers import SoftwareSigner

PROFILES = Path(__file__).resolve().parent / "profiles"
DRAWN = 42_917  # what the test rng draws: the CAN "042917"
CAN = "042917"


@pytest.fixture(scope="module")
def printed() -> DocumentProfile:
    """The test profile whose CAN is six random digits printed on the front."""
    return load_profile(str(PROFILES / "cccd-can.yaml"))


@pytest.fixture(scope="module")
def cccd_eac() -> DocumentProfile:
    """The CCCD on an EAC chip: the CAN is the personal ID's last six digits, never printed
    (the shipped layout)."""
    cccd = load_profile("cccd")
    chip = cccd.chip.model_copy(update={"access": "pace+bac", "can": "personal-id-last6"})
    return cccd.model_copy(update={"chip": chip, "data_groups": (1, 2, 3, 13)})


@pytest.fixture(scope="module")
def application(synth_dir: Path, printed: DocumentProfile) -> Application:
    rules = printed.intake_rules()
    valid = read_applications(synth_dir / "apps.jsonl", rules, date.fromisoformat(TODAY_ISO))
    return valid.valid[0][1]


def card_data(profile: DocumentProfile, application: Application) -> CardData:
    """The card data preparation makes, its random CAN drawn by a fixed rng."""
    preparer = Preparer(profile, SoftwareSigner.create(), rng=lambda bound: DRAWN)
    return preparer.card_data(application)


def can_box(layout: CardLayout) -> Text:
    return next(e for e in layout.front.elements if isinstance(e, Text) and e.field == "can")


def inked(rendered: RenderedCard, box: Text) -> Image.Image:
    return rendered.sides["front"].resin.crop(box.box.corners)


def test_printed_random_prints_the_can_on_the_front(
    printed: DocumentProfile, application: Application
) -> None:
    """The prepared random CAN is on the face and inked in its box, exactly as drawn alone."""
    data = card_data(printed, application)
    assert data.can == CAN
    face = card_face(application, data.mrz, printed, can=data.can)
    assert face.can == CAN
    layout = card_layout(printed)
    box = can_box(layout)
    region = inked(render_card(face, layout), box)
    alone = Image.new("L", SIZE, 0)
    draw_text(ImageDraw.Draw(alone), box, face, 255)
    assert ImageStat.Stat(region).extrema[0][1] == 255
    assert ImageChops.difference(region, alone.crop(box.box.corners)).getbbox() is None


def test_a_cccd_can_is_never_printed(cccd_eac: DocumentProfile,
                                     application: Application) -> None:
    """personal-id-last6: the chip has a CAN, the face does not, and the CCCD front renders as
    for a card with no CAN at all."""
    data = card_data(cccd_eac, application)
    assert data.can == application.personal_id[-6:]
    face = card_face(application, data.mrz, cccd_eac, can=data.can)
    assert face.can is None
    layout = card_layout(cccd_eac)
    assert not layout.shows("can")
    no_can = card_face(application, data.mrz, cccd_eac)
    assert render_card(face, layout).panels("front") == render_card(no_can, layout).panels("front")


def test_a_bac_profile_prints_no_can_whatever_is_passed(
    printed: DocumentProfile, application: Application
) -> None:
    """chip.can printed-random on a BAC chip: the chip has no CAN, so the face has none."""
    bac = printed.model_copy(update={"chip": printed.chip.model_copy(update={"access": "bac"}),
                                     "data_groups": (1, 2, 13)})
    data = card_data(bac, application)
    assert data.can is None
    assert card_face(application, data.mrz, bac, can="123456").can is None


def test_a_layout_showing_the_can_under_a_profile_that_does_not_print_it_is_refused(
    printed: DocumentProfile, cccd_eac: DocumentProfile
) -> None:
    """The CAN layout under the CCCD EAC profile, and the CCCD layout under the printed-random
    profile: each a layout error naming the layout and the field."""
    shows = cccd_eac.model_copy(update={"card_face": printed.card_face})
    with pytest.raises(LayoutError, match=r"^cccd-can: the layout shows the field 'can'"):
        card_layout(shows)
    lacks = printed.model_copy(update={"card_face": cccd_eac.card_face})
    with pytest.raises(LayoutError, match=r"^cccd: profile cccd-can prints the CAN .*'can'"):
        card_layout(lacks)


def test_a_card_without_its_can_on_the_can_layout_is_a_layout_error(
    printed: DocumentProfile, application: Application
) -> None:
    """A caller that passes no CAN (the keyword default) cannot print a blank or 'None' CAN:
    the rendering fails naming the layout and the field."""
    data = card_data(printed, application)
    face = card_face(application, data.mrz, printed)
    with pytest.raises(LayoutError) as caught:
        render_card(face, card_layout(printed))
    assert caught.value.printer == "cccd-can"
    assert "'can'" in str(caught.value)
    assert application.personal_id not in str(caught.value)


class _Printer:
    """A printer at its print position that keeps what it is asked to print."""

    def __init__(self) -> None:
        self.printed: list[RenderedCard] = []

    def position(self) -> Position:
        return Position.PRINT

    def print_card(self, rendered: RenderedCard) -> None:
        self.printed.append(rendered)


def test_the_station_prints_the_prepared_can(printed: DocumentProfile,
                                             application: Application) -> None:
    """The line's print step passes the card data's CAN to the face: it is inked on the card."""
    layout = card_layout(printed)
    saved: list[str] = []
    line: Any = SimpleNamespace(profile=printed, layout=layout,
                                save_faces=lambda app_id, rendered: saved.append(app_id))
    station = Station(StationSpec("st1", "pty:none", "reader"), line)
    printer = _Printer()
    station._driver = printer  # type: ignore[assignment]  # the print step alone
    station._print(Work(application, card_data(printed, application)))
    assert saved == [application.application_id]
    assert ImageStat.Stat(inked(printer.printed[0], can_box(layout))).extrema[0][1] == 255


def test_no_can_or_finger_reaches_a_log_line_a_repr_or_an_error(
    printed: DocumentProfile, application: Application, caplog: pytest.LogCaptureFixture
) -> None:
    """Making and rendering the face logs nothing with the CAN; its repr and the error of a
    CAN too long for its box leave the CAN and the fingers out."""
    data = card_data(printed, application)
    layout = card_layout(printed)
    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        face = card_face(application, data.mrz, printed, can=data.can)
        render_card(face, layout)
        tiny = _with_can_box(layout, width=40)
        with pytest.raises(FaceError) as caught:
            render_card(face, tiny)
    logged = [str(e) for e in events] + [r.getMessage() for r in caplog.records]
    assert all(CAN not in line for line in logged)
    assert CAN not in str(caught.value) and "can does not fit" in str(caught.value)
    assert CAN not in repr(face) and CAN not in repr(data)
    assert "fingerprints" not in repr(face) and "Image" not in repr(face)


def _with_can_box(layout: CardLayout, width: int) -> CardLayout:
    raw = layout.model_dump()
    for element in raw["front"]["elements"]:
        if element.get("field") == "can":
            element["box"]["w"] = width
    return CardLayout.model_validate(raw)


def test_the_face_keeps_card_face_signature_for_older_callers(
    printed: DocumentProfile, application: Application
) -> None:
    """card_face without a CAN (bench callers) still builds the face, with no CAN on it."""
    data = card_data(printed, application)
    face: CardFace = card_face(application, data.mrz, printed)
    assert face.can is None and sorted(face.fingerprints) == [2, 7]
