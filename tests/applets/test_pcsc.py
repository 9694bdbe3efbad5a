"""The PC/SC transport through the real pcscd and vpcd readers of the encoder bank."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from applets.errors import APDUError
from applets.iso7816.apdu import CommandAPDU
from applets.transport.pcsc import (
    UNREPORTED_MAX_COMMAND_DATA,
    CardInUseError,
    CardRemovedError,
    NoCardError,
    PCSCTransport,
    ReaderError,
    ReaderNotFound,
    list_readers,
)
from applets.virtual.bank import EncoderBank, reader_name
from applets.virtual.bench import measure_roundtrip_ms
from applets.virtual.vpcd import VPCDCardBridge
from tests.applets.test_vpcd import ATR, EchoCard

pytestmark = pytest.mark.pcscd


class EchoSlot:
    """Slot 1 of one bank encoder with an in-process echo card (the card host uses slot 0)."""

    def __init__(self, bank: EncoderBank, index: int) -> None:
        self.name = reader_name(index, slot=1)
        self.card = EchoCard()
        self.bridge = VPCDCardBridge("127.0.0.1", bank.port(index) + 1, self.card)

    def __enter__(self) -> EchoSlot:
        """Plug the card in and wait until pcscd has seen it arrive."""
        self.bridge.start()
        with PCSCTransport(self.name) as transport:
            transport.wait_for_card(5.0)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Pull the card and wait until pcscd has seen it leave (the next test starts clean)."""
        self.bridge.stop()
        with PCSCTransport(self.name) as transport:
            transport.wait_for_removal(5.0)


@pytest.fixture
def slot(encoder_bank: EncoderBank) -> Iterator[EchoSlot]:
    with EchoSlot(encoder_bank, 0) as echo:
        yield echo


def _open(name: str) -> PCSCTransport:
    transport = PCSCTransport(name).__enter__()
    if not transport.connected:
        transport.wait_for_card(5.0)
    return transport


def test_bank_readers_are_listed(encoder_bank: EncoderBank) -> None:
    """pcscd lists both slots of every encoder under their PC/SC names."""
    names = set(list_readers())
    for index in range(encoder_bank.readers):
        assert {reader_name(index, 0), reader_name(index, 1)} <= names


def test_round_trip_echo(slot: EchoSlot) -> None:
    """A command goes through pcscd to the card and its response comes back as bytes."""
    with _open(slot.name) as transport:
        response = transport.transmit(CommandAPDU(0x00, 0x01, 0x02, 0x03, b"\xaa\xbb"))
        assert (response.data, response.sw) == (b"\xaa\xbb", 0x9000)
        assert transport.atr == ATR


def test_extended_apdu_is_carried(slot: EchoSlot) -> None:
    """vpcd and pcscd carry a 4000-byte extended command and its 4002-byte response."""
    data = bytes(range(256)) * 15 + bytes(160)
    with _open(slot.name) as transport:
        assert transport.max_command_data == UNREPORTED_MAX_COMMAND_DATA
        assert transport.transmit(CommandAPDU(0x00, 0x01, 0, 0, data)).data == data


def test_largest_extended_command_is_carried(slot: EchoSlot) -> None:
    """A command with max_command_data bytes and an extended Le still fits a vpcd message."""
    data = bytes(UNREPORTED_MAX_COMMAND_DATA)
    with _open(slot.name) as transport:
        response = transport.transmit(CommandAPDU(0x00, 0x01, 0, 0, data, ne=65536))
        assert len(response.data) == len(data)


def test_command_over_the_limit_is_refused_before_sending(slot: EchoSlot) -> None:
    """A command larger than the path carries raises APDUError and keeps the card connected."""
    with _open(slot.name) as transport:
        with pytest.raises(APDUError, match="Encoder 0 00 01"):
            transport.transmit(CommandAPDU(0, 1, 0, 0, bytes(UNREPORTED_MAX_COMMAND_DATA + 1)))
        assert transport.transmit(CommandAPDU(0, 1, 0, 0, b"\x01")).sw == 0x9000


def test_max_command_data_option_overrides_detection(slot: EchoSlot) -> None:
    """A reader configured for short APDUs only refuses a 256-byte command."""
    with PCSCTransport(slot.name, max_command_data=255) as transport:
        assert transport.max_command_data == 255
        with pytest.raises(APDUError):
            transport.transmit(CommandAPDU(0, 1, 0, 0, bytes(256)))


