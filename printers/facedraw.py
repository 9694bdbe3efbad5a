"""Drawing one card-face element: text wrapped and shrunk into its box, the MRZ at its fixed
pitch, the portrait, the fingers, the decorations. Shared by the from-scratch and the cached
renderer.

The colour layer (RGB) takes decorations, the portrait, the fingers and colour text; the
resin layer (L, 255 = ink) takes black text and the MRZ.
"""

from __future__ import annotations

import io
import math
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image, ImageChops, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from printers.errors import FaceError, LayoutError
from printers.fonts import font
from printers.layout import MRZ, Box, Finger, Photo, Shape, Text
from printers.panels import Extent, union

if TYPE_CHECKING:
    from printers.face import CardFace

Element = Text | Photo | Finger | MRZ | Shape
Ink = int | tuple[int, ...]
Line = tuple[tuple[int, int], str, ImageFont.FreeTypeFont]  # where, what, in which font


def is_variable(element: Element) -> bool:
    """True for what depends on the card: the portrait, the fingers, the MRZ, a text showing
    a field."""
    return isinstance(element, Photo | Finger | MRZ) or (
        isinstance(element, Text) and element.field is not None
    )


def on_resin(element: Element) -> bool:
    """True for what prints with the black resin panel."""
    return isinstance(element, MRZ) or (isinstance(element, Text) and element.panel == "k")


def text_ink(element: Text) -> Ink:
    """The ink of a text on its layer."""
    return 255 if element.panel == "k" else tuple(element.colour)


def draw_element(colour: Image.Image, resin: Image.Image, element: Element, face: CardFace) -> None:
    """Draw one element of ``face`` on the layer it belongs to."""
    if isinstance(element, Shape):
        draw_shape(ImageDraw.Draw(colour), element, *shape_inks(element))
    elif isinstance(element, Photo):
        colour.paste(fit_photo(face.photo, element.box), element.box.corners[:2])
    elif isinstance(element, Finger):
        print_finger(colour, element, face)
    elif isinstance(element, MRZ):
        draw_mrz(ImageDraw.Draw(resin), element, face.mrz_lines)
    else:
        draw_text(
            ImageDraw.Draw(resin if on_resin(element) else colour), element, face, text_ink(element)
        )


def shown(element: Text, value: str) -> str:
    """``value`` as the element shows it: NFC-normalised, upper-cased if the layout asks."""
    value = unicodedata.normalize("NFC", value)
    return value.upper() if element.upper else value


def text_of(element: Text, face: CardFace) -> str:
    """The text an element shows: static, or the face's field, NFC-normalised; a field the
    card does not have (an optional one, such as the CAN) is a layout error."""
    value = element.text if element.field is None else getattr(face, element.field)
    if value is None:
        raise LayoutError(
            "", f"the layout shows the field {element.field!r}, which this card does not have"
        )
    return shown(element, str(value))


def draw_text(draw: ImageDraw.ImageDraw, element: Text, face: CardFace, ink: Ink) -> None:
    """Wrap and shrink the text until it fits its box; a field that cannot fit is an error."""
    draw_lines(draw, fit_text(draw, element, text_of(element, face)), ink)


def fit_text(draw: ImageDraw.ImageDraw, element: Text, value: str) -> list[Line]:
    """Wrap ``value`` at the largest size that fits the element's box; where each line goes."""
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
    placed: list[Line] = []
    for index, line in enumerate(lines):
        x = element.box.x
        if element.align == "center":
            x += (element.box.w - round(draw.textlength(line, font=typeface))) // 2
        placed.append(((x, element.box.y + index * line_height), line, typeface))
    return placed


def draw_lines(draw: ImageDraw.ImageDraw, lines: list[Line], ink: Ink) -> None:
    """Draw placed lines of text."""
    for xy, line, typeface in lines:
        draw.text(xy, line, font=typeface, fill=ink)


def lines_extent(draw: ImageDraw.ImageDraw, lines: list[Line]) -> Extent | None:
    """The rectangle holding every dot the lines can ink (None for no line)."""
    return union([_int_box(draw.textbbox(xy, line, font=typeface)) for xy, line, typeface in lines])


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
    for (x, y), char in mrz_cells(element, lines):
        draw.text((x, y), char, font=typeface, fill=255)


