"""The virtual card's hostile modes: what each serves once locked; the chip store keeps them."""

from __future__ import annotations

import json

import pytest

from applets.emrtd import reader
from applets.emrtd.errors import FileStructureError, FileTooLargeError
from applets.errors import GetResponseLimitError, ResponseTooLongError
from applets.transport.base import DirectTransport
from applets.virtual import hostile
from applets.virtual.card import VirtualEMRTD
from applets.virtual.hostile import Hostile, HugeFile
from applets.virtual.store import ChipStore, ChipStoreError
from tests.applets.test_perso import open_session, personalize, sample_files

DG1, DG2, DG15 = 0x0101, 0x0102, 0x010F


def locked_card(mode: Hostile | None) -> VirtualEMRTD:
    card = VirtualEMRTD("HOSTILE1")
    personalize(card, sample_files())
    card.memory.hostile = mode
    return card


def test_huge_file_slices_like_bytes() -> None:
    """HugeFile: a 6-byte header declaring 4 GiB − 1, zeros after it, slices clamped to its end."""
    huge = HugeFile(0x75)
    assert len(huge) == 6 + hostile.HUGE_LENGTH
    assert huge[0:8] == bytes.fromhex("7584FFFFFFFF0000")
    assert huge[3:5] == b"\xff\xff"
    assert huge[len(huge) - 2 : len(huge) + 100] == b"\x00\x00"


def test_modes_are_invisible_until_locked() -> None:
    """An unlocked chip in a hostile mode personalizes and reads back exactly as a good one."""
    card = VirtualEMRTD("HOSTILE2")
    card.memory.hostile = Hostile.GARBAGE_TLV
    personalize(card, sample_files(), lock=False)
    assert reader.read_file(DirectTransport(card), DG1) == sample_files()[DG1]


@pytest.mark.parametrize(("mode", "fid", "error"), [
    (Hostile.GET_RESPONSE_FOREVER, DG1, GetResponseLimitError),
    (Hostile.HUGE_FILE, DG2, FileTooLargeError),
    (Hostile.GARBAGE_TLV, DG1, FileStructureError),
    (Hostile.WRONG_LENGTH, DG1, FileStructureError),
    (Hostile.LONGER_THAN_LE, DG1, ResponseTooLongError),
])
def test_each_read_mode_trips_its_bound(mode: Hostile, fid: int, error: type[Exception]) -> None:
    """Over secure messaging, each reading mode ends in the reader's own error for that bound."""
    secure = open_session(locked_card(mode))
    with pytest.raises(error):
        reader.read_file(secure, fid)


@pytest.mark.parametrize("mode", [Hostile.UNKNOWN_OID_DG15, Hostile.RSA_32768])
def test_dg15_modes_serve_their_key(mode: Hostile) -> None:
    """The DG15 modes serve their hostile DG15 and leave the other files alone."""
    secure = open_session(locked_card(mode))
    expected = hostile.unknown_oid_dg15() if mode is Hostile.UNKNOWN_OID_DG15 else \
        hostile.rsa_32768_dg15()
    assert reader.read_file(secure, DG15, block=0xDF) == expected
    assert reader.read_file(secure, DG1) == sample_files()[DG1]


def test_a_good_card_in_no_mode_reads_back() -> None:
    """Without a mode the locked chip reads back every file as written."""
    secure = open_session(locked_card(None))
    for fid, data in sample_files().items():
        assert reader.read_file(secure, fid) == data


def test_the_store_keeps_the_mode(tmp_path) -> None:
    """set_hostile persists the mode for the next opening; a good chip's file has no such key."""
    store = ChipStore(tmp_path)
    [serial] = store.create_blanks(1, "H")
    assert "hostile" not in json.loads((tmp_path / f"{serial}.chip").read_text())
    store.set_hostile(serial, Hostile.HUGE_FILE)
    assert store.open(serial).memory.hostile is Hostile.HUGE_FILE
    store.set_hostile(serial, None)
    assert store.open(serial).memory.hostile is None
    with pytest.raises(ChipStoreError):
        store.set_hostile("NOPE", Hostile.SLOW)


def test_an_unknown_mode_in_the_store_is_refused(tmp_path) -> None:
    """A chip file naming a mode that does not exist is a malformed chip, not a crash."""
    store = ChipStore(tmp_path)
    [serial] = store.create_blanks(1, "H")
    path = tmp_path / f"{serial}.chip"
    path.write_text(json.dumps({**json.loads(path.read_text()), "hostile": "nonsense"}))
    with pytest.raises(ChipStoreError, match="malformed"):
        store.open(serial)
