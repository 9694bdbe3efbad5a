"""EF.DG2: ICAO biometric templates around an ISO/IEC 19794-5:2005 face record."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from applets.emrtd.lds.dg2 import DG2, FaceImage, decode_dg2, decode_record, encode_dg2
from applets.errors import LDSError
from applets.iso7816 import tlv


def _jpeg(width: int = 24, height: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 150, 120)).save(buffer, "JPEG")
    return buffer.getvalue()


JPEG = _jpeg()


def _record(dg2: bytes) -> bytes:
    bit = tlv.decode_all(tlv.decode_single(tlv.decode_single(dg2).value).value)[1]
    return tlv.decode_all(bit.value)[1].value


def _rewrap(record: bytes) -> bytes:
    """A DG2 whose 5F2E holds ``record`` (the templates re-encoded around it)."""
    bht = bytes.fromhex("A10F800201018101028702010188020008")
    bit = tlv.encode(0x7F60, bht + tlv.encode(0x5F2E, record))
    return tlv.encode(0x75, tlv.encode(0x7F61, b"\x02\x01\x01" + bit))


def test_layout_matches_icao_templates():
    """The file is 75 / 7F61 / 02 01 01 / 7F60 / A1 BHT / 5F2E with the ICAO header values."""
    data = encode_dg2(JPEG, 24, 32, gender="F")
    assert data[:1] == b"\x75"
    assert bytes.fromhex("7F61") in data[:8]
    assert bytes.fromhex("A10F800201018101028702010188020008") in data[:40]
    record = _record(data)
    assert record[:8] == b"FAC\x00010\x00"
    assert struct.unpack(">I", record[8:12])[0] == len(record) == 14 + 32 + len(JPEG)


def test_round_trip_keeps_image_and_header():
    """Decoding returns the same image bytes, size, type and gender."""
    dg2 = decode_dg2(encode_dg2(JPEG, 24, 32, gender="M"))
    assert dg2 == DG2((FaceImage(JPEG, 24, 32, "jpeg", "M"),))


def test_jpeg2000_and_unspecified_gender():
    """A JPEG 2000 codestream is typed 01 and no gender decodes as None."""
    j2k = b"\xff\x4f\xff\x51" + bytes(40)
    face = decode_dg2(encode_dg2(j2k, 10, 10, image_type="jpeg2000")).faces[0]
    assert (face.image_data_type, face.gender) == ("jpeg2000", None)


@pytest.mark.parametrize("kwargs,reason", [
    ({"image": b"GIF89a"}, "signature"), ({"width": 0}, "out of range"),
    ({"height": 70000}, "out of range"), ({"image_type": "png"}, "image type"),
    ({"gender": "X"}, "gender"),
])
def test_encoder_rejects_bad_arguments(kwargs, reason):
    """Wrong image signature, size, type or gender is refused before encoding."""
    args = {"image": JPEG, "width": 24, "height": 32} | kwargs
    with pytest.raises(LDSError, match=reason):
        encode_dg2(**args)


GOOD_RECORD = _record(encode_dg2(JPEG, 24, 32))


def _patch(record: bytes, offset: int, value: bytes) -> bytes:
    return record[:offset] + value + record[offset + len(value):]


@pytest.mark.parametrize("record,reason", [
    (_patch(GOOD_RECORD, 0, b"FAX"), "not a 19794-5"),
    (_patch(GOOD_RECORD, 8, struct.pack(">I", len(GOOD_RECORD) + 1)), "record length"),
    (_patch(GOOD_RECORD, 12, b"\x00\x00"), "count 0"),
    (_patch(GOOD_RECORD, 12, b"\x00\x02"), "truncated|inconsistent"),
    (_patch(GOOD_RECORD, 14, struct.pack(">I", 40)), "after the last"),
    (_patch(GOOD_RECORD, 14, struct.pack(">I", len(GOOD_RECORD))), "inconsistent"),
    (_patch(GOOD_RECORD, 14, struct.pack(">I", 10)), "inconsistent"),
    (_patch(GOOD_RECORD, 18, b"\x00\x05"), "inconsistent|signature|image data type"),
    (_patch(GOOD_RECORD, 35, b"\x07"), "image data type"),
    (_patch(GOOD_RECORD, 46, b"\x00\x00"), "signature"),
    (GOOD_RECORD[:10], "shorter than its header"),
])
def test_record_length_mismatches_rejected(record, reason):
    """Every inconsistency between the 19794-5 length fields and the data is an LDSError."""
    with pytest.raises(LDSError, match=reason):
        decode_dg2(_rewrap(record))


@pytest.mark.parametrize("data,reason", [
    (b"\x76" + encode_dg2(JPEG, 24, 32)[1:], "expected tag 75"),
    (encode_dg2(JPEG, 24, 32) + b"\x00", "trailing"),
    (tlv.encode(0x75, tlv.encode(0x7F61, b"\x02\x01\x02" + tlv.encode(0x7F60, b""))), "count 2"),
    (tlv.encode(0x75, tlv.encode(0x7F61, b"\x02\x01\x00")), "count 0"),
    (tlv.encode(0x75, tlv.encode(0x7F61, b"\x04\x01\x01")), "02 01"),
    (tlv.encode(0x75, tlv.encode(0x7F61, b"\x02\x01\x01" + tlv.encode(0x7F60, b"\xa1\x00"))),
     "A1 then 5F2E"),
    (tlv.encode(0x75, tlv.encode(0x7F61, b"\x02\x01\x01" + tlv.encode(0x7F62, b""))),
     "expected tag 7F60"),
])
def test_template_structure_errors(data, reason):
    """Wrong outer tags, counts, template contents or trailing bytes are rejected."""
    with pytest.raises(LDSError, match=reason):
        decode_dg2(data)


def test_header_must_announce_19794_5():
    """A BHT with another format type is rejected."""
    bad = encode_dg2(JPEG, 24, 32).replace(bytes.fromhex("88020008"), bytes.fromhex("88020501"))
    with pytest.raises(LDSError, match="19794-5"):
        decode_dg2(bad)


def test_two_templates_give_two_faces():
    """Two 7F60 templates announced by the count yield two faces in order."""
    one = tlv.decode_all(tlv.decode_single(tlv.decode_single(encode_dg2(JPEG, 24, 32)).value)
                         .value)[1]
    bit = tlv.encode(one.tag, one.value)
    data = tlv.encode(0x75, tlv.encode(0x7F61, b"\x02\x01\x02" + bit + bit))
    assert len(decode_dg2(data).faces) == 2


def test_record_with_feature_points():
    """Feature points shift the image information and are counted on decode."""
    record = GOOD_RECORD
    points = b"\x01\x11\x00\x10\x00\x20\x00\x00"
    block = struct.unpack(">I", record[14:18])[0] + 8
    patched = record[:14] + struct.pack(">IH", block, 1) + record[20:34] + points + record[34:]
    patched = _patch(patched, 8, struct.pack(">I", len(patched)))
    (face,) = decode_record(patched)
    assert face.feature_points == 1 and face.image == JPEG


@given(st.binary(max_size=3000), st.integers(1, 65535), st.integers(1, 65535),
       st.sampled_from(["M", "F", None, "unknown"]))
def test_round_trip_property(tail, width, height, gender):
    """Any JPEG-signed payload, size and gender round-trips through DG2."""
    image = b"\xff\xd8" + tail
    face = decode_dg2(encode_dg2(image, width, height, gender=gender)).faces[0]
    assert (face.image, face.width, face.height, face.gender) == (image, width, height, gender)
