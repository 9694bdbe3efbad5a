"""EF.DG3, the encoded fingers: ISO/IEC 19794-4:2005 records inside ICAO biometric templates.

ICAO 9303-10 §4.7.3 (the templates of Table 44, as for DG2) and ISO/IEC 19794-4:2005 (the
finger image record, big-endian):

    63 { 7F61 { 02 01 n, 7F60 { A1 <BHT>, 5F2E <19794-4 record> } × n } }

A record is a 32-byte general header, then per finger image a 14-byte finger header and the
compressed image. Decoding checks every length field against the bytes it covers; no error
message ever carries image bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from functools import cache

from applets.emrtd.lds import asn1
from applets.errors import LDSError
from applets.iso7816 import tlv

FILE = "EF.DG3"


class DG3Tag(IntEnum):
    """The tags of EF.DG3 (ICAO 9303-10 Table 44, ISO/IEC 7816-11)."""

    DG3 = 0x63
    GROUP_TEMPLATE = 0x7F61
    INSTANCE_COUNT = 0x02
    BIT = 0x7F60
    BHT = 0xA1
    HEADER_VERSION = 0x80
    BIOMETRIC_TYPE = 0x81
    BIOMETRIC_SUBTYPE = 0x82
    FORMAT_OWNER = 0x87
    FORMAT_TYPE = 0x88
    BDB = 0x5F2E


class Compression(IntEnum):
    """Image compression algorithm codes of the 19794-4:2005 general record header."""

    UNCOMPRESSED = 0
    UNCOMPRESSED_BIT_PACKED = 1
    WSQ = 2
    JPEG = 3
    JPEG2000 = 4
    PNG = 5


# ICAO 9303-10 Table 44: biometric type 08 = finger; format owner 0101 (ISO/IEC JTC1 SC37),
# format type 0007 = ISO/IEC 19794-4 finger image.
FINGER_TYPE, FORMAT_OWNER, FORMAT_TYPE = b"\x08", b"\x01\x01", b"\x00\x07"
# ISO/IEC 19794-4:2005 general record header: "FIR\0", "010\0", record length (6 bytes, read
# as 2 + 4), capture device id, acquisition level, finger count, scale units, scan x/y and
# image x/y resolution, pixel depth, compression, reserved.
_GENERAL = struct.Struct(">4s4sHIHHBBHHHHBBH")
# ISO/IEC 19794-4:2005 finger image header: block length, finger position, view count, view
# number, quality, impression type, width, height, reserved.
_FINGER = struct.Struct(">IBBBBBHHB")
_MAGIC, _VERSION = b"FIR\x00", b"010\x00"
_SIGNATURES: dict[Compression, tuple[bytes, ...]] = {
    Compression.WSQ: (b"\xff\xa0",),  # WSQ SOI marker (FBI IAFIS-IC-0110)
    Compression.JPEG: (b"\xff\xd8",),
    Compression.JPEG2000: (b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51"),
    Compression.PNG: (b"\x89PNG\r\n\x1a\n",),
}
SCALE_PPI, SCALE_PPCM = 1, 2  # 19794-4:2005 scale units: pixels per inch / per cm
RIGHT_INDEX, LEFT_INDEX = 2, 7  # 19794-4 finger position codes of the fingers DG3 usually holds
# CBEFF biometric subtype (ISO/IEC 19785-1, NISTIR 6529-A): 01 right / 02 left, and the finger
# in bits 3-5: thumb 04, index 08, middle 0C, ring 10, little 14. 19794-4 positions 1-5 are the
# right thumb to little finger, 6-10 the left.
_FINGER_BITS = (0x04, 0x08, 0x0C, 0x10, 0x14)


def cbeff_subtype(position: int) -> int | None:
    """The CBEFF subtype of a 19794-4 finger position (2 → 09, 7 → 0A); None for others."""
    if not 1 <= position <= 10:
        return None
    side, finger = divmod(position - 1, 5)
    return (0x01 << side) | _FINGER_BITS[finger]


def finger_position(subtype: int) -> int:
    """The 19794-4 finger position of a CBEFF subtype (09 → 2, 0A → 7)."""
    for position in range(1, 11):
        if cbeff_subtype(position) == subtype:
            return position
    raise LDSError(FILE, f"CBEFF subtype {subtype:02X} names no single finger")


@dataclass(frozen=True, slots=True)
class FingerImage:
    """One finger view of a 19794-4 record: its finger header fields and the image."""

    position: int
    image: bytes
    width: int
    height: int
    quality: int
    impression_type: int = 0  # 19794-4 impression type 0: live-scan plain
    view_count: int = 1
    view_number: int = 1


@dataclass(frozen=True, slots=True)
class FingerRecord:
    """One 19794-4 record (one biometric template): general header fields and its fingers."""

    fingers: tuple[FingerImage, ...]
    compression: Compression = Compression.WSQ
    scan_resolution: tuple[int, int] = (500, 500)
    image_resolution: tuple[int, int] = (500, 500)
    acquisition_level: int = 31  # 19794-4 image acquisition setting level 31: 500 ppi
    scale_units: int = SCALE_PPI
    pixel_depth: int = 8
    capture_device_id: int = 0
    header_version: bytes | None = None  # BHT tag 80, optional in 9303-10 Table 44

    @property
    def subtype(self) -> int | None:
        """The CBEFF subtype the BHT announces: the fingers' one subtype, None if mixed."""
        subtypes = {cbeff_subtype(finger.position) for finger in self.fingers}
        return subtypes.pop() if len(subtypes) == 1 else None


