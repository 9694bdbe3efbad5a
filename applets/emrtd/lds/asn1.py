"""DER building blocks shared by the LDS codecs, and the ICAO ASN.1 types as asn1crypto classes.

The encoders here are plain byte concatenation over :mod:`applets.iso7816.tlv` (ITU-T X.690
§10 DER: definite shortest lengths, minimal integers); the strict readers turn every
:class:`~applets.errors.TLVError` into an :class:`~applets.errors.LDSError` naming the file.
"""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache
from typing import Any, ClassVar

from asn1crypto import algos, core

from applets.errors import LDSError, TLVError
from applets.iso7816 import tlv


class DERTag(IntEnum):
    """Universal and context tags the LDS files use (X.690 §8.1.2)."""

    INTEGER = 0x02
    BIT_STRING = 0x03
    OCTET_STRING = 0x04
    NULL = 0x05
    OID = 0x06
    UTF8_STRING = 0x0C
    PRINTABLE_STRING = 0x13
    SEQUENCE = 0x30
    SET = 0x31
    CONTEXT_0 = 0xA0
    CONTEXT_1 = 0xA1
    CONTEXT_2 = 0xA2


@lru_cache(maxsize=64)
def oid(dotted: str) -> bytes:
    """The complete DER OBJECT IDENTIFIER (tag, length, value) of a dotted OID (X.690 §8.19)."""
    try:
        arcs = [int(part) for part in dotted.split(".")]
    except ValueError as exc:
        raise LDSError("ASN.1", f"malformed OID {dotted!r}") from exc
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise LDSError("ASN.1", f"malformed OID {dotted!r}")
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv.encode(DERTag.OID, bytes(body))


def decode_oid(value: bytes, file: str) -> str:
    """The dotted form of an OID value (without tag and length), strict about padding."""
    if not value or value[-1] & 0x80:
        raise LDSError(file, "truncated OBJECT IDENTIFIER")
    arcs: list[int] = []
    current = 0
    for index, byte in enumerate(value):
        if current == 0 and byte == 0x80 and (index == 0 or not value[index - 1] & 0x80):
            raise LDSError(file, "OBJECT IDENTIFIER arc with a leading 0x80 byte")
        current = (current << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(current)
            current = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def integer(number: int) -> bytes:
    """The complete DER INTEGER of ``number`` (X.690 §8.3: minimal two's complement)."""
    size = number.bit_length() // 8 + 1
    return tlv.encode(DERTag.INTEGER, number.to_bytes(size, "big", signed=True))


def decode_integer(value: bytes, file: str) -> int:
    """An INTEGER value, rejecting the empty and non-minimal encodings X.690 §8.3.2 forbids."""
    if not value:
        raise LDSError(file, "empty INTEGER")
    if len(value) > 1 and (value[0], value[1] & 0x80) in ((0x00, 0), (0xFF, 0x80)):
        raise LDSError(file, "INTEGER not minimally encoded")
    return int.from_bytes(value, "big", signed=True)


def header(tag: bytes, length: int) -> bytes:
    """``tag`` and the DER length of a value of ``length`` bytes (X.690 §8.1.3: shortest form).

    The same bytes as :func:`tlv.encode_length` after the tag, one format for the lengths an
    LDS file has; the hand-assembled encoders call it a few times per card.
    """
    if length < 0x80:
        return b"%b%c" % (tag, length)
    if length < 0x100:
        return b"%b\x81%c" % (tag, length)
    if length < 0x10000:
        return b"%b\x82%c%c" % (tag, length >> 8, length & 0xFF)
    return tag + tlv.encode_length(length)


def sequence(*parts: bytes) -> bytes:
    """A SEQUENCE of already-encoded parts."""
    return tlv.encode(DERTag.SEQUENCE, b"".join(parts))


def set_of(parts: list[bytes] | tuple[bytes, ...]) -> bytes:
    """A SET OF: X.690 §11.6 (DER) orders the elements by their encodings, ascending."""
    return tlv.encode(DERTag.SET, b"".join(sorted(parts)))


def single(data: bytes, tag: int, file: str) -> bytes:
    """The value of the one TLV object filling ``data``, which must carry ``tag``."""
    try:
        return tlv.decode_single(data, tag).value
    except TLVError as exc:
        raise LDSError(file, str(exc)) from exc


def children(data: bytes, file: str) -> list[tlv.TLV]:
    """The consecutive TLV objects filling ``data`` exactly."""
    try:
        return tlv.decode_all(data)
    except TLVError as exc:
        raise LDSError(file, str(exc)) from exc


def expect(obj: tlv.TLV, tag: int, file: str, what: str) -> bytes:
    """The value of ``obj`` when its tag is ``tag``; otherwise an error naming ``what``."""
    if obj.tag != tag:
        raise LDSError(file, f"{what}: expected tag {tag:02X}, found {obj.tag:02X}")
    return obj.value


# ICAO 9303-10 §4.6.2.3 (LDSSecurityObject), declared as the spec writes it.
# asn1crypto ships no type information, so mypy sees its base classes as Any.
class LDSVersionInfo(core.Sequence):  # type: ignore[misc]  # untyped base class
    """LDSVersionInfo ::= SEQUENCE { ldsVersion, unicodeVersion } (PrintableStrings)."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("lds_version", core.PrintableString), ("unicode_version", core.PrintableString),
    ]


class DataGroupHash(core.Sequence):  # type: ignore[misc]  # untyped base class
    """DataGroupHash ::= SEQUENCE { dataGroupNumber INTEGER, dataGroupHashValue OCTET STRING }."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("data_group_number", core.Integer), ("data_group_hash_value", core.OctetString),
    ]


class DataGroupHashValues(core.SequenceOf):  # type: ignore[misc]  # untyped base class
    """SEQUENCE SIZE (2..16) OF DataGroupHash."""

    _child_spec: ClassVar[type[DataGroupHash]] = DataGroupHash


class LDSSecurityObject(core.Sequence):  # type: ignore[misc]  # untyped base class
    """LDSSecurityObject ::= SEQUENCE { version, hashAlgorithm, dataGroupHashValues,
    ldsVersionInfo OPTIONAL }."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("version", core.Integer),
        ("hash_algorithm", algos.DigestAlgorithm),
        ("data_group_hash_values", DataGroupHashValues),
        ("lds_version_info", LDSVersionInfo, {"optional": True}),
    ]
