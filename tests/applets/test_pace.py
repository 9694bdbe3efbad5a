"""PACE-GM-ECDH on both ends: ICAO 9303-11 App. G.1, the BSI EAC worked example, round trips
between terminal and responder, and a hostile chip or terminal."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd import bac, crypto, curves, eac_oids, ec, pace
from applets.emrtd.crypto import SMCipher
from applets.emrtd.pace import PACECheck, PACEError, PACEParameters, PACEStep, PasswordType
from applets.emrtd.pace_chip import PACEResponder
from applets.emrtd.sm import SecureMessaging
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from common.curves import BRAINPOOL_P256R1

EAC = Path(__file__).resolve().parent.parent / "vectors" / "eac"
VECTORS = json.loads((EAC / "vectors.json").read_text())
TRACES = json.loads((EAC / "traces.json").read_text())
G1 = VECTORS["icao_9303_11_appG1_pace_ecdh_gm_aes128_bp256"]
G1_TRACE = TRACES["appendix_g_pace_ecdh_gm_brainpoolp256r1"]
BSI = VECTORS["bsi_eac_worked_example_v1_01_ecdh"]
AES128 = eac_oids.ID_PACE_ECDH_GM_AES_CBC_CMAC_128
DES3 = eac_oids.ID_PACE_ECDH_GM_3DES_CBC_CBC
BP = BRAINPOOL_P256R1
G1_PARAMS = PACEParameters(AES128, 13)
G1_PASSWORD = pace.mrz_password(G1["mrz"]["doc"], G1["mrz"]["dob"], G1["mrz"]["doe"])
MRZ = pace.mrz_password("T22000129", "640812", "101031")
CAN = pace.can_password("123456")


def test_standardized_domain_parameter_ids():
    """TR-03110-3 Table 4's ids of the curves EAC uses, both ways; an id of another is refused."""
    table = {12: "P-256", 13: "brainpoolP256r1", 15: "P-384", 16: "brainpoolP384r1",
             17: "brainpoolP512r1"}
    assert {i: curves.by_pace_parameter_id(i).label for i in table} == table
    assert [curves.pace_parameter_id(curve) for curve in curves.CURVES] == [13, 12, 16, 15, 17]
    with pytest.raises(KeyError, match="no EAC curve with PACE parameter id 14"):
        curves.by_pace_parameter_id(14)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def key(text: str) -> bytes:
    """A private key as 32 bytes (the BSI example writes some with a leading 00)."""
    return int(text, 16).to_bytes(32, "big")


def point(text: str) -> ec.Point:
    return ec.decode_point(BP, h(text))


def replay(*chunks: bytes) -> Callable[[int], bytes]:
    """An rng handing out fixed values in order."""
    queue = iter(chunks)

    def rng(n: int) -> bytes:
        value = next(queue)
        assert len(value) == n
        return value
    return rng


