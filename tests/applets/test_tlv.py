"""The shared BER-TLV (ISO/IEC 7816-4 §5.2) and APDU (§5.1) codecs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.errors import APDUError, StatusWordError, TLVError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU

TAGS = st.sampled_from([0x02, 0x04, 0x30, 0x31, 0x5C, 0x61, 0x6D, 0x75, 0x77, 0x5F01, 0x5F1F,
                        0x5F2E, 0x7F60, 0x7F61, 0x5F8101, 0xA0])


@pytest.mark.parametrize("length,encoded", [
    (0, "00"), (0x7F, "7F"), (0x80, "8180"), (0xFF, "81FF"), (0x100, "820100"),
    (0xFFFF, "82FFFF"), (0x10000, "83010000"),
])
def test_length_forms(length, encoded):
    """DER lengths use the short form below 128 and the shortest long form above."""
    assert tlv.encode_length(length).hex().upper() == encoded
    assert tlv.read_length(bytes.fromhex(encoded), 0) == (length, len(encoded) // 2)


@given(TAGS, st.binary(max_size=70000))
def test_round_trip(tag, value):
    """Any tag and value decode back from their encoding, with nothing left over."""
    data = tlv.encode(tag, value)
    obj = tlv.decode_single(data, tag)
    assert (obj.tag, obj.value, obj.end) == (tag, value, len(data))


@given(st.lists(st.tuples(TAGS, st.binary(max_size=300)), max_size=8))
def test_sequence_of_objects(objects):
    """Concatenated objects decode in order."""
    data = b"".join(tlv.encode(t, v) for t, v in objects)
    assert [(o.tag, o.value) for o in tlv.decode_all(data)] == objects


@pytest.mark.parametrize("data,reason", [
    (b"", "tag expected"), (b"\x5f", "multi-byte"), (b"\x61", "length expected"),
    (b"\x61\x80", "indefinite"), (b"\x61\x85\x00\x00\x00\x00\x01", "not supported"),
    (b"\x61\x82\x01", "long-form"), (b"\x61\x03\x01\x02", "runs past"),
    (b"\x61\x01\x01\x00", "trailing"), (b"\x62\x00", "expected tag 61"),
    (b"\x5f\xff\xff\xff\xff\x01\x00", "longer than 4"),
])
def test_malformed_rejected(data, reason):
    """Truncation, indefinite or oversized lengths, trailing bytes and wrong tags raise TLVError."""
    with pytest.raises(TLVError, match=reason):
        tlv.decode_single(data, 0x61)


def test_find_and_total_length():
    """find returns the first matching value; total_length sizes a file from its header."""
    data = tlv.encode(0x5F01, b"0107") + tlv.encode(0x5C, b"\x61")
    assert tlv.find(data, 0x5C) == b"\x61"
    with pytest.raises(TLVError):
        tlv.find(data, 0x5F36)
    assert tlv.total_length(bytes.fromhex("6D82012C")) == 4 + 0x12C


def test_constructed_bit():
    """Bit 6 of the first tag byte marks constructed objects."""
    assert tlv.decode_one(b"\x7f\x61\x00").constructed
    assert not tlv.decode_one(b"\x5f\x1f\x00").constructed


@pytest.mark.parametrize("apdu,encoded", [
    (CommandAPDU(0x00, 0x84, 0, 0), "00840000"),
    (CommandAPDU(0x00, 0x84, 0, 0, ne=8), "0084000008"),
    (CommandAPDU(0x00, 0xB0, 0, 0, ne=256), "00B0000000"),
    (CommandAPDU(0x00, 0xA4, 2, 0x0C, b"\x01\x1e"), "00A4020C02011E"),
    (CommandAPDU(0x00, 0x88, 0, 0, bytes(8), 256), "0088000008" + "00" * 8 + "00"),
    (CommandAPDU(0x00, 0xB0, 0, 0, ne=65536), "00B00000000000"),
    (CommandAPDU(0x00, 0xB0, 0, 0, ne=300), "00B0000000012C"),
    (CommandAPDU(0x00, 0xD6, 0, 0, bytes(300)), "00D6000000012C" + "00" * 300),
    (CommandAPDU(0x00, 0x88, 0, 0, bytes(300), 1000), "00880000" "00012C" + "00" * 300 + "03E8"),
])
def test_apdu_cases(apdu, encoded):
    """ISO 7816-4 cases 1, 2S/E, 3S/E and 4S/E encode and decode symmetrically."""
    raw = bytes.fromhex(encoded)
    assert apdu.encode() == raw
    decoded = CommandAPDU.decode(raw)
    assert (decoded.cla, decoded.ins, decoded.data, decoded.ne) == (
        apdu.cla, apdu.ins, apdu.data, apdu.ne)


@given(st.binary(max_size=600), st.none() | st.integers(1, 65536), st.booleans())
def test_apdu_round_trip(data, ne, extended):
    """Any data and Ne round-trip through the wire encoding."""
    apdu = CommandAPDU(0x0C, 0xB0, 0x12, 0x34, data, ne, extended)
    decoded = CommandAPDU.decode(apdu.encode())
    assert (decoded.data, decoded.ne, decoded.p1, decoded.p2) == (data, ne, 0x12, 0x34)


@pytest.mark.parametrize("raw,reason", [
    ("00A402", "shorter than a header"), ("00A4020C03011E", "does not match"),
    ("00A4020C0000", "truncated extended"), ("00A4020C0000000102", "Lc of zero"),
    ("00A4020C000002011E0000FF", "does not match"),
])
def test_apdu_malformed_rejected(raw, reason):
    """Short headers and Lc values that disagree with the body raise APDUError."""
    with pytest.raises(APDUError, match=reason):
        CommandAPDU.decode(bytes.fromhex(raw))


@pytest.mark.parametrize("kwargs", [{"cla": 256}, {"data": bytes(65536)}, {"ne": 0},
                                    {"ne": 65537}])
def test_apdu_out_of_range(kwargs):
    """Header bytes, data and Ne outside their ranges are refused at construction."""
    args = {"cla": 0, "ins": 0xA4, "p1": 0, "p2": 0} | kwargs
    with pytest.raises(APDUError):
        CommandAPDU(**args)


def test_response_split_and_check():
    """A response splits into data and SW; check raises StatusWordError on anything else."""
    response = ResponseAPDU.decode(bytes.fromhex("01026A82"))
    assert (response.data, response.sw, response.sw1, response.sw2) == (b"\x01\x02", 0x6A82,
                                                                         0x6A, 0x82)
    assert response.encode() == bytes.fromhex("01026A82")
    with pytest.raises(StatusWordError) as info:
        response.check("SELECT")
    assert info.value.sw == 0x6A82
    assert ResponseAPDU.decode(b"\x90\x00").check() == b""
    with pytest.raises(APDUError):
        ResponseAPDU.decode(b"\x90")
