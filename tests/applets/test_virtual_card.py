"""The virtual eMRTD: status words, lifecycle, secure-messaging discipline, AA, fuzzing."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd import aa, bac, perso, reader
from applets.emrtd.errors import SMError
from applets.emrtd.sm import SecureTransport
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.base import DirectTransport
from applets.virtual.card import ChipMemory, Lifecycle, VirtualEMRTD
from tests.applets.test_perso import MRZ_INFO, open_session, personalize, sample_files


def send(card: VirtualEMRTD, hex_apdu: str) -> int:
    """Send a raw plain APDU and return the status word."""
    return ResponseAPDU.decode(card.execute(bytes.fromhex(hex_apdu))).sw


def fresh() -> VirtualEMRTD:
    card = VirtualEMRTD("V1")
    assert send(card, "00A4040C07A0000002471001") == 0x9000
    return card


@pytest.fixture(scope="module")
def locked() -> tuple[VirtualEMRTD, bytes]:
    card = VirtualEMRTD("V2")
    _, point = personalize(card, sample_files(40_000))
    return card, point


def test_atr_is_a_pcsc_contactless_atr_without_the_serial():
    """3B 8n 80 01 ‖ historical bytes ‖ TCK, with TCK making the XOR from T0 zero."""
    atr = VirtualEMRTD("SERIAL123").atr()
    assert atr[:1] == b"\x3b" and atr[2:4] == b"\x80\x01" and atr[1] & 0x0F == len(atr) - 5
    check = 0
    for byte in atr[1:]:
        check ^= byte
    assert check == 0 and b"SERIAL123" not in atr


@pytest.mark.parametrize(("apdu", "sw"), [
    ("00A4020C02011E", 0x6A82),  # unknown FID
    ("00A4020C03011E00", 0x6700),  # SELECT Lc ≠ 2
    ("00EE000000", 0x6D00),  # unknown INS
    ("80A4020C02011E", 0x6E00),  # bad CLA
    ("0CB0000004", 0x6882),  # SM CLA without a session
    ("00E00000056304000101", 0x6700),  # CREATE Lc < 6
    ("00E0000006640400100101", 0x6984),  # CREATE tag ≠ 63
    ("00E000000663040010ABCD", 0x6A80),  # not an LDS1 file
    ("00D6000001AA", 0x6985),  # UPDATE without a selected file
    ("00CA7F6700", 0x6A88),  # GET DATA of another tag
    ("00DA00630100", 0x6A86),  # PUT DATA unknown P2
    ("00DADEAD", 0x6985),  # LOCK without a BAC seed
    ("0084000008", 0x6985),  # GET CHALLENGE while personalizing
    ("00820000280000000000000000000000000000000000000000000000000000000000000000000000"
     "0000000000", 0x6985),  # EXTERNAL AUTHENTICATE while personalizing
    ("00880000080102030405060708", 0x6985),  # INTERNAL AUTHENTICATE while personalizing
    ("00A4", 0x6700),  # truncated header
])
def test_status_words_while_personalizing(apdu, sw):
    """Each malformed or out-of-phase command gets its ISO 7816-4 / JMRTD status word."""
    assert send(fresh(), apdu) == sw


def test_commands_before_applet_selection_are_refused():
    """Nothing but SELECT works before the eMRTD applet is selected."""
    assert send(VirtualEMRTD("V0"), "00A4020C020101") == 0x6985
    assert send(VirtualEMRTD("V0"), "00A4040C07A0000002472001") == 0x6A82


def test_file_size_is_fixed_by_first_create():
    """UPDATE past the size and re-creating bigger are 6A84; a same-size CREATE is fine."""
    card = fresh()
    assert send(card, "00E0000006630400040101") == 0x9000
    assert send(card, "00E0000006630400040101") == 0x9000
    assert send(card, "00E0000006630400050101") == 0x6A84
    assert send(card, "00A4020C020101") == 0x9000
    assert send(card, "00D6000305AABBCCDDEE") == 0x6A84
    assert send(card, "00D6000002AABB") == 0x9000
    assert card.last_eeprom_bytes == 2 and card.memory.lifecycle is Lifecycle.PERSONALIZING


def test_extended_length_information_is_advertised():
    """GET DATA 7F66 reports the constructor's max command data."""
    card = VirtualEMRTD("V3", max_command_data=1000)
    send(card, "00A4040C07A0000002471001")
    answer = ResponseAPDU.decode(card.execute(bytes.fromhex("00CA7F6600")))
    assert perso.parse_length_info(answer.data) == (1000, 65535)


