"""EF.COM (ICAO 9303-10 Table 35) and EF.DG1 (Table 39) codecs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.emrtd.lds.com import COM, decode_com, encode_com
from applets.emrtd.lds.dg1 import decode_dg1, encode_dg1
from applets.emrtd.lds.files import DATA_GROUPS
from applets.errors import LDSError

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "lds"
APPENDIX_D_COM = bytes.fromhex((VECTORS / "ef_com_appendix_d.hex").read_text().strip())
TD1_TEXT = ("I<UTOD231458907<<<<<<<<<<<<<<<7408122F1204159UTO<<<<<<<<<<<6"
            "ERIKSSON<<ANNA<MARIA<<<<<<<<<<")


def test_appendix_d_com_decodes_and_reencodes():
    """The App. D EF.COM reads as LDS 0106, Unicode 040000, DG1+DG2 and re-encodes identically."""
    com = decode_com(APPENDIX_D_COM)
    assert com == COM("0106", "040000", (0x61, 0x75))
    assert encode_com(com.tags, com.lds_version, com.unicode_version) == APPENDIX_D_COM


def test_com_default_versions():
    """The default EF.COM declares LDS 1.7 and Unicode 4.0.0."""
    assert decode_com(encode_com([0x61, 0x75, 0x6D, 0x6E, 0x6F])).lds_version == "0107"


@pytest.mark.parametrize("data,reason", [
    (APPENDIX_D_COM[:-1], "runs past"),
    (APPENDIX_D_COM + b"\x00", "trailing"),
    (b"\x61" + APPENDIX_D_COM[1:], "expected tag 60"),
    (bytes.fromhex("600D5F36063034303030305C026175"), "expected tags"),
    (bytes.fromhex("60145F0104303130415F36063034303030305C026175"), "LDS version"),
    (bytes.fromhex("60145F0104303130365F36063034303030305C026177"), "not a data group"),
    (bytes.fromhex("60145F0104303130365F36063034303030305C026161"), "twice"),
    (bytes.fromhex("60155F0104303130365F36063034303030305C0361755F"), "tag list"),
])
def test_com_malformed_rejected(data, reason):
    """Truncation, trailing bytes, wrong tags, bad versions and bad tag lists raise LDSError."""
    with pytest.raises(LDSError, match=reason):
        decode_com(data)


def test_com_encoder_rejects_bad_input():
    """The encoder refuses non-DG tags and malformed version strings."""
    with pytest.raises(LDSError):
        encode_com([0x77])
    with pytest.raises(LDSError):
        encode_com([0x61], lds_version="1.7")


@given(st.lists(st.sampled_from(sorted(info.tag for info in DATA_GROUPS.values() if info.tag)),
                unique=True),
       st.from_regex(r"[0-9]{4}", fullmatch=True), st.from_regex(r"[0-9]{6}", fullmatch=True))
def test_com_round_trip(tags, lds, uni):
    """Any tag list and version pair round-trips."""
    assert decode_com(encode_com(tags, lds, uni)) == COM(lds, uni, tuple(tags))


def test_dg1_td1_layout():
    """A TD1 DG1 is 61 5D 5F1F 5A + 90 characters (95 bytes)."""
    data = encode_dg1(TD1_TEXT)
    assert data[:5] == bytes.fromhex("615D5F1F5A")
    assert len(data) == 95
    assert decode_dg1(data) == TD1_TEXT


@pytest.mark.parametrize("data,reason", [
    (bytes.fromhex("615D5F1F5A") + TD1_TEXT.encode()[:-1], "runs past"),
    (bytes.fromhex("615C5F1F59") + TD1_TEXT.encode()[:-1], "MRZ of 89"),
    (bytes.fromhex("625D5F1F5A") + TD1_TEXT.encode(), "expected tag 61"),
    (bytes.fromhex("615D5F205A") + TD1_TEXT.encode(), "expected tag 5F1F"),
    (bytes.fromhex("615D5F1F5A") + TD1_TEXT.lower().encode(), "characters other"),
    (bytes.fromhex("615E5F1F5A") + TD1_TEXT.encode() + b"<", "trailing"),
])
def test_dg1_malformed_rejected(data, reason):
    """DG1 with wrong tags, lengths, characters or trailing bytes raises LDSError."""
    with pytest.raises(LDSError, match=reason):
        decode_dg1(data)


def test_dg1_encoder_rejects_bad_mrz():
    """The encoder refuses non-ASCII text and lengths that are no MRZ format."""
    with pytest.raises(LDSError):
        encode_dg1(TD1_TEXT[:-1] + "é")
    with pytest.raises(LDSError):
        encode_dg1(TD1_TEXT[:50])


@given(st.sampled_from([90, 72, 88]).flatmap(
    lambda n: st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<", min_size=n, max_size=n)))
def test_dg1_round_trip(text):
    """Any MRZ-character text of a valid length round-trips through DG1."""
    assert decode_dg1(encode_dg1(text)) == text
