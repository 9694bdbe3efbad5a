"""The MRZ check digit of ICAO 9303-3 §4.9: weights 7, 3, 1; digits, A–Z = 10–35, '<' = 0."""

from __future__ import annotations

from applets.errors import CardError

_WEIGHTS = (7, 3, 1)


def _value(char: str) -> int:
    if "0" <= char <= "9":
        return ord(char) - 48
    if "A" <= char <= "Z":
        return ord(char) - 55
    if char == "<":
        return 0
    raise CardError(f"character {char!r} is not allowed in an MRZ field")


def check_digit(field: str) -> str:
    """The check digit of ``field`` as one character."""
    total = sum(_value(c) * _WEIGHTS[i % 3] for i, c in enumerate(field))
    return str(total % 10)
