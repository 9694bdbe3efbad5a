"""The encoder bank: pcscd + vpcd readers + the card host, and `cardline line` on top of it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from applets.emrtd.lds.files import LDS1_AID
from applets.iso7816.apdu import CommandAPDU
from applets.transport.pcsc import PCSCTransport
from applets.virtual.bank import EncoderBank, ephemeral_ports
from applets.virtual.errors import BankError, HostError
from applets.virtual.host import HostClient
from applets.virtual.store import ChipStore
from personalization.bench import BENCH_BASE_PORT
from personalization.config import SimulationConfig, load_config
from tests.conftest import ENCODER_BANK_BASE_PORT, ENCODER_BANK_READERS
from tests.support.crew import enrol

pytestmark = pytest.mark.pcscd
ROOT = Path(__file__).resolve().parents[2]


def test_up_is_idempotent_and_reuses_our_pcscd(encoder_bank: EncoderBank) -> None:
    """A second up() with the same config keeps the same pcscd and card host."""
    pids = [encoder_bank._running("pcscd"), encoder_bank._running("host")]
    encoder_bank.up()
    assert [encoder_bank._running("pcscd"), encoder_bank._running("host")] == pids
    assert None not in pids


def test_missing_driver_is_a_clear_error(tmp_path: Path) -> None:
    """A missing vpcd driver names the Debian package to install."""
    bank = EncoderBank(tmp_path, 1, 30400, driver=tmp_path / "libifdvpcd.so")
    with pytest.raises(BankError, match="vsmartcard-vpcd"):
        bank.up()


def test_missing_pcscd_is_a_clear_error(tmp_path: Path) -> None:
    """A missing pcscd executable names the Debian package to install."""
    bank = EncoderBank(tmp_path, 1, 30400, pcscd=str(tmp_path / "pcscd"))
    with pytest.raises(BankError, match="Debian package pcscd"):
        bank.up()


def test_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    """A port already bound by someone else is reported before pcscd starts."""
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 30401))  # noqa: S104 - vpcd binds all interfaces too
        holder.listen()
        with pytest.raises(BankError, match=r"port 30401 \(encoder 0\) is taken") as caught:
            EncoderBank(tmp_path, 2, 30400).up()
    assert "ephemeral" not in str(caught.value)
    assert not (tmp_path / "pcsc" / "pcscd.pid").exists()


def test_taken_port_in_the_ephemeral_range_says_so(tmp_path: Path) -> None:
    """A port where outgoing connections land (CI once lost a run to one) names the range
    and the way out: a base port below it."""
    low, high = ephemeral_ports()
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", low + 1))  # noqa: S104 - vpcd binds all interfaces too
        holder.listen()
        with pytest.raises(BankError, match=f"ephemeral range {low}-{high}.*below {low}"):
            EncoderBank(tmp_path, 1, low).up()


def test_shipped_ports_lie_below_the_ephemeral_range() -> None:
    """The shipped line, the tests' bank and the benches use ports no outgoing connection is
    ever given (Linux's default range starts at 32768; this machine's too)."""
    config = load_config(ROOT / "line.yaml")
    low = min(ephemeral_ports()[0], 32768)
    for base, readers in ((config.simulation.base_port, 40), (ENCODER_BANK_BASE_PORT, 40),
                          (BENCH_BASE_PORT, 40)):
        assert base + 2 * readers <= low
    assert config.simulation.base_port == SimulationConfig().base_port
    assert len({config.simulation.base_port, ENCODER_BANK_BASE_PORT, BENCH_BASE_PORT}) == 3


def test_foreign_pcscd_is_a_clear_error(encoder_bank: EncoderBank, tmp_path: Path) -> None:
    """Another bank's (or the system's) pcscd is never touched: up() refuses and says why."""
    with pytest.raises(BankError, match=r"another pcscd \(pid \d+, not started by this bank"):
        EncoderBank(tmp_path, 1, 35400).up()
    assert encoder_bank.running()


def test_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    """A pid file naming a process that is not our pcscd is neither trusted nor killed."""
    bank = EncoderBank(tmp_path, 1, 35400)
    bank.pcsc_dir.mkdir(parents=True)
    (bank.pcsc_dir / "pcscd.pid").write_text(f"{os.getpid()}\n")
    (bank.pcsc_dir / "host.pid").write_text("999999999\n")
    assert not bank.running()
    bank.down()
    assert not (bank.pcsc_dir / "pcscd.pid").exists()


def test_host_client_without_host_says_how_to_start(tmp_path: Path) -> None:
    """Talking to a card host that is not running raises HostError pointing at `line up`."""
    with pytest.raises(HostError, match="line up"):
        HostClient(tmp_path / "host.sock").status()


@pytest.fixture
def chip(encoder_bank: EncoderBank) -> str:
    serial = ChipStore(encoder_bank.chips_dir).create_blanks(1, "BANKTEST")[0]
    return serial


def _free_reader(bank: EncoderBank) -> int:
    return next(i for i, serial in bank.client().status().items() if serial is None)


def test_inserted_chip_answers_through_pcscd(encoder_bank: EncoderBank, chip: str) -> None:
    """A stored chip put in by the card host answers SELECT of the LDS1 applet over PC/SC."""
    client, index = encoder_bank.client(), _free_reader(encoder_bank)
    client.insert(index, chip)
    try:
        assert client.status()[index] == chip
        with PCSCTransport(encoder_bank.reader_name(index)) as transport:
            atr = transport.wait_for_card(5.0)
            assert atr == ChipStore(encoder_bank.chips_dir).open(chip).atr()
            response = transport.transmit(CommandAPDU(0x00, 0xA4, 0x04, 0x0C, LDS1_AID))
            assert response.sw == 0x9000
    finally:
        assert client.remove(index) == chip
    assert client.status()[index] is None


def test_removed_chip_leaves_the_reader(encoder_bank: EncoderBank, chip: str) -> None:
    """After remove the reader reports no card to PC/SC."""
    client, index = encoder_bank.client(), _free_reader(encoder_bank)
    client.insert(index, chip)
    with PCSCTransport(encoder_bank.reader_name(index)) as transport:
        transport.wait_for_card(5.0)
        client.remove(index)
        transport.wait_for_removal(5.0)
        assert not transport.connected


def test_host_refuses_unknown_chip(encoder_bank: EncoderBank) -> None:
    """Inserting a serial the chip store does not hold is refused by name."""
    with pytest.raises(HostError, match="no chip 'NOSUCHCHIP'"):
        encoder_bank.client().insert(0, "NOSUCHCHIP")


def test_host_refuses_occupied_reader_and_double_insert(encoder_bank: EncoderBank) -> None:
    """A reader holds one chip, and a chip sits in one reader."""
    first, second = ChipStore(encoder_bank.chips_dir).create_blanks(2, "BANKTEST")
    client, index = encoder_bank.client(), _free_reader(encoder_bank)
    client.insert(index, first)
    try:
        with pytest.raises(HostError, match=f"encoder {index} holds chip {first}"):
            client.insert(index, second)
        with pytest.raises(HostError, match="already in encoder"):
            client.insert((index + 1) % ENCODER_BANK_READERS, first)
    finally:
        client.remove(index)


def test_host_refuses_unknown_reader(encoder_bank: EncoderBank) -> None:
    """A reader index outside the bank is refused with the valid range."""
    with pytest.raises(HostError, match="no encoder 7"):
        encoder_bank.client().remove(7)


def _cardline(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from personalization.cli import main; main()",
         "line", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )


def test_cli_up_insert_status_remove_down(encoder_bank: EncoderBank, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`cardline line` starts (reusing the bank), inserts, reports, removes and stops (up and
    down as an operator)."""
    config = tmp_path / "line.yaml"
    stations = "".join(
        f"  - {{name: s{i}, encoder: {{reader: 'Encoder {i}'}}}}\n"
        for i in range(ENCODER_BANK_READERS)
    )
    config.write_text(
        f"line: test\ndata_dir: {encoder_bank.data_dir}\n"
        "hsm: {module: /usr/lib/softhsm/libsofthsm2.so, token: t}\n"
        f"stations:\n{stations}simulation: {{base_port: {ENCODER_BANK_BASE_PORT}}}\n"
    )
    for key, value in enrol(config, tmp_path / "people").env("an", {}).items():
        monkeypatch.setenv(key, value)
    try:
        assert _cardline(config, "up").returncode == 0
        made = _cardline(config, "blanks", "--count", "1", "--prefix", "CLITEST")
        assert made.returncode == 0, made.stderr
        serial = ChipStore(encoder_bank.chips_dir).serials()[-1]
        inserted = _cardline(config, "insert", serial, "--reader", "s3")
        assert (inserted.returncode, inserted.stdout.strip()) == (0, "Encoder 3 00 00")
        status = _cardline(config, "status", "--json")
        assert f'"chip": "{serial}"' in status.stdout
        assert _cardline(config, "insert", "NOSUCH").returncode == 2
        removed = _cardline(config, "remove", serial)
        assert removed.returncode == 0 and "Encoder 3 00 00" in removed.stdout
        assert _cardline(config, "down").returncode == 0
        assert not encoder_bank.running()
        assert '"running": false' in _cardline(config, "status", "--json").stdout
    finally:
        encoder_bank.up()  # later tests share the session bank
