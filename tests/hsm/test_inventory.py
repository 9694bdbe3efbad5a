"""The key inventory: durable, block-reserved signature counts and an append-only audit trail."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hsm.errors import InventoryError, KeyRetired, SigningRefused
from hsm.inventory import AuditEntry, KeyInventory, KeyRecord, SignatureCounter

AT = datetime(2026, 3, 1, tzinfo=UTC)
RECORD = KeyRecord("DS-1", b"\x01", "DS", "ecdsa-p256", b"cert", AT, AT + timedelta(days=90),
                   10, 0, "active", AT, ("a", "b"))
ENTRY = AuditEntry(AT, "new-ds", "DS-1", ("a", "b"), "test")


def _inventory(tmp_path: Path) -> KeyInventory:
    return KeyInventory(tmp_path / "hsm" / "inventory.db")


def test_database_is_wal_with_full_sync(tmp_path: Path) -> None:
    """The inventory runs in WAL mode with synchronous=FULL."""
    with _inventory(tmp_path) as inventory:
        db = inventory._connection
        assert db is not None
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_files_and_folder_are_owner_only(tmp_path: Path) -> None:
    """inventory.db, its -wal and -shm are 0600 and the folder created for them 0700, under a
    permissive umask too."""
    old = os.umask(0o022)
    try:
        with _inventory(tmp_path) as inventory:
            inventory.add_key(RECORD, ENTRY)
            modes = {suffix: stat.S_IMODE(Path(f"{inventory.path}{suffix}").stat().st_mode)
                     for suffix in ("", "-wal", "-shm")}
            assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}
            assert stat.S_IMODE(inventory.path.parent.stat().st_mode) == 0o700
    finally:
        os.umask(old)


def test_counts_survive_reopen(tmp_path: Path) -> None:
    """After a clean close and reopen, counting continues where it stopped."""
    with _inventory(tmp_path) as inventory:
        inventory.add_key(RECORD, ENTRY)
        counter = SignatureCounter(inventory, RECORD, block=4)
        assert [counter.take(AT) for _ in range(3)] == [1, 2, 3]
        counter.close()
    with _inventory(tmp_path) as inventory:
        assert inventory.get("DS-1").signed == 3
        counter = SignatureCounter(inventory, inventory.get("DS-1"), block=4)
        assert counter.take(AT) == 4


def test_crash_over_counts_but_never_under_counts(tmp_path: Path) -> None:
    """Without a clean close the whole reserved block stays counted."""
    with _inventory(tmp_path) as inventory:
        inventory.add_key(RECORD, ENTRY)
        counter = SignatureCounter(inventory, RECORD, block=4)
        counter.take(AT)  # one signature, then the process "dies" without counter.close()
    with _inventory(tmp_path) as inventory:
        assert inventory.get("DS-1").signed == 4


def test_maximum_documents_retires_the_key(tmp_path: Path) -> None:
    """The signature past max_documents raises KeyRetired and marks the key retired."""
    with _inventory(tmp_path) as inventory:
        inventory.add_key(replace(RECORD, max_documents=3), ENTRY)
        counter = SignatureCounter(inventory, inventory.get("DS-1"), block=256)
        for _ in range(3):
            counter.take(AT)
        with pytest.raises(KeyRetired, match="cardline keys new-ds"):
            counter.take(AT)
        assert inventory.get("DS-1").status == "retired"


def test_usage_window_is_enforced(tmp_path: Path) -> None:
    """Before the window signing is refused; at its end the key retires."""
    with _inventory(tmp_path) as inventory:
        inventory.add_key(RECORD, ENTRY)
        counter = SignatureCounter(inventory, RECORD)
        with pytest.raises(SigningRefused):
            counter.take(AT - timedelta(seconds=1))
        with pytest.raises(KeyRetired):
            counter.take(RECORD.not_after)
        assert inventory.get("DS-1").status == "retired"


def test_supersede_retires_previous_active(tmp_path: Path) -> None:
    """Adding a DS with supersede retires (not revokes) the previous active DS."""
    with _inventory(tmp_path) as inventory:
        inventory.add_key(RECORD, ENTRY)
        inventory.add_key(replace(RECORD, label="DS-2"), ENTRY, supersede=True)
        assert inventory.get("DS-1").status == "retired"
        active = inventory.active("DS")
        assert active is not None and active.label == "DS-2"


def test_duplicate_label_is_refused(tmp_path: Path) -> None:
    """The same label cannot be stored twice."""
    with _inventory(tmp_path) as inventory:
        inventory.add_key(RECORD, ENTRY)
        with pytest.raises(InventoryError):
            inventory.add_key(RECORD, ENTRY)


def test_audit_trail_is_append_only(tmp_path: Path) -> None:
    """UPDATE and DELETE on the audit table are refused by the database."""
    with _inventory(tmp_path) as inventory:
        inventory.add_key(RECORD, ENTRY)
        assert [e.action for e in inventory.audit_trail()] == ["new-ds"]
        db = inventory._connection
        assert db is not None
        for statement in ("UPDATE audit SET action='x'", "DELETE FROM audit"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(statement)


def test_an_inventory_from_before_numbered_migrations_adopts_them(tmp_path: Path) -> None:
    """A file made by the unnumbered schema (user_version 0, its tables already there) is
    brought to the latest migration with its keys and audit kept; a file from a newer
    cardline is refused."""
    from hsm.inventory import MIGRATIONS

    path = tmp_path / "inventory.db"
    with sqlite3.connect(path) as old:
        for statement in MIGRATIONS[0][2]:
            old.execute(statement)
        old.execute("INSERT INTO audit (at, action, key_label, officers, detail) "
                    "VALUES ('2026-01-01T00:00:00+00:00', 'init', 'CSCA', 'a,b', '')")
    with KeyInventory(path) as inventory:
        assert [e.action for e in inventory.audit_trail()] == ["init"]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1][0]
        db.execute(f"PRAGMA user_version = {MIGRATIONS[-1][0] + 1}")
    with pytest.raises(InventoryError, match="upgrade cardline"), KeyInventory(path):
        pass
