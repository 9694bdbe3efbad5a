"""The CCCD card face: every field really appears in its box, the MRZ is the prepared MRZ."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, ImageStat
from pydantic import ValidationError

from printers import fonts
from printers.errors import FaceError, FontMissing
from printers.face import CardFace, draw_mrz, draw_text, render_card
from printers.layout import MRZ, TEXT_FIELDS, CardLayout, Photo, Text
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
    """The CCCD layout has a box for every text field of CardFace, a photo and an MRZ."""
    assert sorted(str(e.field) for _, e in field_elements(layout)) == sorted(TEXT_FIELDS)
    assert set(TEXT_FIELDS) | {"mrz_lines", "photo"} == {
        f.name for f in dataclasses.fields(CardFace)
    }
    assert any(isinstance(e, Photo) for e in layout.front.elements)
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
