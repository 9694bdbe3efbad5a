"""The key inventory lines share in their PostgreSQL journal: the same port as the per-line
SQLite file (the same tests on both), signature counts reserved across processes without
overlap up to the key's maximum, rotations seen by every line's signer within a second, and
an audit trail the lines' role can only append to."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from hsm.ceremony import init_csca, new_ds
from hsm.errors import InventoryError, KeyNotFound, KeyRetired
from hsm.inventory import (
    AuditEntry,
    InventoryPort,
    KeyInventory,
    KeyRecord,
    SignatureCounter,
    move_keys,
)
from hsm.pkcs11 import HSM
from hsm.signer import DSSigner
from hsm.softhsm import throwaway_token
from personalization.config import parse_config
from personalization.journal.pg_inventory import PostgresKeyInventory
from personalization.journal.pgcluster import OWNER
from personalization.journal.postgres_schema import LATEST
from personalization.service.keys import open_inventory
from tests.support.pg import Refused, TestServer

AT = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
OFFICERS = ("Nguyen Van An", "Tran Thi Binh")
RECORD = KeyRecord("DS-1", b"\x01", "DS", "ecdsa-p256", b"cert", AT, AT + timedelta(days=90),
                   10, 0, "active", AT, OFFICERS)
ENTRY = AuditEntry(AT, "new-ds", "DS-1", OFFICERS, "test")
LATER = AT + timedelta(minutes=2)  # the signers' clock: after both DS keys begin
LIMIT = 1000  # documents one DS key may sign in the two-process test


@pytest.fixture()
def pg_url(pg_server: TestServer) -> Iterator[str]:
    """A fresh migrated journal database, as the lines' role sees it."""
    name = pg_server.fresh()
    yield pg_server.cluster.url(name)
    pg_server.cluster.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InventoryPort]:
    """An empty inventory of each kind."""
    inventory: InventoryPort
    if request.param == "sqlite":
        inventory = KeyInventory(tmp_path / "hsm" / "inventory.db")
    else:
        inventory = PostgresKeyInventory(request.getfixturevalue("pg_url"))
    with inventory:
        yield inventory


# -- the port, on both ---------------------------------------------------------------------


def test_a_key_is_stored_read_and_superseded(opened: InventoryPort) -> None:
    """A key reads back as stored; a superseding DS retires the active one in the same step."""
    opened.add_key(RECORD, ENTRY)
    assert opened.get("DS-1") == RECORD
    newer = replace(RECORD, label="DS-2", created_at=AT + timedelta(days=1))
    opened.add_key(newer, replace(ENTRY, key_label="DS-2"), supersede=True)
    assert opened.active("DS") == newer
    assert [(k.label, k.status) for k in opened.all_keys()] == [("DS-1", "retired"),
                                                                 ("DS-2", "active")]
    assert [e.key_label for e in opened.audit_trail()] == ["DS-1", "DS-2"]
    assert opened.active("CSCA") is None
    with pytest.raises(KeyNotFound):
        opened.get("DS-9")


def test_the_eac_keys_are_kept_beside_csca_and_ds(opened: InventoryPort) -> None:
    """CVCA, DV and inspection-system keys are inventory roles on both adapters; a role
    nobody defined is still refused."""
    for role in ("CVCA", "DV", "IS"):
        opened.add_key(replace(RECORD, label=f"{role}-1", role=role, max_documents=None),
                       replace(ENTRY, key_label=f"{role}-1"))
        assert opened.active(role) is not None
    with pytest.raises(InventoryError):
        opened.add_key(replace(RECORD, label="XX-1", role="XX"), replace(ENTRY, key_label="XX-1"))
    assert opened.active("DS") is None


def test_a_label_is_stored_once(opened: InventoryPort) -> None:
    """A second key under a label in use is refused, and nothing of it is kept."""
    opened.add_key(RECORD, ENTRY)
    with pytest.raises(InventoryError):
        opened.add_key(replace(RECORD, key_id=b"\x02"), ENTRY)
    assert opened.get("DS-1").key_id == b"\x01" and len(opened.audit_trail()) == 1


