"""The card face: render a CCCD's front and back from a layout, and split them into panels.

Text and the MRZ go to the black resin panel (sharp, machine-readable); the portrait and the
decorations go to the dye panels (Y, M, C); the overlay covers the whole side.
"""

from __future__ import annotations

import io
import math
import unicodedata
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageOps, UnidentifiedImageError

from printers.errors import FaceError
from printers.fonts import font
from printers.layout import MRZ, Box, CardLayout, Photo, Shape, SideLayout, Text
from printers.panels import SIZE, Panel, pack

SIDES = ("front", "back")


@dataclass(frozen=True)
class CardFace:
    """What is printed on one card, as the document shows it (dates dd/mm/yyyy)."""

    personal_id: str
    full_name: str
    date_of_birth: str
    sex: str
    nationality: str
    place_of_origin: str
    place_of_residence: str
    expiry: str
    identifying_marks: str
    issue_date: str
    mrz_lines: tuple[str, str, str]
    photo: bytes


@dataclass(frozen=True)
class SideImage:
    """One rendered side: the dye layer (RGB) and the resin layer (L, 255 = ink)."""

    colour: Image.Image
    resin: Image.Image

    def preview(self) -> Image.Image:
        """What the printed side looks like."""
        card = self.colour.copy()
        card.paste((0, 0, 0), mask=self.resin)
        return card


@dataclass(frozen=True)
class RenderedCard:
    """Both sides of a card, rendered, with the panel split the printer is sent."""

    layout: CardLayout
    sides: dict[str, SideImage]

    @property
    def front(self) -> Image.Image:
        """The front as printed."""
        return self.sides["front"].preview()

    @property
    def back(self) -> Image.Image:
        """The back as printed."""
        return self.sides["back"].preview()

    def panels(self, side: str) -> list[Panel]:
        """The panels of ``side`` in ribbon order, packed for ``Db``."""
        image = self.sides[side]
        spec: SideLayout = getattr(self.layout, side)
        return [_panel(colour, image, self.layout.colour_levels) for colour in spec.panels]


def _panel(colour: str, image: SideImage, levels: int) -> Panel:
    if colour == "k":
        return Panel("k", 2, pack(image.resin.point(lambda v: 255 if v >= 128 else 0), 2))
    if colour == "o":
        return Panel("o", 2, pack(Image.new("L", SIZE, 255), 2))
    # Subtractive dye: yellow absorbs blue, magenta green, cyan red.
    channel = {"y": 2, "m": 1, "c": 0}[colour]
    return Panel(colour, levels, pack(ImageChops.invert(image.colour.getchannel(channel)), levels))


def render_card(face: CardFace, layout: CardLayout) -> RenderedCard:
    """Render both sides of ``face`` with ``layout``."""
    return RenderedCard(layout, {side: render_side(face, getattr(layout, side)) for side in SIDES})


def render_side(face: CardFace, side: SideLayout) -> SideImage:
    """Render every element of one side, in order."""
    colour = Image.new("RGB", SIZE, tuple(side.background))
    resin = Image.new("L", SIZE, 0)
    for element in side.elements:
        if isinstance(element, Shape):
            _shape(ImageDraw.Draw(colour), element)
        elif isinstance(element, Photo):
            colour.paste(_photo(face.photo, element.box), element.box.corners[:2])
        elif isinstance(element, MRZ):
            draw_mrz(ImageDraw.Draw(resin), element, face.mrz_lines)
        elif element.panel == "k":
            draw_text(ImageDraw.Draw(resin), element, face, 255)
        else:
            draw_text(ImageDraw.Draw(colour), element, face, tuple(element.colour))
    return SideImage(colour, resin)


def text_of(element: Text, face: CardFace) -> str:
    """The text an element shows: static, or the face's field, NFC-normalised."""
    value = element.text if element.field is None else getattr(face, element.field)
    value = unicodedata.normalize("NFC", str(value))
    return value.upper() if element.upper else value


def draw_text(
    draw: ImageDraw.ImageDraw, element: Text, face: CardFace, ink: int | tuple[int, ...]
) -> None:
    """Wrap and shrink the text until it fits its box; a field that cannot fit is an error."""
    value = text_of(element, face)
    lowest = element.min_size or element.size
    for size in range(element.size, lowest - 1, -1):
        lines = _wrap(value, element, size)
        line_height = round(size * 1.2)
        if lines is not None and len(lines) * line_height <= element.box.h + size // 5:
            break
    else:
        name = element.field or "static text"
        raise FaceError("", f"{name} does not fit its box at {lowest} px or more")
    typeface = font(element.font, size)
    for index, line in enumerate(lines):
        x = element.box.x
        if element.align == "center":
            x += (element.box.w - round(draw.textlength(line, font=typeface))) // 2
        draw.text((x, element.box.y + index * line_height), line, font=typeface, fill=ink)


def _wrap(value: str, element: Text, size: int) -> list[str] | None:
    typeface = font(element.font, size)
    lines: list[str] = []
    for word in value.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and typeface.getlength(candidate) <= element.box.w:
            lines[-1] = candidate
        elif typeface.getlength(word) <= element.box.w:
            lines.append(word)
        else:
            return None
    return lines if len(lines) <= element.max_lines else None


def draw_mrz(draw: ImageDraw.ImageDraw, element: MRZ, lines: tuple[str, str, str]) -> None:
    """ICAO 9303-3 §4.2, 9303-5 (TD1): three lines of 30 OCR-B characters at a fixed pitch."""
    typeface = font("ocr-b", element.size)
    for row, line in enumerate(lines):
        if len(line) * element.pitch > element.box.w:
            raise FaceError("", "an MRZ line is longer than the MRZ box")
        y = element.box.y + row * element.line_pitch
        for column, char in enumerate(line):
            draw.text((element.box.x + column * element.pitch, y), char, font=typeface, fill=255)


def _photo(photo: bytes, box: Box) -> Image.Image:
    try:
        with Image.open(io.BytesIO(photo)) as image:
            portrait = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FaceError("", "the photo is not a readable JPEG or PNG image") from exc
    return ImageOps.fit(portrait, (box.w, box.h), Image.Resampling.LANCZOS)


def _shape(draw: ImageDraw.ImageDraw, shape: Shape) -> None:
    fill = tuple(shape.fill) if shape.fill else None
    outline = tuple(shape.outline) if shape.outline else None
    left, top, right, bottom = shape.box.corners
    if shape.kind == "rect":
        draw.rectangle((left, top, right - 1, bottom - 1), fill, outline, shape.width)
    elif shape.kind == "ellipse":
        draw.ellipse((left, top, right - 1, bottom - 1), fill, outline, shape.width)
    else:
        draw.polygon(_star(shape.box), fill, outline)


def _star(box: Box) -> list[tuple[float, float]]:
    """The ten corners of a five-pointed star, point up, inscribed in ``box``."""
    cx, cy, radius = box.x + box.w / 2, box.y + box.h / 2, min(box.w, box.h) / 2
    points = []
    for index in range(10):
        r = radius if index % 2 == 0 else radius * 0.382
        angle = math.pi * (index / 5 - 0.5)
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle) + radius * 0.1))
    return points
