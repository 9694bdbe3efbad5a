"""The static part of a card side, drawn once per layout: what no card's values change.

Background, decorations and fixed labels are drawn once into a ``StaticSide``; each card then
draws only its own values (portrait, fingers, fields, MRZ) on a copy. That reorders drawing: a
static element the layout draws *after* a card value is already there. Drawing operations that
touch disjoint dots commute, so the result is the same unless a value's ink reaches a dot of
such a later static element; ``StaticSide.draw`` checks exactly that (the value's ink rectangle
against the static element's dots) and gives up, for a from-scratch render, when it does.

The cache holds layouts and their static drawings only: never a card's values.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from PIL import Image, ImageChops, ImageDraw

from printers.facedraw import (
    Element,
    draw_lines,
    draw_shape,
    fit_photo,
    fit_text,
    is_variable,
    lines_extent,
    mrz_extent,
    on_resin,
    print_finger,
    shape_inks,
    shown,
    stamp_mrz,
    text_ink,
    text_of,
)
from printers.layout import MRZ, Finger, Photo, Shape, SideLayout, Text
from printers.panels import DYES, SIZE, Extent, pack, union

if TYPE_CHECKING:
    from printers.face import CardFace

LAYOUTS = 8  # static sides kept, ~4.5 MB each: both sides of up to four layouts


@dataclass(frozen=True)
class Footprint:
    """The dots a static element inks: their bounding box and, cropped to it, a mask."""

    extent: Extent
    mask: Image.Image

    def touches(self, extent: Extent) -> bool:
        """True when some inked dot lies inside ``extent``."""
        left, top = max(extent[0], self.extent[0]), max(extent[1], self.extent[1])
        right, bottom = min(extent[2], self.extent[2]), min(extent[3], self.extent[3])
        if left >= right or top >= bottom:
            return False
        x, y = self.extent[:2]
        return self.mask.crop((left - x, top - y, right - x, bottom - y)).getbbox() is not None


@dataclass(frozen=True)
class Step:
    """A card value to draw, and the static dots drawn after it on its layer by the layout."""

    element: Text | Photo | Finger | MRZ
    resin: bool
    later: tuple[Footprint, ...]


@dataclass(frozen=True)
class Drawn:
    """A card's side drawn over the static side; ``colour`` differs from it only in ``changed``."""

    colour: Image.Image
    resin: Image.Image
    changed: Extent | None


@dataclass(frozen=True)
class StaticSide:
    """One side's static drawing (never modified), its packed dye panels, the card's steps."""

    colour: Image.Image
    resin: Image.Image
    dye: dict[str, bytes]
    steps: tuple[Step, ...]

    def draw(self, face: CardFace) -> Drawn | None:
        """Draw the card's values on a copy; None if one would touch a later static element."""
        colour, resin = self.colour.copy(), self.resin.copy()
        changed: Extent | None = None
        for step in self.steps:
            measure = not step.resin or bool(step.later)
            extent = _draw_value(resin if step.resin else colour, step.element, face, measure)
            if extent is not None and any(dots.touches(extent) for dots in step.later):
                return None
            if not step.resin:
                changed = union([changed, extent])
        return Drawn(colour, resin, changed)


@lru_cache(maxsize=LAYOUTS)
def static_side(side: SideLayout, levels: int) -> StaticSide:
    """The static drawing of ``side`` with its dye panels packed at ``levels`` (cached)."""
    colour = Image.new("RGB", SIZE, tuple(side.background))
    resin = Image.new("L", SIZE, 0)
    for element in side.elements:
        if isinstance(element, Shape | Text) and not is_variable(element):
            _draw_static(colour, resin, element)
    dye = {
        name: pack(ImageChops.invert(colour.getchannel(index)), levels)
        for index, name in enumerate(DYES)
    }
    return StaticSide(colour, resin, dye, _steps(side.elements))


def _steps(elements: tuple[Element, ...]) -> tuple[Step, ...]:
    """Each card value with the footprints of the static elements after it on its layer."""
    steps = []
    for index, element in enumerate(elements):
        if isinstance(element, Text | Photo | Finger | MRZ) and is_variable(element):
            later = tuple(
                dots
                for other in elements[index + 1 :]
                if isinstance(other, Shape | Text)
                and not is_variable(other)
                and on_resin(other) == on_resin(element)
                and (dots := _footprint(other)) is not None
            )
            steps.append(Step(element, on_resin(element), later))
    return tuple(steps)


def _draw_static(colour: Image.Image, resin: Image.Image, element: Shape | Text) -> None:
    """Draw a decoration or a fixed label."""
    if isinstance(element, Shape):
        draw_shape(ImageDraw.Draw(colour), element, *shape_inks(element))
        return
    draw = ImageDraw.Draw(resin if on_resin(element) else colour)
    draw_lines(draw, fit_text(draw, element, shown(element, str(element.text))), text_ink(element))


def _footprint(element: Shape | Text) -> Footprint | None:
    """The dots a static element inks, found by drawing it alone on black.

    A shape gets two different inks: Pillow skips an outline of the fill's own colour.
    """
    canvas = Image.new("L", SIZE, 0)
    draw = ImageDraw.Draw(canvas)
    if isinstance(element, Shape):
        fill, outline = shape_inks(element)
        draw_shape(draw, element, None if fill is None else 255, None if outline is None else 254)
    else:
        draw_lines(draw, fit_text(draw, element, shown(element, str(element.text))), 255)
    extent = canvas.getbbox()
    return None if extent is None else Footprint(extent, canvas.crop(extent))


def _draw_value(
    layer: Image.Image, element: Text | Photo | Finger | MRZ, face: CardFace, measure: bool
) -> Extent | None:
    """Draw one card value; with ``measure``, return a rectangle holding every dot it inked."""
    draw = ImageDraw.Draw(layer)
    if isinstance(element, Photo):
        layer.paste(fit_photo(face.photo, element.box), element.box.corners[:2])
        return element.box.corners
    if isinstance(element, Finger):
        return print_finger(layer, element, face)
    if isinstance(element, MRZ):
        stamp_mrz(layer, element, face.mrz_lines)
        return mrz_extent(element, face.mrz_lines) if measure else None
    lines = fit_text(draw, element, text_of(element, face))
    draw_lines(draw, lines, text_ink(element))
    return lines_extent(draw, lines) if measure else None
