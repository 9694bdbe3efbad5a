"""The curves of EAC (PACE, Chip and Terminal Authentication) and the PACE standardized domain
parameter ids that name them (ICAO 9303-11 §9.5.1; BSI TR-03110-3 Table 4).

The curves themselves, with their domain parameters and OIDs, are :mod:`common.curves`'; this
module says which of them EAC uses and looks them up by what EAC carries: a PACE parameter id,
an OID or explicit domain parameters.
"""

from __future__ import annotations

from common.curves import (
    BRAINPOOL_P256R1,
    BRAINPOOL_P384R1,
    BRAINPOOL_P512R1,
    SECP256R1,
    SECP384R1,
    Curve,
)

# TR-03110-3 Table 4. The other ids (0-2 MODP groups; 8-11, 14 and 18: P-192, P-224, P-521 and
# brainpoolP192r1, P224r1, P320r1) name curves cardline does not use.
PACE_PARAMETER_IDS: dict[int, Curve] = {
    13: BRAINPOOL_P256R1,
    12: SECP256R1,
    16: BRAINPOOL_P384R1,
    15: SECP384R1,
    17: BRAINPOOL_P512R1,
}
CURVES: tuple[Curve, ...] = tuple(PACE_PARAMETER_IDS.values())  # the curves of EAC


def by_oid(oid: str) -> Curve:
    """The curve with this object identifier (KeyError when EAC does not use it)."""
    for curve in CURVES:
        if curve.oid == oid:
            return curve
    return _missing("object identifier", oid)


def by_pace_parameter_id(parameter_id: int) -> Curve:
    """The curve PACE names by this standardized domain parameter id."""
    curve = PACE_PARAMETER_IDS.get(parameter_id)
    return _missing("PACE parameter id", str(parameter_id)) if curve is None else curve


def pace_parameter_id(curve: Curve) -> int:
    """The standardized domain parameter id PACE names ``curve`` by."""
    for parameter_id, named in PACE_PARAMETER_IDS.items():
        if named == curve:
            return parameter_id
    raise KeyError(f"PACE names no parameter id for {curve.label}")


def by_parameters(p: int, a: int, b: int, gx: int, gy: int, n: int) -> Curve:
    """The named curve whose explicit domain parameters these are (DG14's CA key carries
    them explicitly)."""
    for curve in CURVES:
        if (curve.p, curve.a, curve.b, curve.gx, curve.gy, curve.n) == (p, a, b, gx, gy, n):
            return curve
    return _missing("explicit domain parameters", f"p of {p.bit_length()} bits")


def _missing(what: str, value: str) -> Curve:
    raise KeyError(f"no EAC curve with {what} {value}")
