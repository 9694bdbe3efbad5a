"""EF.DG13 in the Vietnamese CCCD layout: fields by number, UTF-8 text, DER SET ordering."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.emrtd.lds.asn1 import integer, oid, sequence, set_of
from applets.emrtd.lds.dg13 import DG13, NO_EXPIRY, decode_dg13, encode_dg13
from applets.errors import LDSError
from applets.iso7816 import tlv

FULL = DG13(
    personal_id="001093047064", full_name="Ứng Hoàng Hiệp", date_of_birth="05/01/1993",
    sex="Nam", nationality="Việt Nam", ethnicity="Kinh", religion="Không",
    place_of_origin="Thạch Thất, Hà Nội", place_of_residence="Số 1 Tràng Tiền, Hoàn Kiếm, Hà Nội",
    identifying_marks="Nốt ruồi C:1cm trên trước mép phải", issue_date="10/04/2021",
    expiry_date="05/01/2033", father_name="Ứng Văn Hùng", mother_name="Nguyễn Thị Lan",
    spouse_name="Đặng Thị Mai", former_id_number="012345678",
)


def _field(number: int, value: bytes) -> bytes:
    return sequence(integer(number), value)


def _utf8(text: str) -> bytes:
    return tlv.encode(0x0C, text.encode())


def _dg13(*elements: bytes, version: int = 1, content_oid: str = "1.0.10646.1.0.8") -> bytes:
    """A DG13 around the given field elements, kept in the order given (not DER-sorted)."""
    body = integer(version) + oid(content_oid) + tlv.encode(0x31, b"".join(elements))
    return tlv.encode(0x6D, sequence(body))


def test_header_bytes():
    """The file starts 6D .. 30 .. 02 01 01 06 06 28 D3 16 01 00 08 31."""
    data = encode_dg13(DG13(personal_id="001093047064"))
    assert data.hex().upper() == ("6D22 3020 020101 060628D316010008 3113 3011 020101 0C0C"
                                  .replace(" ", "") + b"001093047064".hex().upper())


def test_full_round_trip():
    """Every field, the parents' pair and the spouse survive encode/decode."""
    assert decode_dg13(encode_dg13(FULL)) == FULL


def test_absent_fields_are_omitted():
    """Fields left as None are not written at all."""
    data = encode_dg13(DG13(full_name="Lê Văn A"))
    assert decode_dg13(data) == DG13(full_name="Lê Văn A")
    assert b"\x02\x01\x01\x0c" not in data


def test_set_elements_sorted_by_encoding():
    """DER SET OF: elements appear sorted by their encoded bytes, not by field number."""
    data = encode_dg13(FULL)
    outer = tlv.decode_all(tlv.decode_single(tlv.decode_single(data).value).value)
    elements = [tlv.encode(e.tag, e.value) for e in tlv.decode_all(outer[2].value)]
    assert elements == sorted(elements)
    numbers = [tlv.decode_all(tlv.decode_one(e).value)[0].value[0] for e in elements]
    assert numbers != sorted(numbers)  # length-first ordering differs from field order here


def test_text_written_as_nfc():
    """Decomposed input is written in NFC form."""
    decomposed = unicodedata.normalize("NFD", "Nguyễn")
    data = encode_dg13(DG13(full_name=decomposed))
    assert decode_dg13(data).full_name == "Nguyễn"


def test_fields_parsed_by_number_in_any_order():
    """Elements in non-DER order are still read by field number."""
    data = _dg13(_field(4, _utf8("Nữ")), _field(1, _utf8("001193000001")))
    assert decode_dg13(data) == DG13(personal_id="001193000001", sex="Nữ")


def test_unknown_fields_preserved():
    """An unknown field number (10, suspected chip serial) is kept and re-encoded verbatim."""
    data = _dg13(_field(1, _utf8("001193000001")), _field(0x10, _utf8("0123456789ABCDEF")))
    decoded = decode_dg13(data)
    assert decoded.extra == ((0x10, _utf8("0123456789ABCDEF")),)
    assert encode_dg13(decoded) == data


def test_printable_string_accepted_on_reading():
    """A PrintableString value (seen on some cards) reads as text."""
    data = _dg13(_field(1, tlv.encode(0x13, b"001193000001")))
    assert decode_dg13(data).personal_id == "001193000001"


def test_no_expiry_literal():
    """The expiry date may be the literal 'Không thời hạn'."""
    dg13 = DG13(expiry_date=NO_EXPIRY)
    assert decode_dg13(encode_dg13(dg13)) == dg13


