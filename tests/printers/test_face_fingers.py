"""The index fingers on the card's back: each in its own box, grey on the dye panels, a missing
finger leaving its box as the layout draws it, the cached rendering equal to a full one."""

from __future__ import annotations

import dataclasses
import random

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat
from pydantic import ValidationError

from personalization.synth import draw_fingerprint
from printers.bench import other_holder
from printers.errors import FaceError
from printers.face import SIDES, CardFace, RenderedCard, render_card, render_side
from printers.layout import CardLayout, Finger
from tests.printers.conftest import make_face

RIGHT, LEFT = 2, 7  # ISO/IEC 19794-4 Table 2


def finger(seed: int, size: tuple[int, int] = (256, 320)) -> Image.Image:
    """A drawn finger of no real person, 8-bit grey at 500 ppi."""
    return draw_fingerprint(random.Random(seed), *size)


FINGERS = {RIGHT: finger(1), LEFT: finger(2)}


def fingers_of(layout: CardLayout) -> dict[int, Finger]:
    return {e.position: e for e in layout.back.elements if isinstance(e, Finger)}


def box_of(rendered: RenderedCard, element: Finger) -> Image.Image:
    return rendered.sides["back"].colour.crop(element.box.corners)


def expected_in_box(blank: Image.Image, image: Image.Image) -> Image.Image:
    """What the box should hold: the finger scaled into it, centred, darkening the box."""
    fitted = ImageOps.contain(image, blank.size, Image.Resampling.LANCZOS).convert("RGB")
    x, y = (blank.width - fitted.width) // 2, (blank.height - fitted.height) // 2
    out = blank.copy()
    under = blank.crop((x, y, x + fitted.width, y + fitted.height))
    out.paste(ImageChops.multiply(under, fitted), (x, y))
    return out


def dark_share(region: Image.Image) -> float:
    """The share of dots darker than mid-grey (a ridge; the box itself is near white)."""
    histogram = region.convert("L").histogram()
    return sum(histogram[:128]) / (region.width * region.height)


def test_the_cccd_back_has_each_finger_inside_its_labelled_frame(layout: CardLayout) -> None:
    """Left index prints in the frame at x 650 (labelled left), right index in the one at 830."""
    elements = fingers_of(layout)
    assert elements[LEFT].finger == "left_index" and elements[RIGHT].finger == "right_index"
    frames = {e.box.x: e.box for e in layout.back.elements if e.kind == "rect" and e.box.y == 36}
    labels = {e.box.x: e.text for e in layout.back.elements if e.kind == "text" and e.text}
    for position, frame_x, label_x, word in ((LEFT, 650, 640, "Left"), (RIGHT, 830, 820, "Right")):
        box, frame = elements[position].box, frames[frame_x]
        assert frame.x < box.x and box.x + box.w < frame.x + frame.w
        assert frame.y < box.y and box.y + box.h < frame.y + frame.h
        assert f"{word} index finger" in str(labels[label_x])


def test_each_finger_prints_in_its_own_box(face: CardFace, layout: CardLayout) -> None:
    """Each box holds exactly its own finger scaled into it; its ridges are dark dots there."""
    blank = render_card(face, layout)
    printed = render_card(dataclasses.replace(face, fingerprints=FINGERS), layout)
    for position, element in fingers_of(layout).items():
        empty, region = box_of(blank, element), box_of(printed, element)
        assert dark_share(empty) == 0
        assert dark_share(region) > 0.15
        assert region.tobytes() == expected_in_box(empty, FINGERS[position]).tobytes()
        other = FINGERS[LEFT if position == RIGHT else RIGHT]
        assert region.tobytes() != expected_in_box(empty, other).tobytes()


def test_a_missing_finger_leaves_its_box_as_the_layout_draws_it(
    face: CardFace, layout: CardLayout
) -> None:
    """A card with only the right index finger: the left box is untouched, the right one inked."""
    blank = render_card(face, layout)
    one = render_card(dataclasses.replace(face, fingerprints={RIGHT: FINGERS[RIGHT]}), layout)
    elements = fingers_of(layout)
    assert box_of(one, elements[LEFT]).tobytes() == box_of(blank, elements[LEFT]).tobytes()
    assert box_of(one, elements[RIGHT]).tobytes() != box_of(blank, elements[RIGHT]).tobytes()


