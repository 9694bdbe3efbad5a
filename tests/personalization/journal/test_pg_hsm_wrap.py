"""The PostgreSQL journal with its data keys wrapped in the HSM (SoftHSM), end to end: the
purge destroys the batch's wrapping key, so a wrapped data key copied before the purge (as a
backup or an old row version keeps it) no longer unwraps, even put back in the table; without
a wrap, or when the HSM fails at the purge, nothing is purged and the batch stays due."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from hsm.errors import HSMUnavailable
from hsm.keywrap import BatchKeyDestroyed, HSMKeyWrap
from hsm.softhsm import throwaway_token
from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cardstate import Event, Kind, step
from personalization.config import HSMConfig, LineConfig
from personalization.journal import JournalError
from personalization.journal.postgres import PostgresJournal, unseal
from personalization.prep import document_number
from personalization.profile import load_profile
from personalization.service.keys import journal_key_wrap
from tests.support.pg import TestServer

pytestmark = [pytest.mark.postgres, pytest.mark.softhsm]
HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Three validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid][:3]


@pytest.fixture()
def database(pg_server: TestServer) -> Iterator[str]:
    """A fresh, migrated journal database, dropped afterwards."""
    name = pg_server.fresh()
    yield name
    pg_server.cluster.drop_database(name)


@pytest.fixture()
def wrap(tmp_path: Path) -> Iterator[HSMKeyWrap]:
    """The line's journal key wrap, opened by the service on a throwaway SoftHSM token."""
    with throwaway_token(tmp_path / "data", "cardline-test") as token:
        config = LineConfig(line="line-1", data_dir=token.data_dir, hsm=HSMConfig(
            module=token.module, token=token.label, pin_source="embedded",
            softhsm_conf=token.conf))
        with journal_key_wrap(config) as opened:
            yield opened


class FailingDestroy:
    """The HSM wrap, except that the HSM stops answering when asked to destroy a key."""

    def __init__(self, inner: HSMKeyWrap) -> None:
        self.inner = inner

    def wrap(self, key: bytes, batch: str) -> bytes:
        """As the HSM wrap."""
        return self.inner.wrap(key, batch)

    def unwrap(self, blob: bytes, batch: str) -> bytes:
        """As the HSM wrap."""
        return self.inner.unwrap(blob, batch)

    def destroy(self, batch: str) -> bool:
        """The HSM is gone."""
        raise HSMUnavailable("libsofthsm2.so", "device removed")


def _finished(journal: PostgresJournal, apps: list[Application]) -> None:
    """Batch B1 with one handed-out card per application (not closed yet)."""
    journal.create_batch("B1", source="apps.jsonl", profile="cccd", max_attempts=2,
                         valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                         invalid=[])
    for index, app in enumerate(apps):
        card = journal.begin_card("B1", app.application_id, "s1")
        for kind in HAPPY:
            card = journal.move(card, step(card.machine(2), Event(kind)),
                                chip_serial=f"B1-CHIP-{index}" if kind is Kind.FED else None)


def test_a_wrapped_key_copied_before_the_purge_no_longer_unwraps(
        pg_server: TestServer, database: str, apps: list[Application],
        wrap: HSMKeyWrap) -> None:
    """Before the purge the copied wrapped key opens the copied record; the purge destroys the
    batch's HSM key; then the copy does not unwrap, and put back with its record (a restored
    backup) the journal still cannot read the application."""
    url, backdoor = pg_server.cluster.url(database), pg_server.backdoor(database)
    first = apps[0].application_id
    with PostgresJournal(url, wrap=wrap) as journal:
        _finished(journal, apps)
        [(copied,)] = backdoor.fetch("SELECT wrapped FROM batch_keys WHERE batch = 'B1'")
        [(sealed,)] = backdoor.fetch("SELECT record FROM applications WHERE "  # noqa: S608 - test value
                                     f"application_id = '{first}'")
        assert isinstance(copied, bytes) and isinstance(sealed, bytes)
        assert apps[0].full_name in unseal(wrap.unwrap(copied, "B1"), sealed, "application",
                                           "B1", first)
        assert journal.close_batch("B1", 0)
        assert journal.batch("B1").purged_at is not None
    with pytest.raises(BatchKeyDestroyed, match="destroyed"):
        wrap.unwrap(copied, "B1")
    assert wrap.destroy("B1") is False  # already gone from the token
    backdoor.execute(f"INSERT INTO batch_keys (batch, wrapped) VALUES ('B1', "  # noqa: S608 - test value
                     f"'\\x{copied.hex()}')")
    backdoor.execute(f"UPDATE applications SET record = '\\x{sealed.hex()}' WHERE "  # noqa: S608 - test value
                     f"application_id = '{first}'")
    with PostgresJournal(url, wrap=wrap) as restored, \
            pytest.raises(JournalError, match="cannot unwrap its data key: BatchKeyDestroyed"):
        restored.application("B1", first)


def test_without_a_wrap_nothing_is_purged_and_the_batch_stays_due(
        pg_server: TestServer, database: str, apps: list[Application],
        wrap: HSMKeyWrap) -> None:
    """A journal opened without a wrap closes the batch but refuses its purge, which would
    leave the HSM key alive; the next purge with the wrap finishes it."""
    url = pg_server.cluster.url(database)
    with PostgresJournal(url, wrap=wrap) as journal:
        _finished(journal, apps)
    with PostgresJournal(url) as bare:
        with pytest.raises(JournalError, match="without a key wrap, so nothing was purged"):
            bare.close_batch("B1", 0)
        assert bare.batch("B1").state == "closed" and bare.batch("B1").purged_at is None
    with PostgresJournal(url, wrap=wrap) as journal:
        assert journal.application("B1", apps[0].application_id) == apps[0]
        assert journal.purge_due() == ["B1"]
        assert journal.batch("B1").purged_at is not None
    assert wrap.destroy("B1") is False


def test_an_hsm_failure_at_the_purge_leaves_the_batch_due(
        pg_server: TestServer, database: str, apps: list[Application],
        wrap: HSMKeyWrap) -> None:
    """When the HSM cannot destroy the key the purge says so and changes nothing; the next
    purge, with the HSM back, destroys the key and purges."""
    url = pg_server.cluster.url(database)
    with PostgresJournal(url, wrap=FailingDestroy(wrap)) as journal:
        _finished(journal, apps)
        with pytest.raises(JournalError, match=r"cannot destroy its wrapping key "
                           r"\(HSMUnavailable\); nothing was purged"):
            journal.close_batch("B1", 0)
        assert journal.batch("B1").purged_at is None
        assert journal.application("B1", apps[1].application_id) == apps[1]
    with PostgresJournal(url, wrap=wrap) as journal:
        assert journal.purge_due() == ["B1"]
        with pytest.raises(JournalError, match="purged"):
            journal.application("B1", apps[1].application_id)
    assert wrap.destroy("B1") is False
