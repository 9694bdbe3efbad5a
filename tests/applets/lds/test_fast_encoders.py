"""The hand-assembled LDS encoders give exactly the bytes of the general reference encoders."""

from __future__ import annotations

import datetime
import hashlib
import unicodedata
from datetime import date

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd.lds.asn1 import header
from applets.emrtd.lds.checkdigit import check_digit
from applets.emrtd.lds.dg1 import encode_dg1
from applets.emrtd.lds.dg2 import encode_dg2
from applets.emrtd.lds.dg13 import DG13, NO_EXPIRY, encode_dg13
from applets.emrtd.lds.mrz import TD1
from applets.emrtd.lds.sod import SODBuilder, parse_sod
from applets.errors import CardError, MRZError
from applets.iso7816 import tlv
from tests.applets.lds import reference
from tests.support.signers import self_signed_certificate

MRZ_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"


@given(st.text(alphabet=MRZ_ALPHABET + "a-é ", max_size=128))
def test_check_digit_matches_the_reference(field: str) -> None:
    """The sliced sums give the per-character digit, and refuse what the reference refuses."""
    try:
        expected = reference.check_digit(field)
    except CardError:
        with pytest.raises(CardError):
            check_digit(field)
    else:
        assert check_digit(field) == expected


def test_check_digit_refuses_long_fields() -> None:
    """A field longer than 128 characters is refused, as before."""
    with pytest.raises(CardError, match="too long"):
        check_digit("<" * 129)


@pytest.mark.parametrize("length", [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0xFFFFFF])
def test_header_matches_the_tlv_length(length: int) -> None:
    """asn1.header writes the same shortest DER length as tlv.encode_length, at each boundary."""
    assert header(b"\x30", length) == b"\x30" + tlv.encode_length(length)
    assert header(b"\x5f\x2e", length) == b"\x5f\x2e" + tlv.encode_length(length)


@given(st.sampled_from([90, 72, 88]).flatmap(
    lambda n: st.text(alphabet=MRZ_ALPHABET, min_size=n, max_size=n)))
def test_dg1_matches_the_reference(text: str) -> None:
    """DG1 with its precomputed headers equals the nested TLV for TD1, TD2 and TD3."""
    assert encode_dg1(text) == reference.encode_dg1(text)


IMAGES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 70_000]).map(lambda n: bytes(n)),
).map(lambda tail: b"\xff\xd8" + tail)


@given(image=IMAGES, width=st.integers(1, 0xFFFF), height=st.integers(1, 0xFFFF),
       gender=st.sampled_from([None, "M", "F", "unknown"]))
@settings(max_examples=60)
def test_dg2_matches_the_reference(image: bytes, width: int, height: int,
                                   gender: str | None) -> None:
    """DG2 joined once equals the templates encoded level by level, every length form."""
    assert encode_dg2(image, width, height, gender=gender) == reference.encode_dg2(
        image, width, height, gender=gender)


def test_dg2_jpeg2000_matches_the_reference() -> None:
    """The JPEG 2000 image type takes the same path."""
    image = b"\x00\x00\x00\x0cjP  " + bytes(200)
    assert encode_dg2(image, 10, 12, image_type="jpeg2000") == reference.encode_dg2(
        image, 10, 12, image_type="jpeg2000")


# Text of every length class: short, just under and over the one-byte element length (122
# bytes of text), over 127 and 255 bytes; Vietnamese (2–3 UTF-8 bytes a letter) and NFD.
TEXT = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1,
            max_size=140),
    st.text(alphabet="aăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệ ,ĐƯ", min_size=1, max_size=140),
    st.sampled_from(["x" * n for n in (121, 122, 123, 124, 127, 128, 255, 256, 300)]),
    st.sampled_from(["Nguyễn", "Lê Thị Ánh-Tuyết"]).map(lambda t: unicodedata.normalize("NFD", t)),
).filter(bool)
DATES = st.dates(date(1000, 1, 1)).map(lambda d: d.strftime("%d/%m/%Y"))
EXTRA = st.lists(st.tuples(st.integers(0x10, 0x7F), TEXT.map(lambda t: tlv.encode(0x0C,
                                                                                 t.encode()))),
                 max_size=3, unique_by=lambda pair: pair[0]).map(tuple)


@given(st.builds(
    DG13,
    personal_id=st.none() | st.from_regex(r"[0-9]{12}", fullmatch=True),
    full_name=st.none() | TEXT, date_of_birth=st.none() | DATES,
    sex=st.sampled_from([None, "Nam", "Nữ"]), nationality=st.none() | TEXT,
    ethnicity=st.none() | TEXT, religion=st.none() | TEXT, place_of_origin=st.none() | TEXT,
    place_of_residence=st.none() | TEXT, identifying_marks=st.none() | TEXT,
    issue_date=st.none() | DATES, expiry_date=st.none() | DATES | st.just(NO_EXPIRY),
    father_name=st.none() | TEXT, mother_name=st.none() | TEXT, spouse_name=st.none() | TEXT,
    former_id_number=st.none() | TEXT, extra=EXTRA,
))
@settings(max_examples=300)
def test_dg13_matches_the_reference(dg13: DG13) -> None:
    """Hand-assembled DG13 equals the generic SEQUENCE / SET OF encoding, byte for byte."""
    assert encode_dg13(dg13) == reference.encode_dg13(dg13)