def test_short_only_card_refuses_extended_apdus():
    """A card built for 255 bytes answers 6700 to an extended command."""
    card = VirtualEMRTD("V4", max_command_data=255)
    send(card, "00A4040C07A0000002471001")
    command = CommandAPDU(0, 0xE0, 0, 0, bytes.fromhex("630400100101"), extended=True)
    assert ResponseAPDU.decode(card.execute(command.encode())).sw == 0x6700


def test_second_key_generation_is_refused():
    """GENERATE ASYMMETRIC KEY PAIR works once; the second answers 6985."""
    card = fresh()
    assert send(card, "0046000000") == 0x9000
    assert send(card, "0046000000") == 0x6985


def test_private_key_is_not_in_any_answer(locked):
    """No response ever carries the AA private scalar (keygen answer checked)."""
    card, point = locked
    scalar = card.memory.aa_scalar
    assert scalar is not None and scalar not in point


@pytest.mark.parametrize("apdu", [
    "00E0000006630400100103", "00A4020C020101", "00D6000001AA", "00DA00620100", "00DADEAD",
    "0046000000",
])
def test_locked_card_refuses_writes_and_plain_reads(locked, apdu):
    """After LOCK: writes are 6985, SELECT EF without BAC is 6982."""
    card, _ = locked
    card.power_on()
    send(card, "00A4040C07A0000002471001")
    expected = 0x6982 if apdu.startswith("00A402") else 0x6985
    assert send(card, apdu) == expected


def test_read_binary_without_bac_is_6982(locked):
    """READ BINARY by SFI on a locked chip without BAC is 6982."""
    card, _ = locked
    card.power_on()
    send(card, "00A4040C07A0000002471001")
    assert send(card, "00B0810004") == 0x6982


def test_internal_authenticate_needs_bac_then_verifies(locked):
    """INTERNAL AUTH before BAC is 6982; after BAC the signature verifies with the key."""
    card, point = locked
    card.power_on()
    send(card, "00A4040C07A0000002471001")
    assert send(card, "00880000080102030405060708") == 0x6982
    secure = open_session(card)
    challenge = os.urandom(8)
    signature = secure.transmit(CommandAPDU(0, 0x88, 0, 0, challenge, ne=256)).check("AA")
    template = tlv.encode(0x7F49, tlv.encode(6, aa.P256_OID) + tlv.encode(0x86, point))
    aa.verify_aa(aa.decode_public_key_template(template), challenge, signature)


def test_tampered_mac_gets_6988_and_ends_the_session(locked):
    """A flipped MAC byte: the card answers 6988 without SM and drops its keys."""
    card, _ = locked
    secure = open_session(card)
    raw = secure.sm.wrap_command(perso.select_file_command(0x0101)).encode()
    answer = card.execute(raw[:-3] + bytes([raw[-3] ^ 0x40]) + raw[-2:])
    assert answer == b"\x69\x88" and not card.secure_session
    with pytest.raises(SMError):
        secure.transmit(perso.select_file_command(0x0101))


def test_ssc_out_of_step_gets_6988(locked):
    """A terminal whose SSC is one ahead is refused with 6988."""
    card, _ = locked
    secure = open_session(card)
    secure.sm.ssc += 1
    with pytest.raises(SMError) as caught:
        secure.transmit(perso.select_file_command(0x0101))
    assert caught.value.sw == 0x6988 and not card.secure_session


