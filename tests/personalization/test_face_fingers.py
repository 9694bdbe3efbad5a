"""The card face of an application with fingerprints: the WSQ fingers decoded as the sandboxed
decoder decodes them, printed in their boxes on the CCCD back, a missing finger's box left
empty, and a finger whose header is out of bounds refused before any decoding."""

from __future__ import annotations

import dataclasses
import struct
from datetime import date
from pathlib import Path

import _wsq
import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from personalization.applications import wsqcodec
from personalization.applications.fingerprint import FingerImage, Fingerprints, MissingFinger
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.face import card_face, card_layout
from personalization.prep import build_mrz
from personalization.profile import DocumentProfile, load_profile
from printers.errors import FaceError
from printers.face import CardFace, render_card
from printers.layout import CardLayout, Finger
from tests.personalization.conftest import TODAY_ISO

RIGHT, LEFT = 2, 7  # ISO/IEC 19794-4 Table 2


@pytest.fixture(scope="module")
def profile() -> DocumentProfile:
    """The shipped CCCD profile (fingerprints required, two boxes on the back)."""
    return load_profile("cccd")


@pytest.fixture(scope="module")
def layout(profile: DocumentProfile) -> CardLayout:
    return card_layout(profile)


@pytest.fixture(scope="module")
def application(synth_dir: Path, profile: DocumentProfile) -> Application:
    """A synthetic applicant with both index fingers, through intake (WSQ at 500 ppi)."""
    rules = profile.intake_rules()
    valid = read_applications(synth_dir / "apps.jsonl", rules,
                              date.fromisoformat(TODAY_ISO)).valid
    return valid[0][1]


def face_of(application: Application, profile: DocumentProfile) -> CardFace:
    return card_face(application, build_mrz(application, profile), profile)


def fingers(application: Application) -> Fingerprints:
    assert application.fingerprints is not None
    return application.fingerprints


def finger_boxes(layout: CardLayout) -> dict[int, Finger]:
    return {e.position: e for e in layout.back.elements if isinstance(e, Finger)}


def region(face: CardFace, layout: CardLayout, element: Finger) -> Image.Image:
    return render_card(face, layout).sides["back"].colour.crop(element.box.corners).convert("L")


def ridge_dots(image: Image.Image) -> int:
    """Dots darker than mid-grey: ridges (the box and the paper are near white)."""
    return sum(image.histogram()[:128])


def test_the_face_holds_each_finger_as_the_sandboxed_decoder_decodes_it(
    application: Application, profile: DocumentProfile
) -> None:
    """In-process decoding of intake's WSQ gives the child process's pixels, by position."""
    face = face_of(application, profile)
    assert sorted(face.fingerprints) == [RIGHT, LEFT]
    for image in fingers(application).images():
        reference, _ = wsqcodec.decode(image.wsq, image.width, image.height)
        assert face.fingerprints[image.position].mode == "L"
        assert face.fingerprints[image.position].tobytes() == reference.tobytes()


def test_the_back_prints_each_decoded_finger_in_its_box(
    application: Application, profile: DocumentProfile, layout: CardLayout
) -> None:
    """Each box holds ridge dots where a card without fingers has none, and matches its own
    decoded finger (scaled into the box) far better than the other one."""
    with_fingers = face_of(application, profile)
    without = face_of(dataclasses.replace(application, fingerprints=None), profile)
    assert without.fingerprints == {}
    boxes = finger_boxes(layout)
    for position, element in boxes.items():
        printed, empty = region(with_fingers, layout, element), region(without, layout, element)
        assert ridge_dots(empty) == 0
        assert ridge_dots(printed) > 0.15 * element.box.w * element.box.h
        distances = {}
        for source, image in with_fingers.fingerprints.items():
            fitted = ImageOps.contain(image, (element.box.w, element.box.h))
            x = (element.box.w - fitted.width) // 2
            y = (element.box.h - fitted.height) // 2
            inner = printed.crop((x, y, x + fitted.width, y + fitted.height))
            distances[source] = ImageStat.Stat(ImageChops.difference(inner, fitted)).mean[0]
        other = LEFT if position == RIGHT else RIGHT
        assert distances[position] < 8 < distances[other], (position, distances)


def test_a_missing_finger_leaves_its_box_empty(
    application: Application, profile: DocumentProfile, layout: CardLayout
) -> None:
    """The left index missing (amputated): its box is as on a card without fingers; the right
    index still prints."""
    one = Fingerprints(fingers(application).right_index, MissingFinger(LEFT, "amputated"))
    face = face_of(dataclasses.replace(application, fingerprints=one), profile)
    without = face_of(dataclasses.replace(application, fingerprints=None), profile)
    assert sorted(face.fingerprints) == [RIGHT]
    boxes = finger_boxes(layout)
    left_box = region(face, layout, boxes[LEFT]).tobytes()
    assert left_box == region(without, layout, boxes[LEFT]).tobytes()
    assert ridge_dots(region(face, layout, boxes[RIGHT])) > 0


def _with_declared_size(wsq: bytes, width: int, height: int) -> bytes:
    """The WSQ file with its frame header (SOF, FFA2) declaring another size."""
    at = wsq.index(b"\xff\xa2")
    return wsq[: at + 6] + struct.pack(">HH", height, width) + wsq[at + 10 :]


def test_a_finger_declaring_too_many_pixels_is_refused_before_decoding(
    application: Application, profile: DocumentProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header beyond the profile's largest finger is a face error, NBIS never runs, and the
    message names the finger position, not its bytes."""
    calls: list[int] = []
    monkeypatch.setattr(_wsq, "decompress", lambda data: calls.append(len(data)))
    right = fingers(application).right_index
    assert isinstance(right, FingerImage)
    assert profile.dg3 is not None
    huge = _with_declared_size(right.wsq, profile.dg3.max_width + 1, right.height)
    bad = Fingerprints(dataclasses.replace(right, wsq=huge), fingers(application).left_index)
    with pytest.raises(FaceError, match="finger 2 cannot be printed") as caught:
        face_of(dataclasses.replace(application, fingerprints=bad), profile)
    assert calls == []
    assert huge[:16].hex() not in str(caught.value) and repr(huge[:8]) not in str(caught.value)


def test_bytes_that_are_no_wsq_are_a_face_error(
    application: Application, profile: DocumentProfile
) -> None:
    """Bytes the WSQ plugin cannot even open are refused with the finger's position only."""
    right = fingers(application).right_index
    assert isinstance(right, FingerImage)
    bad = Fingerprints(dataclasses.replace(right, wsq=b"\x89PNG not wsq"),
                       fingers(application).left_index)
    with pytest.raises(FaceError, match=r"finger 2 cannot be printed: WSQ image cannot be "
                                        r"decoded \(\w+\)$"):
        face_of(dataclasses.replace(application, fingerprints=bad), profile)