def seeded(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


class Script:
    """A transmit that checks each command byte-exact and answers the recorded response."""

    def __init__(self, apdus: list[list[str]]) -> None:
        self.apdus = apdus
        self.sent = 0

    def __call__(self, command: CommandAPDU) -> ResponseAPDU:
        expected, answer = self.apdus[self.sent]
        assert command.encode().hex().upper() == expected.upper(), f"command {self.sent}"
        self.sent += 1
        return ResponseAPDU.decode(h(answer))


class Wire:
    """Terminal-to-responder link that records traffic and may rewrite the n-th exchange."""

    def __init__(
        self, chip: PACEResponder,
        commands: dict[int, Callable[[CommandAPDU], CommandAPDU]] | None = None,
        responses: dict[int, Callable[[ResponseAPDU], ResponseAPDU]] | None = None,
    ) -> None:
        self.chip = chip
        self.commands = commands or {}
        self.responses = responses or {}
        self.log: list[tuple[CommandAPDU, ResponseAPDU]] = []

    def __call__(self, command: CommandAPDU) -> ResponseAPDU:
        index = len(self.log)
        if index in self.commands:
            command = self.commands[index](command)
        response = self.chip.process(command)
        if index in self.responses:
            response = self.responses[index](response)
        self.log.append((command, response))
        return response


def connect(parameters=G1_PARAMS, password=MRZ, chip_passwords=(MRZ, CAN), seed=1,
            send_parameter_id=True, **tamper):
    """Run the terminal against a responder; return (terminal result, responder, wire)."""
    chip = PACEResponder([parameters], chip_passwords, seeded(seed))
    wire = Wire(chip, **tamper)
    result = pace.establish(wire, password, oid=parameters.oid,
                            parameter_id=parameters.parameter_id, rng=seeded(seed + 1000),
                            send_parameter_id=send_parameter_id)
    return result, chip, wire


def assert_sessions_interoperate(terminal: SecureMessaging, chip: SecureMessaging) -> None:
    command = CommandAPDU(0x00, 0xA4, 0x02, 0x0C, h("011E"))
    assert chip.unwrap_command(terminal.wrap_command(command)) == command
    response = ResponseAPDU(h("60145F01"), 0x9000)
    assert terminal.unwrap_response(chip.wrap_response(response)) == response


def flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes((data[-1] ^ 0x01,))


# -- ICAO 9303-11 Appendix G.1 --------------------------------------------------------------

def test_appendix_g_password_key():
    """MRZ information, K = SHA-1 of it, and Kπ = KDF(K, 3) are App. G.1's."""
    mrz = G1["mrz"]
    assert bac.mrz_information(mrz["doc"], mrz["dob"], mrz["doe"]) == mrz["mrz_information"]
    assert G1_PASSWORD.kind is PasswordType.MRZ
    assert G1_PASSWORD.secret == h(G1["K_sha1_mrz"])
    assert pace.password_key(G1_PASSWORD, SMCipher.AES128) == h(G1["K_pi"])


def test_appendix_g_nonce_encryption():
    """AES-CBC with IV 0 under Kπ turns z into s and back."""
    k_pi = h(G1["K_pi"])
    assert pace.decrypt_nonce(k_pi, h(G1["enc_nonce_z"]), SMCipher.AES128) == h(G1["nonce_s"])
    assert pace.encrypt_nonce(k_pi, h(G1["nonce_s"]), SMCipher.AES128) == h(G1["enc_nonce_z"])


def test_appendix_g_mapping():
    """Both mapping key pairs, H from either side, and G' = s·G + H are App. G.1's."""
    g = ec.generator(BP)
    sk_ifd, sk_ic = int(G1["SK_map_IFD"], 16), int(G1["SK_map_IC"], 16)
    assert ec.encode_point(BP, ec.multiply(BP, sk_ifd, g)) == h(G1["PK_map_IFD"])
    assert ec.encode_point(BP, ec.multiply(BP, sk_ic, g)) == h(G1["PK_map_IC"])
    assert ec.multiply(BP, sk_ifd, point(G1["PK_map_IC"])) == point(G1["H"])
    assert ec.multiply(BP, sk_ic, point(G1["PK_map_IFD"])) == point(G1["H"])
    s = h(G1["nonce_s"])
    assert pace.map_generator(BP, s, point(G1["H"])) == point(G1["G_mapped"])
    assert pace.mapped_generator(BP, sk_ifd, point(G1["PK_map_IC"]), s) == point(G1["G_mapped"])


def test_appendix_g_key_agreement_and_session_keys():
    """Both DH key pairs on G', the shared x-coordinate K, KSenc and KSmac are App. G.1's."""
    mapped = point(G1["G_mapped"])
    sk_ifd, sk_ic = int(G1["SK_DH_IFD"], 16), int(G1["SK_DH_IC"], 16)
    assert ec.encode_point(BP, ec.multiply(BP, sk_ifd, mapped)) == h(G1["PK_DH_IFD"])
    assert ec.encode_point(BP, ec.multiply(BP, sk_ic, mapped)) == h(G1["PK_DH_IC"])
    shared = ec.multiply(BP, sk_ifd, point(G1["PK_DH_IC"]))
    assert shared is not None and ec.x_coordinate(BP, shared) == h(G1["K_shared"])
    keys = (h(G1["KSenc"]), h(G1["KSmac"]))
    assert pace.session_keys(BP, sk_ifd, point(G1["PK_DH_IC"]), SMCipher.AES128) == keys
    assert pace.session_keys(BP, sk_ic, point(G1["PK_DH_IFD"]), SMCipher.AES128) == keys
    assert pace.keys_from_secret(h(G1["K_shared"]), SMCipher.AES128) == keys


def test_appendix_g_tokens():
    """The token input 7F49{06, 86} and both tokens T_IFD and T_IC are App. G.1's."""
    expected_input = G1["auth_token_input_T_IFD"].replace("<PK_DH_IC>", G1["PK_DH_IC"])
    assert pace.public_key_data(G1_PARAMS, h(G1["PK_DH_IC"])) == h(expected_input)
    assert pace.public_key_data(G1_PARAMS, h(G1["PK_DH_IFD"])) == h(G1_TRACE["t_ic_input"])
    ks_mac = h(G1["KSmac"])
    assert pace.auth_token(ks_mac, G1_PARAMS, h(G1["PK_DH_IC"])) == h(G1["T_IFD"])
    assert pace.auth_token(ks_mac, G1_PARAMS, h(G1["PK_DH_IFD"])) == h(G1["T_IC"])


def test_appendix_g_transcripts_agree():
    """vectors.json's APDUs with their placeholders filled are traces.json's (no tag 84)."""
    filled = [[re.sub(r"<(\w+)>", lambda m: G1[m.group(1)], part) for part in pair]
              for pair in G1["apdus"]]
    assert filled == G1_TRACE["apdus_dmrtd"]


@pytest.mark.parametrize(("trace", "with_84"), [("apdus_dmrtd", False), ("apdus_gmrtd", True)])
def test_appendix_g_terminal_sends_recorded_commands(trace, with_84):
    """With App. G.1's keys injected the terminal sends each recorded command byte for byte."""
    script = Script(G1_TRACE[trace])
    result = pace.establish(script, G1_PASSWORD, oid=AES128, parameter_id=13,
                            rng=replay(h(G1["SK_map_IFD"]), h(G1["SK_DH_IFD"])),
                            send_parameter_id=with_84)
    assert script.sent == 5
    assert (result.session.ks_enc, result.session.ks_mac) == (h(G1["KSenc"]), h(G1["KSmac"]))
    assert result.session.ssc == 0 and result.session.suite is SMCipher.AES128
    assert result.chip_public_key == h(G1["PK_DH_IC"])
    assert result.terminal_public_key == h(G1["PK_DH_IFD"])
    assert result.id_picc == h(G1["PK_DH_IC"])[1:33]
    assert result.password_type is PasswordType.MRZ


@pytest.mark.parametrize("trace", ["apdus_dmrtd", "apdus_gmrtd"])
def test_appendix_g_responder_answers_recorded_responses(trace):
    """With App. G.1's nonce and keys injected the responder answers each command byte for byte."""
    chip = PACEResponder([G1_PARAMS], [G1_PASSWORD],
                         replay(h(G1["nonce_s"]), h(G1["SK_map_IC"]), h(G1["SK_DH_IC"])))
    for command, response in G1_TRACE[trace]:
        assert chip.process(CommandAPDU.decode(h(command))).encode() == h(response)
    assert chip.result is not None
    assert (chip.result.session.ks_enc, chip.result.session.ks_mac) == (
        h(G1["KSenc"]), h(G1["KSmac"]))
    assert chip.result.chip_public_key == h(G1["PK_DH_IC"])
    assert chip.result.session.ssc == 0


# -- BSI worked example, CAN vector, 3DES vector -----------------------------------------------

def test_can_password_vector():
    """CAN 123456 gives the published Kπ (the digits' bytes are K, unhashed)."""
    vector = TRACES["can_k_pi"]
    password = pace.can_password(vector["can"])
    assert password.secret == b"123456" and password.kind is PasswordType.CAN
    assert pace.password_key(password, SMCipher.AES128) == h(vector["k_pi"])
    assert pace.password_key(password, SMCipher.AES128) == h(BSI["K_pi_for_123456"])


def test_bsi_worked_example_values():
    """Nonce, mapping, G', shared secret, session keys and tokens of the BSI example."""
    k_pi = pace.password_key(CAN, SMCipher.AES128)
    nonce = pace.decrypt_nonce(k_pi, h(BSI["nonce_enc"]), SMCipher.AES128)
    assert nonce == h(BSI["nonce"])
    sk_map = int(BSI["map_pcd_priv_key"], 16)
    assert ec.multiply(BP, sk_map, point(BSI["map_picc_pub_key"])) == point(
        BSI["map_shared_secret_h"])
    mapped = pace.mapped_generator(BP, sk_map, point(BSI["map_picc_pub_key"]), nonce)
    assert mapped == point(BSI["map_generator"])
    shared = ec.multiply(BP, int(BSI["picc_priv_key"], 16), point(BSI["pcd_pub_key"]))
    assert shared is not None and ec.x_coordinate(BP, shared) == h(BSI["shared_secret_k"])
    ks_enc, ks_mac = pace.session_keys(BP, int(BSI["pcd_priv_key"], 16),
                                       point(BSI["picc_pub_key"]), SMCipher.AES128)
    assert (ks_enc, ks_mac) == (h(BSI["k_enc"]), h(BSI["k_mac"]))
    assert pace.auth_token(ks_mac, G1_PARAMS, h(BSI["picc_pub_key"])) == h(
        BSI["authentication_token_pcd"])
    assert pace.auth_token(ks_mac, G1_PARAMS, h(BSI["pcd_pub_key"])) == h(
        BSI["authentication_token_picc"])


def test_bsi_worked_example_between_terminal_and_responder():
    """With the BSI keys injected on both ends the wire carries its public keys and tokens."""
    chip = PACEResponder([G1_PARAMS], [CAN], replay(
        h(BSI["nonce"]), key(BSI["map_picc_priv_key"]), key(BSI["picc_priv_key"])))
    wire = Wire(chip)
    result = pace.establish(wire, CAN, oid=AES128, parameter_id=13, rng=replay(
        key(BSI["map_pcd_priv_key"]), key(BSI["pcd_priv_key"])))
    (_, nonce), (map_cmd, _), _, (token_cmd, token_rsp) = wire.log[1:]
    assert tlv.find(tlv.find(nonce.data, 0x7C), 0x80) == h(BSI["nonce_enc"])
    assert tlv.find(tlv.find(map_cmd.data, 0x7C), 0x81) == h(BSI["map_pcd_pub_key"])
    assert tlv.find(tlv.find(token_cmd.data, 0x7C), 0x85) == h(BSI["authentication_token_pcd"])
    assert tlv.find(tlv.find(token_rsp.data, 0x7C), 0x86) == h(BSI["authentication_token_picc"])
    assert result.id_picc == h(BSI["picc_pub_key"])[1:33]
    assert chip.result is not None and chip.result.password_type is PasswordType.CAN


def test_bsi_secure_messaging_iv_and_mac():
    """Under the BSI session keys, SSC 1 encrypts d1 to e1 and SSC 2 MACs 99 02 90 00 to a1."""
    terminal = SecureMessaging(h(BSI["k_enc"]), h(BSI["k_mac"]), 0, SMCipher.AES128)
    chip = SecureMessaging(h(BSI["k_enc"]), h(BSI["k_mac"]), 0, SMCipher.AES128)
    command = CommandAPDU(0x00, 0x22, 0x81, 0xB6, h(BSI["d1"]))  # MSE:Set DST {83 CAR}
    wrapped = terminal.wrap_command(command)
    assert tlv.find(wrapped.data, 0x87) == b"\x01" + h(BSI["e1"])
    assert chip.unwrap_command(wrapped) == command
    response = chip.wrap_response(ResponseAPDU(b"", 0x9000))
    assert response.data == h(BSI["ad1"]) + b"\x8e\x08" + h(BSI["a1"])
    assert terminal.unwrap_response(response).sw == 0x9000


def test_3des_short_document_number_is_padded():
    """LM277954 is padded to LM277954< before hashing; 3DES session keys match the vector."""
    vector = VECTORS["pace_gm_ecdh_3des_real_transcript"]
    dob, doe = vector["mrz"]["dob"], vector["mrz"]["doe"]
    assert bac.mrz_information("LM277954", dob, doe).startswith("LM277954<")
    assert pace.mrz_password("LM277954", dob, doe) == pace.mrz_password("LM277954<", dob, doe)
    ks_enc, ks_mac = pace.keys_from_secret(h(vector["K"]), SMCipher.DES3)
    assert crypto.adjust_parity(ks_enc) == h(vector["KSenc_parity_adjusted"])
    assert crypto.adjust_parity(ks_mac) == h(vector["KSmac_parity_adjusted"])


# -- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("parameter_id", [12, 13], ids=["P-256", "brainpoolP256r1"])
@pytest.mark.parametrize("password", [MRZ, CAN], ids=["MRZ", "CAN"])
@pytest.mark.parametrize("with_84", [True, False], ids=["with-84", "without-84"])
def test_round_trip_sessions_interoperate(parameter_id, password, with_84):
    """Terminal and responder agree on keys and ephemeral keys; their SM sessions talk."""
    result, chip, wire = connect(PACEParameters(AES128, parameter_id), password,
                                 send_parameter_id=with_84, seed=parameter_id)
    assert chip.result is not None
    assert (0x84 in {o.tag for o in tlv.iterate(wire.log[0][0].data)}) is with_84
    assert result.session.ks_enc == chip.result.session.ks_enc
    assert result.chip_public_key == chip.result.chip_public_key
    assert result.terminal_public_key == chip.result.terminal_public_key
    assert chip.result.password_type is password.kind
    assert [c.cla for c, _ in wire.log] == [0x00, 0x10, 0x10, 0x10, 0x00]
    assert_sessions_interoperate(result.session, chip.result.session)


@pytest.mark.parametrize(("oid", "parameter_id", "suite"), [
    (DES3, 13, SMCipher.DES3),
    (eac_oids.ID_PACE_ECDH_GM_AES_CBC_CMAC_256, 15, SMCipher.AES256),
], ids=["3DES-bp256", "AES256-P-384"])
def test_round_trip_other_suites(oid, parameter_id, suite):
    """3DES (retail-MAC tokens, 8-byte SSC) and AES-256 on P-384 also agree and talk."""
    result, chip, _ = connect(PACEParameters(oid, parameter_id), CAN)
    assert chip.result is not None and result.session.suite is suite
    assert len(result.session.ks_enc) == suite.key_length
    assert_sessions_interoperate(result.session, chip.result.session)


def test_responder_picks_the_offer_named_by_84():
    """Offering two curves for one OID, the chip uses the one tag 84 names."""
    offers = [PACEParameters(AES128, 12), PACEParameters(AES128, 13)]
    chip = PACEResponder(offers, [CAN], seeded(3))
    result = pace.establish(chip.process, CAN, oid=AES128, parameter_id=12, rng=seeded(4))
    assert chip.result is not None and chip.result.parameters.parameter_id == 12
    assert len(result.chip_public_key) == 65


# -- failures ----------------------------------------------------------------------------------

@pytest.mark.parametrize("wrong", [
    pace.can_password("654321"), pace.mrz_password("T22000128", "640812", "101031"),
], ids=["CAN", "MRZ"])
def test_wrong_password_fails_at_the_token_step(wrong):
    """A wrong password shows as 6300 to T_IFD; the terminal raises, no session on the chip."""
    with pytest.raises(PACEError) as caught:
        connect(password=wrong)
    assert caught.value.step is PACEStep.TOKENS and caught.value.check is PACECheck.REFUSED
    assert caught.value.sw == 0x6300


def test_tampered_terminal_token_gets_6300():
    """A T_IFD altered on the wire is refused with 6300 and leaves no session."""
    chip = PACEResponder([G1_PARAMS], [CAN], seeded(5))
    tamper = {4: lambda c: CommandAPDU(c.cla, c.ins, c.p1, c.p2, flip_last(c.data), c.ne)}
    with pytest.raises(PACEError, match="6300"):
        pace.establish(Wire(chip, commands=tamper), CAN, oid=AES128, parameter_id=13,
                       rng=seeded(6))
    assert chip.result is None


def test_tampered_chip_token_is_refused():
    """A T_IC altered on the wire raises BAD_TOKEN on the terminal."""
    tamper = {4: lambda r: ResponseAPDU(flip_last(r.data), r.sw)}
    with pytest.raises(PACEError) as caught:
        connect(password=CAN, responses=tamper)
    assert caught.value.check is PACECheck.BAD_TOKEN


def _replace_point(tag: int, edit: Callable[[ec.Point], bytes]):
    def rewrite(response: ResponseAPDU) -> ResponseAPDU:
        honest = ec.decode_point(BP, tlv.find(tlv.find(response.data, 0x7C), tag))
        return ResponseAPDU(tlv.encode(0x7C, tlv.encode(tag, edit(honest))), response.sw)
    return rewrite


@pytest.mark.parametrize(("index", "tag", "edit"), [
    (2, 0x82, lambda p: b"\x04" + p.x.to_bytes(32, "big") + (p.y + 1).to_bytes(32, "big")),
    (2, 0x82, lambda p: b"\x00"),
    (3, 0x84, lambda p: b"\x04" + p.x.to_bytes(32, "big")),
], ids=["off-curve-map", "infinity-map", "truncated-ephemeral"])
def test_hostile_chip_points_are_refused(index, tag, edit):
    """An off-curve, infinite or truncated point from the chip raises BAD_POINT at its step."""
    with pytest.raises(PACEError) as caught:
        connect(responses={index: _replace_point(tag, edit)})
    assert caught.value.check is PACECheck.BAD_POINT
    assert caught.value.step is (PACEStep.MAP if index == 2 else PACEStep.AGREE)


def test_chip_echoing_the_terminal_key_is_refused():
    """A chip answering with the terminal's own ephemeral key raises SAME_KEY."""
    chip = PACEResponder([G1_PARAMS], [CAN], seeded(7))

    def mirror(command: CommandAPDU) -> ResponseAPDU:
        response = chip.process(command)
        if command.data[2:3] == b"\x83":  # GA 3: answer the terminal's key back as 84
            own = tlv.find(tlv.find(command.data, 0x7C), 0x83)
            return ResponseAPDU(tlv.encode(0x7C, tlv.encode(0x84, own)), 0x9000)
        return response

    with pytest.raises(PACEError) as caught:
        pace.establish(mirror, CAN, oid=AES128, parameter_id=13, rng=seeded(8))
    assert caught.value.check is PACECheck.SAME_KEY


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4])
def test_refusal_names_the_step(index):
    """A status word other than 9000 at any command raises REFUSED naming that command."""
    steps = [PACEStep.SET_AT, PACEStep.NONCE, PACEStep.MAP, PACEStep.AGREE, PACEStep.TOKENS]
    with pytest.raises(PACEError) as caught:
        connect(responses={index: lambda r: ResponseAPDU(b"", 0x6A80)})
    assert (caught.value.step, caught.value.check, caught.value.sw) == (
        steps[index], PACECheck.REFUSED, 0x6A80)


