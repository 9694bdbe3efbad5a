"""EF.CVCA (the trusted CVCA references) and the file ids of the EAC files."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.emrtd.lds import files
from applets.emrtd.lds.cvca import CVCA, decode_cvca, encode_cvca
from applets.errors import LDSError
from applets.iso7816 import tlv

CERTS = Path(__file__).parents[2] / "vectors" / "eac" / "bsi-worked-example-certs"


def _car_of(certificate: bytes) -> str:
    """The CAR (tag 42) inside the body 7F4E of a CV certificate 7F21."""
    body = tlv.find(tlv.decode_single(certificate, 0x7F21).value, 0x7F4E)
    return tlv.find(body, 0x42).decode("ascii")


BSI_CAR = _car_of((CERTS / "DECVCAAT00001").read_bytes())


def test_one_car_from_the_bsi_cvca():
    """One CAR (the BSI worked example's CVCA) is 42 0D 'DECVCAAT00001' padded with 00 to 36."""
    assert BSI_CAR == "DECVCAAT00001"
    data = encode_cvca([BSI_CAR])
    assert data == b"\x42\x0dDECVCAAT00001" + bytes(21)
    assert decode_cvca(data) == CVCA((BSI_CAR,))


def test_two_cars_keep_their_order():
    """Two CARs, the most recent first, fill the file in that order."""
    data = encode_cvca(["DECVCAAT00002", BSI_CAR])
    assert data == b"\x42\x0dDECVCAAT00002\x42\x0dDECVCAAT00001" + bytes(6)
    assert decode_cvca(data).cars == ("DECVCAAT00002", BSI_CAR)


def test_two_longest_cars_fill_36_bytes():
    """Two 16-character CARs take exactly the 36 bytes, without padding."""
    data = encode_cvca(["A" * 16, "B" * 16])
    assert len(data) == 36 and decode_cvca(data).cars == ("A" * 16, "B" * 16)


@pytest.mark.parametrize("cars,reason", [
    ([], "1 or 2 CARs"), (["DE1", "DE2", "DE3"], "1 or 2 CARs"),
    (["D" * 17], "1 to 16 printable"), ([""], "1 to 16 printable"),
    (["DE CVCA"], "1 to 16 printable"), (["DÉCVCA"], "1 to 16 printable"),
])
def test_encoder_refuses_bad_cars(cars, reason):
    """Over-long, empty, spaced or non-ASCII CARs and wrong counts are refused."""
    with pytest.raises(LDSError, match=reason):
        encode_cvca(cars)


GOOD = encode_cvca([BSI_CAR])


@pytest.mark.parametrize("data,reason", [
    (GOOD[:35], "35 bytes, not 36"), (GOOD + b"\x00", "37 bytes"),
    (bytes(36), "does not start with a CAR"),
    (GOOD[:20] + b"\x01" + GOOD[21:], "other than 00 padding at offset 15"),
    (b"\x42\x11" + b"D" * 17 + bytes(17), "length 17"),
    (b"\x42\x0d" + b"D" * 13 + b"\x42\x30" + bytes(19), "length 48"),
    (b"\x42\x0a" + b"D" * 10 + b"\x42\x0a" + b"E" * 10 + b"\x42\x0a" + b"F" * 10, "more than 2"),
    (bytes(35) + b"\x42", "does not start with a CAR"),
    (b"\x42\x04DE\xff1" + bytes(30), "not printable"),
    (b"\x42\x04DE 1" + bytes(30), "printable"),
    (b"\x42" + bytes(35), "1 to 16 printable"),
])
def test_decoder_rejects_malformed_files(data, reason):
    """Wrong size, missing or over-long CARs, a third CAR and non-zero padding raise LDSError."""
    with pytest.raises(LDSError, match=reason) as caught:
        decode_cvca(data)
    assert caught.value.file == "EF.CVCA"


_CARS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16)


@given(st.lists(_CARS, min_size=1, max_size=2))
def test_round_trip_property(cars):
    """Any one or two CARs round-trip through EF.CVCA, always 36 bytes."""
    data = encode_cvca(cars)
    assert len(data) == 36 and decode_cvca(data).cars == tuple(cars)


def test_eac_file_ids():
    """DG3 is 0103/63; EF.CardAccess (MF) and EF.CVCA (application) share FID 011C and SFI 1C."""
    assert (files.DG3.fid_bytes, files.DG3.tag, files.DG3.sfi) == (b"\x01\x03", 0x63, 3)
    assert files.by_name("EF.CardAccess") is files.EF_CARD_ACCESS
    assert files.by_name("EF.CVCA") is files.EF_CVCA
    assert (files.EF_CARD_ACCESS.fid, files.EF_CARD_ACCESS.sfi) == (0x011C, 0x1C)
    assert (files.EF_CVCA.fid, files.EF_CVCA.sfi) == (0x011C, 0x1C)
    assert files.EF_CARD_ACCESS.master_file and not files.EF_CVCA.master_file
    assert 0x011C not in files.BY_FID and files.BY_FID[0x0103] is files.DG3
