"""EF.DG3: ICAO biometric templates around ISO/IEC 19794-4:2005 finger image records."""

from __future__ import annotations

import io
import struct
from dataclasses import replace
from pathlib import Path

import pytest
import wsq  # noqa: F401  # registers the WSQ plugin with Pillow
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from applets.emrtd.lds.dg3 import (
    DG3,
    Compression,
    FingerImage,
    FingerRecord,
    cbeff_subtype,
    decode_dg3,
    decode_record,
    encode_dg3,
    encode_record,
    encode_wsq_fingers,
    finger_position,
)
from applets.errors import LDSError
from applets.iso7816 import tlv

SAMPLE = (Path(__file__).parents[2] / "vectors" / "eac" / "DG3_bsi2008.bin").read_bytes()


def _wsq(width: int = 64, height: int = 48) -> bytes:
    """A synthetic grey ridge-like pattern, WSQ-compressed by the wsq Pillow plugin."""
    image = Image.new("L", (width, height))
    image.putdata([(x * 7 + y * 3) % 256 for y in range(height) for x in range(width)])
    buffer = io.BytesIO()
    image.save(buffer, "WSQ")
    return buffer.getvalue()


WSQ = _wsq()


def _size(image: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(image)) as opened:
        assert opened.format == "WSQ"
        return opened.size


def test_bsi_sample_decodes_to_two_index_fingers():
    """The BSI 2008 DG3 holds the right and left index at 500 ppi, WSQ, quality 100, 620×620."""
    records = decode_dg3(SAMPLE).records
    assert [r.fingers[0].position for r in records] == [2, 7]
    assert [r.subtype for r in records] == [0x09, 0x0A]
    for record in records:
        (finger,) = record.fingers
        assert record.compression is Compression.WSQ
        assert (record.scan_resolution, record.image_resolution) == ((500, 500), (500, 500))
        assert (record.acquisition_level, record.pixel_depth) == (31, 8)
        assert record.header_version is None
        assert (finger.quality, finger.impression_type, finger.width, finger.height) == (
            100, 0, 620, 620)


def test_bsi_sample_rebuilt_byte_exact():
    """Encoding the decoded model gives the BSI sample back byte for byte."""
    assert encode_dg3(decode_dg3(SAMPLE).records) == SAMPLE


def test_bsi_sample_images_decode_as_wsq():
    """Both finger images of the sample open as 620×620 greyscale WSQ through Pillow + wsq."""
    for record in decode_dg3(SAMPLE).records:
        with Image.open(io.BytesIO(record.fingers[0].image)) as image:
            assert (image.format, image.mode, image.size) == ("WSQ", "L", (620, 620))


def test_synthetic_wsq_round_trip():
    """Two records with Pillow-made WSQ images round-trip, images intact and decodable."""
    records = (FingerRecord((FingerImage(2, WSQ, 64, 48, 80),)),
               FingerRecord((FingerImage(7, _wsq(40, 40), 40, 40, 60, impression_type=1),),
                            header_version=b"\x01\x01"))
    data = encode_dg3(records)
    assert data[:1] == b"\x63"
    assert bytes.fromhex("820109") in data and bytes.fromhex("82010A") in data
    decoded = decode_dg3(data)
    assert decoded == DG3(records)
    assert [_size(r.fingers[0].image) for r in decoded.records] == [(64, 48), (40, 40)]


def test_record_layout_and_lengths():
    """The record is FIR\\0 010\\0, a 6-byte record length and a finger block of 14 + image."""
    record = encode_record(FingerRecord((FingerImage(2, WSQ, 64, 48, 80),)))
    assert record[:8] == b"FIR\x00010\x00"
    assert int.from_bytes(record[8:14], "big") == len(record) == 32 + 14 + len(WSQ)
    assert struct.unpack(">IB", record[32:37]) == (14 + len(WSQ), 2)
    assert record[46:] == WSQ


@pytest.mark.parametrize("position,subtype", [(2, 0x09), (7, 0x0A), (1, 0x05), (10, 0x16)])
def test_cbeff_subtype_maps_finger_positions(position, subtype):
    """CBEFF subtype ↔ 19794-4 position: 09 ↔ 2 (right index), 0A ↔ 7 (left index) and so on."""
    assert cbeff_subtype(position) == subtype
    assert finger_position(subtype) == position


def test_unmappable_subtypes_and_positions():
    """Positions outside 1–10 have no single-finger subtype; a subtype naming none is refused."""
    assert cbeff_subtype(0) is None and cbeff_subtype(13) is None
    with pytest.raises(LDSError, match="names no single finger"):
        finger_position(0x03)


