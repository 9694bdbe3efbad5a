"""Secure messaging (ICAO 9303-11 §9.8): App. D.4 both ways, round trips, and every failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.emrtd.crypto import SMCipher
from applets.emrtd.errors import SMCheck, SMError
from applets.emrtd.sm import PARALLEL_BYTES, SecureMessaging, max_plain_data, wrapped_length
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU

VECTORS = json.loads(
    (Path(__file__).resolve().parent.parent / "vectors" / "icao-appendix-d" / "sm.json").read_text()
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def pair(suite: SMCipher = SMCipher.DES3, ssc: int | None = None):
    """A terminal and a card session sharing keys and SSC."""
    if suite is SMCipher.DES3 and ssc is None:
        keys = h(VECTORS["ks_enc"]), h(VECTORS["ks_mac"])
        ssc = int(VECTORS["ssc"], 16)
    else:
        keys = bytes(range(suite.key_length)), bytes(range(1, suite.key_length + 1))
    return (SecureMessaging(keys[0], keys[1], ssc or 0, suite),
            SecureMessaging(keys[0], keys[1], ssc or 0, suite))


def test_appendix_d4_terminal_and_card_byte_for_byte():
    """Every D.4 step: terminal wrap, card unwrap, card wrap, terminal unwrap, exact bytes."""
    terminal, card = pair()
    for step in VECTORS["steps"]:
        plain = CommandAPDU.decode(h(step["command"]))
        protected = terminal.wrap_command(plain)
        assert protected.encode() == h(step["protected_command"]), step["name"]
        assert card.unwrap_command(CommandAPDU.decode(protected.encode())) == plain
        answer = card.wrap_response(ResponseAPDU.decode(h(step["response"])))
        assert answer.encode() == h(step["protected_response"]), step["name"]
        assert terminal.unwrap_response(answer) == ResponseAPDU.decode(h(step["response"]))
    assert terminal.ssc == card.ssc == int(VECTORS["ssc"], 16) + 6


commands = st.builds(
    CommandAPDU, st.just(0), st.integers(0, 255).filter(lambda i: i not in (0x6C, 0x61)),
    st.integers(0, 255), st.integers(0, 255), st.binary(max_size=600),
    st.one_of(st.none(), st.integers(1, 65536)),
)


@given(commands, st.sampled_from(list(SMCipher)))
def test_commands_round_trip_through_wire_bytes(command, suite):
    """Wrap, encode, decode and unwrap gives back the plain command for every suite."""
    terminal, card = pair(suite, 5)
    wire = CommandAPDU.decode(terminal.wrap_command(command).encode())
    back = card.unwrap_command(wire)
    assert (back.ins, back.p1, back.p2, back.data, back.ne) == (
        command.ins, command.p1, command.p2, command.data, command.ne)


@given(st.binary(max_size=2000), st.sampled_from([0x9000, 0x6282, 0x6A82]),
       st.sampled_from(list(SMCipher)))
def test_responses_round_trip(data, sw, suite):
    """Card wrap then terminal unwrap gives back data and status for every suite."""
    terminal, card = pair(suite, 7)
    assert terminal.unwrap_response(card.wrap_response(ResponseAPDU(data, sw))) == \
        ResponseAPDU(data, sw)


def test_large_command_becomes_extended():
    """Encrypted data beyond 255 bytes is carried by an extended APDU the card can open."""
    terminal, card = pair()
    command = CommandAPDU(0, 0xD6, 0, 0, bytes(range(256)) * 2)
    protected = terminal.wrap_command(command)
    assert protected.needs_extended and len(protected.data) > 255
    assert card.unwrap_command(CommandAPDU.decode(protected.encode())).data == command.data


def test_extended_le_uses_two_byte_do97():
    """An extended Ne travels in a 2-byte DO97 and comes back extended."""
    terminal, card = pair()
    protected = terminal.wrap_command(CommandAPDU(0, 0xB0, 0, 0, ne=4000))
    assert protected.data.startswith(b"\x97\x02\x0f\xa0")
    back = card.unwrap_command(protected)
    assert back.ne == 4000 and back.extended


def test_flipped_mac_byte_fails_on_both_sides():
    """A flipped MAC byte raises BAD_MAC on the card (command) and the terminal (response)."""
    terminal, card = pair()
    protected = terminal.wrap_command(CommandAPDU(0, 0xB0, 0, 0, ne=4)).encode()
    with pytest.raises(SMError) as caught:
        card.unwrap_command(CommandAPDU.decode(protected[:-2] + bytes([protected[-2] ^ 1])
                                               + protected[-1:]))
    assert caught.value.check is SMCheck.BAD_MAC
    answer = card.wrap_response(ResponseAPDU(b"abcd", 0x9000)).encode()
    with pytest.raises(SMError) as caught:
        terminal.unwrap_response(ResponseAPDU.decode(answer[:-3] + bytes([answer[-3] ^ 1])
                                                     + answer[-2:]))
    assert caught.value.check is SMCheck.BAD_MAC


@pytest.mark.parametrize("suite", list(SMCipher))
def test_long_bodies_check_mac_and_decrypt_side_by_side(suite):
    """A DG2-sized response and command (MAC on a second core) come back exactly, and a
    flipped ciphertext byte is still a MAC failure on both sides."""
    terminal, card = pair(suite, 11)
    data = bytes(range(256)) * 60
    assert len(data) > PARALLEL_BYTES
    assert terminal.unwrap_response(card.wrap_response(ResponseAPDU(data, 0x9000))).data == data
    command = CommandAPDU(0, 0xD6, 0, 0, data)
    assert card.unwrap_command(terminal.wrap_command(command)).data == data
    answer = card.wrap_response(ResponseAPDU(data, 0x9000)).encode()
    with pytest.raises(SMError) as caught:
        terminal.unwrap_response(ResponseAPDU.decode(answer[:100] + bytes([answer[100] ^ 1])
                                                     + answer[101:]))
    assert caught.value.check is SMCheck.BAD_MAC


def _long_response(card: SecureMessaging, indicator: int, plain: bytes, mac_ok: bool) -> bytes:
    """A protected response built by hand: its own padding indicator and plaintext (not
    padded by the rules), MAC'd correctly or not."""
    card._step()
    encrypted = card._cipher.encrypt(plain, bytes(card.suite.block_size))
    body = tlv.encode(0x87, bytes([indicator]) + encrypted) + tlv.encode(0x99, b"\x90\x00")
    mac = card._mac(body)
    return body + tlv.encode(0x8E, mac if mac_ok else bytes(8)) + b"\x90\x00"


