"""The CCCD card face: every field really appears in its box, the MRZ is the prepared MRZ."""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, ImageStat
from pydantic import ValidationError

from printers import fonts
from printers.errors import FaceError, FontMissing
from printers.face import (
    SIDES,
    CardFace,
    RenderedCard,
    draw_mrz,
    draw_text,
    render_card,
    render_side,
)
from printers.facecache import static_side
from printers.layout import MRZ, OPTIONAL_FIELDS, TEXT_FIELDS, CardLayout, Finger, Photo, Text
from printers.panels import SIZE, compose
from tests.printers.conftest import make_face


def field_elements(layout: CardLayout) -> list[tuple[str, Text]]:
    return [
        (side, e)
        for side in ("front", "back")
        for e in getattr(layout, side).elements
        if isinstance(e, Text) and e.field
    ]


def alone(element: Text, face: CardFace) -> Image.Image:
    canvas = Image.new("L", SIZE, 0)
    draw_text(ImageDraw.Draw(canvas), element, face, 255)
    return canvas.crop(element.box.corners)


def test_layout_shows_every_field(layout: CardLayout) -> None:
    """The CCCD layout has a box for every text field of CardFace but the CAN (a CCCD does not
    print it), a photo, both index fingers and an MRZ."""
    assert sorted(str(e.field) for _, e in field_elements(layout)) == sorted(TEXT_FIELDS)
    assert set(TEXT_FIELDS) | set(OPTIONAL_FIELDS) | {"mrz_lines", "photo", "fingerprints"} == {
        f.name for f in dataclasses.fields(CardFace)
    }
    assert any(isinstance(e, Photo) for e in layout.front.elements)
    assert sorted(e.finger for e in layout.back.elements if isinstance(e, Finger)) == [
        "left_index",
        "right_index",
    ]
    assert any(isinstance(e, MRZ) for e in layout.back.elements)


def test_every_field_appears_in_its_box(face: CardFace, layout: CardLayout) -> None:
    """Rendering a field alone in its box gives exactly that box of the full card's resin panel."""
    rendered = render_card(face, layout)
    for side, element in field_elements(layout):
        box = rendered.sides[side].resin.crop(element.box.corners)
        expected = alone(element, face)
        assert ImageStat.Stat(expected).extrema[0][1] == 255, element.field
        assert ImageChops.difference(box, expected).getbbox() is None, element.field


def test_each_field_comes_from_the_data(face: CardFace, layout: CardLayout) -> None:
    """Changing one field's value changes its box and no other field's box."""
    rendered = render_card(face, layout)
    for _side, element in field_elements(layout):
        assert element.field is not None
        other = dataclasses.replace(face, **{element.field: "Khác 9"})  # type: ignore[arg-type]
        changed = render_card(other, layout)
        for side2, element2 in field_elements(layout):
            a = rendered.sides[side2].resin.crop(element2.box.corners)
            b = changed.sides[side2].resin.crop(element2.box.corners)
            differs = ImageChops.difference(a, b).getbbox() is not None
            assert differs == (element2 is element), (element.field, element2.field)


def test_back_carries_the_prepared_mrz(face: CardFace, layout: CardLayout) -> None:
    """The MRZ box of the back is the prepared three lines in OCR-B, and nothing else."""
    mrz = next(e for e in layout.back.elements if isinstance(e, MRZ))
    rendered = render_card(face, layout)
    canvas = Image.new("L", SIZE, 0)
    draw_mrz(ImageDraw.Draw(canvas), mrz, face.mrz_lines)
    box = rendered.sides["back"].resin.crop(mrz.box.corners)
    assert ImageChops.difference(box, canvas.crop(mrz.box.corners)).getbbox() is None
    wrong = (face.mrz_lines[0], face.mrz_lines[1], face.mrz_lines[2].replace("N", "M", 1))
    other = render_card(dataclasses.replace(face, mrz_lines=wrong), layout)
    assert ImageChops.difference(box, other.sides["back"].resin.crop(mrz.box.corners)).getbbox()


def test_mrz_characters_are_ocr_b_at_fixed_pitch(face: CardFace, layout: CardLayout) -> None:
    """Each MRZ cell holds its character's OCR-B glyph (compared cell by cell)."""
    mrz = next(e for e in layout.back.elements if isinstance(e, MRZ))
    resin = render_card(face, layout).sides["back"].resin
    typeface = fonts.font("ocr-b", mrz.size)
    for row, line in enumerate(face.mrz_lines):
        for column, char in enumerate(line):
            x, y = mrz.box.x + column * mrz.pitch, mrz.box.y + row * mrz.line_pitch
            cell = Image.new("L", (mrz.pitch, mrz.line_pitch), 0)
            ImageDraw.Draw(cell).text((0, 0), char, font=typeface, fill=255)
            got = resin.crop((x, y, x + mrz.pitch, y + mrz.line_pitch))
            assert ImageChops.difference(got, cell).getbbox() is None, (row, column)


