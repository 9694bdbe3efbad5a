"""TD1 MRZ: layout, check digits, parsing, names and transliteration (ICAO 9303-3, -5, -11)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.emrtd.lds.checkdigit import check_digit
from applets.emrtd.lds.mrz import TD1, name_field, parse_td1, transliterate
from applets.errors import CardError, MRZError

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "lds"
TD1_VECTORS = json.loads((VECTORS / "td1_mrz.json").read_text(encoding="utf-8"))
SPECIMEN = "".join(TD1_VECTORS[0]["lines"])


@pytest.mark.parametrize("vector", TD1_VECTORS, ids=lambda v: v["lines"][0])
def test_vectors_parse_and_reencode_byte_for_byte(vector):
    """Each published TD1 MRZ parses and re-encodes to exactly the same 90 characters."""
    text = "".join(vector["lines"])
    td1 = parse_td1(text)
    assert td1.text == text
    assert td1.lines() == tuple(vector["lines"])
    assert parse_td1("\n".join(vector["lines"])) == td1


@pytest.mark.parametrize("field,digit",
                         json.loads((VECTORS / "check_digits.json").read_text())["vectors"])
def test_check_digit_vectors(field, digit):
    """The shared check-digit function matches the ICAO vectors."""
    assert check_digit(field) == digit


def test_specimen_fields():
    """The 9303-5 specimen exposes its fields without fillers."""
    td1 = parse_td1(SPECIMEN)
    assert (td1.document_code, td1.issuing_state, td1.document_number) == ("I<", "UTO", "D23145890")
    assert (td1.date_of_birth, td1.sex, td1.date_of_expiry) == ("740812", "F", "120415")
    assert td1.optional_data_1 == "" and td1.optional_data_2 == ""


def test_cccd_fields_and_bac_information():
    """A CCCD MRZ keeps the 12-digit ID in optional data and BAC uses the 9-digit number."""
    td1 = parse_td1("".join(TD1_VECTORS[1]["lines"]))
    assert td1.document_number == "093047064"
    assert td1.optional_data_1 == "001093047064<<2"
    assert td1.bac_mrz_information() == "093047064" + "1" + "930105" + "4" + "330105" + "2"


def test_bac_information_of_appendix_d():
    """ICAO 9303-11 App. D: MRZ_information of L898902C<, 690806, 940623."""
    td1 = replace(parse_td1(SPECIMEN), document_number="L898902C", date_of_birth="690806",
                  date_of_expiry="940623")
    assert td1.bac_mrz_information() == "L898902C<369080619406236"


def test_long_document_number_overflow_round_trip():
    """A 12-character number overflows into optional data with its check digit (9303-5 note j)."""
    td1 = replace(parse_td1(SPECIMEN), document_number="D23145890734", optional_data_1="AB")
    line1 = td1.lines()[0]
    assert line1 == "I<UTOD23145890<7349<AB<<<<<<<<"
    assert parse_td1(td1.text) == td1
    assert td1.bac_mrz_information() == "D23145890734" "9" "740812" "2" "120415" "9"


def test_no_expiry_fillers():
    """Date of expiry '<<<<<<' (no expiry) has check digit 0 and survives a round trip."""
    td1 = replace(parse_td1(SPECIMEN), date_of_expiry="<<<<<<")
    assert td1.lines()[1][8:15] == "<<<<<<0"
    parsed = parse_td1(td1.text)
    assert parsed.date_of_expiry == "<<<<<<"
    assert parsed.bac_mrz_information().endswith("<<<<<<0")


def _corrupt(text: str, position: int, char: str) -> str:
    return text[:position] + char + text[position + 1 :]


@pytest.mark.parametrize("position,field", [
    (14, "document number"), (36, "date of birth"), (44, "date of expiry"), (59, "composite"),
    (6, "document number"), (20, "composite"),
])
def test_wrong_check_digit_names_the_field(position, field):
    """Changing a character breaks the check digit covering it, and the error names it."""
    original = SPECIMEN[position]
    bad = _corrupt(SPECIMEN, position, "9" if original != "9" else "8")
    with pytest.raises(MRZError) as info:
        parse_td1(bad)
    assert info.value.field == field


@pytest.mark.parametrize("text,reason", [
    (SPECIMEN[:-1], "3 lines"), (SPECIMEN + "<", "3 lines"),
    (SPECIMEN.lower(), "only A-Z"), (_corrupt(SPECIMEN, 70, "é"), "only A-Z"),
    (SPECIMEN[:30] + "\n" + SPECIMEN[30:61] + "\n" + SPECIMEN[61:], "3 lines"),
])
def test_malformed_text_rejected(text, reason):
    """Wrong length, lower case, non-MRZ characters and bad line splits are rejected."""
    with pytest.raises(MRZError, match=reason):
        parse_td1(text)


def test_error_is_a_card_error():
    """MRZError belongs to the applets error root."""
    with pytest.raises(CardError):
        parse_td1("")


@pytest.mark.parametrize("changes,field", [
    ({"sex": "X"}, "sex"), ({"date_of_birth": "741312"}, "date of birth"),
    ({"date_of_expiry": "12041"}, "date of expiry"), ({"issuing_state": "UT"}, "issuing state"),
    ({"name": "ERIKSSON"}, "name"), ({"optional_data_2": "A" * 12}, "optional data 2"),
    ({"document_number": "<<<"}, "document number"), ({"nationality": "ut0"}, "nationality"),
    ({"optional_data_1": "A" * 16}, "optional data 1"),
])
def test_invalid_fields_rejected_at_construction(changes, field):
    """Building a TD1 with an invalid field raises MRZError naming it."""
    with pytest.raises(MRZError) as info:
        replace(parse_td1(SPECIMEN), **changes)
    assert info.value.field == field


@pytest.mark.parametrize("changes,value", [
    ({"sex": "X"}, "X"), ({"date_of_birth": "741312"}, "741312"),
    ({"date_of_expiry": "991399"}, "991399"),
])
def test_invalid_field_message_names_the_rule_not_the_value(changes, value):
    """A field error names the field and its rule and never quotes the personal value."""
    with pytest.raises(MRZError) as info:
        replace(parse_td1(SPECIMEN), **changes)
    assert value not in str(info.value)
    assert "must be" in str(info.value)


@pytest.mark.parametrize("position", [14, 36, 44, 59])
def test_check_digit_message_quotes_no_digit(position):
    """A wrong check digit is reported by field and rule, without the digits it derives from."""
    bad = _corrupt(SPECIMEN, position, "9" if SPECIMEN[position] != "9" else "8")
    with pytest.raises(MRZError) as info:
        parse_td1(bad)
    message = str(info.value)
    assert "check digit is wrong" in message
    assert not any(c.isdigit() for c in message.split("(")[0])


def test_transliteration_of_vietnamese():
    """Diacritics are dropped, Đ becomes D, hyphens and spaces become '<', apostrophes vanish."""
    assert transliterate("Nguyễn Thị Ánh-Tuyết") == "NGUYEN<THI<ANH<TUYET"
    assert transliterate("Đặng  Đức") == "DANG<DUC"
    assert transliterate("O'Brien, Lê") == "OBRIEN<LE"
    assert transliterate("  Ưng   ") == "UNG"


def test_name_field_short_and_padded():
    """A name that fits is PRIMARY<<SECONDARY<NAMES padded to 30."""
    assert name_field("Ứng", "Hoàng Hiệp") == "UNG<<HOANG<HIEP<<<<<<<<<<<<<<<"


def test_name_field_truncates_secondary_first():
    """Too long: the secondary identifier is cut and the field ends on a letter."""
    field = name_field("Nguyễn Văn", "Aaaaaaaaaaa Bbbbbbbbbbb Ccccccc")
    assert field == "NGUYEN<VAN<<AAAAAAAAAAA<BBBBBB"
    assert len(field) == 30


def test_name_field_cut_on_separator_keeps_initial():
    """When the cut lands on a separator, the next name keeps its initial (no trailing filler)."""
    field = name_field("P" * 20, "ABCDEFG HIJ")
    assert field == "P" * 20 + "<<ABCDEF<H"


def test_name_field_truncates_primary_last():
    """A primary identifier too long for any secondary is cut to the width and ends on a letter."""
    assert name_field("A" * 25 + " " + "B" * 10, "Anna") == "A" * 25 + "<BBBB"
    assert name_field("A" * 29 + " BC", "Anna") == "A" * 28 + "<B"


def test_name_field_needs_a_primary_identifier():
    """A primary identifier with nothing left after transliteration is rejected."""
    with pytest.raises(MRZError) as info:
        name_field("'''", "Anna")
    assert info.value.field == "name"


VIETNAMESE = st.text(alphabet="aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệ"
                              "ìỉĩíịòỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵ -'ĐĂÂÊÔƠƯ",
                     min_size=0, max_size=60)


@given(primary=VIETNAMESE.filter(lambda t: transliterate(t) != ""), secondary=VIETNAMESE)
def test_name_field_properties(primary, secondary):
    """Any Vietnamese name gives 30 MRZ characters starting with the transliterated primary."""
    field = name_field(primary, secondary)
    assert len(field) == 30
    assert set(field) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<")
    first, second = transliterate(primary), transliterate(secondary)
    full = f"{first}<<{second}" if second else first
    if len(full) <= 30:
        assert field == full.ljust(30, "<")
    elif len(first) <= 27:
        assert field.startswith(f"{first}<<")
        # A truncated field ends on a letter unless the cut follows a one-letter name.
        assert field[-1] != "<" or field[-3] == "<"
    else:
        assert field.startswith(first[:27])


MRZ_FIELD = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<", min_size=0, max_size=11)
DATE = st.dates().map(lambda d: d.strftime("%y%m%d"))


@given(number=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=12),
       optional_2=MRZ_FIELD.map(lambda t: t.rstrip("<")), birth=DATE,
       expiry=DATE | st.just("<<<<<<"), sex=st.sampled_from("MF<"),
       primary=VIETNAMESE.filter(lambda t: transliterate(t) != ""), secondary=VIETNAMESE)
def test_td1_round_trip(number, optional_2, birth, expiry, sex, primary, secondary):
    """Any valid TD1 lays out as 90 characters that parse back to the same fields."""
    td1 = TD1("ID", "VNM", number, "", birth, sex, expiry, "VNM", optional_2,
              name_field(primary, secondary))
    assert len(td1.text) == 90
    assert parse_td1(td1.text) == td1
