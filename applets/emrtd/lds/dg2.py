"""EF.DG2, the encoded face: ISO/IEC 19794-5:2005 records inside ICAO biometric templates.

ICAO 9303-10 §4.7.2 Table 44 (templates) and ISO/IEC 19794-5:2005 §5 (the record, big-endian):

    75 { 7F61 { 02 01 n, 7F60 { A1 <BHT>, 5F2E <19794-5 record> } × n } }
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import header
from applets.errors import LDSError
from applets.iso7816 import tlv

FILE = "EF.DG2"


class DG2Tag(IntEnum):
    """The tags of EF.DG2 (ICAO 9303-10 Table 44, ISO/IEC 7816-11)."""

    DG2 = 0x75
    GROUP_TEMPLATE = 0x7F61
    INSTANCE_COUNT = 0x02
    BIT = 0x7F60
    BHT = 0xA1
    HEADER_VERSION = 0x80
    BIOMETRIC_TYPE = 0x81
    FORMAT_OWNER = 0x87
    FORMAT_TYPE = 0x88
    BDB = 0x5F2E


# ICAO 9303-10 Table 44: ISO/IEC JTC1 SC37 owns the format, 0008 = face image; type 02 = face.
_BHT = (tlv.encode(DG2Tag.HEADER_VERSION, b"\x01\x01")
        + tlv.encode(DG2Tag.BIOMETRIC_TYPE, b"\x02")
        + tlv.encode(DG2Tag.FORMAT_OWNER, b"\x01\x01")
        + tlv.encode(DG2Tag.FORMAT_TYPE, b"\x00\x08"))
_RECORD_HEADER = struct.Struct(">4s4sIH")  # ISO/IEC 19794-5 §5.4: "FAC\0", "010\0", length, count
_FACIAL_INFO = struct.Struct(">IHBBB3sH3s3s")  # §5.5: block length … pose uncertainty (20 bytes)
_IMAGE_INFO = struct.Struct(">BBHHBBHH")  # §5.7: image information (12 bytes)
_FEATURE_POINT = 8
_MAGIC, _VERSION = b"FAC\x00", b"010\x00"
_IMAGE_TYPES = {"jpeg": 0, "jpeg2000": 1}
_IMAGE_NAMES = {v: k for k, v in _IMAGE_TYPES.items()}
_SIGNATURES = {"jpeg": (b"\xff\xd8",), "jpeg2000": (b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51")}
_GENDERS = {None: 0x00, "M": 0x01, "F": 0x02, "unknown": 0xFF}  # ISO/IEC 19794-5 §5.5.3
_GENDER_NAMES = {v: k for k, v in _GENDERS.items()}
FULL_FRONTAL = 0x01  # ISO/IEC 19794-5 §5.7.1, the type ICAO 9303-10 requires
# The fixed pieces of the templates around the record, encoded once.
_DG2_TAG, _GROUP_TAG, _BIT_TAG, _BDB_TAG = (
    tlv.encode_tag(t) for t in (DG2Tag.DG2, DG2Tag.GROUP_TEMPLATE, DG2Tag.BIT, DG2Tag.BDB))
_BHT_TLV = tlv.encode(DG2Tag.BHT, _BHT)
_INSTANCE_COUNT = tlv.encode(DG2Tag.INSTANCE_COUNT, b"\x01")  # one template


@dataclass(frozen=True, slots=True)
class FaceImage:
    """One facial image of a 19794-5 record, with the header fields a verifier looks at."""

    image: bytes
    width: int
    height: int
    image_data_type: str
    gender: str | None
    face_image_type: int = FULL_FRONTAL
    colour_space: int = 0
    source_type: int = 0
    feature_points: int = 0


@dataclass(frozen=True, slots=True)
class DG2:
    """The decoded DG2: every facial image of every biometric template, in order."""

    faces: tuple[FaceImage, ...]


def _image_info(image: bytes, width: int, height: int, image_type: str) -> bytes:
    if image_type not in _IMAGE_TYPES:
        raise LDSError(FILE, f"image type {image_type!r} is not one of {sorted(_IMAGE_TYPES)}")
    if not image.startswith(_SIGNATURES[image_type]):
        raise LDSError(FILE, f"image does not start with a {image_type} signature")
    if not (0 < width <= 0xFFFF and 0 < height <= 0xFFFF):
        raise LDSError(FILE, f"image size {width}x{height} out of range 1..65535")
    return _IMAGE_INFO.pack(FULL_FRONTAL, _IMAGE_TYPES[image_type], width, height, 0, 0, 0, 0)


def _templates(record_size: int) -> bytes:
    """``75 L 7F61 L 02 01 01 7F60 L A1 <BHT> 5F2E L``: all that precedes a record of this size."""
    bdb = header(_BDB_TAG, record_size)
    bit_size = len(_BHT_TLV) + len(bdb) + record_size
    bit = header(_BIT_TAG, bit_size)
    group_size = len(_INSTANCE_COUNT) + len(bit) + bit_size
    group = header(_GROUP_TAG, group_size)
    dg2 = header(_DG2_TAG, len(group) + group_size)
    return b"".join((dg2, group, _INSTANCE_COUNT, bit, _BHT_TLV, bdb))


def encode_dg2(image: bytes, width: int, height: int, *, image_type: str = "jpeg",
               gender: str | None = None) -> bytes:
    """DG2 holding one full-frontal face image (one template, one 19794-5 record).

    The template headers are computed from the record's length, then the file is joined in
    one copy: the image (~15 KB) is copied once, not once per enclosing template.
    """
    if gender not in _GENDERS:
        raise LDSError(FILE, "gender must be 'M', 'F', 'unknown' or None")
    info = _image_info(image, width, height, image_type)
    block = _FACIAL_INFO.size + len(info) + len(image)
    facial = _FACIAL_INFO.pack(block, 0, _GENDERS[gender], 0, 0, b"\0\0\0", 0, b"\0\0\0", b"\0\0\0")
    header = _RECORD_HEADER.pack(_MAGIC, _VERSION, _RECORD_HEADER.size + block, 1)
    return b"".join((_templates(len(header) + block), header, facial, info, image))


def _read_face(record: bytes, offset: int) -> tuple[FaceImage, int]:
    """One facial image starting at ``offset``; returns it and the offset after its block."""
    if offset + _FACIAL_INFO.size + _IMAGE_INFO.size > len(record):
        raise LDSError(FILE, "19794-5 facial information truncated")
    block, points, gender = _FACIAL_INFO.unpack_from(record, offset)[:3]
    info_at = offset + _FACIAL_INFO.size + points * _FEATURE_POINT
    image_at = info_at + _IMAGE_INFO.size
    # ISO/IEC 19794-5 §5.5.1: the block length covers header, feature points, image info, image.
    if block < image_at - offset or offset + block > len(record):
        raise LDSError(FILE, f"19794-5 facial block length {block} inconsistent with the record")
    fields = _IMAGE_INFO.unpack_from(record, info_at)
    kind = _IMAGE_NAMES.get(fields[1])
    if kind is None or gender not in _GENDER_NAMES:
        raise LDSError(FILE, f"unknown image data type {fields[1]} or gender code {gender}")
    image = record[image_at : offset + block]
    if not image.startswith(_SIGNATURES[kind]):
        raise LDSError(FILE, f"image data does not start with a {kind} signature")
    face = FaceImage(image, fields[2], fields[3], kind, _GENDER_NAMES[gender],
                     fields[0], fields[4], fields[5], points)
    return face, offset + block


def decode_record(record: bytes) -> tuple[FaceImage, ...]:
    """The facial images of one ISO/IEC 19794-5 record, checking every length field."""
    if len(record) < _RECORD_HEADER.size:
        raise LDSError(FILE, "19794-5 record shorter than its header")
    magic, version, length, count = _RECORD_HEADER.unpack_from(record)
    if magic != _MAGIC or version != _VERSION:
        raise LDSError(FILE, f"not a 19794-5:2005 face record ({magic!r} {version!r})")
    if length != len(record) or count < 1:
        raise LDSError(FILE, f"19794-5 record length {length} / count {count}, "
                             f"block holds {len(record)} bytes")
    faces, offset = [], _RECORD_HEADER.size
    for _ in range(count):
        face, offset = _read_face(record, offset)
        faces.append(face)
    if offset != len(record):
        raise LDSError(FILE, f"{len(record) - offset} bytes after the last facial image")
    return tuple(faces)


def _check_bht(bht: bytes) -> None:
    fields = {obj.tag: obj.value for obj in asn1.children(bht, FILE)}
    owner, kind = fields.get(DG2Tag.FORMAT_OWNER), fields.get(DG2Tag.FORMAT_TYPE)
    if owner != b"\x01\x01" or kind != b"\x00\x08":
        raise LDSError(FILE, "biometric header is not ISO/IEC 19794-5 (owner 0101, type 0008)")
    if fields.get(DG2Tag.BIOMETRIC_TYPE, b"\x02") != b"\x02":
        raise LDSError(FILE, "biometric type is not facial features (02)")


def _read_template(bit: tlv.TLV) -> tuple[FaceImage, ...]:
    parts = asn1.children(asn1.expect(bit, DG2Tag.BIT, FILE, "biometric information template"),
                          FILE)
    if [p.tag for p in parts] != [DG2Tag.BHT, DG2Tag.BDB]:
        raise LDSError(FILE, "a biometric information template must hold A1 then 5F2E")
    _check_bht(parts[0].value)
    return decode_record(parts[1].value)


def decode_dg2(data: bytes) -> DG2:
    """Parse DG2 strictly: template count, header, every 19794-5 length, nothing trailing."""
    group = asn1.single(asn1.single(data, DG2Tag.DG2, FILE), DG2Tag.GROUP_TEMPLATE, FILE)
    objects = asn1.children(group, FILE)
    if not objects or objects[0].tag != DG2Tag.INSTANCE_COUNT or len(objects[0].value) != 1:
        raise LDSError(FILE, "biometric group template must start with 02 01 <count>")
    count = objects[0].value[0]
    # ICAO 9303-10 Table 44: 1 to 9 instances, each in its own 7F60 template.
    if not 1 <= count <= 9 or len(objects) - 1 != count:
        raise LDSError(FILE, f"instance count {count} but {len(objects) - 1} templates follow")
    faces: list[FaceImage] = []
    for bit in objects[1:]:
        faces.extend(_read_template(bit))
    return DG2(tuple(faces))