def test_blocks_stop_at_the_maximum_and_retire_the_key(opened: InventoryPort) -> None:
    """Blocks are handed out up to max_documents; the next asks retire the key, audited."""
    opened.add_key(RECORD, ENTRY)
    assert opened.reserve("DS-1", 4, AT) == (0, 4)
    assert opened.reserve("DS-1", 4, AT) == (4, 8)
    assert opened.reserve("DS-1", 4, AT) == (8, 10)  # only what is left
    with pytest.raises(KeyRetired, match="maximum of 10"):
        opened.reserve("DS-1", 4, AT)
    assert opened.get("DS-1").status == "retired" and opened.get("DS-1").signed == 10
    assert opened.audit_trail()[-1].action == "retire"
    with pytest.raises(KeyRetired, match="status is retired"):
        opened.reserve("DS-1", 1, AT)
    with pytest.raises(KeyNotFound):
        opened.reserve("DS-9", 1, AT)


def test_an_unused_tail_goes_back_only_when_nothing_was_reserved_after(
        opened: InventoryPort) -> None:
    """give_back returns the end of the last block, not one another reservation followed."""
    opened.add_key(RECORD, ENTRY)
    first = opened.reserve("DS-1", 4, AT)
    opened.give_back("DS-1", 2, first[1])
    assert opened.get("DS-1").signed == 2
    opened.reserve("DS-1", 3, AT)
    opened.give_back("DS-1", 0, 2)  # not the last block: nothing changes
    assert opened.get("DS-1").signed == 5


def test_a_counter_counts_on_either(opened: InventoryPort) -> None:
    """SignatureCounter works on both kinds and closes by giving its tail back."""
    opened.add_key(RECORD, ENTRY)
    counter = SignatureCounter(opened, RECORD, block=4)
    assert [counter.take(AT) for _ in range(3)] == [1, 2, 3]
    counter.close()
    assert opened.get("DS-1").signed == 3


# -- PostgreSQL: lines sharing it ----------------------------------------------------------


def _sign_until_retired(url: str, go: Event, block: int, out: Queue[list[int]]) -> None:
    """One line's process: says it is ready, then takes counts one by one until the key is
    used up, and sends them."""
    taken: list[int] = []
    with PostgresKeyInventory(url) as inventory:
        counter = SignatureCounter(inventory, inventory.get("DS-1"), block=block,
                                   status_every_s=3600.0)
        out.put([])
        go.wait(30)
        try:
            while True:
                taken.append(counter.take(AT))
        except KeyRetired:
            out.put(taken)


@pytest.mark.postgres
def test_two_processes_never_share_a_count_and_stop_at_the_maximum(pg_url: str) -> None:
    """Two line processes take counts of one DS key at once in small blocks: every count from
    1 to max_documents is taken exactly once, by one of them, and the key is retired once."""
    with PostgresKeyInventory(pg_url) as inventory:
        inventory.add_key(replace(RECORD, max_documents=LIMIT), ENTRY)
    context = multiprocessing.get_context("spawn")
    go, out = context.Event(), context.Queue()
    lines = [context.Process(target=_sign_until_retired, args=(pg_url, go, block, out))
             for block in (7, 5)]
    for line in lines:
        line.start()
    try:
        assert [out.get(timeout=60), out.get(timeout=60)] == [[], []]  # both ready
        go.set()
        first, second = out.get(timeout=120), out.get(timeout=120)
    finally:
        for line in lines:
            line.join(30)
    assert [line.exitcode for line in lines] == [0, 0]
    assert first and second, "both lines signed"
    assert not set(first) & set(second)
    assert sorted(first + second) == list(range(1, LIMIT + 1))
    with PostgresKeyInventory(pg_url) as inventory:
        key = inventory.get("DS-1")
        assert (key.status, key.signed) == ("retired", LIMIT)
        assert [e.action for e in inventory.audit_trail()] == ["new-ds", "retire"]


