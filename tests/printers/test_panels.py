"""Panel packing for Db and the composition of printed sides."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from printers.panels import SIZE, Panel, compose, pack, unpack
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