def test_mixed_fingers_carry_no_subtype():
    """A record holding two different fingers announces no CBEFF subtype."""
    record = FingerRecord((FingerImage(2, WSQ, 64, 48, 80), FingerImage(7, WSQ, 64, 48, 80)))
    assert record.subtype is None
    data = encode_dg3([record])
    assert b"\x82\x01" not in data[:40]
    assert decode_dg3(data).records == (record,)


GOOD = encode_record(FingerRecord((FingerImage(2, WSQ, 64, 48, 80),)))


def _patch(record: bytes, offset: int, value: bytes) -> bytes:
    return record[:offset] + value + record[offset + len(value):]


RECORD_ERRORS = [
    (GOOD[:20], "shorter than its 32-byte general header"),
    (_patch(GOOD, 0, b"FIX"), "not an ISO/IEC 19794-4:2005"),
    (_patch(GOOD, 4, b"020"), "not an ISO/IEC 19794-4:2005"),
    (_patch(GOOD, 8, (len(GOOD) + 1).to_bytes(6, "big")), "record length"),
    (_patch(GOOD, 8, (2**47).to_bytes(6, "big")), "record length 140737488355328"),
    (_patch(GOOD, 18, b"\x00"), "announces no finger"),
    (_patch(GOOD, 18, b"\x02"), "finger 2: 19794-4 finger header truncated"),
    (_patch(GOOD, 19, b"\x03"), "unknown scale units 3"),
    (_patch(GOOD, 29, b"\x07"), "unknown image compression algorithm 7"),
    (_patch(GOOD, 29, b"\x03"), "JPEG signature"),
    (_patch(GOOD, 32, b"\xff\xff\xff\xff"), "block length 4294967295 inconsistent"),
    (_patch(GOOD, 32, struct.pack(">I", 13)), "block length 13 inconsistent"),
    (_patch(GOOD, 32, struct.pack(">I", 20)), "bytes after the last finger image"),
    (_patch(GOOD, 46, b"\x00\x00"), "WSQ signature"),
    (_patch(GOOD, 8, (32 + 14).to_bytes(6, "big"))[: 32 + 14], "block length"),
]


@pytest.mark.parametrize("record,reason", RECORD_ERRORS, ids=[r for _, r in RECORD_ERRORS])
def test_record_inconsistencies_rejected(record, reason):
    """Truncation, wrong magic, disagreeing or huge lengths, unknown codes → LDSError."""
    with pytest.raises(LDSError, match=reason) as caught:
        decode_record(record)
    assert caught.value.file == "EF.DG3" and len(str(caught.value)) < 160


def _bit(bht_hex: str, record: bytes = GOOD) -> bytes:
    return tlv.encode(0x7F60, bytes.fromhex(bht_hex) + tlv.encode(0x5F2E, record))


def _dg3(*bits: bytes, count: int | None = None) -> bytes:
    number = len(bits) if count is None else count
    return tlv.encode(0x63, tlv.encode(0x7F61, bytes((2, 1, number)) + b"".join(bits)))


STRUCTURE_ERRORS = [
    (b"\x75" + SAMPLE[1:], "expected tag 63"),
    (SAMPLE[:-1], "runs past"),
    (SAMPLE + b"\x00", "trailing"),
    (b"\x63\x84\xff\xff\xff\xff" + SAMPLE[4:], "runs past"),
    (_dg3(_bit("A10B8101088702010188020007"), count=2), "count 2 but 1"),
    (_dg3(count=0), "count 0"),
    (_dg3(_bit("A10B8101088702010188020008")), "owner 0101, type 0007"),
    (_dg3(_bit("A10B8101028702010188020007")), "not finger"),
    (_dg3(_bit("A10E81010882010A8702010188020007")), "subtype 0A disagrees"),
    (_dg3(_bit("A10E8101088101088702010188020007")), "repeats tag 81"),
    (_dg3(tlv.encode(0x7F60, tlv.encode(0x5F2E, GOOD))), "A1 then 5F2E"),
    (_dg3(_bit("A10B8101088702010188020007", GOOD[:20])), "shorter than its"),
]


@pytest.mark.parametrize("data,reason", STRUCTURE_ERRORS, ids=[r for _, r in STRUCTURE_ERRORS])
def test_dg3_structure_errors(data, reason):
    """Wrong tags, counts, headers, subtypes and lengths in the templates raise LDSError."""
    with pytest.raises(LDSError, match=reason):
        decode_dg3(data)


def test_subtype_absent_is_accepted():
    """The BHT's subtype is optional: a record without it decodes (and re-encodes with it)."""
    data = _dg3(_bit("A10B8101088702010188020007"))
    (record,) = decode_dg3(data).records
    assert record.fingers[0].position == 2
    assert bytes.fromhex("820109") in encode_dg3([record])


