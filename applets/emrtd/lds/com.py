"""EF.COM, the LDS1 header file: LDS and Unicode versions and the list of present data groups.

ICAO 9303-10 §4.6.1 Table 35: ``60 L { 5F01 04 "aabb", 5F36 06 "aabbcc", 5C L <DG tags> }``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from applets.emrtd.lds import asn1
from applets.emrtd.lds.files import BY_TAG
from applets.errors import LDSError, TLVError
from applets.iso7816 import tlv

FILE = "EF.COM"


class COMTag(IntEnum):
    """The tags of EF.COM (ICAO 9303-10 Table 35)."""

    COM = 0x60
    LDS_VERSION = 0x5F01
    UNICODE_VERSION = 0x5F36
    TAG_LIST = 0x5C


@dataclass(frozen=True, slots=True)
class COM:
    """The decoded EF.COM: versions as the digit strings the file stores, DG tags in order."""

    lds_version: str
    unicode_version: str
    tags: tuple[int, ...]


def _check_version(name: str, value: str, digits: int) -> bytes:
    if not re.fullmatch(f"[0-9]{{{digits}}}", value):
        raise LDSError(FILE, f"{name} must be {digits} digits, got {value!r}")
    return value.encode("ascii")


def _check_tags(tags: Sequence[int]) -> None:
    for tag in tags:
        info = BY_TAG.get(tag)
        if info is None or info.dg is None:
            raise LDSError(FILE, f"tag {tag:02X} is not a data group tag")
    if len(set(tags)) != len(tags):
        raise LDSError(FILE, "a data group tag is listed twice")


def encode_com(tags: Sequence[int], lds_version: str = "0107",
               unicode_version: str = "040000") -> bytes:
    """EF.COM listing the data group ``tags`` (0x61, 0x75…) in the order given."""
    _check_tags(tags)
    body = (tlv.encode(COMTag.LDS_VERSION, _check_version("LDS version", lds_version, 4))
            + tlv.encode(COMTag.UNICODE_VERSION,
                         _check_version("Unicode version", unicode_version, 6))
            + tlv.encode(COMTag.TAG_LIST, b"".join(tlv.encode_tag(t) for t in tags)))
    return tlv.encode(COMTag.COM, body)


def _read_tag_list(value: bytes) -> tuple[int, ...]:
    tags: list[int] = []
    offset = 0
    try:
        while offset < len(value):
            tag, offset = tlv.read_tag(value, offset)
            tags.append(tag)
    except TLVError as exc:
        raise LDSError(FILE, f"tag list: {exc}") from exc
    _check_tags(tags)
    return tuple(tags)


def _text(value: bytes, name: str, digits: int) -> str:
    text = value.decode("ascii", errors="replace")
    _check_version(name, text, digits)
    return text


def decode_com(data: bytes) -> COM:
    """Parse EF.COM strictly: exactly the three objects of Table 35, in order, nothing after."""
    body = asn1.single(data, COMTag.COM, FILE)
    objects = asn1.children(body, FILE)
    found = tuple(obj.tag for obj in objects)
    expected = (COMTag.LDS_VERSION, COMTag.UNICODE_VERSION, COMTag.TAG_LIST)
    if found != expected:
        listed = " ".join(f"{t:X}" for t in found)
        raise LDSError(FILE, f"expected tags 5F01 5F36 5C, found {listed}")
    return COM(
        lds_version=_text(objects[0].value, "LDS version", 4),
        unicode_version=_text(objects[1].value, "Unicode version", 6),
        tags=_read_tag_list(objects[2].value),
    )
