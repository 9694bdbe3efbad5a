"""Chip Authentication v1, ECDH with AES (ICAO 9303-11 §6.2): real-passport keys and recorded
sessions, the BSI worked example's ECDH, and both sides against each other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import ca, eac_oids
from applets.emrtd.crypto import SMCipher
from applets.emrtd.sm import SecureMessaging, SecureTransport
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from common import curves

EAC = Path(__file__).resolve().parent.parent / "vectors" / "eac"
VECTORS = json.loads((EAC / "vectors.json").read_text())
TRACES = json.loads((EAC / "traces.json").read_text())["ca_aes_traces"]
BP256 = curves.BRAINPOOL_P256R1
AES128 = eac_oids.ID_CA_ECDH_AES_CBC_CMAC_128


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def dg14_point(dg14: bytes) -> bytes:
    """The chip's CA public key: the 65-byte point of DG14's subjectPublicKey BIT STRING."""
    at = dg14.rfind(h("034200"))
    return dg14[at + 3 : at + 3 + 65]


class Script:
    """Checks each raw command against a recorded trace and answers the recorded response."""

    def __init__(self, pairs: list[list[str]]) -> None:
        self.pairs = list(pairs)
        self.max_command_data = 65535

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        sent, answer = self.pairs.pop(0)
        assert command.encode() == h(sent)
        return ResponseAPDU.decode(h(answer))


def test_real_transcript_session_keys():
    """Terminal key + DG14 chip key of a real passport give its K, KSenc, KSmac and SSC 0."""
    v = VECTORS["ca_v1_aes_real_transcript"]
    ephemeral = ec.derive_private_key(int(v["term_eph_sk"], 16), BP256.crypto_curve())
    secret = ca.shared_secret(ephemeral, ca.load_point(BP256, h(v["chip_PK_from_DG14"])))
    assert secret == h(v["K"])
    session = ca.session(secret)
    assert (session.ks_enc, session.ks_mac) == (h(v["KSenc"]), h(v["KSmac"]))
    assert session.ssc == int(v["ssc_after"]) and session.suite is SMCipher.AES128


@pytest.mark.parametrize(("trace", "key_id"), [(TRACES[0], None), (TRACES[1], 0xC3)],
                         ids=["AT", "DE-keyId"])
def test_recorded_sessions_byte_exact(trace, key_id):
    """Under the recorded BAC/PACE session, our MSE:Set AT and GENERAL AUTHENTICATE are the
    recorded APDUs byte for byte; the new keys match, and the next command (SELECT DG14 under
    the new keys, SSC from 0) is the recorded one."""
    script = Script(trace["apdus"])
    old = SecureMessaging(h(trace["ks_enc"]), h(trace["ks_mac"]), trace["ssc"], SMCipher.AES128)
    ephemeral = ec.derive_private_key(int(trace["terminal_sk"], 16), BP256.crypto_curve())
    assert ca.encoded_point(ephemeral.public_key()) == h(trace["terminal_pk"])
    new = ca.perform_ca(SecureTransport(script, old), dg14_point(h(trace["dg14"])), BP256,
                        ephemeral, AES128, key_id)
    assert (new.ks_enc, new.ks_mac, new.ssc) == (h(trace["new_ks_enc"]), h(trace["new_ks_mac"]), 0)
    answer = SecureTransport(script, new).transmit(CommandAPDU(0x00, 0xA4, 0x02, 0x0C, h("010E")))
    assert answer.sw == 0x9000 and new.ssc == trace["new_ssc_after"] and not script.pairs


def test_bsi_worked_example_ecdh_chip_side():
    """The chip's static key and the terminal's ephemeral key of the BSI example give its K;
    the CA v1 keys are KDF(K, 1) and KDF(K, 2)."""
    v = VECTORS["bsi_eac_worked_example_v1_01_ecdh"]
    session = ca.chip_session(int(v["ca_picc_priv_key"], 16), h(v["ca_pcd_pub_key"]), BP256)
    private = ec.derive_private_key(int(v["ca_picc_priv_key"], 16), BP256.crypto_curve())
    assert ca.encoded_point(private.public_key()) == h(v["ca_picc_pub_key"])
    secret = ca.shared_secret(private, ca.load_point(BP256, h(v["ca_pcd_pub_key"])))
    assert secret == h(v["ca_shared_secret_k"])
    assert session.ks_enc == h("74DFF1029B548FA273C13D86CE775A5B")  # vectors.json ca_note
    assert session.ks_mac == h("4AE4F2F70ABC8C4C3DA7588BE9A1C9E2")


class ChipCard:
    """A plain (no SM) test card running the chip side of CA on GENERAL AUTHENTICATE."""

    def __init__(self, private_value: int, curve: curves.Curve) -> None:
        self.private_value, self.curve = private_value, curve
        self.session: SecureMessaging | None = None
        self.max_command_data = 65535
        self.mse: bytes | None = None

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        command = CommandAPDU.decode(command.encode())
        if command.ins == 0x22:
            self.mse = command.data
            return ResponseAPDU(b"", 0x9000)
        try:
            point = tlv.find(tlv.decode_single(command.data, 0x7C).value, 0x80)
            self.session = ca.chip_session(self.private_value, point, self.curve)
        except ca.CAError:
            return ResponseAPDU(b"", 0x6A80)
        return ResponseAPDU(h("7C00"), 0x9000)


@pytest.mark.parametrize("curve", [curves.BRAINPOOL_P256R1, curves.SECP256R1],
                         ids=lambda c: c.label)
def test_terminal_and_chip_agree(curve):
    """Terminal and chip derive the same keys; a command wrapped by one opens at the other."""
    chip_key = ec.generate_private_key(curve.crypto_curve())
    card = ChipCard(chip_key.private_numbers().private_value, curve)
    terminal = ca.perform_ca(card, ca.encoded_point(chip_key.public_key()), curve,
                             ec.generate_private_key(curve.crypto_curve()))
    assert card.session is not None and card.mse == h("800A04007F00070202030202")
    assert (terminal.ks_enc, terminal.ks_mac) == (card.session.ks_enc, card.session.ks_mac)
    select = CommandAPDU(0x00, 0xA4, 0x02, 0x0C, h("0101"))
    assert card.session.unwrap_command(terminal.wrap_command(select)) == select


def test_off_curve_terminal_key_refused():
    """The chip refuses a terminal key off the curve, compressed or of the wrong size."""
    key = ec.generate_private_key(BP256.crypto_curve())
    good = ca.encoded_point(key.public_key())
    y = int.from_bytes(good[33:], "big")
    off_curve = good[:33] + ((y + 1) % BP256.p).to_bytes(32, "big")
    for bad in (off_curve, b"\x02" + good[1:33], good[:-1], ca.encoded_point(
            ec.generate_private_key(ec.SECP256R1()).public_key())):
        with pytest.raises(ca.CAError):
            ca.chip_session(12345, bad, BP256)


def test_terminal_refuses_an_off_curve_chip_key():
    """A DG14 key that is not on the curve stops CA before anything is sent."""
    script = Script([])
    good = ca.encoded_point(ec.generate_private_key(BP256.crypto_curve()).public_key())
    with pytest.raises(ca.CAError):
        ca.perform_ca(script, good[:-1] + bytes([good[-1] ^ 1]), BP256,
                      ec.generate_private_key(BP256.crypto_curve()))


def test_mse_set_at_carries_oid_and_key_id():
    """MSE:Set AT is 00 22 41 A4 {80 OID value, 84 key id as unsigned bytes}."""
    assert ca.mse_set_at(AES128).encode() == h("002241A40C800A04007F00070202030202")
    assert ca.mse_set_at(AES128, 0xC3).encode() == h("002241A40F800A04007F000702020302028401C3")


def test_card_refusal_is_reported_with_its_status_word():
    """A card answering 6A80 to GENERAL AUTHENTICATE ends CA with that status word."""
    chip_key = ec.generate_private_key(BP256.crypto_curve())
    card = ChipCard(chip_key.private_numbers().private_value, curves.SECP256R1)  # wrong curve
    with pytest.raises(ca.CAError) as caught:
        ca.perform_ca(card, ca.encoded_point(chip_key.public_key()), BP256,
                      ec.generate_private_key(BP256.crypto_curve()))
    assert caught.value.sw == 0x6A80


def test_3des_and_unknown_protocols_refused():
    """CA with 3DES (MSE:Set KAT) or a non-CA OID is not this protocol."""
    for oid in (eac_oids.ID_CA_ECDH_3DES_CBC_CBC, eac_oids.ID_PACE_ECDH_GM_AES_CBC_CMAC_128):
        with pytest.raises(ca.CAError):
            ca.session(bytes(32), oid)