@dataclass(frozen=True, slots=True)
class DG3:
    """The decoded DG3: every finger record, in template order."""

    records: tuple[FingerRecord, ...]


def _check_range(what: str, value: int, low: int, high: int, finger: int = 0) -> None:
    if not low <= value <= high:
        where = f"finger {finger} " if finger else ""
        raise LDSError(FILE, f"{where}{what} {value} out of range {low}..{high}")


def _check_image(compression: Compression, image: bytes, index: int) -> None:
    """The image must start with the signature of the record's one compression algorithm."""
    signatures = _SIGNATURES.get(compression, (b"",))
    if not image or not image.startswith(signatures):
        raise LDSError(FILE, f"finger {index}: image data does not start with a "
                             f"{compression.name} signature")


def _finger_header(finger: FingerImage, compression: Compression, index: int) -> bytes:
    """The 14-byte finger header (the image follows it in the record)."""
    image = finger.image
    if not image or not image.startswith(_SIGNATURES.get(compression, (b"",))):
        _check_image(compression, image, index)
    octets = (finger.position, finger.view_count, finger.view_number, finger.quality,
              finger.impression_type)
    width, height = finger.width, finger.height
    block = _FINGER.size + len(image)
    # one test for the common case; each field's message is made only for one out of range
    if not (min(octets) >= 0 and max(octets) <= 0xFF and 0 < width <= 0xFFFF
            and 0 < height <= 0xFFFF and block <= 0xFFFFFFFF):
        for what, value in zip(("position", "view count", "view number", "quality",
                                "impression type"), octets, strict=True):
            _check_range(what, value, 0, 0xFF, index)
        _check_range("width", width, 1, 0xFFFF, index)
        _check_range("height", height, 1, 0xFFFF, index)
        _check_range("block length", block, _FINGER.size, 0xFFFFFFFF, index)
    return _FINGER.pack(block, *octets, width, height, 0)


