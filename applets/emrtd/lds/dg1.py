"""EF.DG1, the MRZ data group: ``61 L { 5F1F L <MRZ characters> }`` (ICAO 9303-10 Table 39)."""

from __future__ import annotations

import re
from enum import IntEnum

from applets.emrtd.lds import asn1
from applets.errors import LDSError
from applets.iso7816 import tlv

FILE = "EF.DG1"
# ICAO 9303-10 §4.7.1: TD1 90, TD2 72, TD3 88 characters.
MRZ_LENGTHS = (90, 72, 88)
_MRZ_CHARS = re.compile(rb"[A-Z0-9<]*")


class DG1Tag(IntEnum):
    """The tags of EF.DG1."""

    DG1 = 0x61
    MRZ = 0x5F1F


def _header(length: int) -> bytes:
    """``61 L 5F1F L`` for an MRZ of ``length`` characters."""
    mrz = tlv.encode_tag(DG1Tag.MRZ) + tlv.encode_length(length)
    return tlv.encode_tag(DG1Tag.DG1) + tlv.encode_length(len(mrz) + length) + mrz


_HEADERS = {length: _header(length) for length in MRZ_LENGTHS}  # the three MRZ sizes, once


def _check(mrz: bytes) -> None:
    if len(mrz) not in MRZ_LENGTHS:
        raise LDSError(FILE, f"MRZ of {len(mrz)} characters (TD1 90, TD2 72, TD3 88)")
    if not _MRZ_CHARS.fullmatch(mrz):
        raise LDSError(FILE, "MRZ holds characters other than A-Z, 0-9 and '<'")


def encode_dg1(mrz_text: str) -> bytes:
    """DG1 around the MRZ characters (no line breaks); TD1 gives ``61 5B 5F1F 5A …``."""
    try:
        raw = mrz_text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise LDSError(FILE, "MRZ holds non-ASCII characters") from exc
    _check(raw)
    return _HEADERS[len(raw)] + raw


def decode_dg1(data: bytes) -> str:
    """The MRZ characters of DG1; the check digits are for :func:`mrz.parse_td1` to verify."""
    inner = asn1.single(data, DG1Tag.DG1, FILE)
    raw = asn1.single(inner, DG1Tag.MRZ, FILE)
    _check(raw)
    return raw.decode("ascii")
