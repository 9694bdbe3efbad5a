"""The shared curve table: names, OIDs and domain parameters agree with pyca/cryptography."""

from __future__ import annotations

import pytest

from common.curves import CURVES, SECP256R1, SECP384R1, PrimeCurve


@pytest.mark.parametrize("curve", sorted(CURVES.values(), key=lambda c: c.name))
def test_oid_names_the_same_curve(curve: PrimeCurve) -> None:
    """Each entry's OID gives pyca/cryptography's curve of the same name and field size."""
    loaded = curve.curve()
    assert (loaded.name, loaded.key_size) == (curve.name, curve.p.bit_length())
    assert CURVES[curve.name] is curve


@pytest.mark.parametrize("curve", [SECP256R1, SECP384R1])
def test_base_point_is_on_the_curve(curve: PrimeCurve) -> None:
    """G satisfies the curve equation and encodes as 04 ‖ x ‖ y of the field's byte length."""
    assert curve.on_curve(curve.gx, curve.gy)
    assert not curve.on_curve(curve.gx, curve.gy + 1)
    assert len(curve.base) == 1 + 2 * curve.size and curve.base[0] == 0x04

