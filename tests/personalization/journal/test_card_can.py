"""A printed random CAN kept with its card, on every adapter: begun with the card, read back
by card, a new card with its own, never in an event or a card row, and gone from the
database's files (SQLite file and WAL; every file of the PostgreSQL cluster) after the purge."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from personalization.applications.intake import read_applications
from personalization.applications.model import Application
from personalization.cardstate import Event, Kind, step
from personalization.journal import JournalPort
from personalization.journal.sqlite import sqlite_path
from personalization.prep import document_number
from personalization.profile import load_profile
from personalization.reasons import Code, Reason
from tests.personalization.journal.conftest import Target
from tests.support.pg import TestServer

HAPPY = [Kind.FED, Kind.ENCODED, Kind.QA_PASSED, Kind.PRINTED, Kind.EJECTED]
SPOILED = [Kind.FED, Kind.FAILED, Kind.REJECTED]


@pytest.fixture(scope="module")
def apps(synth_dir: Path) -> list[Application]:
    """Validated synthetic applications."""
    result = read_applications(synth_dir / "apps.jsonl", load_profile("cccd").intake_rules(),
                               date(2026, 11, 24))
    return [a for _, a in result.valid][:3]


def _batch(journal: JournalPort, apps: list[Application], name: str = "B1") -> None:
    journal.create_batch(name, source="apps.jsonl", profile="cccd-can", max_attempts=2,
                         valid=[(i + 1, a, document_number(a)) for i, a in enumerate(apps)],
                         invalid=[])


def _drive(journal: JournalPort, application_id: str, serial: str, kinds: list[Kind],
           can: str | None, name: str = "B1") -> int:
    card = journal.begin_card(name, application_id, "s1", can=can)
    for kind in kinds:
        reason = Reason(Code.NO_CHIP) if kind is Kind.FAILED else None
        card = journal.move(card, step(card.machine(2), Event(kind, reason)),
                            chip_serial=serial if kind is Kind.FED else None)
    return card.id


@pytest.fixture()
def raw(journal_target: Target, request: pytest.FixtureRequest) -> Callable[[], bytes]:
    """Every byte the database keeps on disk now: the SQLite file and its WAL, or each file
    of the PostgreSQL cluster after a checkpoint (data files, WAL, server log)."""
    if journal_target.url.startswith("sqlite:"):
        path = sqlite_path(journal_target.url)

        def sqlite_bytes() -> bytes:
            files = (path, path.with_name(path.name + "-wal"))
            return b"".join(f.read_bytes() for f in files if f.exists())
        return sqlite_bytes
    server: TestServer = request.getfixturevalue("pg_server")

    def cluster_bytes() -> bytes:
        journal_target.backdoor.execute("CHECKPOINT")
        return b"".join(p.read_bytes() for p in server.folder.rglob("*")
                        if p.is_file() and not p.is_symlink())
    return cluster_bytes


def _fresh_can(raw: bytes) -> str:
    """Six random digits found nowhere in ``raw``, so a later search means this CAN."""
    while True:
        can = f"{secrets.randbelow(10 ** 6):06d}"
        if can.encode() not in raw:
            return can


def test_each_card_keeps_its_own_can(journal: JournalPort, apps: list[Application]) -> None:
    """The CAN begun with a card comes back for that card only; the application's next card
    (a retry on a new blank) keeps the new CAN it was begun with; a card begun without one,
    an unknown card and another batch's name give None."""
    _batch(journal, apps[:2])
    first = _drive(journal, apps[0].application_id, "CHIP-1", SPOILED, "123456")
    second = _drive(journal, apps[0].application_id, "CHIP-2", HAPPY, "654321")
    bare = _drive(journal, apps[1].application_id, "CHIP-3", HAPPY, None)
    assert journal.card_access_number("B1", first) == "123456"
    assert journal.card_access_number("B1", second) == "654321"
    assert journal.card_access_number("B1", bare) is None
    assert journal.card_access_number("B1", 99_999) is None
    _batch(journal, apps[2:], "B2")
    assert journal.card_access_number("B2", first) is None


def test_the_can_is_in_no_event_and_no_card_row(journal: JournalPort,
                                                apps: list[Application]) -> None:
    """Events and card rows (and their reprs) of a card with a CAN never show it."""
    _batch(journal, apps[:1])
    _drive(journal, apps[0].application_id, "CHIP-1", HAPPY, "918273")
    assert "918273" not in repr(journal.events("B1"))
    assert "918273" not in repr(journal.cards("B1"))
    assert "918273" not in repr(journal.open_cards("B1"))


def test_the_purge_leaves_the_can_nowhere_on_disk(journal: JournalPort, journal_url: str,
                                                  apps: list[Application],
                                                  raw: Callable[[], bytes]) -> None:
    """After the purge the CAN is gone from the port and from every file of the database;
    before it, SQLite holds it in its file (the search finds it) and PostgreSQL only sealed."""
    _batch(journal, apps[:1])
    can = _fresh_can(raw())
    card = _drive(journal, apps[0].application_id, "CHIP-1", HAPPY, can)
    assert journal.card_access_number("B1", card) == can
    held = can.encode() in raw()
    assert held is journal_url.startswith("sqlite:")  # in clear in SQLite, sealed in PG
    assert journal.close_batch("B1", 0)
    assert journal.card_access_number("B1", card) is None
    assert can.encode() not in raw()