def _general_header(record: FingerRecord, length: int) -> bytes:
    count = len(record.fingers)
    sixteen = (record.capture_device_id, record.acquisition_level, *record.scan_resolution,
               *record.image_resolution)
    if not (0 < count <= 0xFF and 1 <= record.pixel_depth <= 16
            and SCALE_PPI <= record.scale_units <= SCALE_PPCM
            and min(sixteen) >= 0 and max(sixteen) <= 0xFFFF):
        _check_range("finger count", count, 1, 0xFF)
        _check_range("pixel depth", record.pixel_depth, 1, 16)
        _check_range("scale units", record.scale_units, SCALE_PPI, SCALE_PPCM)
        for what, value in zip(("capture device id", "acquisition level", "resolution",
                                "resolution", "resolution", "resolution"), sixteen, strict=True):
            _check_range(what, value, 0, 0xFFFF)
    return _GENERAL.pack(_MAGIC, _VERSION, length >> 32, length & 0xFFFFFFFF, sixteen[0],
                         sixteen[1], count, record.scale_units, *sixteen[2:],
                         record.pixel_depth, record.compression, 0)


_COMPRESSIONS = {code.value: code for code in Compression}


def _compression(code: int) -> Compression:
    found = _COMPRESSIONS.get(code)
    if found is None:
        raise LDSError(FILE, f"unknown image compression algorithm {code}")
    return found


def _record_parts(record: FingerRecord) -> tuple[list[bytes], int]:
    """The record's pieces in order (general header, then each finger header and image),
    unjoined, and their total length: DG3 joins every piece once, never copying the images
    level by level."""
    compression = _compression(record.compression)
    parts: list[bytes] = [b""]
    length = _GENERAL.size
    for index, finger in enumerate(record.fingers, 1):
        parts += (_finger_header(finger, compression, index), finger.image)
        length += _FINGER.size + len(finger.image)
    parts[0] = _general_header(record, length)
    return parts, length


def encode_record(record: FingerRecord) -> bytes:
    """The ISO/IEC 19794-4:2005 record: general header, then each finger header and image."""
    return b"".join(_record_parts(record)[0])


def _bht(record: FingerRecord) -> bytes:
    """The biometric header template (ICAO 9303-10 Table 44), fields in tag order."""
    return _bht_of(record.header_version, record.subtype)


@cache
def _bht_of(header_version: bytes | None, subtype: int | None) -> bytes:
    """The BHT depends on these two alone: each of the few there are is encoded once."""
    parts = [] if header_version is None else [
        tlv.encode(DG3Tag.HEADER_VERSION, header_version)]
    parts.append(tlv.encode(DG3Tag.BIOMETRIC_TYPE, FINGER_TYPE))
    if subtype is not None:
        parts.append(tlv.encode(DG3Tag.BIOMETRIC_SUBTYPE, bytes((subtype,))))
    parts += [tlv.encode(DG3Tag.FORMAT_OWNER, FORMAT_OWNER),
              tlv.encode(DG3Tag.FORMAT_TYPE, FORMAT_TYPE)]
    return tlv.encode(DG3Tag.BHT, b"".join(parts))


@cache
def _tag(tag: int) -> bytes:
    return tlv.encode_tag(tag)


def _head(tag: int, length: int) -> bytes:
    """A TLV object's tag and length, for a value of ``length`` bytes joined after it."""
    return _tag(tag) + tlv.encode_length(length)


def encode_dg3(records: Sequence[FingerRecord]) -> bytes:
    """DG3 with one biometric template per record (ICAO 9303-10 §4.7.3)."""
    _check_range("number of finger records", len(records), 1, 0xFF)
    count = tlv.encode(DG3Tag.INSTANCE_COUNT, bytes((len(records),)))
    inner: list[bytes] = [count]
    group = len(count)
    for record in records:
        parts, bdb = _record_parts(record)
        bdb_head = _head(DG3Tag.BDB, bdb)
        bht = _bht(record)
        template = len(bht) + len(bdb_head) + bdb
        bit_head = _head(DG3Tag.BIT, template)
        inner += (bit_head, bht, bdb_head, *parts)
        group += len(bit_head) + template
    group_head = _head(DG3Tag.GROUP_TEMPLATE, group)
    return b"".join((_head(DG3Tag.DG3, len(group_head) + group), group_head, *inner))


