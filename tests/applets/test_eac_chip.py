"""The virtual chip as an EAC chip: directories, security status, PACE/CA/TA commands, EAC
perso commands and their persistence."""

from __future__ import annotations

import os
from datetime import date

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from applets.emrtd import aa, ca, eac_reader, pace, perso, reader, ta
from applets.emrtd.cvc import ISRights
from applets.emrtd.eac_oids import ID_CA_ECDH_AES_CBC_CMAC_128
from applets.emrtd.eac_reader import PACEAccess
from applets.emrtd.errors import AccessDeniedError, SMError
from applets.emrtd.lds.cvca import decode_cvca
from applets.emrtd.lds.files import DG3, EF_CVCA
from applets.emrtd.perso import AccessProtocols
from applets.emrtd.sm import SecureTransport
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU
from applets.transport.base import DirectTransport
from applets.virtual.access import Session
from applets.virtual.card import ChipMemory, VirtualEMRTD
from applets.virtual.store import ChipStore, dump_memory, load_memory
from common.curves import BRAINPOOL_P256R1
from tests.applets.eac_cards import (
    CAN,
    DAY,
    DG1,
    DG3_SAMPLE,
    PACE_OID,
    EACCard,
    card_access,
    dg14,
    personalize_eac,
    pki,
)


def send(card: VirtualEMRTD, hex_apdu: str) -> int:
    return ResponseAPDU.decode(card.execute(bytes.fromhex(hex_apdu))).sw


@pytest.fixture(scope="module")
def chip() -> EACCard:
    return personalize_eac(VirtualEMRTD("K1"))


def pace_session(chip: EACCard, send_parameter_id: bool = True) -> tuple[SecureTransport,
                                                                          pace.PACEResult]:
    """Power-cycle, PACE with the CAN, SELECT the application under SM."""
    chip.card.power_on()
    plain = DirectTransport(chip.card)
    result = pace.establish(plain.transmit, pace.can_password(CAN), oid=PACE_OID,
                            parameter_id=chip.parameter_id, rng=os.urandom,
                            send_parameter_id=send_parameter_id)
    secure = SecureTransport(plain, result.session)
    secure.transmit(perso.select_applet_command()).check("SELECT application")
    return secure, result


def test_card_access_is_selected_by_fid_in_plain_without_mf_select(chip):
    """011C with P1 02 or P1 00 right after power-on is EF.CardAccess, read in plain."""
    for p1 in ("02", "00"):
        chip.card.power_on()
        assert send(chip.card, f"00A4{p1}0C02011C") == 0x9000
        answer = ResponseAPDU.decode(chip.card.execute(bytes.fromhex("00B0000000")))
        assert answer.data == chip.card_access
    assert send(chip.card, "00A4000C023F00") == 0x9000  # answered, but nothing needs it


def test_mf_holds_only_card_access_and_application_files_need_the_application(chip):
    """Before the application is selected an LDS file is 6985; BAC is not offered in the MF."""
    chip.card.power_on()
    assert send(chip.card, "00A4020C020101") == 0x6985
    assert send(chip.card, "0084000008") == 0x6985


def test_cvca_and_card_access_share_011c_in_their_own_directories(chip):
    """Inside the application 011C is EF.CVCA (after PACE), holding the trust point's CAR."""
    secure, _ = pace_session(chip)
    reader.select_file(secure, EF_CVCA.fid)
    content = reader.read_binary(secure, 0, 36)
    assert decode_cvca(content).cars == (str(pki().cvca.body.chr),)


def test_lds_files_need_a_session_once_locked(chip):
    """Without BAC or PACE the application's files answer 6982 (SELECT and READ by SFI)."""
    chip.card.power_on()
    assert send(chip.card, "00A4040C07A0000002471001") == 0x9000
    assert send(chip.card, "00A4020C020101") == 0x6982
    assert send(chip.card, "00B0810004") == 0x6982


@pytest.mark.parametrize("with_84", [True, False])
def test_pace_opens_aes_sm_from_ssc_0(chip, with_84):
    """PACE (MSE:Set AT with or without tag 84) opens an AES session whose SSC starts at 0."""
    secure, result = pace_session(chip, send_parameter_id=with_84)
    assert result.session.suite.name.startswith("AES") and chip.card.status.session is Session.PACE
    assert reader.read_file(secure, 0x0101) == DG1


