"""The card face: render a CCCD's front and back from a layout, and split them into panels.

Text and the MRZ go to the black resin panel (sharp, machine-readable); the portrait and the
decorations go to the dye panels (Y, M, C); the overlay covers the whole side.

``render_card`` draws each card's values over its layout's static drawing, kept once per
layout (``printers.facecache``), and packs only the part of the dye panels the card changed;
``render_side`` draws everything from scratch and is what the cached rendering must equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from PIL import Image, ImageChops

from printers.errors import LayoutError
from printers.facecache import static_side
from printers.facedraw import draw_element, draw_mrz, draw_text, text_of
from printers.layout import CardLayout, SideLayout
from printers.panels import DYES, SIZE, Extent, Panel, byte_aligned, overlay, pack, repack

__all__ = [
    "SIDES",
    "CardFace",
    "RenderedCard",
    "SideImage",
    "draw_mrz",
    "draw_text",
    "render_card",
    "render_side",
    "text_of",
]

SIDES = ("front", "back")


@dataclass(frozen=True)
class CardFace:
    """What is printed on one card, as the document shows it (dates dd/mm/yyyy).

    ``fingerprints``: the finger images (8-bit grey, 500 ppi) by ISO/IEC 19794-4 finger
    position; a finger the card lacks is not there. ``can``: the card access number when the
    card prints one, else None. Neither appears in a repr.
    """

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
    fingerprints: Mapping[int, Image.Image] = field(default_factory=dict, repr=False, hash=False)
    can: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SideImage:
    """One rendered side: the dye layer (RGB) and the resin layer (L, 255 = ink).

    ``static_dye``, when given, holds the dye panels (packed at the layout's levels) of a
    drawing that ``colour`` equals everywhere outside ``changed``: packing redoes only that.
    """

    colour: Image.Image
    resin: Image.Image
    static_dye: Mapping[str, bytes] | None = None
    changed: Extent | None = None

    def preview(self) -> Image.Image:
        """What the printed side looks like."""
        card = self.colour.copy()
        card.paste((0, 0, 0), mask=self.resin)
        return card

    def dye(self, colour: str, levels: int) -> bytes:
        """The packed ``y``, ``m`` or ``c`` panel: the ink is what the RGB channel lacks."""
        channel = DYES.index(colour)
        if self.static_dye is None:
            return pack(ImageChops.invert(self.colour.getchannel(channel)), levels)
        box = None if self.changed is None else byte_aligned(self.changed)
        if box is None:
            return self.static_dye[colour]
        patch = ImageChops.invert(self.colour.crop(box).getchannel(channel))
        return repack(self.static_dye[colour], levels, patch, box[:2])


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
        # Resin is 2-level: a dot prints where the resin layer is at 128 or more.
        return Panel("k", 2, pack(image.resin, 2))
    if colour == "o":
        return Panel("o", 2, overlay())
    return Panel(colour, levels, image.dye(colour, levels))


def render_card(face: CardFace, layout: CardLayout) -> RenderedCard:
    """Render both sides of ``face`` with ``layout``; a layout error names the layout."""
    levels = layout.colour_levels
    try:
        sides = {side: _render(face, getattr(layout, side), levels) for side in SIDES}
    except LayoutError as exc:
        if exc.printer:
            raise
        raise exc.with_printer(layout.name) from exc
    return RenderedCard(layout, sides)


def _render(face: CardFace, side: SideLayout, levels: int) -> SideImage:
    """The card's values over the cached static side, or from scratch when that would differ."""
    static = static_side(side, levels)
    drawn = static.draw(face)
    if drawn is None:
        return render_side(face, side)
    return SideImage(drawn.colour, drawn.resin, static.dye, drawn.changed)


def render_side(face: CardFace, side: SideLayout) -> SideImage:
    """Render every element of one side, in order, from scratch."""
    colour = Image.new("RGB", SIZE, tuple(side.background))
    resin = Image.new("L", SIZE, 0)
    for element in side.elements:
        draw_element(colour, resin, element, face)
    return SideImage(colour, resin)
