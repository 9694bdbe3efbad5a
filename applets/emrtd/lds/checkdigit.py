"""The MRZ check digit of ICAO 9303-3 §4.9: weights 7, 3, 1; digits, A–Z = 10–35, '<' = 0."""

from __future__ import annotations

from itertools import cycle, islice
from operator import mul

from applets.errors import CardError

_INVALID = -1_000_000  # any invalid character drives the sum negative
# Value of each byte: '0'–'9' → 0–9, 'A'–'Z' → 10–35, '<' → 0, anything else invalid.
_VALUES = tuple(
    b - 48 if 48 <= b <= 57 else b - 55 if 65 <= b <= 90 else 0 if b == 60 else _INVALID
    for b in range(256)
)
_WEIGHTS = tuple(islice(cycle((7, 3, 1)), 128))  # MRZ fields are at most 90 characters long


def check_digit(field: str) -> str:
    """The check digit of ``field`` as one character (iterates in C: it runs per card)."""
    try:
        raw = field.encode("ascii")
    except UnicodeEncodeError as exc:
        raise CardError(f"character {field[exc.start]!r} is not allowed in an MRZ field") from exc
    if len(raw) > len(_WEIGHTS):
        raise CardError(f"MRZ field of {len(raw)} characters is too long")
    total = sum(map(mul, map(_VALUES.__getitem__, raw), _WEIGHTS))
    if total < 0:
        bad = next(chr(b) for b in raw if _VALUES[b] == _INVALID)
        raise CardError(f"character {bad!r} is not allowed in an MRZ field")
    return str(total % 10)
