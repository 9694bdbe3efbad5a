"""Ribbon panels: one bitmap per ribbon colour, packed as the ``Db`` command carries them."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageChops

from printers.protocol import LEVEL_PLANES, PANEL_HEIGHT, PANEL_WIDTH, panel_bytes

SIZE = (PANEL_WIDTH, PANEL_HEIGHT)
PLANE_BYTES = PANEL_WIDTH * PANEL_HEIGHT // 8


@dataclass(frozen=True)
class Panel:
    """One panel of one side: ribbon colour (y, m, c, k, o), grey levels, packed data."""

    colour: str
    levels: int
    data: bytes


def pack(image: Image.Image, levels: int) -> bytes:
    """Pack an 8-bit ink-amount image (0 none … 255 full) into ``levels`` grey levels.

    Bit-planar, most significant plane first; each plane is 1 bit per dot, rows MSB-first.
    """
    if image.size != SIZE or image.mode != "L":
        raise ValueError(f"a panel is an L image of {SIZE}")
    planes = LEVEL_PLANES[levels]
    shift = 8 - planes
    out = bytearray()
    for plane in range(planes - 1, -1, -1):
        bit = 1 << (plane + shift)
        mask = image.point(lambda v, b=bit: 255 if v & b else 0)
        out += mask.convert("1", dither=Image.Dither.NONE).tobytes()
    return bytes(out)


def unpack(data: bytes, levels: int) -> Image.Image:
    """The 8-bit ink-amount image of a packed panel (inverse of ``pack`` up to quantisation)."""
    if len(data) != panel_bytes(levels):
        raise ValueError(f"a {levels}-level panel is {panel_bytes(levels)} bytes")
    planes = LEVEL_PLANES[levels]
    shift = 8 - planes
    image = Image.new("L", SIZE, 0)
    for index in range(planes):
        plane = planes - 1 - index
        chunk = data[index * PLANE_BYTES : (index + 1) * PLANE_BYTES]
        bits = Image.frombytes("1", SIZE, chunk).convert("L")
        weight = 1 << (plane + shift)
        image = ImageChops.add(image, bits.point(lambda v, w=weight: w if v else 0))
    return image


def compose(panels: list[Panel]) -> Image.Image:
    """What the printed side looks like: dye Y/M/C subtract from white, resin K prints black."""
    ink = {p.colour: unpack(p.data, p.levels) for p in panels}
    blank = Image.new("L", SIZE, 0)
    channels = [ImageChops.invert(ink.get(c, blank)) for c in ("c", "m", "y")]
    card = Image.merge("RGB", channels)
    if "k" in ink:
        card.paste((0, 0, 0), mask=ink["k"].point(lambda v: 255 if v >= 128 else 0))
    return card
