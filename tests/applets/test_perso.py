"""The personalization profile: exact APDUs, the sequencer, and a full perso then BAC read-back."""

from __future__ import annotations

import os

import pytest

from applets.emrtd import aa, bac, perso, reader
from applets.emrtd.errors import AccessDeniedError
from applets.emrtd.sm import SecureTransport
from applets.errors import APDUError, StatusWordError
from applets.iso7816 import tlv
from applets.iso7816.apdu import CommandAPDU
from applets.transport.base import DirectTransport
from applets.virtual.card import Lifecycle, VirtualEMRTD

DOC, DOB, DOE = "L898902C", "690806", "940623"
MRZ_INFO = "L898902C<369080619406236"


def sample_files(dg2_size: int = 15_000) -> dict[int, bytes]:
    """EF.COM, DG1, a large DG2 and DG15-sized filler, each a well-formed outer TLV."""
    com = bytes.fromhex("60145F0104303130365F36063034303030305C026175")
    dg1 = tlv.encode(0x61, tlv.encode(0x5F1F, b"I<UTOD231458907<<<<<<<<<<<<<<<" * 3))
    dg2 = tlv.encode(0x75, bytes(i % 251 for i in range(dg2_size)))
    dg15 = tlv.encode(0x6F, bytes(range(91)))
    return {0x011E: com, 0x0101: dg1, 0x0102: dg2, 0x010F: dg15}


def personalize(card: VirtualEMRTD, files: dict[int, bytes], lock: bool = True,
                max_command_data: int = 65535) -> tuple[perso.PersoClient, bytes]:
    """Run the whole perso profile through a DirectTransport; return client and AA point."""
    client = perso.PersoClient(DirectTransport(card, max_command_data))
    client.select_applet()
    for fid, data in files.items():
        client.put_file(fid, data)
    point = client.generate_aa_key()
    client.put_bac_seed(DOC, DOB, DOE)
    if lock:
        client.lock()
    return client, point


def open_session(card: VirtualEMRTD) -> SecureTransport:
    """Power-cycle, SELECT the applet, run BAC with the sample MRZ; the secure transport."""
    card.power_on()
    plain = DirectTransport(card)
    plain.transmit(perso.select_applet_command()).check("SELECT applet")
    return SecureTransport(plain, bac.perform_bac(plain, MRZ_INFO, os.urandom))


def test_profile_commands_are_byte_exact():
    """SELECT applet, CREATE, SELECT EF, UPDATE, PUT DATA 62 and LOCK encode as the profile says."""
    assert perso.select_applet_command().encode().hex() == "00a4040c07a0000002471001"
    assert perso.create_file_command(0x0101, 0x5F).encode().hex() == "00e00000066304005f0101"
    assert perso.select_file_command(0x011E).encode().hex() == "00a4020c02011e"
    assert perso.update_binary_command(0x1234, b"\xab").encode().hex() == "00d6123401ab"
    assert perso.lock_command().encode().hex() == "00dadead"
    seed = perso.bac_seed_command("AB12", "690806", "940623").encode()
    assert seed.hex() == ("00da00621d621b0409" + b"AB12<<<<<".hex() + "0406" + b"690806".hex()
                          + "0406" + b"940623".hex())


def test_update_binary_is_extended_for_large_chunks_and_bounded_offsets():
    """A chunk above 255 bytes goes extended; offsets beyond 15 bits are refused."""
    assert perso.update_binary_command(0, bytes(300)).needs_extended
    with pytest.raises(APDUError):
        perso.update_binary_command(0x8000, b"x")


@pytest.mark.parametrize("date", ["6908", "69O806"])
def test_bac_seed_needs_yymmdd(date):
    """Dates that are not six digits are refused before anything is sent."""
    with pytest.raises(APDUError):
        perso.bac_seed_command(DOC, date, DOE)


def test_min_apdus_counts_the_profile():
    """Per file CREATE + SELECT + ceil(len/chunk) UPDATEs, plus four fixed commands."""
    assert perso.min_apdus({1: bytes(600), 2: bytes(255), 3: b""}, 255) == 2 + 3 + 2 + 1 + 2 + 4