# the defaults of a 500 ppi WSQ record and of a finger view, for encode_wsq_fingers
_WSQ_PPI, _VIEW = FingerRecord(()), FingerImage(0, b"", 1, 1, 0)
_WSQ_SOI = _SIGNATURES[Compression.WSQ][0]


def encode_wsq_fingers(fingers: Sequence[tuple[int, bytes, int, int]], quality: int,
                       ppi: int = 500) -> bytes:
    """DG3 of one single-finger record per ``(position, WSQ image, width, height)``, scanned
    and kept at ``ppi``, the other fields the record's defaults: the same bytes as
    :func:`encode_dg3` of those records, built without them (data preparation runs this once
    a card; it costs about half as much)."""
    _check_range("number of finger records", len(fingers), 1, 0xFF)
    _check_range("resolution", ppi, 0, 0xFFFF)
    d, v = _WSQ_PPI, _VIEW
    count = tlv.encode(DG3Tag.INSTANCE_COUNT, bytes((len(fingers),)))
    inner: list[bytes] = [count]
    group = len(count)
    for position, image, width, height in fingers:
        block = _FINGER.size + len(image)
        if not (image.startswith(_WSQ_SOI) and 0 <= position <= 0xFF and 0 <= quality <= 0xFF
                and 0 < width <= 0xFFFF and 0 < height <= 0xFFFF and block <= 0xFFFFFFFF):
            # the general path says which field is wrong
            return encode_dg3([FingerRecord((FingerImage(p, i, w, h, quality),),
                                            scan_resolution=(ppi, ppi),
                                            image_resolution=(ppi, ppi))
                               for p, i, w, h in fingers])
        length = _GENERAL.size + block
        general = _GENERAL.pack(_MAGIC, _VERSION, length >> 32, length & 0xFFFFFFFF,
                                d.capture_device_id, d.acquisition_level, 1, d.scale_units,
                                ppi, ppi, ppi, ppi, d.pixel_depth,
                                d.compression, 0)
        header = _FINGER.pack(block, position, v.view_count, v.view_number, quality,
                              v.impression_type, width, height, 0)
        bdb_head = _head(DG3Tag.BDB, length)
        bht = _bht_of(None, cbeff_subtype(position))
        template = len(bht) + len(bdb_head) + length
        bit_head = _head(DG3Tag.BIT, template)
        inner += (bit_head, bht, bdb_head, general, header, image)
        group += len(bit_head) + template
    group_head = _head(DG3Tag.GROUP_TEMPLATE, group)
    return b"".join((_head(DG3Tag.DG3, len(group_head) + group), group_head, *inner))


def _read_finger(record: bytes, offset: int, compression: Compression,
                 index: int) -> tuple[FingerImage, int]:
    """Finger ``index`` at ``offset``; returns it and the offset after its block."""
    if offset + _FINGER.size > len(record):
        raise LDSError(FILE, f"finger {index}: 19794-4 finger header truncated")
    block, position, views, view, quality, impression, width, height, _ = (
        _FINGER.unpack_from(record, offset))
    # 19794-4:2005: the finger block length covers the finger header and the image data.
    if block < _FINGER.size or block > len(record) - offset:
        raise LDSError(FILE, f"finger {index}: block length {block} inconsistent with the "
                             f"{len(record) - offset} bytes left in the record")
    image = record[offset + _FINGER.size : offset + block]
    _check_image(compression, image, index)
    finger = FingerImage(position, image, width, height, quality, impression, views, view)
    return finger, offset + block


def _read_general(record: bytes) -> tuple[tuple[int, ...], Compression]:
    if len(record) < _GENERAL.size:
        raise LDSError(FILE, f"19794-4 record of {len(record)} bytes is shorter than its "
                             f"{_GENERAL.size}-byte general header")
    fields = _GENERAL.unpack_from(record)
    if fields[:2] != (_MAGIC, _VERSION):
        raise LDSError(FILE, "not an ISO/IEC 19794-4:2005 finger record (FIR\\0 010\\0)")
    length = (fields[2] << 32) | fields[3]
    if length != len(record):  # 19794-4:2005: record length counts the whole record
        raise LDSError(FILE, f"19794-4 record length {length}, block holds {len(record)} bytes")
    if fields[6] < 1:
        raise LDSError(FILE, "19794-4 record announces no finger")
    return fields, _compression(fields[13])