def test_terminal_skips_cars_next_to_the_chip_token():
    """An EAC2 chip's last answer 7C {86 T_IC, 87 CAR} is accepted; 86 is what counts."""
    car = tlv.encode(0x87, b"DECVCAAT00001")
    extended = {4: lambda r: ResponseAPDU(tlv.encode(0x7C, tlv.find(r.data, 0x7C) + car), r.sw)}
    result, chip, _ = connect(password=CAN, responses=extended)
    assert chip.result is not None and result.session.ks_mac == chip.result.session.ks_mac


def test_malformed_dynamic_data_from_chip():
    """An answer without the 7C wrapper raises MALFORMED."""
    with pytest.raises(PACEError) as caught:
        connect(responses={1: lambda r: ResponseAPDU(tlv.find(r.data, 0x7C), r.sw)})
    assert caught.value.check is PACECheck.MALFORMED and caught.value.step is PACEStep.NONCE


def test_off_curve_mapping_point_from_terminal_gets_6a80():
    """The responder answers an off-curve PK_map,IFD with 6A80 and aborts the run."""
    chip = PACEResponder([G1_PARAMS], [CAN], seeded(9))
    assert chip.process(pace.mse_set_at(G1_PARAMS, PasswordType.CAN, True)).sw == 0x9000
    assert chip.process(pace.general_authenticate(b"", last=False)).sw == 0x9000
    bad = b"\x04" + bytes(31) + b"\x01" + bytes(31) + b"\x01"
    assert chip.process(pace.general_authenticate(tlv.encode(0x81, bad), last=False)).sw == 0x6A80
    assert chip.process(pace.general_authenticate(b"", last=False)).sw == 0x6985


