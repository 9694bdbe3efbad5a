"""EF.CVCA: the CVCA references a chip trusts for Terminal Authentication.

BSI TR-03110 v1.11 (EAC for eMRTDs), EF.CVCA: FID 011C, SFI 1C, inside the eMRTD
application (EF.CardAccess has the same FID in the master file). The content is one or two
Certification Authority Reference data objects, the most recent first, padded with 00 to
36 bytes:

    42 len CAR [42 len CAR] 00 … 00
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from applets.errors import LDSError

FILE = "EF.CVCA"
CAR_TAG = 0x42
SIZE = 36  # two CARs of at most 16 characters, each with tag and length: 2 × 18
MAX_CAR = 16  # TR-03110 (CV certificates): a CAR is at most 16 characters
MAX_CARS = 2


@dataclass(frozen=True, slots=True)
class CVCA:
    """The trusted CVCA references, most recent first (one or two)."""

    cars: tuple[str, ...]


def _check_car(car: str) -> bytes:
    """A CAR is 1 to 16 printable ISO 8859-1 characters (country, mnemonic, sequence number)."""
    if not 1 <= len(car) <= MAX_CAR or not all(" " < ch <= "~" for ch in car):
        raise LDSError(FILE, f"CAR must be 1 to {MAX_CAR} printable characters, got "
                             f"{len(car)} characters")
    return car.encode("ascii")


def encode_cvca(cars: Sequence[str]) -> bytes:
    """EF.CVCA holding ``cars`` (most recent first), padded with 00 to 36 bytes."""
    if not 1 <= len(cars) <= MAX_CARS:
        raise LDSError(FILE, f"EF.CVCA holds 1 or 2 CARs, not {len(cars)}")
    body = b"".join(bytes((CAR_TAG, len(raw))) + raw for raw in map(_check_car, cars))
    return body.ljust(SIZE, b"\x00")


def _read_car(data: bytes, offset: int) -> tuple[str, int]:
    if offset + 2 > len(data):
        raise LDSError(FILE, f"CAR data object truncated at offset {offset}")
    length = data[offset + 1]
    if length > MAX_CAR or offset + 2 + length > len(data):
        raise LDSError(FILE, f"CAR length {length} at offset {offset} exceeds {MAX_CAR} or "
                             "the file")
    raw = data[offset + 2 : offset + 2 + length]
    try:
        car = raw.decode("ascii")
    except UnicodeDecodeError:
        raise LDSError(FILE, f"CAR at offset {offset} is not printable") from None
    _check_car(car)
    return car, offset + 2 + length


def decode_cvca(data: bytes) -> CVCA:
    """Parse EF.CVCA: 36 bytes, one or two CARs, then only 00 padding."""
    if len(data) != SIZE:
        raise LDSError(FILE, f"EF.CVCA is {len(data)} bytes, not {SIZE}")
    cars: list[str] = []
    offset = 0
    while offset < SIZE and data[offset] == CAR_TAG:
        if len(cars) == MAX_CARS:
            raise LDSError(FILE, f"more than {MAX_CARS} CARs")
        car, offset = _read_car(data, offset)
        cars.append(car)
    if not cars:
        raise LDSError(FILE, f"EF.CVCA does not start with a CAR (tag {CAR_TAG:02X})")
    if any(data[offset:]):
        raise LDSError(FILE, f"bytes other than 00 padding at offset {offset}")
    return CVCA(tuple(cars))