def test_dg3_before_ta_is_6982_and_the_session_stays_open(chip):
    """DG3 answers 6982 under SM after PACE and again after CA without TA; the session goes
    on (the refusal is no SM error), and after TA the same session reads DG3."""
    secure, result = pace_session(chip)
    with pytest.raises(AccessDeniedError) as caught:
        reader.read_file(secure, DG3.fid)
    assert caught.value.sw == 0x6982 and chip.card.secure_session
    assert reader.read_file(secure, 0x0101) == DG1  # the same session still reads
    dg14 = reader.read_file(secure, 0x010E)
    secure, comp_pk_pcd = eac_reader.chip_authentication(secure, dg14, os.urandom)
    with pytest.raises(AccessDeniedError):
        reader.read_file(secure, DG3.fid)
    assert chip.card.status.chip_authenticated and chip.card.secure_session
    terminal = pki().terminal()
    eac_reader.terminal_authentication(secure, terminal, result.id_picc, comp_pk_pcd)
    assert chip.card.status.rights == ISRights.DG3 | ISRights.DG4
    assert reader.read_file(secure, DG3.fid) == DG3_SAMPLE


def test_ta_before_ca_is_refused(chip):
    """EAC v1: EXTERNAL AUTHENTICATE without Chip Authentication first is not 9000."""
    secure, result = pace_session(chip)
    terminal = pki().terminal()
    with pytest.raises(ta.TAError) as caught:
        ta.perform_ta(secure, terminal.chain, terminal.signer, result.id_picc, bytes(32))
    assert caught.value.step == "EXTERNAL AUTHENTICATE" and caught.value.sw == 0x6985


def test_ca_answer_under_old_keys_then_new_keys_from_ssc_0(chip):
    """CA's answer verifies under the PACE keys; the next command only under the CA keys."""
    secure, _ = pace_session(chip)
    dg14 = reader.read_file(secure, 0x010E)
    renewed, _ = eac_reader.chip_authentication(secure, dg14, os.urandom)
    assert renewed.sm.ssc == 2  # one command and its answer after SSC 0
    with pytest.raises(SMError):  # the PACE keys are no longer accepted
        secure.transmit(perso.select_file_command(0x0101))
    assert not chip.card.secure_session and chip.card.status.session is Session.NONE


def test_ca_with_a_key_other_than_the_chips_fails(chip):
    """A terminal that agrees with a different chip key cannot talk under the new keys."""
    secure, _ = pace_session(chip)
    key = ec.generate_private_key(BRAINPOOL_P256R1.crypto_curve()).public_key()
    fake = dg14(BRAINPOOL_P256R1, ca.encoded_point(key), 13)
    with pytest.raises(eac_reader.CAFailedError):
        eac_reader.chip_authentication(secure, fake, os.urandom)


def test_tampered_mac_after_pace_ends_the_session(chip):
    """A flipped MAC byte under PACE keys: 6988 in plain, session and rights gone."""
    secure, _ = pace_session(chip)
    raw = secure.sm.wrap_command(perso.select_file_command(0x0101)).encode()
    answer = chip.card.execute(raw[:-3] + bytes([raw[-3] ^ 0x01]) + raw[-2:])
    assert answer == b"\x69\x88" and not chip.card.secure_session
    assert chip.card.status.session is Session.NONE
    with pytest.raises(SMError):
        secure.transmit(perso.select_file_command(0x0101))


def test_active_authentication_after_pace(chip):
    """INTERNAL AUTHENTICATE still signs under a PACE session (DG15's key)."""
    secure, _ = pace_session(chip)
    signature = secure.transmit(CommandAPDU(0, 0x88, 0, 0, bytes(8), ne=256)).check("AA")
    assert len(signature) == 64 and aa.CHALLENGE_LENGTH == 8


@pytest.mark.parametrize("apdu", [
    perso.pace_mrz_command("C03005988", "900101", "300101"), perso.can_command("123456"),
    perso.access_protocols_command(AccessProtocols.PACE_BAC), perso.chip_date_command(DAY),
    perso.trust_point_command(pki().cvca), perso.generate_ca_key_command(pki().curve),
    perso.select_master_file_command(),
])
def test_eac_perso_commands_are_refused_after_lock(chip, apdu):
    """Once locked, every EAC perso command is 6985 (SELECT MF excepted, then CREATE is)."""
    chip.card.power_on()
    if apdu.ins == 0xA4:
        assert chip.card.execute(apdu.encode())[-2:] == b"\x90\x00"
        apdu = perso.create_file_command(0x011C, 10)
    else:
        send(chip.card, "00A4040C07A0000002471001")
    assert ResponseAPDU.decode(chip.card.execute(apdu.encode())).sw == 0x6985


