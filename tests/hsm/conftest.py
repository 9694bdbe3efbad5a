"""A throwaway SoftHSM2 token per test, under tmp_path, plus ready-made CSCA/DS fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hsm.ceremony import init_csca, new_ds
from hsm.inventory import KeyInventory, KeyRecord
from hsm.pkcs11 import HSM
from hsm.softhsm import SoftHSMToken as Token
from hsm.softhsm import softhsm_module, throwaway_token

MODULE = str(softhsm_module())
TOKEN = "cardline-test"
AT = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
OFFICERS = ("Nguyen Van An", "Tran Thi Binh")


@pytest.fixture
def token(tmp_path: Path) -> Iterator[Token]:
    """A fresh SoftHSM token; the module is finalised around the test so it re-reads its conf."""
    with throwaway_token(tmp_path / "data", TOKEN) as opened:
        yield opened


@pytest.fixture
def hsm(token: Token) -> Iterator[HSM]:
    """The test token, opened and logged in."""
    with HSM(token.module, token.label, token.pin, sessions=2) as opened:
        yield opened


@pytest.fixture
def inventory(token: Token) -> Iterator[KeyInventory]:
    """An empty key inventory next to the token."""
    with KeyInventory(token.data_dir / "hsm" / "inventory.db") as opened:
        yield opened


@pytest.fixture
def csca(hsm: HSM, inventory: KeyInventory) -> KeyRecord:
    """An ECDSA P-256 CSCA made by the ceremony code."""
    return init_csca(hsm, inventory, officers=OFFICERS, at=AT, label="CSCA-VNM")


def make_ds(hsm: HSM, inventory: KeyInventory, *, max_documents: int = 1000,
            usage_days: int = 90, algorithm: str = "ecdsa-p256",
            at: datetime = AT) -> KeyRecord:
    """A DS key made by the ceremony code."""
    return new_ds(hsm, inventory, officers=OFFICERS, at=at, usage_days=usage_days,
                  max_documents=max_documents, algorithm=algorithm, label_prefix="DS-VNM")


@pytest.fixture
def ds(hsm: HSM, inventory: KeyInventory, csca: KeyRecord) -> KeyRecord:
    """An active ECDSA P-256 DS key certified by the CSCA."""
    return make_ds(hsm, inventory)
