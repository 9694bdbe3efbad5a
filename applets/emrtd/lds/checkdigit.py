"""The MRZ check digit of ICAO 9303-3 §4.9: weights 7, 3, 1; digits, A–Z = 10–35, '<' = 0."""

from __future__ import annotations

from applets.errors import CardError

MAX_LENGTH = 128  # MRZ fields are at most 90 characters long
_INVALID = 0xFF  # no valid character has a value above 35
# Value of each byte: '0'–'9' → 0–9, 'A'–'Z' → 10–35, '<' → 0, anything else invalid.
_VALUES = bytes(
    b - 48 if 48 <= b <= 57 else b - 55 if 65 <= b <= 90 else 0 if b == 60 else _INVALID
    for b in range(256)
)
_DIGITS = "0123456789"


def check_digit(field: str) -> str:
    """The check digit of ``field`` as one character (iterates in C: it runs per card).

    The weights repeat every three characters, so the weighted sum is 7, 3 and 1 times the
    sums of the values at positions 0, 1 and 2 modulo 3 (slices and ``sum`` run in C).
    """
    try:
        values = field.encode("ascii").translate(_VALUES)
    except UnicodeEncodeError as exc:
        raise CardError(f"character {field[exc.start]!r} is not allowed in an MRZ field") from exc
    if len(values) > MAX_LENGTH:
        raise CardError(f"MRZ field of {len(values)} characters is too long")
    bad = values.find(_INVALID)
    if bad >= 0:
        raise CardError(f"character {field[bad]!r} is not allowed in an MRZ field")
    total = 7 * sum(values[0::3]) + 3 * sum(values[1::3]) + sum(values[2::3])
    return _DIGITS[total % 10]
