"""Lossless PNG files of printed sides, written fast (W3C PNG Specification, 3rd edition).

Pillow's encoder tries every row filter on every row (§12.8 adaptive filtering), which costs
more than the compression itself. A card side is mostly flat colour that deflate at level 1
packs well unfiltered (filter type 0). Rows are deflated in bands, each by a fresh compressor
flushed to a byte boundary, so the compressed bytes of a band depend on that band alone: a
band whose pixels equal the same band of the last image written for the same key (a printer's
front or back) is copied instead of compressed again. RFC 1950/1951 allow such a stream.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"  # §5.2
TRUECOLOUR = 2  # §11.2.1 IHDR colour type: RGB, 8 bits a sample
LEVEL = 1  # zlib level: fastest; the PNG stays lossless
BAND_ROWS = 32  # ~100 KB of scanlines a band: it stays in cache while it is compressed
ZLIB_HEADER = zlib.compress(b"", LEVEL)[:2]  # RFC 1950 §2.2: CMF, FLG
LAST_BLOCK = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # empty, final

Band = tuple[bytes, bytes]  # scanlines, their deflate blocks


class PngWriter:
    """Writes PNG files, reusing the compressed bands that repeat the last image of a key."""

    def __init__(self) -> None:
        self._last: dict[str, list[Band]] = {}

    def png_bytes(self, image: Image.Image, key: str = "") -> bytes:
        """A PNG file holding exactly the pixels of an RGB ``image``."""
        if image.mode != "RGB":
            raise ValueError("PNG files are written from RGB images")
        width, height = image.size
        pixels, stride = memoryview(image.tobytes()), width * 3
        last = self._last.get(key, [])
        bands: list[Band] = []
        checksum = zlib.adler32(b"")
        for index, top in enumerate(range(0, height, BAND_ROWS)):
            rows = _scanlines(pixels, stride, top, min(height, top + BAND_ROWS))
            checksum = zlib.adler32(rows, checksum)
            same = index < len(last) and last[index][0] == rows
            bands.append(last[index] if same else (rows, _deflate(rows)))
        self._last[key] = bands
        stream = [ZLIB_HEADER, *(blocks for _, blocks in bands), LAST_BLOCK]
        stream.append(struct.pack(">I", checksum))  # RFC 1950: Adler-32 of the scanlines
        header = struct.pack(">IIBBBBB", width, height, 8, TRUECOLOUR, 0, 0, 0)
        chunks = [_chunk(b"IHDR", header), _chunk(b"IDAT", b"".join(stream)), _chunk(b"IEND", b"")]
        return SIGNATURE + b"".join(chunks)

    def save(self, image: Image.Image, path: Path, key: str = "") -> None:
        """Write ``image`` (RGB) to ``path`` as a PNG file."""
        path.write_bytes(self.png_bytes(image, key))


def png_bytes(image: Image.Image) -> bytes:
    """A PNG file holding exactly the pixels of an RGB ``image``."""
    return PngWriter().png_bytes(image)


def _scanlines(pixels: memoryview, stride: int, top: int, bottom: int) -> bytes:
    """§7.3: rows ``top`` to ``bottom``, each after its filter-type byte 0 (None: as is)."""
    return b"\x00".join([b"", *(pixels[y * stride : (y + 1) * stride] for y in range(top, bottom))])


def _deflate(rows: bytes) -> bytes:
    """Raw deflate blocks of ``rows`` alone, ended on a byte boundary and not final."""
    packer = zlib.compressobj(LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(rows) + packer.flush(zlib.Z_SYNC_FLUSH)


def _chunk(kind: bytes, data: bytes) -> bytes:
    """§5.3: length, chunk type, data, CRC-32 of type and data."""
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