FINGER = FingerImage(2, WSQ, 64, 48, 80)


@pytest.mark.parametrize("records,reason", [
    ([], "number of finger records 0"),
    ([FingerRecord(())], "finger count 0"),
    ([FingerRecord((replace(FINGER, image=b"\xff\xd8" + WSQ),))], "WSQ signature"),
    ([FingerRecord((replace(FINGER, width=0),))], "width 0 out of range"),
    ([FingerRecord((replace(FINGER, height=70000),))], "height 70000 out of range"),
    ([FingerRecord((replace(FINGER, position=256),))], "position 256"),
    ([FingerRecord((FINGER,), scale_units=3)], "scale units 3"),
    ([FingerRecord((FINGER,), pixel_depth=0)], "pixel depth 0"),
    ([FingerRecord((FINGER,), scan_resolution=(500, 70000))], "resolution 70000"),
])
def test_encoder_rejects_bad_models(records, reason):
    """Out-of-range fields, empty records and images not matching the compression are refused."""
    with pytest.raises(LDSError, match=reason):
        encode_dg3(records)


def test_encoder_rejects_unknown_compression():
    """A compression code outside 19794-4:2005's table is refused before encoding."""
    with pytest.raises(LDSError, match="unknown image compression algorithm 9"):
        encode_record(FingerRecord((FINGER,), compression=9))  # type: ignore[arg-type]


_FINGERS = st.builds(
    FingerImage, position=st.integers(0, 15),
    image=st.binary(max_size=200).map(lambda tail: b"\xff\xa0" + tail),
    width=st.integers(1, 0xFFFF), height=st.integers(1, 0xFFFF), quality=st.integers(0, 100),
    impression_type=st.integers(0, 9), view_count=st.integers(1, 4), view_number=st.integers(1, 4))
_RESOLUTION = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
_RECORDS = st.builds(
    FingerRecord, fingers=st.lists(_FINGERS, min_size=1, max_size=3).map(tuple),
    scan_resolution=_RESOLUTION, image_resolution=_RESOLUTION,
    acquisition_level=st.sampled_from([10, 20, 30, 31, 35, 40, 41]),
    scale_units=st.sampled_from([1, 2]), pixel_depth=st.integers(1, 16),
    capture_device_id=st.integers(0, 0xFFFF),
    header_version=st.none() | st.binary(min_size=2, max_size=2))


@given(st.lists(_RECORDS, min_size=1, max_size=3))
def test_round_trip_property(records):
    """Any valid list of WSQ finger records round-trips through DG3 and re-encodes identically."""
    data = encode_dg3(records)
    decoded = decode_dg3(data)
    assert decoded.records == tuple(records)
    assert encode_dg3(decoded.records) == data


_FINGER_POSITIONS = st.sampled_from([2, 7, 1, 6, 10])


@given(st.lists(st.tuples(_FINGER_POSITIONS, st.binary(max_size=40), st.integers(1, 0xFFFF),
                          st.integers(1, 0xFFFF)), min_size=1, max_size=3),
       st.integers(0, 100), st.sampled_from([500, 1000, 250]))
def test_wsq_fingers_encode_as_their_records_do(fingers: list[tuple[int, bytes, int, int]],
                                                quality: int, ppi: int) -> None:
    """The preparation's direct encoder gives encode_dg3's bytes for single-finger WSQ
    records at the given resolution, and decodes back to each finger."""
    fingers = [(p, WSQ[:2] + tail, w, h) for p, tail, w, h in fingers]
    records = [FingerRecord((FingerImage(p, i, w, h, quality),), scan_resolution=(ppi, ppi),
                            image_resolution=(ppi, ppi)) for p, i, w, h in fingers]
    encoded = encode_wsq_fingers(fingers, quality, ppi)
    assert encoded == encode_dg3(records)
    assert [(f.position, f.image, f.width, f.height, f.quality)
            for r in decode_dg3(encoded).records for f in r.fingers] == [
        (p, i, w, h, quality) for p, i, w, h in fingers]


@pytest.mark.parametrize(("finger", "quality", "named"), [
    ((2, b"\xff\xd8jpeg", 10, 10), 0, "WSQ signature"),
    ((2, WSQ, 0, 10), 0, "width 0"),
    ((300, WSQ, 10, 10), 0, "position 300"),
    ((2, WSQ, 10, 10), 256, "quality 256"),
])
def test_wsq_fingers_refuse_what_encode_dg3_refuses(finger: tuple[int, bytes, int, int],
                                                    quality: int, named: str) -> None:
    """A finger the direct path cannot take is refused with the general path's message."""
    with pytest.raises(LDSError, match=named):
        encode_wsq_fingers([finger], quality)
