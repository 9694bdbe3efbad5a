"""Reference encoders: the general, nested-TLV forms the hand-assembled fast encoders replace.

Each builds its file the obvious way, one :func:`tlv.encode` or :mod:`asn1` helper per
object, inside out, as the LDS modules did before they were tuned for the production line.
The tests hold the fast encoders to these byte for byte.
"""

from __future__ import annotations

import struct
import unicodedata
from itertools import cycle

from applets.emrtd.lds import asn1
from applets.emrtd.lds.dg13 import DG13
from applets.errors import CardError
from applets.iso7816 import tlv

_WEIGHTS = (7, 3, 1)


def check_digit(field: str) -> str:
    """ICAO 9303-3 §4.9, one character at a time: 0–9, A–Z = 10–35, '<' = 0."""
    if len(field) > 128:
        raise CardError(f"MRZ field of {len(field)} characters is too long")
    total = 0
    for char, weight in zip(field, cycle(_WEIGHTS)):
        if "0" <= char <= "9":
            value = ord(char) - ord("0")
        elif "A" <= char <= "Z":
            value = ord(char) - ord("A") + 10
        elif char == "<":
            value = 0
        else:
            raise CardError(f"character {char!r} is not allowed in an MRZ field")
        total += value * weight
    return str(total % 10)


def encode_dg1(mrz_text: str) -> bytes:
    """``61 L { 5F1F L <MRZ> }`` (no validation: the fast encoder's checks are tested apart)."""
    return tlv.encode(0x61, tlv.encode(0x5F1F, mrz_text.encode("ascii")))


_BHT = bytes.fromhex("800201018101028702010188020008")
_GENDERS = {None: 0x00, "M": 0x01, "F": 0x02, "unknown": 0xFF}


def encode_dg2(image: bytes, width: int, height: int, *, image_type: str = "jpeg",
               gender: str | None = None) -> bytes:
    """One template, one ISO/IEC 19794-5 record, each level encoded around the one inside."""
    info = struct.pack(">BBHHBBHH", 1, {"jpeg": 0, "jpeg2000": 1}[image_type], width, height,
                       0, 0, 0, 0)
    block = 20 + len(info) + len(image)
    facial = struct.pack(">IHBBB3sH3s3s", block, 0, _GENDERS[gender], 0, 0, b"\0\0\0", 0,
                         b"\0\0\0", b"\0\0\0")
    record = struct.pack(">4s4sIH", b"FAC\0", b"010\0", 14 + block, 1) + facial + info + image
    bit = tlv.encode(0x7F60, tlv.encode(0xA1, _BHT) + tlv.encode(0x5F2E, record))
    return tlv.encode(0x75, tlv.encode(0x7F61, tlv.encode(0x02, b"\x01") + bit))


_TEXT_FIELDS = {
    0x01: "personal_id", 0x02: "full_name", 0x03: "date_of_birth", 0x04: "sex",
    0x05: "nationality", 0x06: "ethnicity", 0x07: "religion", 0x08: "place_of_origin",
    0x09: "place_of_residence", 0x0A: "identifying_marks", 0x0B: "issue_date",
    0x0C: "expiry_date", 0x0F: "former_id_number",
}


def _utf8(text: str) -> bytes:
    return tlv.encode(0x0C, unicodedata.normalize("NFC", text).encode("utf-8"))


def encode_dg13(dg13: DG13) -> bytes:
    """DG13 from the generic DER helpers: every field a SEQUENCE, the SET OF DER-sorted."""
    values = [(n, _utf8(value)) for n, name in _TEXT_FIELDS.items()
              if (value := getattr(dg13, name)) is not None]
    if dg13.father_name is not None or dg13.mother_name is not None:
        values.append((0x0D, asn1.sequence(_utf8(dg13.father_name or ""),
                                           _utf8(dg13.mother_name or ""))))
    if dg13.spouse_name is not None:
        values.append((0x0E, asn1.sequence(_utf8(dg13.spouse_name))))
    elements = [asn1.sequence(asn1.integer(n), value) for n, value in values + list(dg13.extra)]
    header = asn1.integer(1) + asn1.oid("1.0.10646.1.0.8")
    return tlv.encode(0x6D, asn1.sequence(header + asn1.set_of(elements)))
