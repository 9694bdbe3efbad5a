"""The CAN as a card-face field: printed where a layout shows it, a layout error naming the
layout and the field when the card has none, never in a repr or an error message."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from printers.errors import FaceError, LayoutError
from printers.face import CardFace, draw_text, render_card, render_side
from printers.layout import CardLayout, Text
from printers.panels import SIZE

CAN = "042917"
CAN_BOX = {"x": 820, "y": 608, "w": 180, "h": 34}


def with_can(layout: CardLayout, box: dict[str, int] = CAN_BOX) -> CardLayout:
    """The CCCD layout with the CAN at the foot of the front (below the place of residence)."""
    raw = layout.model_dump()
    element = {"kind": "text", "field": "can", "box": box, "font": "sans-bold", "size": 26}
    raw["name"] = "cccd-can-test"
    raw["front"]["elements"] = [*raw["front"]["elements"], element]
    return CardLayout.model_validate(raw)


def can_element(layout: CardLayout) -> Text:
    return next(e for e in layout.front.elements if isinstance(e, Text) and e.field == "can")


def test_the_can_prints_in_its_box_on_the_resin_panel(face: CardFace, layout: CardLayout) -> None:
    """The CAN box of the front holds the CAN's text, exactly as drawn alone."""
    shown = with_can(layout)
    element = can_element(shown)
    rendered = render_card(dataclasses.replace(face, can=CAN), shown)
    region = rendered.sides["front"].resin.crop(element.box.corners)
    alone = Image.new("L", SIZE, 0)
    draw_text(ImageDraw.Draw(alone), element, dataclasses.replace(face, can=CAN), 255)
    assert ImageStat.Stat(region).extrema[0][1] == 255
    assert ImageChops.difference(region, alone.crop(element.box.corners)).getbbox() is None
    other = render_card(dataclasses.replace(face, can="999999"), shown)
    assert other.sides["front"].resin.crop(element.box.corners).tobytes() != region.tobytes()


def test_a_layout_without_a_can_box_prints_no_can(face: CardFace, layout: CardLayout) -> None:
    """The CCCD layout shows no CAN: a face carrying one renders exactly as one without."""
    with_value = render_card(dataclasses.replace(face, can=CAN), layout)
    without = render_card(face, layout)
    for side in ("front", "back"):
        assert with_value.panels(side) == without.panels(side)


def test_a_card_without_a_can_on_a_layout_showing_it_is_a_layout_error(
    face: CardFace, layout: CardLayout
) -> None:
    """The error names the layout and the field, and no value of the card."""
    shown = with_can(layout)
    with pytest.raises(LayoutError) as caught:
        render_card(face, shown)
    assert caught.value.printer == "cccd-can-test"
    assert "'can'" in str(caught.value) and str(caught.value).startswith("cccd-can-test: ")
    assert face.personal_id not in str(caught.value)
    with pytest.raises(LayoutError, match="'can'"):
        render_side(face, shown.front)


def test_the_can_is_in_no_repr_and_no_error(face: CardFace, layout: CardLayout) -> None:
    """A face's repr leaves the CAN and the fingers out; a CAN too long for its box is an
    error that says so without the CAN."""
    carrying = dataclasses.replace(face, can=CAN)
    assert CAN not in repr(carrying) and "fingerprints" not in repr(carrying)
    tiny = with_can(layout, {"x": 820, "y": 608, "w": 30, "h": 34})
    with pytest.raises(FaceError) as caught:
        render_card(carrying, tiny)
    assert "can does not fit" in str(caught.value)
    assert CAN not in str(caught.value) and CAN not in repr(caught.value)
