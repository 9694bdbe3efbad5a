"""Panel packing for Db and the composition of printed sides."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageChops

from printers.panels import (
    SIZE,
    Composer,
    Panel,
    byte_aligned,
    compose,
    overlay,
    pack,
    repack,
    unpack,
)
from printers.protocol import LEVEL_PLANES, panel_bytes


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(sorted(LEVEL_PLANES)), st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip(levels: int, seed: int) -> None:
    """Unpacking a packed panel gives the image quantised to its level count."""
    rng = random.Random(seed)
    image = Image.frombytes(
        "L", SIZE, bytes(rng.randrange(256) for _ in range(64)) * (SIZE[0] * SIZE[1] // 64)
    )
    data = pack(image, levels)
    assert len(data) == panel_bytes(levels)
    keep_mask = 0xFF ^ ((1 << (8 - LEVEL_PLANES[levels])) - 1)
    assert unpack(data, levels).tobytes() == bytes(v & keep_mask for v in image.tobytes())


def test_pack_refuses_wrong_size() -> None:
    """Only a full 1016x648 grey panel can be packed; only the right byte count unpacks."""
    with pytest.raises(ValueError):
        pack(Image.new("L", (10, 10)), 2)
    with pytest.raises(ValueError):
        unpack(b"\x00", 2)


def test_compose_dye_and_resin() -> None:
    """Full yellow ink prints yellow; resin prints black over it."""
    yellow = Image.new("L", SIZE, 255)
    resin = Image.new("L", SIZE, 0)
    resin.paste(255, (0, 0, 10, 10))
    card = compose([Panel("y", 32, pack(yellow, 32)), Panel("k", 2, pack(resin, 2))])
    pixel = card.getpixel((500, 500))
    assert isinstance(pixel, tuple) and pixel[2] < 10 and pixel[0] > 245
    assert card.getpixel((5, 5)) == (0, 0, 0)


def noise(seed: int, mode: str = "L", size: tuple[int, int] = SIZE) -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, size, random.Random(seed).randbytes(size[0] * size[1] * bands))


def reference_pack(image: Image.Image, levels: int) -> bytes:
    """The Db payload by definition: each bit of the dot values, most significant plane first."""
    planes = LEVEL_PLANES[levels]
    out = b""
    for plane in range(planes - 1, -1, -1):
        bit = 1 << (plane + 8 - planes)
        mask = image.point(lambda v, b=bit: 255 if v & b else 0)
        out += mask.convert("1", dither=Image.Dither.NONE).tobytes()
    return out


def reference_compose(panels: list[Panel]) -> Image.Image:
    """A printed side by definition: dyes subtract from white, resin at half ink prints black."""
    ink = {p.colour: unpack(p.data, p.levels) for p in panels}
    blank = Image.new("L", SIZE, 0)
    card = Image.merge("RGB", [ImageChops.invert(ink.get(c, blank)) for c in ("c", "m", "y")])
    if "k" in ink:
        card.paste((0, 0, 0), mask=ink["k"].point(lambda v: 255 if v >= 128 else 0))
    return card


@pytest.mark.parametrize("levels", sorted(LEVEL_PLANES))
def test_pack_follows_the_bit_plane_definition(levels: int) -> None:
    """pack gives the very bytes of the plane-by-plane definition, for every dot value."""
    ramp = Image.frombytes("L", SIZE, (bytes(range(256)) * 2572)[: SIZE[0] * SIZE[1]])
    for image in (ramp, noise(levels)):
        assert pack(image, levels) == reference_pack(image, levels)


# x, y, width, height of a changed rectangle, possibly reaching past the panel's edges
RECTANGLE = st.tuples(
    st.integers(-20, 1016), st.integers(-20, 648), st.integers(1, 400), st.integers(1, 300)
)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(sorted(LEVEL_PLANES)), RECTANGLE)
def test_repack_equals_packing_the_whole_panel(levels: int, rect: tuple[int, ...]) -> None:
    """Replacing the packed bytes under a changed rectangle gives the packing of the new panel."""
    x, y, w, h = rect
    before, after = noise(1), noise(1)
    after.paste(noise(2, size=(w, h)), (x, y))
    box = byte_aligned((x, y, x + w, y + h))
    if box is None:
        assert after.tobytes() == before.tobytes()
        return
    patched = repack(pack(before, levels), levels, after.crop(box), box[:2])
    assert patched == pack(after, levels)


def side(seed: int, levels: int = 32, *, resin: bool = True) -> list[Panel]:
    panels = [Panel(c, levels, pack(noise(seed + i), levels)) for i, c in enumerate("ymc")]
    if resin:
        panels.append(Panel("k", 2, pack(noise(seed + 9), 2)))
    return [*panels, Panel("o", 2, overlay())]


def test_composer_equals_composing_each_side_alone() -> None:
    """Sides composed one after another (repeated, partly changed, new) equal the definition."""
    first = side(10)
    changed = noise(10)
    changed.paste(noise(77, size=(120, 90)), (300, 200))
    partly = [Panel("y", 32, pack(changed, 32)), *first[1:]]
    sequence = [first, first, partly, side(20), side(20, 64), side(30, resin=False), first[:1]]
    composer = Composer()
    for panels in sequence:
        expected = reference_compose(panels).tobytes()
        assert composer.compose(panels, "front").tobytes() == expected
        assert compose(panels).tobytes() == expected
