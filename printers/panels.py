"""Ribbon panels: one bitmap per ribbon colour, packed as the ``Db`` command carries them.

All the per-dot work stays in Pillow's C code. Packing takes the top bit of every dot
(``convert("1")`` without dithering sets a dot where the value is 128 or more) and then doubles
the image modulo 256 (``add_modulo``), which brings the next bit to the top. Unpacking runs the
same doubling backwards: level = 2 * level + bit, plane after plane.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageChops

from printers.protocol import LEVEL_PLANES, PANEL_HEIGHT, PANEL_WIDTH, ROW_BYTES, panel_bytes

SIZE = (PANEL_WIDTH, PANEL_HEIGHT)
PLANE_BYTES = PANEL_WIDTH * PANEL_HEIGHT // 8
DYES = ("c", "m", "y")  # the RGB channel each dye panel takes away from white, in RGB order

Extent = tuple[int, int, int, int]  # left, top, right, bottom; right and bottom exclusive


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
    return pack_planes(image, LEVEL_PLANES[levels])


def pack_planes(image: Image.Image, planes: int) -> bytes:
    """The top ``planes`` bit planes of an L image of any size, most significant first."""
    out = [image.convert("1", dither=Image.Dither.NONE).tobytes()]
    for _ in range(planes - 1):
        image = ImageChops.add_modulo(image, image)  # v << 1 & 0xFF: the next bit on top
        out.append(image.convert("1", dither=Image.Dither.NONE).tobytes())
    return b"".join(out)


@cache
def overlay() -> bytes:
    """The overlay panel: varnish on every dot."""
    return pack(Image.new("L", SIZE, 255), 2)


def byte_aligned(extent: Extent) -> Extent | None:
    """``extent`` clipped to the panel and widened to whole bytes; None when nothing is left."""
    left, top = max(0, extent[0]) // 8 * 8, max(0, extent[1])
    right, bottom = min(PANEL_WIDTH, -(-extent[2] // 8) * 8), min(PANEL_HEIGHT, extent[3])
    return (left, top, right, bottom) if left < right and top < bottom else None


def repack(base: bytes, levels: int, patch: Image.Image, at: tuple[int, int]) -> bytes:
    """The packed panel ``base`` with the dots under ``patch`` (an L ink image) replaced.

    ``at`` is the patch's top-left dot. Its left edge and width are multiples of 8, so whole
    bytes change: each plane's bytes are pasted as the pixels of an L image, one byte a pixel.
    """
    (left, top), (width, height) = at, patch.size
    if left % 8 or width % 8:
        raise ValueError("a patch starts and ends on a byte boundary")
    planes = LEVEL_PLANES[levels]
    sheet = Image.frombytes("L", (ROW_BYTES, PANEL_HEIGHT * planes), base)
    packed = memoryview(pack_planes(patch, planes))
    step = width // 8 * height
    for plane in range(planes):
        piece = Image.frombytes(
            "L", (width // 8, height), packed[plane * step : (plane + 1) * step]
        )
        sheet.paste(piece, (left // 8, plane * PANEL_HEIGHT + top))
    return sheet.tobytes()


def levels_image(data: bytes, levels: int) -> Image.Image:
    """Each dot's level number (0 … 2**planes - 1), read back from the bit planes."""
    if len(data) != panel_bytes(levels):
        raise ValueError(f"a {levels}-level panel is {panel_bytes(levels)} bytes")
    return _levels(data, levels, 0, PANEL_HEIGHT, ROW_BYTES)


def _levels(data: bytes, levels: int, top: int, bottom: int, width: int) -> Image.Image:
    """Level numbers of dot rows ``top`` to ``bottom`` and the first ``width`` bytes of each."""
    view = memoryview(data)
    size = (width * 8, bottom - top)
    level = Image.new("L", size, 0)
    for plane in range(LEVEL_PLANES[levels]):
        start = plane * PLANE_BYTES + top * ROW_BYTES
        bits = Image.frombytes("1", size, view[start:], "raw", "1", ROW_BYTES)
        # A set dot of a "1" image reads 255, and x - 255 = x + 1 (mod 256): 2 * level + bit.
        level = ImageChops.subtract_modulo(ImageChops.add_modulo(level, level), bits)
    return level


