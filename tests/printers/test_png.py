"""The emulator's PNG writer: valid, lossless files, also when it reuses bands of the last one."""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from printers.png import PngWriter, png_bytes


def noise(seed: int, size: tuple[int, int]) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        found.append((kind, body))
        offset += 12 + length
    return found


def assert_holds(data: bytes, image: Image.Image) -> None:
    """The file decodes to ``image``, and its zlib stream (Adler-32 included) checks out."""
    kinds = chunks(data)
    assert [kind for kind, _ in kinds] == [b"IHDR", b"IDAT", b"IEND"]
    width, height = image.size
    rows = zlib.decompress(kinds[1][1])
    assert len(rows) == height * (1 + 3 * width)
    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.mode == "RGB" and decoded.size == image.size
        assert decoded.tobytes() == image.tobytes()


@pytest.mark.parametrize("size", [(1016, 648), (37, 5), (1, 1), (9, 70)])
def test_png_is_lossless(size: tuple[int, int]) -> None:
    """A PNG file holds exactly the pixels it was written from."""
    image = noise(size[0], size)
    assert_holds(png_bytes(image), image)


def test_writer_reuses_unchanged_bands_without_changing_pixels() -> None:
    """Images written one after another (same, partly changed, new size) each decode exactly."""
    first = Image.new("RGB", (1016, 648), (232, 242, 238))
    first.paste(noise(1, (240, 320)), (40, 196))
    changed = first.copy()
    changed.paste(noise(2, (300, 20)), (500, 600))
    writer = PngWriter()
    for image in (first, first, changed, noise(3, (1016, 648)), noise(4, (100, 50)), first):
        assert_holds(writer.png_bytes(image, "front"), image)


def test_only_rgb_is_written() -> None:
    """The writer takes RGB images only."""
    with pytest.raises(ValueError):
        png_bytes(Image.new("L", (4, 4)))
