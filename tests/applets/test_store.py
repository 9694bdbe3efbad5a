"""The chip store: bulk blanks, persistence after every change, atomic snapshots."""

from __future__ import annotations

import os
import time

import pytest

from applets.emrtd import aa, perso, reader
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU
from applets.virtual.card import Lifecycle
from applets.virtual.store import ChipStore, ChipStoreError
from applets.virtual.timing import REALISTIC, CardTiming
from tests.applets.test_perso import open_session, personalize, sample_files


def test_create_blanks_numbers_on_from_the_highest(tmp_path):
    """Blanks get prefix + 8-digit numbers, continuing after existing ones."""
    store = ChipStore(tmp_path / "chips")
    assert store.serials() == []
    assert store.create_blanks(2, "VN") == ["VN00000001", "VN00000002"]
    assert store.create_blanks(1, "VN") == ["VN00000003"]
    assert store.serials() == ["VN00000001", "VN00000002", "VN00000003"]
    assert store.exists("VN00000002") and not store.exists("VN00000009")
    assert store.open("VN00000001").memory.lifecycle is Lifecycle.BLANK


def test_everything_persists_into_a_new_store(tmp_path):
    """Files, lock state and the AA key survive reopening the chip from a new ChipStore."""
    [serial] = ChipStore(tmp_path).create_blanks(1, "C")
    files = sample_files()
    _, point = personalize(ChipStore(tmp_path).open(serial), files)
    card = ChipStore(tmp_path).open(serial)
    assert card.memory.lifecycle is Lifecycle.LOCKED
    secure = open_session(card)
    for fid, data in files.items():
        assert reader.read_file(secure, fid) == data
    challenge = os.urandom(8)
    signature = secure.transmit(CommandAPDU(0, 0x88, 0, 0, challenge, ne=256)).check("AA")
    template = tlv.encode(0x7F49, tlv.encode(6, aa.P256_OID) + tlv.encode(0x86, point))
    aa.verify_aa(aa.decode_public_key_template(template), challenge, signature)


def test_partial_perso_persists_as_personalizing(tmp_path):
    """A perso cut short leaves a PERSONALIZING chip with the bytes written so far."""
    store = ChipStore(tmp_path)
    [serial] = store.create_blanks(1, "P")
    card = store.open(serial)
    card.execute(bytes.fromhex("00A4040C07A0000002471001"))
    card.execute(bytes.fromhex("00E0000006630400100101"))
    card.execute(bytes.fromhex("00A4020C020101"))
    card.execute(bytes.fromhex("00D6000002AABB"))
    again = ChipStore(tmp_path).open(serial)
    assert again.memory.lifecycle is Lifecycle.PERSONALIZING
    assert again.memory.files[0x0101] == bytearray(b"\xaa\xbb" + bytes(14))


def test_writes_leave_no_temporary_files_and_are_cheap(tmp_path):
    """Each persisted write replaces the snapshot atomically and cheaply (16 kB file)."""
    store = ChipStore(tmp_path)
    [serial] = store.create_blanks(1, "T")
    card = store.open(serial)
    card.execute(bytes.fromhex("00A4040C07A0000002471001"))
    assert card.execute(perso.create_file_command(0x0102, 0x4000).encode()) == b"\x90\x00"
    card.execute(bytes.fromhex("00A4020C020102"))
    start = time.perf_counter()
    for offset in range(0, 0x4000, 0x1000):
        command = CommandAPDU(0, 0xD6, offset >> 8, 0, bytes(0x1000))
        assert card.execute(command.encode()) == b"\x90\x00"
    assert (time.perf_counter() - start) / 4 < 0.05  # generous bound: shared CI machine
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{serial}.chip"]


def test_bad_serials_missing_and_malformed_chips_raise(tmp_path):
    """Path-like serials, unknown chips and corrupt files raise ChipStoreError."""
    store = ChipStore(tmp_path)
    for serial in ("../etc", "a/b", ""):
        with pytest.raises(ChipStoreError):
            store.exists(serial)
    with pytest.raises(ChipStoreError, match="no such chip"):
        store.open("NOPE")
    (tmp_path / "BAD.chip").write_text('{"format": 1, "serial": "OTHER"}')
    with pytest.raises(ChipStoreError, match="malformed"):
        store.open("BAD")


def test_remove_deletes_the_chip(tmp_path):
    """remove() deletes the file; removing twice raises."""
    store = ChipStore(tmp_path)
    [serial] = store.create_blanks(1, "R")
    store.remove(serial)
    assert not store.exists(serial)
    with pytest.raises(ChipStoreError):
        store.remove(serial)


def test_timing_is_zero_by_default_and_realistic_adds_up():
    """Default timing costs nothing; the realistic preset charges APDU, radio and pages."""
    assert CardTiming().cost(300, 300, 4096) == 0.0
    cost = REALISTIC.cost(265, 2, 65)
    expected = 0.001 + 267 / 26_500 + 2 * 0.0035
    assert cost == pytest.approx(expected)
    assert CardTiming.realistic() is REALISTIC


def test_two_stores_never_give_out_the_same_serial_prefix(tmp_path):
    """Each chip store has its own id, kept across openings, so the serials of two stores
    (the line's and the demo's) never name two different chips."""
    first, second = ChipStore(tmp_path / "a"), ChipStore(tmp_path / "b")
    assert first.store_id != second.store_id
    assert ChipStore(tmp_path / "a").store_id == first.store_id
    assert len(first.store_id) == 8 and int(first.store_id, 16) >= 0
