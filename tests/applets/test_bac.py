"""Basic Access Control (ICAO 9303-11 §9.7, App. D.2–D.3) on both sides."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from applets.emrtd import bac, crypto
from applets.emrtd.errors import BACError
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.base import DirectTransport
from applets.virtual.card import ChipMemory, VirtualEMRTD

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "icao-appendix-d"
V = json.loads((VECTORS / "bac.json").read_text())


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def replay(*chunks: str):
    """An rng handing out fixed App. D randoms in order."""
    queue: Iterator[bytes] = iter(h(c) for c in chunks)

    def rng(n: int) -> bytes:
        value = next(queue)
        assert len(value) == n
        return value
    return rng


class Recording:
    """A DirectTransport that keeps the raw commands it sent (to compare with App. D)."""

    def __init__(self, card: VirtualEMRTD) -> None:
        self.inner = DirectTransport(card)
        self.sent: list[bytes] = []
        self.max_command_data = self.inner.max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        self.sent.append(command.encode())
        return self.inner.transmit(command)


def locked_card(keys: tuple[bytes, bytes], rng) -> VirtualEMRTD:
    card = VirtualEMRTD("T1", ChipMemory(bac_keys=keys, locked=True), rng=rng)
    assert DirectTransport(card).transmit(
        CommandAPDU(0, 0xA4, 0x04, 0x0C, h("A0000002471001"))).sw == 0x9000
    return card


def test_mrz_information_and_seed_match_appendix_d():
    """docNo‖cd‖DOB‖cd‖DOE‖cd and K_seed are App. D.2's."""
    info = bac.mrz_information(V["document_number"], V["date_of_birth"], V["date_of_expiry"])
    assert info == V["mrz_information"]
    assert bac.key_seed(info) == h(V["k_seed"])


def test_document_keys_raw_and_parity_adjusted():
    """document_keys gives App. D.2's raw keys, and the adjusted ones on request."""
    assert bac.document_keys(V["mrz_information"]) == (h(V["k_enc_raw"]), h(V["k_mac_raw"]))
    assert bac.document_keys(V["mrz_information"], adjust_parity=True) == (
        h(V["k_enc_parity"]), h(V["k_mac_parity"]))


@pytest.mark.parametrize("adjusted", [False, True])
def test_appendix_d3_full_exchange(adjusted):
    """Replaying App. D's randoms, both sides produce its APDUs and session keys."""
    keys = bac.document_keys(V["mrz_information"], adjust_parity=adjusted)
    card = locked_card(keys, replay(V["rnd_ic"], V["k_ic"]))
    transport = Recording(card)
    sm = bac.perform_bac(transport, V["mrz_information"], replay(V["rnd_ifd"], V["k_ifd"]))
    assert transport.sent == [h("0084000008"), h(V["external_authenticate"])]
    # App. D quotes parity-adjusted session keys; DES ignores the parity bits
    assert crypto.adjust_parity(sm.ks_enc) == h(V["ks_enc"])
    assert crypto.adjust_parity(sm.ks_mac) == h(V["ks_mac"])
    assert sm.ssc == int(V["ssc"], 16)
    assert card.secure_session


def test_card_side_answers_appendix_d_cryptogram():
    """BACCard answers App. D's EXTERNAL AUTHENTICATE with E_IC ‖ M_IC and the session."""
    keys = bac.document_keys(V["mrz_information"])
    card = bac.BACCard(*keys, rng=replay(V["rnd_ic"], V["k_ic"]))
    assert card.get_challenge(CommandAPDU(0, 0x84, 0, 0, ne=8)).data == h(V["rnd_ic"])
    answer, session = card.external_authenticate(
        CommandAPDU.decode(h(V["external_authenticate"])))
    assert answer == ResponseAPDU(h(V["e_ic"] + V["m_ic"]), 0x9000)
    assert session is not None and crypto.adjust_parity(session.ks_enc) == h(V["ks_enc"])


def test_wrong_document_key_is_refused_with_6982():
    """A terminal with the wrong MRZ gets 6982 from the card and raises BACError."""
    card = locked_card(bac.document_keys(V["mrz_information"]), replay(V["rnd_ic"]))
    wrong = bac.mrz_information("L898902C", "690806", "940624")
    with pytest.raises(BACError) as caught:
        bac.perform_bac(DirectTransport(card), wrong, replay(V["rnd_ifd"], V["k_ifd"]))
    assert caught.value.sw == 0x6982
    assert not card.secure_session


class Tampering(Recording):
    """Flips one bit of the card's EXTERNAL AUTHENTICATE answer (fault injection)."""

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        answer = super().transmit(command)
        if command.ins == 0x82 and answer.data:
            return ResponseAPDU(bytes([answer.data[0] ^ 1]) + answer.data[1:], answer.sw)
        return answer


def test_terminal_rejects_a_forged_card_cryptogram():
    """A card cryptogram whose MAC does not verify raises BACError on the terminal."""
    card = locked_card(bac.document_keys(V["mrz_information"]), replay(V["rnd_ic"], V["k_ic"]))
    with pytest.raises(BACError, match="MAC"):
        bac.perform_bac(Tampering(card), V["mrz_information"], replay(V["rnd_ifd"], V["k_ifd"]))


def test_terminal_rejects_a_card_that_does_not_echo_its_nonce():
    """A chip that answers a correct MAC over the wrong nonces is refused."""
    k_enc, k_mac = bac.document_keys(V["mrz_information"])
    forged = bac.seal(k_enc, k_mac, bytes(16) + h(V["k_ic"]))
    transport = DirectTransport(locked_card((k_enc, k_mac), replay(V["rnd_ic"])))

    class Forging(Recording):
        def transmit(self, command: CommandAPDU) -> ResponseAPDU:
            if command.ins == 0x82:
                return ResponseAPDU(forged, 0x9000)
            return transport.transmit(command)
    with pytest.raises(BACError, match="echo"):
        bac.perform_bac(Forging(VirtualEMRTD("x")), V["mrz_information"],
                        replay(V["rnd_ifd"], V["k_ifd"]))


def test_challenge_is_single_use_and_lengths_are_checked():
    """EXTERNAL AUTHENTICATE without a fresh challenge is 6985; wrong lengths are 6700."""
    keys = bac.document_keys(V["mrz_information"])
    card = bac.BACCard(*keys, rng=replay(V["rnd_ic"], V["k_ic"]))
    command = CommandAPDU.decode(h(V["external_authenticate"]))
    assert card.external_authenticate(command)[0].sw == 0x6985
    assert card.get_challenge(CommandAPDU(0, 0x84, 0, 0, ne=4)).sw == 0x6700
    assert card.external_authenticate(CommandAPDU(0, 0x82, 0, 0, bytes(39)))[0].sw == 0x6700


def test_unseal_rejects_wrong_length():
    """A cryptogram that is not 40 bytes raises BACError."""
    with pytest.raises(BACError):
        bac.unseal(bytes(16), bytes(16), bytes(32))