def test_plain_apdu_during_sm_gets_6987_and_ends_session(locked):
    """A plain SELECT inside an SM session answers 6987 and the session is gone."""
    card, _ = locked
    open_session(card)
    assert send(card, "00A4040C07A0000002471001") == 0x6987
    assert not card.secure_session
    assert send(card, "00A4020C020101") == 0x6982


def test_terminal_detects_a_tampered_response(locked):
    """A response whose MAC was altered in transit raises SMError on the terminal."""
    card, _ = locked
    secure = open_session(card)

    class Flip:
        max_command_data = 65535

        def transmit(self, command: CommandAPDU) -> ResponseAPDU:
            answer = DirectTransport(card).transmit(command)
            return ResponseAPDU(answer.data[:-1] + bytes([answer.data[-1] ^ 1]), answer.sw)
    with pytest.raises(SMError):
        SecureTransport(Flip(), secure.sm).transmit(perso.select_file_command(0x0101))


def test_large_file_reads_across_32k_with_odd_ins(locked):
    """A 40 kB DG2 reads back whole: B0 up to 32767, then B1 with DO54, short and extended."""
    card, _ = locked
    expected = sample_files(40_000)[0x0102]
    secure = open_session(card)
    assert reader.read_file(secure, 0x0102, extended=True, block=30_000) == expected
    assert reader.read_file(secure, 0x0102, block=0xDF)[-5000:] == expected[-5000:]


def test_power_off_drops_the_session(locked):
    """Removing power forgets the SM keys and the applet selection."""
    card, _ = locked
    open_session(card)
    card.power_off()
    assert not card.secure_session
    assert send(card, "00A4020C020101") == 0x6985


def test_short_file_read_ends_with_6282():
    """A file shorter than the header read still reads (end-of-file warning 6282)."""
    card = fresh()
    send(card, "00E0000006630400030101")
    send(card, "00A4020C020101")
    send(card, "00D6000003610101")
    assert reader.read_file(DirectTransport(card), 0x0101) == bytes.fromhex("610101")


class Picky:
    """A transport in front of the card that first answers 6Cxx, then 61xx (older chips)."""

    max_command_data = 255

    def __init__(self, card: VirtualEMRTD) -> None:
        self.inner = DirectTransport(card)
        self.pending = b""

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        if command.ins == 0xC0:
            data, self.pending = self.pending, b""
            return ResponseAPDU(data, 0x9000)
        answer = self.inner.transmit(command)
        if command.ins == 0xB0 and command.ne != len(answer.data):
            return ResponseAPDU(b"", 0x6C00 | len(answer.data))
        if command.ins == 0xB0 and len(answer.data) > 2:
            self.pending = answer.data[2:]
            return ResponseAPDU(answer.data[:2], 0x6100 | len(self.pending))
        return answer


def test_reader_copes_with_6cxx_and_61xx():
    """read_file repeats with the exact Le on 6Cxx and collects 61xx with GET RESPONSE."""
    card = fresh()
    data = tlv.encode(0x61, bytes(range(40)))
    send(card, f"00E00000066304{len(data):04X}0101")
    send(card, "00A4020C020101")
    card.execute(perso.update_binary_command(0, data).encode())
    assert reader.read_file(Picky(card), 0x0101, block=16) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_execute_never_raises_on_a_blank_card(raw):
    """Random bytes in: always a response of at least two bytes out."""
    assert len(fresh().execute(raw)) >= 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=4, max_size=60), max_size=5))
def test_execute_never_raises_on_a_locked_card_in_session(raws):
    """Random APDU-shaped bytes against a locked chip with an SM session never raise."""
    memory = ChipMemory(bac_keys=bac.document_keys(MRZ_INFO), locked=True,
                        files={0x0101: bytearray(b"\x61\x01\x00")})
    card = VirtualEMRTD("F", memory)
    open_session(card)
    for raw in raws:
        for cla in (b"\x0c", b"\x00"):
            assert len(card.execute(cla + raw[1:])) >= 2
