"""Chips that fight back: test modes of the virtual eMRTD for a QA desk's worst day.

A locked chip in one of these modes still does BAC and secure messaging correctly; what it
serves afterwards breaks a rule a reader must not trust blindly. Each mode is the card-side
half of one bound the terminal enforces (ISO 7816-4 §5.1 Ne, §7.6.1 GET RESPONSE; the TLV
length of ISO 8825-1 §8.1.3; the key of ICAO 9303-11 §6.1 Active Authentication).
"""

from __future__ import annotations

from enum import StrEnum

from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag
from applets.emrtd.lds.files import DATA_GROUPS
from applets.iso7816 import tlv

EXTRA_BYTES = 64  # longer_than_le: this many bytes beyond the Le
HUGE_LENGTH = 0xFFFFFFFF  # huge_file: the largest four-byte BER length, 4 GiB − 1
MORE_AVAILABLE = 0x6110  # get_response_forever: "16 more bytes available", never true
SLOW_SECONDS = 0.1  # slow: the chip's delay before each answer
RESPONSE_LIMIT = 0x0800  # longer_than_le: the response size the chip's 7F66 offers
UNKNOWN_OID = "2.999.15.1"  # under the X.660 example arc: no library knows it
RSA_32768_MODULUS = (1 << 32767) | 1  # odd, top bit set: a 32768-bit modulus (not a real key)
RSA_EXPONENT = 65537

DG1_FID, DG2_FID, DG15_FID = (DATA_GROUPS[n].fid for n in (1, 2, 15))


class Hostile(StrEnum):
    """How a chip misbehaves once locked (the virtual card's test modes)."""

    GET_RESPONSE_FOREVER = "get_response_forever"  # READ BINARY and GET RESPONSE answer 61xx
    HUGE_FILE = "huge_file"  # DG2's header declares 4 GiB and the chip serves them
    UNKNOWN_OID_DG15 = "unknown_oid_dg15"  # DG15 holds a key of an unknown algorithm
    RSA_32768 = "rsa_32768"  # DG15 holds a 32768-bit RSA key
    GARBAGE_TLV = "garbage_tlv"  # DG1 starts with bytes that are no TLV header
    WRONG_LENGTH = "wrong_length"  # DG1's length says one byte more than there is
    LONGER_THAN_LE = "longer_than_le"  # READ BINARY answers 64 bytes beyond the Le
    SLOW = "slow"  # every answer takes SLOW_SECONDS


class HugeFile:
    """A read-only file of ``HUGE_LENGTH`` bytes after its header, all zero, never stored."""

    def __init__(self, tag: int) -> None:
        self.header = tlv.encode_tag(tag) + b"\x84" + HUGE_LENGTH.to_bytes(4, "big")

    def __len__(self) -> int:
        return len(self.header) + HUGE_LENGTH

    def __getitem__(self, index: slice) -> bytes:
        """Bytes of the header, then zeros (clamped to the file as a bytes slice is)."""
        start, stop, _ = index.indices(len(self))
        head = self.header[start:stop]
        return head + bytes(max(0, stop - max(start, len(self.header))))


def rsa_32768_dg15() -> bytes:
    """DG15 with an rsaEncryption SubjectPublicKeyInfo around a 32768-bit modulus."""
    key = asn1.sequence(asn1.integer(RSA_32768_MODULUS), asn1.integer(RSA_EXPONENT))
    algorithm = asn1.sequence(asn1.oid("1.2.840.113549.1.1.1"), b"\x05\x00")
    spki = asn1.sequence(algorithm, tlv.encode(DERTag.BIT_STRING, b"\x00" + key))
    return tlv.encode(DATA_GROUPS[15].tag or 0, spki)


def unknown_oid_dg15() -> bytes:
    """DG15 with a SubjectPublicKeyInfo whose algorithm OID no library knows."""
    algorithm = asn1.sequence(asn1.oid(UNKNOWN_OID), b"\x05\x00")
    spki = asn1.sequence(algorithm, tlv.encode(DERTag.BIT_STRING, b"\x00" + bytes(65)))
    return tlv.encode(DATA_GROUPS[15].tag or 0, spki)


def _wrong_length(content: bytes) -> bytes:
    obj = tlv.decode_one(content)
    return tlv.encode_tag(obj.tag) + tlv.encode_length(len(obj.value) + 1) + obj.value


FileView = bytes | bytearray | HugeFile


def served(mode: Hostile | None, fid: int, content: bytearray) -> FileView:
    """What a locked chip in ``mode`` serves for the file ``fid`` that holds ``content``."""
    if mode is Hostile.HUGE_FILE and fid == DG2_FID:
        return HugeFile(DATA_GROUPS[2].tag or 0)
    if mode is Hostile.UNKNOWN_OID_DG15 and fid == DG15_FID:
        return unknown_oid_dg15()
    if mode is Hostile.RSA_32768 and fid == DG15_FID:
        return rsa_32768_dg15()
    if mode is Hostile.GARBAGE_TLV and fid == DG1_FID:
        return b"\xff" * len(content)  # a tag whose continuation bit never clears
    if mode is Hostile.WRONG_LENGTH and fid == DG1_FID:
        return _wrong_length(bytes(content))
    return content


def overlong(data: bytes, ne: int) -> bytes:
    """``data`` padded to the Le, then :data:`EXTRA_BYTES` more (longer_than_le)."""
    return data.ljust(ne, b"\x00") + bytes(EXTRA_BYTES)
