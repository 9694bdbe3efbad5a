"""Elliptic-curve arithmetic of applets.emrtd.ec against the group law and ``cryptography``."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec as crypto_ec
from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd import ec
from applets.emrtd.curves import CURVES
from common.curves import BRAINPOOL_P256R1, SECP256R1, Curve

BP = BRAINPOOL_P256R1
scalars = st.integers(min_value=1, max_value=BP.n - 1)


def small_x_point(curve: Curve) -> ec.Point:
    """A point whose x fits in one byte, so its encoding needs left-padding (p ≡ 3 mod 4)."""
    assert curve.p % 4 == 3
    for x in range(1, 256):
        rhs = (x**3 + curve.a * x + curve.b) % curve.p
        y = pow(rhs, (curve.p + 1) // 4, curve.p)
        if y * y % curve.p == rhs:
            return ec.Point(x, y)
    raise AssertionError("no small x on the curve")


@pytest.mark.parametrize("curve", CURVES, ids=lambda c: c.label)
def test_generator_is_on_curve_with_order_n(curve):
    """G lies on each curve and n·G is the point at infinity, (n−1)·G = −G."""
    g = ec.generator(curve)
    assert ec.is_on_curve(curve, g)
    assert ec.multiply(curve, curve.n, g) is None
    assert ec.multiply(curve, curve.n - 1, g) == ec.negate(curve, g)


@settings(max_examples=25, deadline=None)
@given(k=scalars)
def test_multiply_matches_cryptography(k):
    """k·G equals the public key ``cryptography`` derives from the same private scalar."""
    numbers = crypto_ec.derive_private_key(k, BP.crypto_curve()).public_key().public_numbers()
    assert ec.multiply(BP, k, ec.generator(BP)) == ec.Point(numbers.x, numbers.y)


@settings(max_examples=40, deadline=None)
@given(a=scalars, b=scalars)
def test_group_law_distributes_over_scalars(a, b):
    """(a+b)·G = a·G + b·G, and a·(b·G) = (ab)·G."""
    g = ec.generator(BP)
    a_g, b_g = ec.multiply(BP, a, g), ec.multiply(BP, b, g)
    assert ec.multiply(BP, a + b, g) == ec.add(BP, a_g, b_g)
    assert ec.multiply(BP, a, b_g) == ec.multiply(BP, a * b % BP.n, g)


@settings(max_examples=40, deadline=None)
@given(k=scalars, curve=st.sampled_from([BP, SECP256R1]))
def test_encode_decode_round_trip(k, curve):
    """decode(encode(P)) = P, and the encoding is 04 ‖ x ‖ y of exactly 1 + 2·size bytes."""
    point = ec.multiply(curve, k % curve.n or 1, ec.generator(curve))
    encoded = ec.encode_point(curve, point)
    assert len(encoded) == 1 + 2 * curve.size and encoded[0] == 0x04
    assert ec.decode_point(curve, encoded) == point


def test_identities_of_add_and_double():
    """P + O = P, P + (−P) = O, P + P = 2P, 2·O = O, and −k·P = k·(−P)."""
    g = ec.generator(BP)
    assert ec.add(BP, g, None) == g and ec.add(BP, None, g) == g
    assert ec.add(BP, g, ec.negate(BP, g)) is None
    assert ec.add(BP, g, g) == ec.double(BP, g) == ec.multiply(BP, 2, g)
    assert ec.double(BP, None) is None and ec.multiply(BP, 5, None) is None
    assert ec.multiply(BP, -3, g) == ec.multiply(BP, 3, ec.negate(BP, g))


def test_short_coordinate_is_left_padded():
    """A point with a one-byte x still encodes x in curve.size bytes (gematik E-Rezept #30)."""
    point = small_x_point(BP)
    encoded = ec.encode_point(BP, point)
    assert len(encoded) == 65 and encoded[1:32] == bytes(31)
    assert ec.x_coordinate(BP, point) == point.x.to_bytes(32, "big")
    assert ec.decode_point(BP, encoded) == point
    unpadded = b"\x04" + point.x.to_bytes(1, "big") + point.y.to_bytes(32, "big")
    with pytest.raises(ec.PointError, match="bytes"):
        ec.decode_point(BP, unpadded)


@pytest.mark.parametrize("data", [
    b"", b"\x00", b"\x02" + bytes(32), b"\x03" + bytes(32), b"\x04" + bytes(64),
    b"\x04" + bytes(63),
], ids=["empty", "infinity", "compressed-02", "compressed-03", "zeros", "short"])
def test_decode_refuses_malformed_and_infinity(data):
    """The empty string, 00 (infinity), compressed forms and off-curve zeros are refused."""
    with pytest.raises(ec.PointError):
        ec.decode_point(BP, data)


def test_decode_refuses_off_curve_and_out_of_field():
    """A point with y off by one, or with x ≥ p, is not accepted."""
    g = ec.generator(BP)
    size = BP.size
    with pytest.raises(ec.PointError, match="not on"):
        ec.decode_point(BP, b"\x04" + g.x.to_bytes(size, "big") + (g.y + 1).to_bytes(size, "big"))
    small = small_x_point(BP)  # x + p still fits 32 bytes and is ≡ x (mod p)
    wrapped = b"\x04" + (small.x + BP.p).to_bytes(size, "big") + small.y.to_bytes(size, "big")
    with pytest.raises(ec.PointError):
        ec.decode_point(BP, wrapped)


def test_encode_refuses_infinity_and_off_curve():
    """Encoding the point at infinity or a point off the curve raises."""
    with pytest.raises(ec.PointError, match="infinity"):
        ec.encode_point(BP, None)
    with pytest.raises(ec.PointError, match="not on"):
        ec.encode_point(BP, ec.Point(1, 1))