def test_general_authenticate_out_of_order_gets_6985():
    """GA before MSE, the last step first, or any GA after completion is answered 6985."""
    chip = PACEResponder([G1_PARAMS], [CAN], seeded(10))
    assert chip.process(pace.general_authenticate(b"", last=False)).sw == 0x6985
    assert chip.process(pace.mse_set_at(G1_PARAMS, PasswordType.CAN, False)).sw == 0x9000
    token = tlv.encode(0x85, bytes(8))
    assert chip.process(pace.general_authenticate(token, last=True)).sw == 0x6985
    pace.establish(chip.process, CAN, oid=AES128, parameter_id=13, rng=seeded(11))
    assert chip.result is not None
    assert chip.process(pace.general_authenticate(token, last=True)).sw == 0x6985


def _mse(*objects: tuple[int, bytes], p1p2: tuple[int, int] = (0xC1, 0xA4)) -> CommandAPDU:
    return CommandAPDU(0x00, 0x22, *p1p2, b"".join(tlv.encode(t, v) for t, v in objects))


OID_VALUE = G1_PARAMS.oid_value
DH_GM_OID = h("04007F00070202040102")  # id-PACE-DH-GM-AES-CBC-CMAC-128


@pytest.mark.parametrize(("command", "sw"), [
    (_mse((0x80, DH_GM_OID), (0x83, b"\x02")), 0x6A80),
    (_mse((0x80, OID_VALUE), (0x83, b"\x02"), (0x84, b"\x0c")), 0x6A80),
    (_mse((0x80, OID_VALUE), (0x83, b"\x03")), 0x6A88),
    (_mse((0x80, OID_VALUE), (0x83, b"\x01")), 0x6A88),
    (_mse((0x80, OID_VALUE)), 0x6A88),
    (_mse((0x80, OID_VALUE), (0x83, b"\x02"), (0x99, b"")), 0x6A80),
    (_mse((0x80, OID_VALUE), (0x83, b"\x02"), p1p2=(0x81, 0xA4)), 0x6A86),
    (_mse((0x80, OID_VALUE), (0x83, b"\x02"), (0x7F4C, b"")), 0x9000),
], ids=["unknown-oid", "unknown-parameter-id", "PIN-reference", "MRZ-not-configured",
        "no-reference", "unknown-tag", "wrong-P1P2", "CHAT-ignored"])
