"""Elliptic-curve point arithmetic over a :class:`~common.curves.Curve` (SEC 1 v2 §2.2.1).

PACE's generic mapping (ICAO 9303-11 §4.4.3.3.1) needs the sum of two points and agreement
over a generator other than the curve's own; ``cryptography`` offers neither, so this module
does the group law in pure Python: Jacobian coordinates inside :func:`multiply`, affine
:class:`Point` outside, loops rather than recursion. It is not constant-time: it serves a
personalization line's terminal and its virtual chip, not a card's secure element.

Points travel as SEC 1 §2.3.3 uncompressed octet strings ``04 ‖ x ‖ y``, each coordinate
left-padded to the field size (a 31-byte coordinate is still written in 32 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from applets.emrtd.errors import CryptoError
from common.curves import Curve

UNCOMPRESSED = 0x04  # SEC 1 §2.3.3; TR-03110-3 App. D.3 public points (tag 86) use this form


class PointError(CryptoError):
    """An encoded point is malformed, off the curve, or the point at infinity."""


@dataclass(frozen=True, slots=True)
class Point:
    """An affine point (x, y); the point at infinity is ``None`` wherever it may occur."""

    x: int
    y: int


_Jacobian = tuple[int, int, int]  # (X, Y, Z) with x = X/Z², y = Y/Z³; Z = 0 is infinity
_INFINITY: _Jacobian = (1, 1, 0)


def generator(curve: Curve) -> Point:
    """The curve's base point G."""
    return Point(curve.gx, curve.gy)


def is_on_curve(curve: Curve, point: Point) -> bool:
    """True when both coordinates are field elements and y² = x³ + ax + b (mod p)."""
    return 0 <= point.x < curve.p and 0 <= point.y < curve.p and curve.on_curve(point.x, point.y)


def negate(curve: Curve, point: Point) -> Point:
    """−P = (x, −y)."""
    return Point(point.x, -point.y % curve.p)


def _to_jacobian(point: Point | None) -> _Jacobian:
    return _INFINITY if point is None else (point.x, point.y, 1)


def _to_affine(curve: Curve, j: _Jacobian) -> Point | None:
    x, y, z = j
    if z == 0:
        return None
    inverse = pow(z, -1, curve.p)
    square = inverse * inverse % curve.p
    return Point(x * square % curve.p, y * square * inverse % curve.p)


def _double(curve: Curve, j: _Jacobian) -> _Jacobian:
    x, y, z = j
    p = curve.p
    if z == 0 or y == 0:
        return _INFINITY
    yy = y * y % p
    s = 4 * x * yy % p
    m = (3 * x * x + curve.a * pow(z, 4, p)) % p
    x3 = (m * m - 2 * s) % p
    return x3, (m * (s - x3) - 8 * yy * yy) % p, 2 * y * z % p


def _add(curve: Curve, j1: _Jacobian, j2: _Jacobian) -> _Jacobian:
    if j1[2] == 0:
        return j2
    if j2[2] == 0:
        return j1
    p = curve.p
    (x1, y1, z1), (x2, y2, z2) = j1, j2
    z1z1, z2z2 = z1 * z1 % p, z2 * z2 % p
    u1, u2 = x1 * z2z2 % p, x2 * z1z1 % p
    s1, s2 = y1 * z2 * z2z2 % p, y2 * z1 * z1z1 % p
    if u1 == u2:
        return _double(curve, j1) if s1 == s2 else _INFINITY
    h, r = (u2 - u1) % p, (s2 - s1) % p
    hh = h * h % p
    hhh, v = h * hh % p, u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    return x3, (r * (v - x3) - s1 * hhh) % p, h * z1 * z2 % p


def add(curve: Curve, first: Point | None, second: Point | None) -> Point | None:
    """P + Q (either may be the point at infinity, ``None``)."""
    return _to_affine(curve, _add(curve, _to_jacobian(first), _to_jacobian(second)))


def double(curve: Curve, point: Point | None) -> Point | None:
    """2P."""
    return _to_affine(curve, _double(curve, _to_jacobian(point)))


def multiply(curve: Curve, scalar: int, point: Point | None) -> Point | None:
    """k·P by left-to-right double-and-add (a loop over the scalar's bits, no recursion)."""
    if point is None:
        return None
    if scalar < 0:
        scalar, point = -scalar, negate(curve, point)
    base, result = _to_jacobian(point), _INFINITY
    for bit in bin(scalar)[2:]:
        result = _double(curve, result)
        if bit == "1":
            result = _add(curve, result, base)
    return _to_affine(curve, result)


def encode_point(curve: Curve, point: Point | None) -> bytes:
    """SEC 1 §2.3.3 uncompressed: 04 ‖ x ‖ y, each padded to ``curve.size`` bytes."""
    if point is None:
        raise PointError("the point at infinity has no uncompressed encoding here")
    if not is_on_curve(curve, point):
        raise PointError(f"point is not on {curve.label}")
    size = curve.size
    return bytes((UNCOMPRESSED,)) + point.x.to_bytes(size, "big") + point.y.to_bytes(size, "big")


def decode_point(curve: Curve, data: bytes) -> Point:
    """SEC 1 §2.3.4 for the uncompressed form, refusing infinity and points off the curve."""
    size = curve.size
    if data[:1] != bytes((UNCOMPRESSED,)):
        raise PointError(f"point does not start with 04 (got {data[:1].hex() or 'nothing'})")
    if len(data) != 1 + 2 * size:
        raise PointError(f"point of {len(data)} bytes ({1 + 2 * size} expected on {curve.label})")
    x, y = data[1 : 1 + size], data[1 + size :]
    point = Point(int.from_bytes(x, "big"), int.from_bytes(y, "big"))
    if not is_on_curve(curve, point):
        raise PointError(f"point is not on {curve.label}")
    if curve.h != 1 and multiply(curve, curve.n, point) is not None:  # SEC 1 §3.2.2.1 step 4
        raise PointError(f"point is not in the subgroup of order n on {curve.label}")
    return point


def x_coordinate(curve: Curve, point: Point) -> bytes:
    """The x-coordinate padded to ``curve.size`` (shared secrets, TR-03110 Comp() for ECDH)."""
    return point.x.to_bytes(curve.size, "big")
