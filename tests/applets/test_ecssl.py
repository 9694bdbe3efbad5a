"""k·P through OpenSSL (``applets.emrtd.ecssl``) is the pure-Python product, point for point."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd import ec, ecssl
from common.curves import BRAINPOOL_P256R1, SECP256R1

G = ec.generator(SECP256R1)
N = SECP256R1.n


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=N - 1), st.integers(min_value=-N, max_value=2 * N))
def test_the_product_equals_the_pure_python_one(base: int, scalar: int) -> None:
    """Both square roots of the x-coordinate occur, so the y recovery is tested both ways."""
    point = ec.multiply(SECP256R1, base, G)
    assert ecssl.multiply(SECP256R1, scalar, point) == ec.multiply(SECP256R1, scalar, point)


def test_edge_scalars_and_the_generator() -> None:
    """0 and n give infinity, n−1 the negated point, n+1 the point; k·G takes OpenSSL's key."""
    point = ec.multiply(SECP256R1, 0xC0FFEE, G)
    for scalar in (0, 1, 2, N - 2, N - 1, N, N + 1, 3 * N + 5):
        assert ecssl.multiply(SECP256R1, scalar, point) == ec.multiply(SECP256R1, scalar, point)
        assert ecssl.multiply(SECP256R1, scalar, G) == ec.multiply(SECP256R1, scalar, G)
    assert ecssl.multiply(SECP256R1, N - 1, point) == ec.negate(SECP256R1, point)


def test_other_curves_and_odd_points_take_the_pure_python_path() -> None:
    """brainpoolP256r1 (OpenSSL's generic code is no faster), a point off the curve and the
    point at infinity give what ec.multiply gives."""
    bp = ec.generator(BRAINPOOL_P256R1)
    assert ecssl.multiply(BRAINPOOL_P256R1, 77, bp) == ec.multiply(BRAINPOOL_P256R1, 77, bp)
    off = ec.Point(G.x, (G.y + 1) % SECP256R1.p)
    assert ecssl.multiply(SECP256R1, 5, off) == ec.multiply(SECP256R1, 5, off)
    assert ecssl.multiply(SECP256R1, 5, None) is None