def test_mse_set_at_refusals(command, sw):
    """MSE:Set AT: unknown OID or parameter id 6A80, unknown password reference 6A88."""
    chip = PACEResponder([G1_PARAMS], [CAN], seeded(12))
    assert chip.process(command).sw == sw


def test_mse_without_84_is_ambiguous_with_two_curves():
    """Without tag 84 a chip offering one OID on two curves cannot choose: 6A80."""
    chip = PACEResponder([PACEParameters(AES128, 12), G1_PARAMS], [CAN], seeded(13))
    assert chip.process(pace.mse_set_at(G1_PARAMS, PasswordType.CAN, False)).sw == 0x6A80
    assert chip.process(pace.mse_set_at(G1_PARAMS, PasswordType.CAN, True)).sw == 0x9000


def test_unsupported_parameters_and_bad_can_raise():
    """Non-GM-ECDH OIDs, unknown parameter ids and non-digit CANs raise PACEError."""
    with pytest.raises(PACEError, match="unsupported"):
        PACEParameters("0.4.0.127.0.7.2.2.4.1.2", 13)
    with pytest.raises(PACEError, match="unsupported"):
        PACEParameters(AES128, 2)
    with pytest.raises(PACEError) as caught:
        pace.can_password("12 456")
    assert caught.value.check is PACECheck.BAD_PASSWORD


def _advance(chip: PACEResponder, step: int) -> None:
    """Drive a responder through ``step`` GENERAL AUTHENTICATE commands with valid data."""
    g = ec.generator(BP)
    inner = [b"", tlv.encode(0x81, ec.encode_point(BP, ec.multiply(BP, 2, g))),
             tlv.encode(0x83, ec.encode_point(BP, ec.multiply(BP, 3, g)))]
    assert chip.process(pace.mse_set_at(G1_PARAMS, PasswordType.CAN, True)).sw == 0x9000
    for data in inner[:step]:
        assert chip.process(pace.general_authenticate(data, last=False)).sw == 0x9000


@settings(max_examples=60, deadline=None)
@given(step=st.integers(min_value=0, max_value=3), data=st.binary(max_size=80))
def test_responder_answers_any_data_with_a_status_word(step, data):
    """Garbage at any GENERAL AUTHENTICATE gets a status word, never an exception."""
    chip = PACEResponder([G1_PARAMS], [CAN], seeded(14))
    _advance(chip, step)
    command = CommandAPDU(0x10 if step < 3 else 0x00, 0x86, 0, 0, data, ne=256)
    assert chip.process(command).sw in {0x9000, 0x6A80, 0x6300}
    assert chip.result is None