@pytest.mark.postgres
def test_a_rotation_at_one_line_is_seen_by_another(pg_url: str) -> None:
    """A DS superseded through one inventory is retired for another at its next read."""
    with PostgresKeyInventory(pg_url) as here, PostgresKeyInventory(pg_url) as there:
        here.add_key(RECORD, ENTRY)
        assert there.active("DS") == RECORD
        newer = replace(RECORD, label="DS-2", created_at=AT + timedelta(hours=1))
        here.add_key(newer, replace(ENTRY, key_label="DS-2"), supersede=True)
        assert there.get("DS-1").status == "retired"
        assert there.active("DS") == newer
        with pytest.raises(KeyRetired):
            there.reserve("DS-1", 1, AT)


@pytest.mark.postgres
def test_the_lines_role_cannot_rewrite_the_audit_or_a_key(pg_server: TestServer,
                                                          pg_url: str) -> None:
    """As cardline_line: audit entries cannot be changed or deleted, no key's certificate or
    maximum rewritten, no key deleted; even the owner cannot edit the audit (triggers) nor
    make a retired key active again; counts never pass the maximum (a CHECK)."""
    with PostgresKeyInventory(pg_url) as inventory:
        inventory.add_key(RECORD, ENTRY)
    database = pg_url.split("@/", 1)[1].split("?", 1)[0]
    as_line = _AsRole(pg_url)
    for statement in ("UPDATE hsm_audit SET detail = 'x'", "DELETE FROM hsm_audit",
                      "TRUNCATE hsm_audit", "UPDATE hsm_keys SET certificate = 'x'",
                      "DELETE FROM hsm_keys", "UPDATE hsm_reservations SET maximum = 99",
                      "DELETE FROM hsm_reservations"):
        with pytest.raises(Refused, match="permission denied"):
            as_line.execute(statement)
    with pytest.raises(Refused, match="within_max_documents"):
        as_line.execute("UPDATE hsm_reservations SET next_free = 11")
    as_owner = _AsRole(pg_server.cluster.url(database, OWNER))
    for statement in ("UPDATE hsm_audit SET detail = 'x'", "DELETE FROM hsm_audit"):
        with pytest.raises(Refused, match="append-only"):
            as_owner.execute(statement)
    as_line.execute("UPDATE hsm_keys SET status = 'retired'")
    with pytest.raises(Refused, match="only moves on"):
        as_owner.execute("UPDATE hsm_keys SET status = 'active'")


class _AsRole:
    """One statement at a time through a connection as the URL's role."""

    def __init__(self, url: str) -> None:
        self.url = url

    def execute(self, statement: str) -> None:
        """Run and commit, or :class:`Refused` with the server's words."""
        import psycopg

        try:
            with psycopg.connect(self.url) as db:
                db.execute(statement.encode("utf-8"))
        except psycopg.Error as exc:
            raise Refused(exc.diag.message_primary or str(exc)) from exc


@pytest.mark.postgres
def test_an_unmigrated_database_is_migrated_by_its_owner(pg_server: TestServer) -> None:
    """Opened first as the owner, an empty database gets the journal's schema; opened as the
    lines' role it is a clear error naming the owner."""
    name = pg_server.fresh(template=None)
    try:
        with pytest.raises(InventoryError, match="owner"), \
                PostgresKeyInventory(pg_server.cluster.url(name)):
            pass
        with PostgresKeyInventory(pg_server.cluster.url(name, OWNER)) as inventory:
            inventory.add_key(RECORD, ENTRY)
        rows = pg_server.backdoor(name).fetch("SELECT version FROM journal_schema")
        assert rows == [(LATEST,)]
    finally:
        pg_server.cluster.drop_database(name)


