"""Session fixtures shared by the whole test run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from applets.virtual.bank import EncoderBank
from tests.support.pg import TestServer

ENCODER_BANK_READERS = 4
ENCODER_BANK_BASE_PORT = 30100  # clear of the demo (31000) and the benches (30600)


@pytest.fixture(scope="session", autouse=True)
def _private_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Logins of the tests (and of the `cardline` processes they start) go to a folder of
    the test run, never the tester's own ~/.config/cardline; nobody acts from the tester's
    environment unless a test says so."""
    saved = {k: os.environ.get(k) for k in
             ("CARDLINE_SESSION_DIR", "CARDLINE_USER", "CARDLINE_PASSPHRASE")}
    folder = tmp_path_factory.mktemp("sessions")
    folder.chmod(0o700)
    os.environ["CARDLINE_SESSION_DIR"] = str(folder)
    os.environ.pop("CARDLINE_USER", None)
    os.environ.pop("CARDLINE_PASSPHRASE", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


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