def test_parse_length_info():
    """7F66 gives both limits; a truncated template raises APDUError."""
    info = tlv.encode(0x7F66, tlv.encode(2, b"\xff\xff") + tlv.encode(2, b"\x01\x00"))
    assert perso.parse_length_info(info) == (65535, 256)
    with pytest.raises(APDUError):
        perso.parse_length_info(tlv.encode(0x7F66, tlv.encode(2, b"\x01")))


@pytest.mark.parametrize("limit", [65535, 255])
def test_full_perso_then_bac_read_back(limit):
    """Perso at the largest chunk uses the minimum APDUs; after lock every file reads back."""
    files = sample_files()
    card = VirtualEMRTD("P1", max_command_data=limit)
    client, point = personalize(card, files, max_command_data=limit)
    assert client.max_chunk() == limit
    assert client.apdu_count == perso.min_apdus(files, limit) + 1  # + GET DATA 7F66
    assert card.memory.lifecycle is Lifecycle.LOCKED and len(point) == 65
    secure = open_session(card)
    for fid, data in files.items():
        assert reader.read_file(secure, fid) == data
        if limit > 255:
            assert reader.read_file(secure, fid, block=20_000, extended=True) == data


def test_chunk_is_limited_by_the_transport():
    """A short-APDU reader path caps the chunk at 255 even when the card takes more."""
    client = perso.PersoClient(DirectTransport(VirtualEMRTD("P2"), 255))
    client.select_applet()
    assert client.max_chunk() == 255


def test_direct_transport_refuses_data_beyond_its_path():
    """A 255-byte path refuses a 300-byte command instead of sending it."""
    with pytest.raises(APDUError):
        transport = DirectTransport(VirtualEMRTD("P6"), 255)
        transport.transmit(perso.update_binary_command(0, bytes(300)))


def test_any_refusal_raises_naming_the_command():
    """After LOCK, CREATE FILE raises StatusWordError 6985 naming the command."""
    card = VirtualEMRTD("P3")
    client, _ = personalize(card, sample_files(100))
    with pytest.raises(StatusWordError) as caught:
        client.create_file(0x0103, 10)
    assert caught.value.sw == 0x6985 and "CREATE FILE 0103" in str(caught.value)


def test_generated_key_is_the_one_that_signs():
    """The point GENERATE returns verifies the chip's INTERNAL AUTHENTICATE after BAC."""
    card = VirtualEMRTD("P4")
    _, point = personalize(card, sample_files(100))
    secure = open_session(card)
    challenge = bytes.fromhex("F173589974BF40C6")
    signature = secure.transmit(CommandAPDU(0, 0x88, 0, 0, challenge, ne=256)).check("AA")
    public = aa.decode_public_key_template(
        tlv.encode(0x7F49, tlv.encode(6, aa.P256_OID) + tlv.encode(0x86, point)))
    aa.verify_aa(public, challenge, signature)


def test_reading_a_locked_card_without_bac_is_access_denied():
    """read_file on a locked chip without BAC raises AccessDeniedError (6982)."""
    card = VirtualEMRTD("P5")
    personalize(card, sample_files(100))
    plain = DirectTransport(card)
    plain.transmit(perso.select_applet_command())
    with pytest.raises(AccessDeniedError):
        reader.read_file(plain, 0x0101)


def test_card_without_expiry_opens_with_filler_dates():
    """A no-expiry card ('<<<<<<' in the MRZ) is seeded and then opens BAC with check digit 0."""
    command = perso.bac_seed_command("093047064", "301054", "<<<<<<")
    assert command.data.endswith(b"\x04\x06<<<<<<")
    card = VirtualEMRTD("P-NOEXP")
    client = perso.PersoClient(DirectTransport(card))
    client.select_applet()
    client.put_file(0x011E, sample_files()[0x011E])
    client.generate_aa_key()
    client.put_bac_seed("093047064", "301054", "<<<<<<")
    client.lock()
    card.power_on()
    plain = DirectTransport(card)
    plain.transmit(perso.select_applet_command()).check("SELECT applet")
    info = bac.mrz_information("093047064", "301054", "<<<<<<")
    assert info.endswith("<<<<<<0")
    secure = SecureTransport(plain, bac.perform_bac(plain, info, os.urandom))
    assert reader.read_file(secure, 0x011E) == sample_files()[0x011E]