@pytest.mark.parametrize(("indicator", "plain", "mac_ok", "check"), [
    (0x01, bytes(8192), True, SMCheck.BAD_PADDING),  # no 80 marker, MAC right
    (0x01, bytes(8192), False, SMCheck.BAD_MAC),  # both wrong: the MAC is reported
    (0x02, bytes(8191) + b"\x80", True, SMCheck.MALFORMED_DO),  # indicator not 01
    (0x02, bytes(8191) + b"\x80", False, SMCheck.BAD_MAC),
])
def test_long_body_failures_report_the_mac_first(indicator, plain, mac_ok, check):
    """Decrypting while the MAC is computed changes no verdict: a bad MAC wins over anything
    the decryption found, and a good MAC lets the decryption's own error through."""
    terminal, card = pair(SMCipher.DES3, 3)
    raw = _long_response(card, indicator, plain, mac_ok)
    terminal.ssc = card.ssc - 1
    with pytest.raises(SMError) as caught:
        terminal.unwrap_response(ResponseAPDU.decode(raw))
    assert caught.value.check is check


def test_ssc_mismatch_is_a_mac_failure():
    """A card whose SSC is one step off rejects the command as BAD_MAC."""
    terminal, card = pair()
    card.ssc += 1
    with pytest.raises(SMError) as caught:
        card.unwrap_command(terminal.wrap_command(CommandAPDU(0, 0xB0, 0, 0, ne=4)))
    assert caught.value.check is SMCheck.BAD_MAC


def test_plain_command_and_missing_mac_are_missing_dos():
    """A plain CLA, or protected data without DO8E, is reported as a missing DO."""
    _, card = pair()
    for command in (CommandAPDU(0, 0xB0, 0, 0, ne=4),
                    CommandAPDU(0x0C, 0xB0, 0, 0, h("970104"), ne=256)):
        with pytest.raises(SMError) as caught:
            card.unwrap_command(command)
        assert caught.value.check is SMCheck.MISSING_DO


@pytest.mark.parametrize("data", [h("9701048E07") + bytes(7), h("9A01008E08") + bytes(8),
                                  h("8E0800000000000000009701"), h("87")])
def test_malformed_data_objects_are_rejected(data):
    """Short MACs, unknown DOs, DO8E not last and broken TLV are MALFORMED_DO."""
    _, card = pair()
    with pytest.raises(SMError) as caught:
        card.unwrap_command(CommandAPDU(0x0C, 0xB0, 0, 0, data, ne=256))
    assert caught.value.check is SMCheck.MALFORMED_DO


def test_unprotected_error_response_raises_with_status():
    """A 6988 answered without SM raises on the terminal and carries the status word."""
    terminal, _ = pair()
    with pytest.raises(SMError) as caught:
        terminal.unwrap_response(ResponseAPDU(b"", 0x6988))
    assert caught.value.sw == 0x6988 and caught.value.check is SMCheck.MISSING_DO


@given(st.integers(20, 70000), st.sampled_from(list(SMCipher)))
def test_max_plain_data_is_the_largest_that_fits(limit, suite):
    """The computed plain size fits the wrapped limit and one byte more does not."""
    size = max_plain_data(limit, suite)
    assert wrapped_length(size, suite) <= limit < wrapped_length(size + 1, suite)


def test_jmrtd_short_limit():
    """Short 3DES APDUs carry at least JMRTD's 223 plain bytes under SM."""
    assert max_plain_data(255) >= 223
