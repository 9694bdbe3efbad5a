"""EF.DG13 as Vietnam's CCCD fills it (ICAO 9303-10 §4.7.13 leaves DG13 to the issuer).

Layout (cardline fact sheet §5.3, from public CCCD readers):

    6D { 30 { 02 01 01, 06 06 28D316010008, 31 { 30 { 02 01 NN, <value> } … } } }

Each value is a UTF8String, except field 0D (SEQUENCE of father's and mother's names) and
field 0E (SEQUENCE holding the spouse's name). Field numbers this module does not know are
kept verbatim in ``DG13.extra`` and written back unchanged, so a card read by QA re-encodes
to the same bytes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import NoReturn

from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag, header
from applets.errors import LDSError
from applets.iso7816 import tlv

FILE = "EF.DG13"
DG13_TAG = 0x6D
VERSION = 1
CONTENT_OID = "1.0.10646.1.0.8"
NO_EXPIRY = "Không thời hạn"
# Field numbers of the plain text fields; 0D and 0E are the structured ones.
_TEXT_FIELDS = {
    0x01: "personal_id", 0x02: "full_name", 0x03: "date_of_birth", 0x04: "sex",
    0x05: "nationality", 0x06: "ethnicity", 0x07: "religion", 0x08: "place_of_origin",
    0x09: "place_of_residence", 0x0A: "identifying_marks", 0x0B: "issue_date",
    0x0C: "expiry_date", 0x0F: "former_id_number",
}
PARENTS, SPOUSE = 0x0D, 0x0E
_DATE = re.compile(r"(0[1-9]|[12][0-9]|3[01])/(0[1-9]|1[0-2])/[0-9]{4}")


@dataclass(frozen=True, slots=True)
class DG13:
    """The CCCD personal data; ``None`` means the field is absent from the file."""

    personal_id: str | None = None
    full_name: str | None = None
    date_of_birth: str | None = None
    sex: str | None = None
    nationality: str | None = None
    ethnicity: str | None = None
    religion: str | None = None
    place_of_origin: str | None = None
    place_of_residence: str | None = None
    identifying_marks: str | None = None
    issue_date: str | None = None
    expiry_date: str | None = None
    father_name: str | None = None
    mother_name: str | None = None
    spouse_name: str | None = None
    former_id_number: str | None = None
    extra: tuple[tuple[int, bytes], ...] = ()  # (field number, value DER) of unknown fields


_FIELD_NAMES = tuple(f.name for f in fields(DG13) if f.name != "extra")
_ALL_VALUES = attrgetter(*_FIELD_NAMES)
_TEXT_VALUES = attrgetter(*_TEXT_FIELDS.values())
_PERSONAL_ID = re.compile("[0-9]{12}")
_HEADER = asn1.integer(VERSION) + asn1.oid(CONTENT_OID)  # version + content OID, encoded once
_SEQUENCE, _SET, _UTF8, _DG13 = b"\x30", b"\x31", b"\x0c", bytes((DG13_TAG,))
_TEXT_NUMBERS = tuple(_TEXT_FIELDS)
_SHORT_TEXT = 0x80 - 5  # X.690 §8.1.3.4: 02 01 NN 0C L + text keeps a one-byte length


def _nfc_utf8(text: str) -> bytes:
    """``text`` as NFC UTF-8; the cheap check spares normalising text that already is NFC."""
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text.encode("utf-8")


def _utf8(text: str) -> bytes:
    """A complete UTF8String of ``text`` in NFC."""
    raw = _nfc_utf8(text)
    return header(_UTF8, len(raw)) + raw


def _sequence(*parts: bytes) -> bytes:
    """A SEQUENCE of complete DER parts."""
    value = b"".join(parts)
    return header(_SEQUENCE, len(value)) + value


def _element(number: int, value: bytes) -> bytes:
    """``30 L { 02 01 NN, value }``: one field of the SET; ``value`` is complete DER."""
    return header(_SEQUENCE, 3 + len(value)) + b"\x02\x01%c%b" % (number, value)


def _text_elements(values: tuple[str | None, ...]) -> list[bytes]:
    """``30 L { 02 01 NN, 0C L text }`` of each present text field (one format when short)."""
    elements = []
    is_nfc, normalize = unicodedata.is_normalized, unicodedata.normalize
    for number, text in zip(_TEXT_NUMBERS, values, strict=True):
        if text is None:
            continue
        # _nfc_utf8, inlined: 13 fields a card, the hottest loop of data preparation.
        raw = (text if is_nfc("NFC", text) else normalize("NFC", text)).encode("utf-8")
        size = len(raw)
        if size < _SHORT_TEXT:
            elements.append(b"\x30%c\x02\x01%c\x0c%c%b" % (size + 5, number, size, raw))
        else:
            elements.append(_element(number, header(_UTF8, size) + raw))
    return elements


def _validate(dg13: DG13) -> None:
    """Raise LDSError for an empty field, a malformed ID, date or sex, or clashing extras."""
    if "" in _ALL_VALUES(dg13):
        name = next(n for n in _FIELD_NAMES if getattr(dg13, n) == "")
        raise LDSError(FILE, f"{name} is empty; use None for an absent field")
    if dg13.personal_id is not None and not _PERSONAL_ID.fullmatch(dg13.personal_id):
        raise LDSError(FILE, "personal_id must be 12 digits")
    for name in ("date_of_birth", "issue_date", "expiry_date"):
        value = getattr(dg13, name)
        if value is not None and not _DATE.fullmatch(value) and not (
                name == "expiry_date" and value == NO_EXPIRY):
            raise LDSError(FILE, f"{name} must be a date dd/mm/yyyy")
    if dg13.sex not in (None, "Nam", "Nữ"):
        raise LDSError(FILE, "sex must be 'Nam' or 'Nữ'")
    if not dg13.extra:
        return
    known = {*_TEXT_FIELDS, PARENTS, SPOUSE}
    numbers = [n for n, _ in dg13.extra]
    if any(n in known or not 0 <= n <= 0x7F for n in numbers) or len(set(numbers)) != len(numbers):
        raise LDSError(FILE, "extra fields must have distinct unknown numbers 00..7F")


def _elements(dg13: DG13) -> list[bytes]:
    """The encoded SET elements of the present fields, in no particular order."""
    elements = _text_elements(_TEXT_VALUES(dg13))
    father, mother, spouse = dg13.father_name, dg13.mother_name, dg13.spouse_name
    if father is not None or mother is not None:
        elements.append(_element(PARENTS, _sequence(_utf8(father or ""), _utf8(mother or ""))))
    if spouse is not None:
        elements.append(_element(SPOUSE, _sequence(_utf8(spouse))))
    if dg13.extra:
        elements.extend(_element(n, value) for n, value in dg13.extra)
    return elements


def encode_dg13(dg13: DG13) -> bytes:
    """DG13 with the present fields; text is written as NFC UTF-8.

    The DER is assembled by hand from the lengths (this runs once per card). X.690 §11.6:
    DER orders SET OF elements by their encodings. Every element starts ``30 LL 02 01 NN``
    so the order is by length first, not by field number; we sort the encoded bytes, as
    DER requires.
    """
    _validate(dg13)
    fields_der = b"".join(sorted(_elements(dg13)))
    set_header = header(_SET, len(fields_der))
    size = len(_HEADER) + len(set_header) + len(fields_der)
    sequence_header = header(_SEQUENCE, size)
    return b"".join((header(_DG13, len(sequence_header) + size), sequence_header, _HEADER,
                     set_header, fields_der))


def _text(value: tlv.TLV, what: str) -> str:
    # PrintableString (13) is accepted on reading, as some CCCD readers report it in the wild.
    if value.tag not in (DERTag.UTF8_STRING, DERTag.PRINTABLE_STRING):
        raise LDSError(FILE, f"{what}: expected a UTF8String, found tag {value.tag:02X}")
    try:
        return value.value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LDSError(FILE, f"{what}: invalid UTF-8") from exc


def _empty(number: int) -> NoReturn:
    raise LDSError(FILE, f"field {number:02X} is empty; absent fields are left out")


def _structured(number: int, value: tlv.TLV) -> dict[str, str | None]:
    names = asn1.children(asn1.expect(value, DERTag.SEQUENCE, FILE, f"field {number:02X}"), FILE)
    texts = [_text(t, f"field {number:02X}") or None for t in names]
    if number == PARENTS and len(texts) == 2:
        return {"father_name": texts[0], "mother_name": texts[1]}
    if number == SPOUSE and len(texts) == 1:
        return {"spouse_name": texts[0]}
    raise LDSError(FILE, f"field {number:02X} holds {len(texts)} names")


def _field(element: tlv.TLV) -> tuple[int, tlv.TLV, bytes]:
    """(field number, value object, value DER) of one ``30 { 02 01 NN, value }`` element."""
    parts = asn1.children(asn1.expect(element, DERTag.SEQUENCE, FILE, "field"), FILE)
    if len(parts) != 2 or parts[0].tag != DERTag.INTEGER:
        raise LDSError(FILE, "a field must be SEQUENCE { INTEGER number, value }")
    number = asn1.decode_integer(parts[0].value, FILE)
    start = len(element.value) - len(tlv.encode(parts[1].tag, parts[1].value))
    return number, parts[1], element.value[start:]


def _header(data: bytes) -> list[tlv.TLV]:
    outer = asn1.children(asn1.single(asn1.single(data, DG13_TAG, FILE), DERTag.SEQUENCE, FILE),
                          FILE)
    if [o.tag for o in outer] != [DERTag.INTEGER, DERTag.OID, DERTag.SET]:
        raise LDSError(FILE, "expected SEQUENCE { INTEGER version, OID, SET OF fields }")
    if asn1.decode_integer(outer[0].value, FILE) != VERSION:
        raise LDSError(FILE, f"version must be {VERSION}")
    if asn1.decode_oid(outer[1].value, FILE) != CONTENT_OID:
        raise LDSError(FILE, f"content OID must be {CONTENT_OID}")
    return asn1.children(outer[2].value, FILE)


def decode_dg13(data: bytes) -> DG13:
    """Parse DG13 by field number (any order); a repeated field number is an error."""
    values: dict[str, str | None] = {}
    extra: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    for element in _header(data):
        number, value, raw = _field(element)
        if number in seen:
            raise LDSError(FILE, f"field {number:02X} appears twice")
        seen.add(number)
        if number in _TEXT_FIELDS:
            values[_TEXT_FIELDS[number]] = _text(value, f"field {number:02X}") or _empty(number)
        elif number in (PARENTS, SPOUSE):
            values.update(_structured(number, value))
        elif 0 <= number <= 0x7F:
            extra.append((number, raw))
        else:
            raise LDSError(FILE, f"field number {number} out of range")
    return DG13(**values, extra=tuple(extra))