MRZ_TEXT = st.text(alphabet=MRZ_ALPHABET, max_size=24)
# Values that break one rule each: wrong length, lower case, non-ASCII, a line break, a bad date.
BAD = {
    "document_code": ["I", "IDX", "id", "I\n"], "issuing_state": ["VN", "vnm", "VNMX", "VÑM"],
    "document_number": ["", "<<<", "0" * 23, "09304706a"], "optional_data_1": ["a", "é"],
    "date_of_birth": ["931305", "930100", "9301", "<<<<<<", "93O105", "930132"],
    "sex": ["X", "", "m", "MF"], "date_of_expiry": ["331232", "33010", "<<<<<", "331300"],
    "nationality": ["VN", "V M", "vnm"], "optional_data_2": ["A" * 12, "ab"],
    "name": ["UNG<<HOANG", "ung".ljust(30, "<"), "A" * 31, "É".ljust(30, "<")],
}


@st.composite
def td1_fields(draw: st.DrawFn) -> dict[str, str]:
    """Valid TD1 fields, often one of them replaced by a value that breaks one rule."""
    number = draw(MRZ_TEXT.filter(lambda t: t.strip("<") != "").map(lambda t: t[:22]))
    room = 15 if len(number) <= 9 else 13 - (len(number) - 9)
    date = st.dates().map(lambda d: d.strftime("%y%m%d"))
    values = {
        "document_code": draw(st.sampled_from(["ID", "I<", "AC"])),
        "issuing_state": draw(st.sampled_from(["VNM", "UTO", "D<<"])),
        "document_number": number,
        # up to one character more than the room the document number leaves (§4.2.4 note j)
        "optional_data_1": draw(st.text(alphabet=MRZ_ALPHABET, max_size=max(room + 1, 0))),
        "date_of_birth": draw(date), "sex": draw(st.sampled_from("MF<")),
        "date_of_expiry": draw(date | st.just("<<<<<<")),
        "nationality": draw(st.sampled_from(["VNM", "UTO", "D<<"])),
        "optional_data_2": draw(st.text(alphabet=MRZ_ALPHABET, max_size=12)),
        "name": draw(st.text(alphabet=MRZ_ALPHABET, min_size=30, max_size=30)),
    }
    broken = draw(st.none() | st.sampled_from(sorted(BAD)))
    if broken is not None:
        values[broken] = draw(st.sampled_from(BAD[broken]))
    return values


def _unchecked(values: dict[str, str]) -> TD1:
    """A TD1 holding ``values`` without running its checks (to compare the two checkers)."""
    td1 = object.__new__(TD1)
    for name, value in values.items():
        object.__setattr__(td1, name, value)
    return td1


@given(td1_fields())
@settings(max_examples=500)
def test_td1_quick_check_agrees_with_the_field_checks(values: dict[str, str]) -> None:
    """The one-pass validity test accepts exactly what the field-by-field checks accept."""
    td1 = _unchecked(values)
    try:
        td1._validate()
    except MRZError:
        valid = False
    else:
        valid = True
    assert td1._plainly_valid() is valid
    if valid:
        assert TD1(**values) == td1
    else:
        with pytest.raises(MRZError):
            TD1(**values)


NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


class _LengthSigner:
    """A signer whose signatures have the length it is told (every DER length form)."""

    signature_algorithm = "ecdsa-with-SHA256"

    def __init__(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        self.certificate_der = self_signed_certificate(key, "fast SOD test", country=None,
                                                       serial=5, not_before=NOW)
        self.length = 70
        self.signed: list[bytes] = []

    def sign(self, data: bytes) -> bytes:
        self.signed.append(data)
        return hashlib.sha512(data).digest() * (self.length // 64) + bytes(self.length % 64)


@pytest.fixture(scope="module")
def length_signer() -> _LengthSigner:
    """One signer (key generation is slow), its signature length set per test."""
    return _LengthSigner()


@pytest.mark.parametrize("length", [70, 71, 72, 127, 128, 256, 512])
@pytest.mark.parametrize("groups", [(1, 2), (1, 2, 13), (1, 2, 13, 14, 15), tuple(range(1, 17))])
def test_sod_matches_asn1crypto(length_signer: _LengthSigner, length: int,
                                groups: tuple[int, ...]) -> None:
    """SOD built from its unsigned half re-encodes identically under asn1crypto, and the
    signer signed exactly the DER signed attributes the file carries."""
    length_signer.length = length
    contents = {n: bytes([n]) * (n * 40) for n in groups}
    builder = SODBuilder(length_signer)
    data = builder.build(contents)
    inner = tlv.decode_single(data, 0x77).value
    assert cms.ContentInfo.load(inner).dump(force=True) == inner
    sod = parse_sod(data)
    assert sod.dg_hashes == {n: hashlib.sha256(v).digest() for n, v in contents.items()}
    assert length_signer.signed[-1] == sod.signed_attrs_der
    assert len(sod.signature) == length
    unsigned = builder.unsigned(contents)
    assert (unsigned.econtent, unsigned.signed_attributes) == (sod.econtent, sod.signed_attrs_der)
