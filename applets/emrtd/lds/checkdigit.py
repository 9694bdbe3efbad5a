"""The MRZ check digit of ICAO 9303-3 §4.9: weights 7, 3, 1; digits, A–Z = 10–35, '<' = 0."""

from __future__ import annotations

from itertools import cycle

from applets.errors import CardError

_VALUES: dict[str, int] = {
    **{str(d): d for d in range(10)},
    **{chr(ord("A") + i): 10 + i for i in range(26)},
    "<": 0,
}
_WEIGHTS = (7, 3, 1)


def check_digit(field: str) -> str:
    """The check digit of ``field`` as one character."""
    try:
        total = sum(_VALUES[c] * w for c, w in zip(field, cycle(_WEIGHTS), strict=False))
    except KeyError as exc:
        raise CardError(f"character {exc.args[0]!r} is not allowed in an MRZ field") from exc
    return str(total % 10)
