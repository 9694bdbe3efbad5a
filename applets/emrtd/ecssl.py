"""k·P on P-256 through OpenSSL (``cryptography``), for the terminal's side of PACE, where
:func:`applets.emrtd.ec.multiply` in pure Python costs ~4 ms a product and a run takes five.

Only P-256: OpenSSL has dedicated code for it (~0.15 ms a product here), while its generic code
for the brainpool curves and P-384 measured no faster than ours once the y-coordinate is
recovered (below) — 5.2 ms against 3.8 ms on brainpoolP256r1, 6.2 against 8.5 on P-384.

OpenSSL's ECDH gives only the x-coordinate of k·P. The y-coordinate is one of the two square
roots of x³ + ax + b; which one follows from the x-coordinate of (k+1)·P, also from ECDH:
for Q = k·P, the two candidates ±Q give Q + P and −Q + P, whose x-coordinates differ unless
2Q or 2P is the point at infinity, which cannot happen in a group of odd prime order (every
curve here has cofactor 1). Both square roots are cheap since every such p ≡ 3 (mod 4).

Another curve, a point off the curve or the point at infinity go to (or fail as) the
pure-Python module; the results are the same points, which the tests check against it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec as openssl

from applets.emrtd import ec
from common.curves import Curve

_NAMED: dict[str, type[openssl.EllipticCurve]] = {
    "1.2.840.10045.3.1.7": openssl.SECP256R1,
}


def _named(curve: Curve) -> openssl.EllipticCurve | None:
    kind = _NAMED.get(curve.oid)
    if kind is None or curve.h != 1 or curve.p % 4 != 3:
        return None
    return kind()


def _x_of(named: openssl.EllipticCurve, scalar: int, peer: openssl.EllipticCurvePublicKey,
          ) -> int:
    return int.from_bytes(openssl.derive_private_key(scalar, named).exchange(openssl.ECDH(),
                                                                            peer), "big")


def multiply(curve: Curve, scalar: int, point: ec.Point | None) -> ec.Point | None:
    """k·P, as :func:`applets.emrtd.ec.multiply` computes it, through OpenSSL when it can."""
    named = _named(curve)
    if named is None or point is None or not ec.is_on_curve(curve, point):
        return ec.multiply(curve, scalar, point)
    k = scalar % curve.n
    if k == 0:
        return None
    if k == curve.n - 1:  # (k+1)·P would be infinity: k·P = −P
        return ec.negate(curve, point)
    if point == ec.generator(curve):  # a key pair's public half: OpenSSL gives it whole
        numbers = openssl.derive_private_key(k, named).public_key().public_numbers()
        return ec.Point(numbers.x, numbers.y)
    peer = openssl.EllipticCurvePublicNumbers(point.x, point.y, named).public_key()
    x = _x_of(named, k, peer)
    p = curve.p
    y = pow((x * x * x + curve.a * x + curve.b) % p, (p + 1) // 4, p)
    candidate = ec.Point(x, y)
    if not ec.is_on_curve(curve, candidate):  # cannot happen for a point on the curve
        return ec.multiply(curve, scalar, point)
    after = ec.add(curve, candidate, point)
    if after is None or after.x != _x_of(named, k + 1, peer):
        return ec.negate(curve, candidate)
    return candidate