def test_vietnamese_diacritics_have_glyphs() -> None:
    """No letter of a Vietnamese name falls back to the missing-glyph box in DejaVu Sans."""
    text = "NGUYỄN THỊ THÙY DƯƠNG Đặng Ộ ỹ ữ ằ ẩ ể ợ ở"
    for key in ("sans", "sans-bold"):
        typeface = fonts.font(key, 32)

        def glyph(char: str, typeface: ImageFont.FreeTypeFont = typeface) -> bytes:
            canvas = Image.new("L", (48, 48), 0)
            ImageDraw.Draw(canvas).text((4, 2), char, font=typeface, fill=255)
            return canvas.tobytes()

        missing = glyph("\ue000")
        for char in set(text) - {" "}:
            assert glyph(char) != missing, (key, char)


def test_decomposed_input_renders_as_composed(face: CardFace, layout: CardLayout) -> None:
    """A name typed with combining accents (NFD) prints the same as its NFC form."""
    import unicodedata

    nfd = dataclasses.replace(face, full_name=unicodedata.normalize("NFD", face.full_name))
    a, b = render_card(face, layout), render_card(nfd, layout)
    assert ImageChops.difference(a.sides["front"].resin, b.sides["front"].resin).getbbox() is None


def test_photo_is_printed_in_dye(face: CardFace, layout: CardLayout) -> None:
    """The YMC panels, composed, reproduce the portrait in its box (within dye quantisation)."""
    photo = next(e for e in layout.front.elements if isinstance(e, Photo))
    rendered = render_card(face, layout)
    printed = compose(rendered.panels("front")).crop(photo.box.corners)
    with Image.open(__import__("io").BytesIO(face.photo)) as image:
        expected = ImageOps.fit(image.convert("RGB"), (photo.box.w, photo.box.h))
    diff = ImageStat.Stat(ImageChops.difference(printed, expected)).mean
    assert max(diff) < 10


def test_panels_in_ribbon_order(face: CardFace, layout: CardLayout) -> None:
    """panels(side) follows the layout's ribbon order; resin and overlay are 2-level."""
    rendered = render_card(face, layout)
    panels = rendered.panels("front")
    assert [p.colour for p in panels] == list(layout.front.panels)
    assert all(p.levels == 2 for p in panels if p.colour in "ko")
    assert rendered.front.size == rendered.back.size == (1016, 648)


def test_text_that_cannot_fit_is_an_error(face: CardFace, layout: CardLayout) -> None:
    """A field too long for its box even at the smallest size raises FaceError naming the field."""
    long = dataclasses.replace(face, place_of_origin="Xã " * 80)
    with pytest.raises(FaceError, match="place_of_origin"):
        render_card(long, layout)


def test_unreadable_photo_is_an_error(layout: CardLayout) -> None:
    """A photo that is not an image raises FaceError."""
    with pytest.raises(FaceError, match="photo"):
        render_card(make_face(photo=b"not an image"), layout)


def test_layout_rejects_overlapping_resin_boxes(layout: CardLayout) -> None:
    """Two resin boxes that overlap would hide each other: the layout is refused."""
    raw = layout.model_dump()
    raw["back"]["elements"][1]["box"] = dict(raw["back"]["elements"][2]["box"])
    with pytest.raises(ValidationError, match="overlap"):
        CardLayout.model_validate(raw)


def test_layout_rejects_unknown_keys_and_off_card_boxes(layout: CardLayout) -> None:
    """Unknown keys, boxes leaving the card and bad level counts are refused with the key named."""
    raw = layout.model_dump()
    raw["front"]["elements"][0]["colour_typo"] = 1
    with pytest.raises(ValidationError, match="colour_typo"):
        CardLayout.model_validate(raw)
    raw = layout.model_dump()
    raw["back"]["elements"][-1]["box"]["y"] = 600
    with pytest.raises(ValidationError, match="leaves"):
        CardLayout.model_validate(raw)
    with pytest.raises(ValidationError, match="colour_levels"):
        CardLayout.model_validate({**layout.model_dump(), "colour_levels": 2})


def test_missing_font_names_the_debian_package(tmp_path, monkeypatch) -> None:
    """Without the font files, FontMissing says which Debian package to install."""
    monkeypatch.setattr(fonts, "FONT_DIRS", (tmp_path,))
    fonts.font_path.cache_clear()
    try:
        with pytest.raises(FontMissing, match="fonts-ocr-b"):
            fonts.font_path("ocr-b")
    finally:
        fonts.font_path.cache_clear()