def test_fingers_go_to_the_dye_panels_only(face: CardFace, layout: CardLayout) -> None:
    """The resin panel is the same with or without fingers; the dye panels of the back change."""
    blank = render_card(face, layout)
    printed = render_card(dataclasses.replace(face, fingerprints=FINGERS), layout)
    assert printed.sides["back"].resin.tobytes() == blank.sides["back"].resin.tobytes()
    before = {p.colour: p.data for p in blank.panels("back")}
    after = {p.colour: p.data for p in printed.panels("back")}
    assert [c for c in "ymcko" if before[c] != after[c]] == ["y", "m", "c"]
    assert printed.panels("front") == blank.panels("front")


FINGER_SETS = {
    "both": FINGERS,
    "right only": {RIGHT: FINGERS[RIGHT]},
    "left only": {LEFT: FINGERS[LEFT]},
    "largest and widest": {RIGHT: finger(3, (800, 1000)), LEFT: finger(4, (800, 250))},
}


@pytest.mark.parametrize("name", FINGER_SETS)
def test_cached_rendering_with_fingers_equals_rendering_from_scratch(
    layout: CardLayout, name: str
) -> None:
    """Fingers drawn over the cached static back give the dots and panels of a full rendering."""
    face = make_face(fingerprints=FINGER_SETS[name])
    cached = render_card(face, layout)
    assert cached.sides["back"].static_dye is not None  # the cache served
    scratch = {side: render_side(face, getattr(layout, side)) for side in SIDES}
    for side in SIDES:
        assert cached.sides[side].colour.tobytes() == scratch[side].colour.tobytes(), side
        assert cached.panels(side) == RenderedCard(layout, scratch).panels(side), side


@pytest.mark.parametrize("size", [(800, 1000), (800, 250), (200, 1000), (100, 120)])
def test_a_finger_of_any_shape_stays_inside_its_box(
    face: CardFace, layout: CardLayout, size: tuple[int, int]
) -> None:
    """Scaled with its proportions kept, a finger touches the box's edges but never leaves it."""
    element = fingers_of(layout)[RIGHT]
    blank = render_card(face, layout).sides["back"].colour
    printed = render_card(dataclasses.replace(face, fingerprints={RIGHT: finger(5, size)}), layout)
    changed = ImageChops.difference(printed.sides["back"].colour, blank).getbbox()
    assert changed is not None
    left, top, right, bottom = element.box.corners
    assert left <= changed[0] and top <= changed[1] and changed[2] <= right and changed[3] <= bottom
    assert (
        changed[2] - changed[0] >= element.box.w - 2 or changed[3] - changed[1] >= element.box.h - 2
    )


def test_a_finger_not_in_grey_is_refused(face: CardFace, layout: CardLayout) -> None:
    """The face carries fingers as 8-bit grey; anything else is a face error, never drawn."""
    colour = {RIGHT: FINGERS[RIGHT].convert("RGB")}
    with pytest.raises(FaceError, match="not 8-bit grey"):
        render_card(dataclasses.replace(face, fingerprints=colour), layout)


@pytest.mark.parametrize(
    "element",
    [
        {"kind": "finger", "finger": "thumb", "box": {"x": 0, "y": 0, "w": 10, "h": 10}},
        {
            "kind": "finger",
            "finger": "left_index",
            "box": {"x": 0, "y": 0, "w": 10, "h": 10},
            "x": 1,
        },
        {"kind": "finger", "finger": "left_index", "box": {"x": 950, "y": 0, "w": 100, "h": 10}},
    ],
)
def test_the_layout_refuses_a_bad_finger_element(layout: CardLayout, element: dict) -> None:
    """An unknown finger, an unknown key or a box off the card is refused at load."""
    raw = layout.model_dump()
    raw["back"]["elements"] = [*raw["back"]["elements"], element]
    with pytest.raises(ValidationError):
        CardLayout.model_validate(raw)


def test_the_bench_second_holder_has_other_fingers_and_can(face: CardFace) -> None:
    """bench's second holder differs in its fingers and CAN too, so no rendering is reused."""
    first = dataclasses.replace(face, fingerprints=FINGERS, can="042917")
    second = other_holder(first)
    assert second.can not in (None, first.can)
    assert second.fingerprints.keys() == first.fingerprints.keys()
    for position, image in first.fingerprints.items():
        other = second.fingerprints[position]
        assert other.size == image.size
        assert ImageStat.Stat(ImageChops.difference(other, image)).mean[0] > 10


def test_a_face_with_fingers_stays_hashable_and_compares_them(face: CardFace) -> None:
    """The fingers take part in equality, not in the hash (a dict of images has none)."""
    first = dataclasses.replace(face, fingerprints=FINGERS)
    assert hash(first) == hash(face)
    assert first != face
    assert first == dataclasses.replace(face, fingerprints=dict(FINGERS))