def decode_record(record: bytes) -> FingerRecord:
    """One ISO/IEC 19794-4:2005 record, checking every length field (header version absent)."""
    fields, compression = _read_general(record)
    if fields[7] not in (SCALE_PPI, SCALE_PPCM):
        raise LDSError(FILE, f"unknown scale units {fields[7]}")
    fingers, offset = [], _GENERAL.size
    for index in range(1, fields[6] + 1):
        finger, offset = _read_finger(record, offset, compression, index)
        fingers.append(finger)
    if offset != len(record):
        raise LDSError(FILE, f"{len(record) - offset} bytes after the last finger image")
    return FingerRecord(tuple(fingers), compression, (fields[8], fields[9]),
                        (fields[10], fields[11]), fields[5], fields[7], fields[12], fields[4])


def _read_bht(bht: bytes) -> dict[int, bytes]:
    fields: dict[int, bytes] = {}
    for obj in asn1.children(bht, FILE):
        if obj.tag in fields:
            raise LDSError(FILE, f"biometric header repeats tag {obj.tag:02X}")
        fields[obj.tag] = obj.value
    if (fields.get(DG3Tag.FORMAT_OWNER), fields.get(DG3Tag.FORMAT_TYPE)) != (FORMAT_OWNER,
                                                                            FORMAT_TYPE):
        raise LDSError(FILE, "biometric header is not ISO/IEC 19794-4 (owner 0101, type 0007)")
    if fields.get(DG3Tag.BIOMETRIC_TYPE, FINGER_TYPE) != FINGER_TYPE:
        raise LDSError(FILE, "biometric type is not finger (08)")
    return fields


def _check_subtype(fields: dict[int, bytes], record: FingerRecord) -> None:
    """The BHT's subtype, when present, names the finger the record holds (CBEFF ↔ 19794-4)."""
    subtype = fields.get(DG3Tag.BIOMETRIC_SUBTYPE)
    if subtype is None:
        return
    if len(subtype) != 1 or subtype[0] != record.subtype:
        positions = sorted({finger.position for finger in record.fingers})
        raise LDSError(FILE, f"CBEFF subtype {subtype.hex().upper()} disagrees with finger "
                             f"position(s) {positions}")


def _read_template(bit: tlv.TLV) -> FingerRecord:
    parts = asn1.children(asn1.expect(bit, DG3Tag.BIT, FILE, "biometric information template"),
                          FILE)
    if [p.tag for p in parts] != [DG3Tag.BHT, DG3Tag.BDB]:
        raise LDSError(FILE, "a biometric information template must hold A1 then 5F2E")
    fields = _read_bht(parts[0].value)
    record = decode_record(parts[1].value)
    _check_subtype(fields, record)
    return replace(record, header_version=fields.get(DG3Tag.HEADER_VERSION))


def decode_dg3(data: bytes) -> DG3:
    """Parse DG3 strictly: template count, headers, every 19794-4 length, nothing trailing."""
    group = asn1.single(asn1.single(data, DG3Tag.DG3, FILE), DG3Tag.GROUP_TEMPLATE, FILE)
    objects = asn1.children(group, FILE)
    if not objects or objects[0].tag != DG3Tag.INSTANCE_COUNT or len(objects[0].value) != 1:
        raise LDSError(FILE, "biometric group template must start with 02 01 <count>")
    count = objects[0].value[0]
    # ICAO 9303-10 Table 44: the count announces the biometric templates that follow.
    if count < 1 or len(objects) - 1 != count:
        raise LDSError(FILE, f"instance count {count} but {len(objects) - 1} templates follow")
    return DG3(tuple(_read_template(bit) for bit in objects[1:]))
