"""The HSM benchmark helper."""

from __future__ import annotations

import pytest

from hsm.bench import measure_signs_per_second
from hsm.inventory import KeyInventory, KeyRecord
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner

from .conftest import AT, Token, make_ds


@pytest.mark.softhsm
def test_measures_a_positive_rate(token: Token, hsm: HSM, inventory: KeyInventory,
                                  csca: KeyRecord) -> None:
    """A short run on SoftHSM reports a positive rate and counts every signature."""
    ds = make_ds(hsm, inventory, max_documents=10**8)
    with DSSigner(token.module, token.label, token.pin, inventory, clock=lambda: AT) as signer:
        rate = measure_signs_per_second(signer, 0.2)
    assert rate > 0
    assert inventory.get(ds.label).signed >= int(rate * 0.2 * 0.5)


def test_non_positive_duration_is_refused() -> None:
    """A zero duration is an error, not a division by zero."""
    with pytest.raises(ValueError):
        measure_signs_per_second(lambda: None, 0)  # type: ignore[arg-type]
