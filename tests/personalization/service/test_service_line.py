"""The line service: chips go into and out of encoders as PC/SC sees them, and a line that is
not up is said to be so at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank
from applets.virtual.store import ChipStore
from personalization.config import parse_config
from personalization.service import line
from personalization.service.errors import LineNotUp
from tests.conftest import ENCODER_BANK_BASE_PORT, ENCODER_BANK_READERS

pytestmark = pytest.mark.pcscd


def _config(data_dir: Path, readers: int = ENCODER_BANK_READERS, auto: bool = False) -> str:
    port = "auto" if auto else "/dev/null"
    stations = "".join(f"  - {{name: s{i}, printer: {{port: {port}}}, "
                       f"encoder: {{reader: 'Encoder {i}'}}}}\n" for i in range(readers))
    return (f"line: test\ndata_dir: {data_dir}\n"
            "hsm: {module: /usr/lib/softhsm/libsofthsm2.so, token: t}\n"
            f"stations:\n{stations}simulation: {{base_port: {ENCODER_BANK_BASE_PORT}}}\n")


def test_insert_returns_once_pcsc_sees_the_card(encoder_bank: EncoderBank) -> None:
    """Right after `line insert` the card answers at once (no wait for pcscd's presence
    poll), and right after `line remove` the reader is empty."""
    config = parse_config(_config(encoder_bank.data_dir), encoder_bank.data_dir)
    serial = ChipStore(encoder_bank.chips_dir).create_blanks(1, "SVCLINE")[0]
    name = line.insert(config, serial, "s2")
    try:
        with PCSCTransport(name) as reader:
            assert reader.connected and reader.atr
    finally:
        removed_from, removed = line.remove(config, serial)
    assert (removed_from, removed) == (name, serial)
    with PCSCTransport(name) as reader:
        assert not reader.connected


def test_station_specs_pick_each_encoders_first_slot(encoder_bank: EncoderBank) -> None:
    """With the encoders up, `Encoder N` resolves to that encoder's first slot."""
    config = parse_config(_config(encoder_bank.data_dir), encoder_bank.data_dir)
    specs = line.station_specs(config)
    assert [s.reader for s in specs] == [f"Encoder {i} 00 00"
                                         for i in range(ENCODER_BANK_READERS)]


def test_printers_not_running_is_line_not_up(encoder_bank: EncoderBank, tmp_path: Path) -> None:
    """Stations whose printers are 'auto' with no simulated printers running: LineNotUp that
    says how to start the line, instead of a run waiting on stale ports."""
    config = parse_config(_config(tmp_path, auto=True), tmp_path)
    with pytest.raises(LineNotUp, match="cardline line up"):
        line.station_specs(config)
