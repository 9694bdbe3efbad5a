"""Session fixtures shared by the whole test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from applets.virtual.bank import EncoderBank
from tests.support.pg import TestServer

ENCODER_BANK_READERS = 4
ENCODER_BANK_BASE_PORT = 35100  # clear of the demo's 36000


@pytest.fixture(scope="session")
def encoder_bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EncoderBank]:
    """The real pcscd with 4 vpcd encoders and the card host, started once per test run."""
    bank = EncoderBank(
        tmp_path_factory.mktemp("encoder-bank"), ENCODER_BANK_READERS, ENCODER_BANK_BASE_PORT
    )
    bank.up()
    yield bank
    bank.down()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[TestServer]:
    """One private PostgreSQL cluster for the whole test run (started when a test asks)."""
    server = TestServer()
    try:
        server.up()
        yield server
    finally:
        server.down()