def stamp_mrz(layer: Image.Image, element: MRZ, lines: tuple[str, str, str]) -> None:
    """``draw_mrz`` with each glyph pasted from a cache instead of rendered again.

    Pasting ink through a glyph's alpha blends exactly as ``draw.text`` does (both fill
    through the same mask), so the dots are the same.
    """
    for (x, y), char in mrz_cells(element, lines):
        (dx, dy), alpha = glyph("ocr-b", element.size, char)
        layer.paste(255, (x + dx, y + dy), alpha)


@lru_cache(maxsize=1024)
def glyph(key: str, size: int, char: str) -> tuple[tuple[int, int], Image.Image]:
    """A character as ``draw.text`` inks it: its offset from the pen position, and its alpha.

    The canvas is the text bounding box, which is exactly the mask ``draw.text`` pastes.
    """
    typeface = font(key, size)
    left, top, right, bottom = _int_box(typeface.getbbox(char, mode="L"))
    alpha = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(alpha).text((-left, -top), char, font=typeface, fill=255)
    return (left, top), alpha


def mrz_cells(element: MRZ, lines: tuple[str, str, str]) -> list[tuple[tuple[int, int], str]]:
    """Where each MRZ character goes; a line longer than the box is an error."""
    cells = []
    for row, line in enumerate(lines):
        if len(line) * element.pitch > element.box.w:
            raise FaceError("", "an MRZ line is longer than the MRZ box")
        y = element.box.y + row * element.line_pitch
        cells += [((element.box.x + column * element.pitch, y), c) for column, c in enumerate(line)]
    return cells


def mrz_extent(element: MRZ, lines: tuple[str, str, str]) -> Extent | None:
    """The rectangle holding every dot the MRZ can ink (from the glyphs ``stamp_mrz`` pastes)."""
    boxes: list[Extent | None] = []
    for (x, y), char in mrz_cells(element, lines):
        (dx, dy), alpha = glyph("ocr-b", element.size, char)
        boxes.append((x + dx, y + dy, x + dx + alpha.width, y + dy + alpha.height))
    return union(boxes)


def fit_photo(photo: bytes, box: Box) -> Image.Image:
    """The portrait, decoded and cropped to fill ``box``."""
    try:
        with Image.open(io.BytesIO(photo)) as image:
            portrait = image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FaceError("", "the photo is not a readable JPEG or PNG image") from exc
    return ImageOps.fit(portrait, (box.w, box.h), Image.Resampling.LANCZOS)


def fit_finger(image: Image.Image, box: Box) -> Image.Image:
    """A finger image (8-bit grey), scaled to fit inside ``box`` with its proportions kept."""
    if image.mode != "L":
        raise FaceError("", "a finger image is not 8-bit grey")
    return ImageOps.contain(image, (box.w, box.h), Image.Resampling.LANCZOS)


def print_finger(layer: Image.Image, element: Finger, face: CardFace) -> Extent | None:
    """Print the card's finger centred in its box, as ink over what the layer shows there:
    the light paper of the capture leaves the box almost as it is, the ridges darken it.
    Nothing for a finger the card lacks; else the rectangle printed."""
    image = face.fingerprints.get(element.position)
    if image is None:
        return None
    fitted = fit_finger(image, element.box)
    left = element.box.x + (element.box.w - fitted.width) // 2
    top = element.box.y + (element.box.h - fitted.height) // 2
    where = (left, top, left + fitted.width, top + fitted.height)
    under = layer.crop(where)
    layer.paste(ImageChops.multiply(under, fitted.convert(under.mode)), where[:2])
    return where


def shape_inks(shape: Shape) -> tuple[Ink | None, Ink | None]:
    """A shape's fill and outline colours (None: not drawn)."""
    return (
        tuple(shape.fill) if shape.fill else None,
        tuple(shape.outline) if shape.outline else None,
    )


def draw_shape(
    draw: ImageDraw.ImageDraw, shape: Shape, fill: Ink | None, outline: Ink | None
) -> None:
    """Draw a rectangle, ellipse or star inside the shape's box."""
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


def _int_box(box: tuple[float, float, float, float]) -> Extent:
    """A text bounding box, widened to whole dots."""
    return (math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3]))