def from_scratch(face: CardFace, layout: CardLayout) -> RenderedCard:
    return RenderedCard(layout, {side: render_side(face, getattr(layout, side)) for side in SIDES})


def assert_same_card(a: RenderedCard, b: RenderedCard) -> None:
    for side in SIDES:
        assert a.sides[side].colour.tobytes() == b.sides[side].colour.tobytes(), side
        assert a.sides[side].resin.tobytes() == b.sides[side].resin.tobytes(), side
        assert a.panels(side) == b.panels(side), side


def other_portrait() -> bytes:
    image = Image.new("RGB", (280, 360), (40, 60, 20))
    draw = ImageDraw.Draw(image)
    for step in range(0, 280, 14):
        draw.line((step, 0, 280 - step, 360), fill=(step % 256, 255 - step % 256, 128), width=5)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


FACES: list[dict[str, object]] = [
    {},
    {"full_name": "Lê Văn A", "sex": "Nam", "place_of_residence": "Hà Nội"},
    {
        "place_of_residence": "Thôn Thượng " * 7 + "Huyện Mèo Vạc, Hà Giang",
        "photo": other_portrait(),
    },
    {
        "identifying_marks": "Sẹo chấm C:1cm dưới sau mép phải",
        "issue_date": "01/01/2030",
        "mrz_lines": ("I" * 30, "<" * 30, "W" * 30),
    },
    {"personal_id": "999999999999", "full_name": "ĐỖ THỊ Ỷ " * 4, "nationality": "Việt Nam"},
]


@pytest.mark.parametrize("changes", FACES)
def test_cached_rendering_equals_rendering_from_scratch(
    layout: CardLayout, changes: dict[str, object]
) -> None:
    """A card drawn over its layout's cached static side has the dots and panels of a full one."""
    face = make_face(**changes)
    cached = render_card(face, layout)
    assert all(cached.sides[side].static_dye is not None for side in SIDES)  # the cache served
    assert_same_card(cached, from_scratch(face, layout))


Raw = dict[str, Any]  # one element of a layout, as model_dump gives it


def variant(layout: CardLayout, side: str, change) -> CardLayout:
    raw = layout.model_dump()
    raw[side]["elements"] = change(list(raw[side]["elements"]))
    return CardLayout.model_validate(raw)


def framed_portrait(elements: list[Raw]) -> list[Raw]:
    photo = next(e for e in elements if e["kind"] == "photo")
    return [*elements, {"kind": "rect", "box": photo["box"], "outline": [9, 9, 9], "width": 6}]


def label_above_mrz(elements: list[Raw]) -> list[Raw]:
    box = {"x": 40, "y": 440, "w": 400, "h": 40}
    return [*elements, {"kind": "text", "text": "MẪU / SPECIMEN", "box": box, "size": 30}]


def coloured_id(elements: list[Raw]) -> list[Raw]:
    red = {"panel": "colour", "colour": [200, 28, 36]}
    return [{**e, **red} if e.get("field") == "personal_id" else e for e in elements]


def test_static_ink_on_a_value_renders_from_scratch(face: CardFace, layout: CardLayout) -> None:
    """A static element the layout draws over a card value's ink makes that side render in full."""
    framed = variant(layout, "front", framed_portrait)
    rendered = render_card(face, framed)
    assert rendered.sides["front"].static_dye is None
    assert rendered.sides["back"].static_dye is not None
    assert_same_card(rendered, from_scratch(face, framed))


@pytest.mark.parametrize(("side", "change"), [("back", label_above_mrz), ("front", coloured_id)])
def test_cached_rendering_of_other_layouts(
    face: CardFace, layout: CardLayout, side: str, change
) -> None:
    """A label after the MRZ that its ink misses, a field in dye: the cache serves, dots agree."""
    other = variant(layout, side, change)
    for holder in (face, make_face(**FACES[4])):
        rendered = render_card(holder, other)
        assert rendered.sides[side].static_dye is not None
        assert_same_card(rendered, from_scratch(holder, other))


def test_rendering_leaves_the_static_cache_untouched(layout: CardLayout) -> None:
    """Cards drawn over the cached static sides never write into them (no card data stays)."""
    before = {s: static_side(getattr(layout, s), layout.colour_levels) for s in SIDES}
    pristine = {s: static_side.__wrapped__(getattr(layout, s), layout.colour_levels) for s in SIDES}
    for changes in FACES:
        render_card(make_face(**changes), layout)
    for side in SIDES:
        assert static_side(getattr(layout, side), layout.colour_levels) is before[side]
        assert before[side].colour.tobytes() == pristine[side].colour.tobytes()
        assert before[side].resin.tobytes() == pristine[side].resin.tobytes()
        assert before[side].dye == pristine[side].dye