def test_two_readers_at_once(encoder_bank: EncoderBank) -> None:
    """Two threads on two readers exchange APDUs concurrently without mixing answers."""
    slots = [EchoSlot(encoder_bank, 2), EchoSlot(encoder_bank, 3)]
    errors: list[BaseException] = []

    def work(echo: EchoSlot, marker: int) -> None:
        try:
            with _open(echo.name) as transport:
                for i in range(200):
                    data = bytes([marker, i % 256])
                    assert transport.transmit(CommandAPDU(0, 1, 0, 0, data)).data == data
        except BaseException as exc:  # collected for the main thread's assert
            errors.append(exc)

    with slots[0], slots[1]:
        threads = [threading.Thread(target=work, args=(s, m)) for m, s in enumerate(slots)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []


def test_wait_for_card_sees_insertion(encoder_bank: EncoderBank) -> None:
    """wait_for_card returns the ATR once a card is plugged into an empty reader."""
    echo = EchoSlot(encoder_bank, 1)
    with PCSCTransport(echo.name) as transport:
        assert not transport.connected
        with echo:
            assert transport.wait_for_card(5.0) == ATR


def test_wait_for_card_times_out(encoder_bank: EncoderBank) -> None:
    """wait_for_card on an empty reader raises NoCardError naming the reader."""
    with (
        PCSCTransport(reader_name(1, 1)) as transport,
        pytest.raises(NoCardError, match="Encoder 1 00 01"),
    ):
        transport.wait_for_card(0.3)


def test_transmit_without_card_raises_no_card(encoder_bank: EncoderBank) -> None:
    """A transmit on an empty reader raises NoCardError naming the reader."""
    with (
        PCSCTransport(reader_name(1, 1)) as transport,
        pytest.raises(NoCardError, match="Encoder 1 00 01"),
    ):
        transport.transmit(CommandAPDU(0, 1, 0, 0))


def test_removal_raises_card_removed(slot: EchoSlot) -> None:
    """A transmit after the card left raises CardRemovedError naming the reader."""
    with _open(slot.name) as transport:
        slot.bridge.remove()
        with pytest.raises(CardRemovedError, match="Encoder 0 00 01") as caught:
            transport.transmit(CommandAPDU(0, 1, 0, 0, b"\x01"))
        assert caught.value.reader == slot.name


def test_card_back_after_removal(slot: EchoSlot) -> None:
    """After wait_for_removal and a new insertion the transport talks to the new card."""
    with _open(slot.name) as transport:
        slot.bridge.remove()
        transport.wait_for_removal(5.0)
        slot.bridge.insert(EchoCard())
        assert transport.wait_for_card(5.0) == ATR
        assert transport.transmit(CommandAPDU(0, 1, 0, 0, b"\x05")).data == b"\x05"


def test_reconnect_with_reset_resets_the_card(slot: EchoSlot) -> None:
    """reconnect(reset=True) makes pcscd reset the card; reconnect(False) does not."""
    with _open(slot.name) as transport:
        transport.reconnect(reset=False)
        assert "reset" not in slot.card.events
        assert transport.reconnect(reset=True) == ATR
        assert "reset" in slot.card.events or slot.card.events.count("on") >= 2


def test_unknown_reader_raises_reader_not_found(encoder_bank: EncoderBank) -> None:
    """Opening a reader pcscd does not know raises ReaderNotFound naming it."""
    with pytest.raises(ReaderNotFound, match="Encoder 99 00 00"):
        PCSCTransport("Encoder 99 00 00").__enter__()


def test_transmit_outside_with_block_raises() -> None:
    """A transport that was never opened refuses to transmit with a ReaderError."""
    with pytest.raises(ReaderError, match="not open"):
        PCSCTransport("Encoder 0 00 01").transmit(CommandAPDU(0, 1, 0, 0))


def test_round_trip_is_below_two_ms(slot: EchoSlot) -> None:
    """NODELAY + QUICKACK keep one raw APDU round trip far below Nagle's ~48 ms."""
    with _open(slot.name):
        pass
    figure = measure_roundtrip_ms(slot.name, 200)
    print(f"raw PC/SC round trip: {figure:.3f} ms")
    assert figure < 2.0


def test_measure_roundtrip_rejects_zero_samples(slot: EchoSlot) -> None:
    """measure_roundtrip_ms needs at least one sample."""
    with pytest.raises(ValueError, match="at least 1"):
        measure_roundtrip_ms(slot.name, 0)


def test_slot_names_are_stable() -> None:
    """reader_name gives pyscard's '<friendly name> 00 <slot>' form."""
    assert (reader_name(0), reader_name(3, 1)) == ("Encoder 0 00 00", "Encoder 3 00 01")


def test_a_second_terminal_on_a_held_card_is_refused(slot: EchoSlot) -> None:
    """A card is held exclusively: a second terminal opens the reader unconnected and its
    commands fail with CardInUseError (nothing slips into an encoder's session); once the
    first lets go, the second connects."""
    first = _open(slot.name)
    try:
        with PCSCTransport(slot.name) as second:
            assert not second.connected
            with pytest.raises(CardInUseError, match="0x8010000B"):
                second.transmit(CommandAPDU(0, 1, 0, 0, b"x"))
    finally:
        first.close()
    with PCSCTransport(slot.name) as third:
        assert third.connected