@pytest.mark.parametrize(("tag", "value"), [
    (perso.TAG_CAN, b"12a456"), (perso.TAG_CAN, b"123"), (perso.TAG_ACCESS, b"\x04"),
    (perso.TAG_PACE_MRZ, bytes(19)), (perso.TAG_CHIP_DATE, bytes([1, 3, 1, 3, 3, 2])),
    (perso.TAG_TRUST_POINT, b"\x7f\x21\x00"),
])
def test_malformed_perso_values_are_6a80(tag, value):
    """A CAN with a letter, an unknown access code, a short K, a bad date or certificate."""
    card = VirtualEMRTD("M1")
    send(card, "00A4040C07A0000002471001")
    command = perso.put_data_command(tag, value)
    assert ResponseAPDU.decode(card.execute(command.encode())).sw == 0x6A80


def test_dv_certificate_is_no_trust_point():
    """PUT DATA 67 refuses a certificate that is not a self-signed CVCA certificate."""
    card = VirtualEMRTD("M2")
    send(card, "00A4040C07A0000002471001")
    command = perso.put_data_command(perso.TAG_TRUST_POINT, pki().dv.encode())
    assert ResponseAPDU.decode(card.execute(command.encode())).sw == 0x6A80


def test_pace_chip_cannot_lock_without_card_access_or_password():
    """A pace chip without EF.CardAccess or a PACE password refuses LOCK (6985)."""
    card = VirtualEMRTD("M3")
    client = perso.PersoClient(DirectTransport(card))
    client.select_applet()
    client.set_access_protocols(AccessProtocols.PACE)
    assert send(card, "00DADEAD") == 0x6985
    client.put_can(CAN)
    assert send(card, "00DADEAD") == 0x6985
    client.put_card_access(card_access(13))
    assert send(card, "00DADEAD") == 0x9000


def test_second_ca_key_is_refused():
    """The CA key is generated once; a second GENERATE for it answers 6985."""
    card = VirtualEMRTD("M4")
    send(card, "00A4040C07A0000002471001")
    command = perso.generate_ca_key_command(pki().curve)
    assert ResponseAPDU.decode(card.execute(command.encode())).sw == 0x9000
    assert ResponseAPDU.decode(card.execute(command.encode())).sw == 0x6985
    assert card.memory.ca_key is not None


def test_eac_state_survives_store_save_and_load(tmp_path):
    """A chip personalized through the store reopens with its EAC state and reads by PACE,
    CA and TA; the snapshot round-trips exactly."""
    store = ChipStore(tmp_path)
    serial = store.create_blanks(1, "EAC")[0]
    personalize_eac(store.open(serial), 12)
    again = store.open(serial)
    memory = again.memory
    assert memory.pace_can == CAN and memory.ca_key is not None and memory.chip_date == DAY
    assert memory.trust_point is not None and memory.access is AccessProtocols.PACE
    assert load_memory(serial, dump_memory(serial, memory)) == memory
    result = eac_reader.read_eac(DirectTransport(again), PACEAccess.can(CAN),
                                 terminal=pki().terminal())
    assert result.protocols == ("PACE", "CA", "TA") and result.files[DG3.name] == DG3_SAMPLE


def test_chip_date_moves_forward_and_is_stored(tmp_path):
    """TR-03110-3 §2.5: a DV certificate effective after the chip's date advances it, kept
    across power cycles and the store."""
    store = ChipStore(tmp_path)
    serial = store.create_blanks(1, "EAC")[0]
    personalize_eac(store.open(serial), chip_date=date(2029, 12, 1))
    eac_reader.read_eac(DirectTransport(store.open(serial)), PACEAccess.can(CAN),
                        terminal=pki().terminal())
    assert store.open(serial).memory.chip_date == date(2030, 1, 1)


def test_bac_only_memory_snapshot_has_no_eac_keys():
    """A BAC-only chip's snapshot carries none of the new keys (old files load unchanged)."""
    memory = ChipMemory(bac_keys=(bytes(16), bytes(16)), locked=True)
    assert b"access" not in dump_memory("S1", memory)
    legacy = b'{"format":1,"serial":"S1","locked":true,"bac_keys":null,"aa_scalar":null,"files":{}}'
    assert load_memory("S1", legacy).access is AccessProtocols.BAC


def test_chaining_is_refused_for_other_commands(chip):
    """CLA 10 on a command that does not chain (SELECT) answers 6884."""
    chip.card.power_on()
    assert send(chip.card, "10A4020C02011C") == 0x6884


def test_ca_answer_is_an_empty_7c(chip):
    """CA's GENERAL AUTHENTICATE answer is 7C 00 (ICAO 9303-11 §6.2.3)."""
    secure, _ = pace_session(chip)
    key = ec.generate_private_key(BRAINPOOL_P256R1.crypto_curve())
    secure.transmit(ca.mse_set_at(ID_CA_ECDH_AES_CBC_CMAC_128)).check("MSE")
    answer = secure.transmit(ca.general_authenticate(ca.encoded_point(key.public_key())))
    assert answer.sw == 0x9000 and answer.data == tlv.encode(0x7C, b"")