def test_only_one_parent():
    """A missing parent is written as an empty name and reads back as None."""
    dg13 = DG13(mother_name="Nguyễn Thị Lan")
    assert decode_dg13(encode_dg13(dg13)) == dg13


@pytest.mark.parametrize("data,reason", [
    (_dg13(_field(1, _utf8("1")), _field(1, _utf8("2"))), "twice"),
    (_dg13(_field(1, _utf8("1")), version=2), "version"),
    (_dg13(_field(1, _utf8("1")), content_oid="1.0.10646.1.0.9"), "content OID"),
    (_dg13(_field(2, tlv.encode(0x04, b"abc"))), "UTF8String"),
    (_dg13(_field(2, tlv.encode(0x0C, b"\xff\xfe"))), "invalid UTF-8"),
    (_dg13(_field(2, _utf8(""))), "empty"),
    (_dg13(_field(0x0D, sequence(_utf8("a")))), "holds 1 names"),
    (_dg13(_field(0x0E, _utf8("a"))), "expected tag 30"),
    (_dg13(_field(0x0E, sequence(_utf8("a"), _utf8("b")))), "holds 2 names"),
    (_dg13(sequence(integer(1))), "SEQUENCE { INTEGER"),
    (_dg13(set_of([_field(1, _utf8("1"))])), "expected tag 30"),
    (_dg13(_field(0x80, _utf8("x"))), "out of range"),
    (_dg13(_field(1, _utf8("1")))[:-1], "runs past"),
    (_dg13(_field(1, _utf8("1"))) + b"\x00", "trailing"),
    (b"\x6e" + _dg13(_field(1, _utf8("1")))[1:], "expected tag 6D"),
    (tlv.encode(0x6D, sequence(integer(1) + oid("1.0.10646.1.0.8"))), "SET OF fields"),
])
def test_malformed_rejected(data, reason):
    """Repeated fields, wrong header, wrong value types and bad lengths raise LDSError."""
    with pytest.raises(LDSError, match=reason):
        decode_dg13(data)


@pytest.mark.parametrize("changes,reason", [
    ({"personal_id": "12345"}, "12 digits"), ({"date_of_birth": "1993-01-05"}, "dd/mm/yyyy"),
    ({"expiry_date": "không"}, "dd/mm/yyyy"), ({"sex": "M"}, "Nam"),
    ({"full_name": ""}, "empty"), ({"extra": ((1, _utf8("x")),)}, "extra"),
])
def test_encoder_validation(changes, reason):
    """The encoder refuses malformed IDs, dates, sex values, empty strings and clashing extras."""
    with pytest.raises(LDSError, match=reason):
        encode_dg13(replace(FULL, **changes))


@pytest.mark.parametrize("changes,value", [
    ({"date_of_birth": "1993-01-05"}, "1993-01-05"), ({"sex": "Male"}, "Male"),
])
def test_encoder_errors_name_the_rule_not_the_value(changes, value):
    """A malformed date or sex is refused by field and rule; the personal value is not quoted."""
    with pytest.raises(LDSError) as info:
        encode_dg13(replace(FULL, **changes))
    assert value not in str(info.value)


TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1,
               max_size=80).map(lambda t: unicodedata.normalize("NFC", t)).filter(bool)
VIETNAMESE = st.text(alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệ"
                              "ìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ ,/-ĐĂÂÊÔƠƯ0123456789",
                     min_size=1, max_size=120)
DATE = st.dates(date(1900, 1, 1)).map(lambda d: d.strftime("%d/%m/%Y"))


@given(st.builds(
    DG13,
    personal_id=st.none() | st.from_regex(r"[0-9]{12}", fullmatch=True),
    full_name=st.none() | VIETNAMESE, date_of_birth=st.none() | DATE,
    sex=st.sampled_from([None, "Nam", "Nữ"]), nationality=st.none() | VIETNAMESE,
    ethnicity=st.none() | TEXT, religion=st.none() | TEXT, place_of_origin=st.none() | VIETNAMESE,
    place_of_residence=st.none() | VIETNAMESE,
    identifying_marks=st.none() | TEXT, issue_date=st.none() | DATE,
    expiry_date=st.none() | DATE | st.just(NO_EXPIRY), father_name=st.none() | VIETNAMESE,
    mother_name=st.none() | VIETNAMESE, spouse_name=st.none() | VIETNAMESE,
    former_id_number=st.none() | TEXT,
))
def test_round_trip_property(dg13):
    """Any DG13 with NFC Vietnamese text round-trips exactly."""
    assert decode_dg13(encode_dg13(dg13)) == dg13
