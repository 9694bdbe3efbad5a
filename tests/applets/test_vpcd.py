"""The card side of the vpcd protocol, against a real TCP socket playing the reader."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.iso7816.apdu import CommandAPDU
from applets.virtual.vpcd import CARD_FAULT, Control, VPCDCardBridge, frame, handle_message

ATR = bytes.fromhex("3B80800101")


class EchoCard:
    """A CardLike that answers every command with its data and 9000, recording controls."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.last_eeprom_bytes = 0

    def atr(self) -> bytes:
        return ATR

    def power_on(self) -> None:
        self.events.append("on")

    def power_off(self) -> None:
        self.events.append("off")

    def reset(self) -> None:
        self.events.append("reset")

    def execute(self, command: bytes) -> bytes:
        return CommandAPDU.decode(command).data + b"\x90\x00"


class BrokenCard(EchoCard):
    """A CardLike whose execute raises although it must not."""

    def execute(self, command: bytes) -> bytes:
        raise RuntimeError("chip firmware bug")


class FixedTiming:
    """A timing model that charges a fixed delay per APDU."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[tuple[int, int, int]] = []

    def cost(self, command_len: int, response_len: int, eeprom_bytes_written: int) -> float:
        self.calls.append((command_len, response_len, eeprom_bytes_written))
        return self.seconds


class FakeReader:
    """The reader end of the vpcd protocol on a real loopback socket (what vpcd does)."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(5.0)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.conn, _ = self.server.accept()
        self.conn.settimeout(5.0)

    def exchange(self, body: bytes) -> bytes:
        assert self.conn is not None
        self.conn.sendall(frame(body))
        return self.read()

    def read(self) -> bytes:
        assert self.conn is not None
        length = int.from_bytes(self._exact(2), "big")
        return self._exact(length)

    def _exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.conn.recv(count - len(data))  # type: ignore[union-attr]
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.server.close()


@pytest.fixture
def reader() -> Iterator[FakeReader]:
    fake = FakeReader()
    yield fake
    fake.close()


@given(st.binary(max_size=70000).filter(lambda b: len(b) <= 0xFFFF))
def test_frame_prefixes_big_endian_length(body: bytes) -> None:
    """A vpcd message is a 2-byte big-endian length followed by exactly the body."""
    framed = frame(body)
    assert int.from_bytes(framed[:2], "big") == len(body)
    assert framed[2:] == body


def test_atr_control_answers_the_atr() -> None:
    """Control 04 is answered with the card's ATR."""
    assert handle_message(EchoCard(), bytes([Control.ATR])) == ATR


@pytest.mark.parametrize(
    ("control", "event"),
    [(Control.POWER_ON, "on"), (Control.POWER_OFF, "off"), (Control.RESET, "reset")],
)
def test_power_controls_reach_the_card_without_answer(control: Control, event: str) -> None:
    """Controls 00/01/02 switch the card's power and send nothing back."""
    card = EchoCard()
    assert handle_message(card, bytes([control])) is None
    assert card.events == [event]


def test_unknown_control_is_ignored() -> None:
    """A one-byte message that is no known control changes nothing and is not answered."""
    card = EchoCard()
    assert handle_message(card, b"\x07") is None
    assert card.events == []


def test_command_is_executed() -> None:
    """Any longer message is a command APDU answered by the card's response."""
    assert handle_message(EchoCard(), bytes.fromhex("0001020302AABB")) == bytes.fromhex("AABB9000")


def test_card_that_raises_answers_6f00() -> None:
    """A card that throws anyway answers 6F00 instead of killing the bridge."""
    assert handle_message(BrokenCard(), bytes.fromhex("00010203")) == CARD_FAULT


def test_bridge_serves_atr_and_apdus_over_the_socket(reader: FakeReader) -> None:
    """An inserted card connects to the reader port and answers ATR and APDUs."""
    with VPCDCardBridge("127.0.0.1", reader.port, EchoCard()):
        reader.accept()
        assert reader.exchange(bytes([Control.ATR])) == ATR
        assert reader.exchange(bytes.fromhex("0001020301FF")) == bytes.fromhex("FF9000")


def test_bridge_sets_nodelay(reader: FakeReader) -> None:
    """The card socket runs with TCP_NODELAY so an APDU is not held back by Nagle."""
    with VPCDCardBridge("127.0.0.1", reader.port, EchoCard()) as bridge:
        reader.accept()
        reader.exchange(bytes([Control.ATR]))
        sock = bridge._socket
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_remove_closes_the_socket_and_powers_off(reader: FakeReader) -> None:
    """Removing the card closes its connection (the reader sees it gone) and cuts power."""
    card = EchoCard()
    with VPCDCardBridge("127.0.0.1", reader.port, card) as bridge:
        reader.accept()
        reader.exchange(bytes([Control.ATR]))
        assert bridge.remove() is card
        with pytest.raises(EOFError):
            reader.read()
        _wait(lambda: "off" in card.events)
        assert bridge.card is None


def test_insert_connects_an_empty_bridge(reader: FakeReader) -> None:
    """A bridge started empty connects only when a card is inserted."""
    with VPCDCardBridge("127.0.0.1", reader.port) as bridge:
        time.sleep(0.1)
        assert not bridge.connected
        bridge.insert(EchoCard())
        reader.accept()
        assert reader.exchange(bytes([Control.ATR])) == ATR


def test_bridge_reconnects_when_the_reader_restarts(reader: FakeReader) -> None:
    """When vpcd drops the connection (pcscd restart) the card plugs in again."""
    with VPCDCardBridge("127.0.0.1", reader.port, EchoCard(), retry_s=0.01):
        reader.accept()
        reader.drop()
        reader.accept()
        assert reader.exchange(bytes([Control.ATR])) == ATR


def test_bridge_waits_for_a_reader_that_is_not_listening_yet() -> None:
    """A card inserted before vpcd listens keeps retrying and connects once it does."""
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with VPCDCardBridge("127.0.0.1", port, EchoCard(), retry_s=0.01):
        time.sleep(0.1)
        server = socket.create_server(("127.0.0.1", port))
        server.settimeout(5.0)
        conn, _ = server.accept()
        conn.close()
        server.close()


def test_timing_model_delays_each_answer(reader: FakeReader) -> None:
    """The bridge sleeps the timing model's cost before answering an APDU."""
    timing = FixedTiming(0.05)
    with VPCDCardBridge("127.0.0.1", reader.port, EchoCard(), timing):
        reader.accept()
        started = time.perf_counter()
        reader.exchange(bytes.fromhex("0001020302AABB"))
        assert time.perf_counter() - started >= 0.05
    assert timing.calls == [(7, 4, 0)]


def test_broken_card_keeps_the_connection(reader: FakeReader) -> None:
    """After a card fault answered 6F00 the same connection still answers controls."""
    with VPCDCardBridge("127.0.0.1", reader.port, BrokenCard()):
        reader.accept()
        assert reader.exchange(bytes.fromhex("00010203")) == CARD_FAULT
        assert reader.exchange(bytes([Control.ATR])) == ATR


def _wait(condition: object, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")
