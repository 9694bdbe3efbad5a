"""The shared curve table: names, OIDs and domain parameters agree with pyca/cryptography."""

from __future__ import annotations

import pytest

from common.curves import CURVES


@pytest.mark.parametrize("name", sorted(CURVES))
def test_oid_names_the_same_curve(name: str) -> None:
    """Each entry's OID gives pyca/cryptography's curve of the same name and field size."""
    curve = CURVES[name]
    loaded = curve.crypto_curve()
    assert (loaded.name, loaded.key_size) == (name, curve.p.bit_length())


@pytest.mark.parametrize("name", sorted(CURVES))
def test_base_point_is_on_the_curve(name: str) -> None:
    """G satisfies the curve equation and encodes as 04 ‖ x ‖ y of the field's byte length."""
    curve = CURVES[name]
    assert curve.on_curve(curve.gx, curve.gy)
    assert not curve.on_curve(curve.gx, curve.gy + 1)
    assert len(curve.base) == 1 + 2 * curve.size and curve.base[0] == 0x04