@pytest.mark.postgres
def test_a_lines_own_keys_move_into_the_shared_inventory(pg_url: str, tmp_path: Path) -> None:
    """A line's file moves in: keys and counts copied, its DS retired in the file (never
    signing against two counts), the CSCA usable in both; a second move copies nothing."""
    csca = replace(RECORD, label="CSCA", role="CSCA", max_documents=None)
    with KeyInventory(tmp_path / "inventory.db") as own, \
            PostgresKeyInventory(pg_url) as shared:
        own.add_key(csca, replace(ENTRY, key_label="CSCA"))
        own.add_key(RECORD, ENTRY)
        own.reserve("DS-1", 4, AT)
        assert move_keys(own, shared, AT) == ["CSCA", "DS-1"]
        assert move_keys(own, shared, AT) == []
        assert shared.get("DS-1") == replace(RECORD, signed=4)
        assert shared.active("CSCA") == csca == own.active("CSCA")
        assert own.get("DS-1").status == "retired"
        assert [e.action for e in shared.audit_trail()] == ["move-in", "move-in"]


@pytest.mark.postgres
def test_open_inventory_follows_the_journal_url(pg_url: str, tmp_path: Path) -> None:
    """A line whose journal is PostgreSQL keeps its keys there; a SQLite line in its file."""
    line = ("line: line-1\nhsm: {module: /usr/lib/softhsm/libsofthsm2.so, token: t, "
            "pin_source: env}\n"
            "stations: [{name: s1, printer: {port: /dev/null}, encoder: {reader: E}}]\n"
            f"data_dir: {tmp_path}\n")
    shared = parse_config(f"journal: {{url: '{pg_url}'}}\n{line}", tmp_path)
    assert isinstance(open_inventory(shared), PostgresKeyInventory)
    alone = open_inventory(parse_config(line, tmp_path))
    assert isinstance(alone, KeyInventory)
    assert alone.path == tmp_path / "hsm" / "inventory.db"


# -- signers of two lines on one HSM token -------------------------------------------------


@pytest.mark.postgres
@pytest.mark.softhsm
def test_a_ds_rotation_is_followed_by_every_line_within_a_second(pg_url: str,
                                                                 tmp_path: Path) -> None:
    """Two lines' signers (default status reads) sign on; officers run new-ds at a third
    place; each line is refused the old key within a second, moves to the new one, and the
    counts add up per key."""
    with throwaway_token(tmp_path / "data", "cardline-test") as token, \
            HSM(token.module, token.label, token.pin) as hsm, \
            PostgresKeyInventory(pg_url) as officers:
        init_csca(hsm, officers, officers=OFFICERS, at=AT, label="CSCA-VNM")
        old = new_ds(hsm, officers, officers=OFFICERS, at=AT, usage_days=90,
                     max_documents=1000, label_prefix="DS-VNM")
        with PostgresKeyInventory(pg_url) as one, PostgresKeyInventory(pg_url) as two, \
                DSSigner(token.module, token.label, token.pin, one, clock=lambda: LATER,
                         block=16) as first, \
                DSSigner(token.module, token.label, token.pin, two, clock=lambda: LATER,
                         block=16) as second:
            for signer in (first, second):
                signer.sign(b"before")
            new = new_ds(hsm, officers, officers=OFFICERS, at=AT + timedelta(minutes=1),
                         usage_days=90, max_documents=1000, label_prefix="DS-VNM")
            rotated = time.monotonic()
            signed = 2
            for signer in (first, second):
                signed += _until_refused(signer)
                assert time.monotonic() - rotated < 1.25, "refused within a second"
                assert signer.follow_rotation() and signer.label == new.label
                signer.sign(b"after")
        counts = {k.label: k.signed for k in officers.all_keys()}
    # reserved ahead in blocks of 16: a count may exceed what was signed, never fall short
    assert signed <= counts[old.label] <= 32 and 2 <= counts[new.label] <= 32


def _until_refused(signer: DSSigner) -> int:
    """Sign every 20 ms until the key in use is refused: how many it signed meanwhile."""
    signed = 0
    while True:
        try:
            signer.sign(b"during")
        except KeyRetired:
            return signed
        signed += 1
        time.sleep(0.02)