def changed_bytes(old: bytes, new: bytes, levels: int) -> Extent | None:
    """Where two packed panels differ: (first byte, first row, end byte, end row) of a plane."""
    sheet = (ROW_BYTES, PANEL_HEIGHT * LEVEL_PLANES[levels])
    diff = ImageChops.difference(Image.frombytes("L", sheet, old), Image.frombytes("L", sheet, new))
    return union(
        [
            diff.crop((0, top, ROW_BYTES, top + PANEL_HEIGHT)).getbbox()
            for top in range(0, sheet[1], PANEL_HEIGHT)
        ]
    )


def union(extents: list[Extent | None]) -> Extent | None:
    """The smallest rectangle holding all the given ones (None for none)."""
    boxes = [e for e in extents if e is not None]
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


@cache
def _table(levels: int, role: str) -> tuple[int, ...]:
    """Level number -> ink amount ("ink"), its dye colour ("dye") or resin keep-mask ("keep")."""
    shift = 8 - LEVEL_PLANES[levels]
    ink = tuple((level << shift) & 0xFF for level in range(256))
    if role == "dye":
        return tuple(255 - value for value in ink)  # subtractive: full ink leaves no light
    if role == "keep":
        return tuple(0 if value >= 128 else 255 for value in ink)  # resin prints from half ink
    return ink


def unpack(data: bytes, levels: int) -> Image.Image:
    """The 8-bit ink-amount image of a packed panel (inverse of ``pack`` up to quantisation)."""
    return levels_image(data, levels).point(_table(levels, "ink"))


def compose(panels: list[Panel]) -> Image.Image:
    """What the printed side looks like: dye Y/M/C subtract from white, resin K prints black."""
    return Composer().compose(panels)


class Composer:
    """Composes printed sides, decoding again only what changed since the last card.

    Cards of one layout repeat most of their panels byte for byte (the back's dye panels, the
    front's outside the portrait): a panel is compared with the last one of its side and
    colour, and only the rectangle of bytes where they differ is unpacked. One panel is kept
    per side and colour: what the printer holds anyway.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], tuple[Panel, Image.Image]] = {}

    def compose(self, panels: list[Panel], side: str = "") -> Image.Image:
        """The picture of one printed side from its panels (the last of a colour counts)."""
        latest = {panel.colour: panel for panel in panels}
        channels = [self._decoded(side, latest.get(colour), "dye") for colour in DYES]
        resin = latest.get("k")
        if resin is not None:
            keep = self._decoded(side, resin, "keep")
            channels = [ImageChops.darker(channel, keep) for channel in channels]
        return Image.merge("RGB", channels)

    def _decoded(self, side: str, panel: Panel | None, role: str) -> Image.Image:
        if panel is None:
            return Image.new("L", SIZE, 255)  # no dye of this colour: white light stays
        table = _table(panel.levels, role)
        last = self._last.get((side, panel.colour))
        if last is None or last[0].levels != panel.levels:
            image = levels_image(panel.data, panel.levels).point(table)
        else:
            image = _updated(last[1], last[0].data, panel, table)
        self._last[(side, panel.colour)] = (panel, image)
        return image


def _updated(image: Image.Image, old: bytes, panel: Panel, table: tuple[int, ...]) -> Image.Image:
    """``image`` (decoded from ``old``) with the rows where ``panel`` differs decoded again."""
    box = None if old == panel.data else changed_bytes(old, panel.data, panel.levels)
    if box is None:
        return image
    _, top, width, bottom = box
    image = image.copy()
    image.paste(_levels(panel.data, panel.levels, top, bottom, width).point(table), (0, top))
    return image
