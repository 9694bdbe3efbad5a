"""BER-TLV as ISO/IEC 7816-4 §5.2 and ISO/IEC 8825-1 define it, restricted to definite lengths.

Pure functions over ``bytes``: tags are kept as the integer of their raw bytes
(``0x5F1F``, ``0x7F61``), lengths in the short or long definite form.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from applets.errors import TLVError


def encode_length(length: int) -> bytes:
    """DER definite length: short form below 128, long form (81/82/83/84 + n bytes) above."""
    if length < 0:
        raise TLVError(f"negative length {length}")
    if length < 0x80:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    if length <= 0xFFFF:
        return bytes((0x82, length >> 8, length & 0xFF))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(body) > 4:
        raise TLVError(f"length {length} too large")
    return bytes((0x80 | len(body),)) + body


def encode_tag(tag: int) -> bytes:
    """The raw bytes of a tag given as an integer (0x61 → 61, 0x5F1F → 5F 1F)."""
    if tag < 0:
        raise TLVError(f"negative tag {tag}")
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode(tag: int, value: bytes) -> bytes:
    """One TLV object: tag, definite length, value."""
    length = len(value)
    if 0 <= tag <= 0xFF and length < 0x80:  # the common case, without the general machinery
        return bytes((tag, length)) + value
    return encode_tag(tag) + encode_length(length) + value


def read_tag(data: bytes, offset: int) -> tuple[int, int]:
    """Read a tag at ``offset``; return (tag, offset after it)."""
    if offset >= len(data):
        raise TLVError(f"truncated: tag expected at offset {offset}")
    first = data[offset]
    tag = first
    offset += 1
    if first & 0x1F == 0x1F:  # ISO 8825-1 §8.1.2.4: subsequent bytes while bit 8 is set
        while True:
            if offset >= len(data):
                raise TLVError("truncated multi-byte tag")
            byte = data[offset]
            tag = (tag << 8) | byte
            offset += 1
            if not byte & 0x80:
                break
            if tag > 0xFFFFFFFF:
                raise TLVError("tag longer than 4 bytes")
    return tag, offset


def read_length(data: bytes, offset: int) -> tuple[int, int]:
    """Read a definite length at ``offset``; return (length, offset after it)."""
    if offset >= len(data):
        raise TLVError(f"truncated: length expected at offset {offset}")
    first = data[offset]
    offset += 1
    if first < 0x80:
        return first, offset
    count = first & 0x7F
    if count == 0:
        raise TLVError("indefinite length is not allowed")
    if count > 4:
        raise TLVError(f"length of {count} bytes is not supported")
    if offset + count > len(data):
        raise TLVError("truncated long-form length")
    return int.from_bytes(data[offset : offset + count], "big"), offset + count


@dataclass(frozen=True, slots=True)
class TLV:
    """One decoded object; ``end`` is the offset just past its value in the source."""

    tag: int
    value: bytes
    end: int

    @property
    def constructed(self) -> bool:
        """True when bit 6 of the first tag byte is set."""
        first = encode_tag(self.tag)[0]
        return bool(first & 0x20)


def decode_one(data: bytes, offset: int = 0) -> TLV:
    """Decode the object starting at ``offset``."""
    tag, pos = read_tag(data, offset)
    length, pos = read_length(data, pos)
    end = pos + length
    if end > len(data):
        raise TLVError(f"tag {tag:X}: length {length} runs past the end ({len(data) - pos} left)")
    return TLV(tag, bytes(data[pos:end]), end)


def iterate(data: bytes) -> Iterator[TLV]:
    """Decode consecutive objects filling ``data`` exactly."""
    offset = 0
    while offset < len(data):
        obj = decode_one(data, offset)
        yield obj
        offset = obj.end


def decode_all(data: bytes) -> list[TLV]:
    """All consecutive objects in ``data``."""
    return list(iterate(data))


def decode_single(data: bytes, expected_tag: int | None = None) -> TLV:
    """Exactly one object filling ``data``, optionally with the expected tag."""
    obj = decode_one(data)
    if obj.end != len(data):
        raise TLVError(f"{len(data) - obj.end} trailing bytes after tag {obj.tag:X}")
    if expected_tag is not None and obj.tag != expected_tag:
        raise TLVError(f"expected tag {expected_tag:X}, found {obj.tag:X}")
    return obj


def find(data: bytes, tag: int) -> bytes:
    """The value of the first object with ``tag`` among the objects in ``data``."""
    for obj in iterate(data):
        if obj.tag == tag:
            return obj.value
    raise TLVError(f"tag {tag:X} not found")


def total_length(header: bytes) -> int:
    """From the first bytes of a file (at least tag + length), the size of the whole object."""
    tag_end = read_tag(header, 0)[1]
    length, value_start = read_length(header, tag_end)
    return value_start + length
