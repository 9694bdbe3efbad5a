"""EF.DG14 (SecurityInfos, ActiveAuthenticationInfo) and EF.DG15 (AA public key)."""

from __future__ import annotations

import pytest
from asn1crypto import core, keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd.lds.asn1 import integer, oid, sequence
from applets.emrtd.lds.dg14 import (
    ID_AA,
    active_authentication_info,
    decode_dg14,
    encode_dg14,
    encode_dg14_aa,
)
from applets.emrtd.lds.dg15 import AA_CURVES, decode_dg15, encode_dg15, encode_dg15_ec_point
from applets.errors import LDSError
from applets.iso7816 import tlv

CA_INFO = sequence(oid("0.4.0.127.0.7.2.2.3.2.4"), integer(1))  # id-CA-ECDH-AES-CBC-CMAC-256


def test_dg14_aa_bytes():
    """DG14 for ECDSA AA is 6E / SET / SEQUENCE { 2.23.136.1.1.5, 1, ecdsa-plain-SHA256 }."""
    assert encode_dg14_aa().hex().upper() == (
        "6E1B3119" "3017" "0606678108010105" "020101" "060A04007F00070101040103")


def test_dg14_round_trip_with_other_infos():
    """Other SecurityInfos are listed, not interpreted; the AA algorithm is extracted."""
    data = encode_dg14([active_authentication_info(), CA_INFO])
    dg14 = decode_dg14(data)
    assert dg14.aa_signature_algorithm == "0.4.0.127.0.7.1.1.4.1.3"
    assert sorted(p for p, _ in dg14.infos) == sorted([ID_AA, "0.4.0.127.0.7.2.2.3.2.4"])
    assert encode_dg14([der for _, der in dg14.infos]) == data


def test_dg14_without_aa():
    """A DG14 with only Chip Authentication has no AA algorithm."""
    assert decode_dg14(encode_dg14([CA_INFO])).aa_signature_algorithm is None


@pytest.mark.parametrize("infos,reason", [
    ([active_authentication_info(), active_authentication_info("0.4.0.127.0.7.1.1.4.1.4")],
     "more than one"),
    ([sequence(oid(ID_AA), integer(2), oid("1.2.3"))], "version"),
    ([sequence(oid(ID_AA), integer(1))], "INTEGER version and an OID"),
    ([sequence(integer(1), integer(1))], "SEQUENCE { OID"),
    ([sequence(oid(ID_AA))], "SEQUENCE { OID"),
    ([sequence(oid(ID_AA), tlv.encode(0x02, b"\x00\x01"), oid("1.2.3"))], "minimally"),
])
def test_dg14_malformed_rejected(infos, reason):
    """Duplicate or malformed ActiveAuthenticationInfo and bad SecurityInfos raise LDSError."""
    data = tlv.encode(0x6E, tlv.encode(0x31, b"".join(infos)))
    with pytest.raises(LDSError, match=reason):
        decode_dg14(data)


@pytest.mark.parametrize("data,reason", [
    (tlv.encode(0x6E, b"\x31\x00"), "empty"), (tlv.encode(0x6E, b"\x30\x00"), "expected tag 31"),
    (encode_dg14_aa() + b"\x00", "trailing"), (encode_dg14_aa()[:-1], "runs past"),
])
def test_dg14_structure_errors(data, reason):
    """Empty SET, wrong tags, truncation and trailing bytes are rejected."""
    with pytest.raises(LDSError, match=reason):
        decode_dg14(data)


def _point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962,
                                         serialization.PublicFormat.UncompressedPoint)


@pytest.mark.parametrize("name", sorted(AA_CURVES))
def test_curve_constants_match_cryptography(name):
    """G = 1·G, −G = (n−1)·G and a, b solve the curve through two points of cryptography's curve."""
    params = AA_CURVES[name]
    curve = params.crypto_curve()
    assert _point(ec.derive_private_key(1, curve)) == params.base
    minus_g = ec.derive_private_key(params.n - 1, curve).public_key().public_numbers()
    assert (minus_g.x, minus_g.y) == (params.gx, params.p - params.gy)
    other = ec.derive_private_key(2, curve).public_key().public_numbers()
    p, (x1, y1), (x2, y2) = params.p, (params.gx, params.gy), (other.x, other.y)
    rhs1, rhs2 = (y1 * y1 - x1 ** 3) % p, (y2 * y2 - x2 ** 3) % p
    a = (rhs1 - rhs2) * pow(x1 - x2, -1, p) % p
    assert (a, (rhs1 - a * x1) % p) == (params.a, params.b)
    with pytest.raises(ValueError):
        ec.derive_private_key(params.n, curve)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_explicit_ec_round_trip(curve):
    """An explicit-parameter DG15 decodes to the same key on the named curve."""
    key = ec.generate_private_key(curve)
    public = decode_dg15(encode_dg15_ec_point(_point(key), curve.name))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()


def test_explicit_parameters_parse_as_specified_domain():
    """asn1crypto reads the SPKI as ecPublicKey with specified (explicit) parameters, cofactor 1."""
    key = ec.generate_private_key(ec.SECP256R1())
    spki = keys.PublicKeyInfo.load(tlv.decode_single(encode_dg15_ec_point(_point(key))).value)
    params = spki["algorithm"]["parameters"]
    assert params.name == "specified"
    assert params.chosen["cofactor"].native == 1
    assert params.chosen["base"].native == AA_CURVES["secp256r1"].base


def test_named_curve_and_rsa_accepted():
    """Named-curve EC and RSA SubjectPublicKeyInfos decode through cryptography."""
    for key in (ec.generate_private_key(ec.SECP256R1()).public_key(),
                rsa.generate_private_key(65537, 2048).public_key()):
        spki = key.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo)
        assert decode_dg15(encode_dg15(spki)).public_numbers() == key.public_numbers()


def _explicit_with(name: str, value: int) -> bytes:
    """A DG15 whose explicit parameter ``name`` (p/a/b/n/h) is replaced by ``value``."""
    key = ec.generate_private_key(ec.SECP256R1())
    spki = keys.PublicKeyInfo.load(tlv.decode_single(encode_dg15_ec_point(_point(key))).value)
    domain = spki["algorithm"]["parameters"].chosen
    if name in ("a", "b"):
        domain["curve"][name] = value.to_bytes(32, "big")
    elif name == "p":
        domain["field_id"]["parameters"] = core.Integer(value)
    else:
        domain["order" if name == "n" else "cofactor"] = value
    return encode_dg15(spki.dump(force=True))


@pytest.mark.parametrize("name,value", [("a", 1), ("b", 7), ("n", 5), ("h", 2),
                                        ("p", 2**255 - 19)])
def test_unknown_explicit_curve_rejected(name, value):
    """Changing any one domain parameter makes the curve unknown."""
    with pytest.raises(LDSError, match="match no supported curve"):
        decode_dg15(_explicit_with(name, value))


def test_encoder_rejects_bad_points_and_curves():
    """Off-curve points, compressed points and unknown curve names are refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    compressed = key.public_key().public_bytes(serialization.Encoding.X962,
                                               serialization.PublicFormat.CompressedPoint)
    with pytest.raises(LDSError, match="uncompressed"):
        encode_dg15_ec_point(compressed)
    with pytest.raises(LDSError, match="not a point"):
        encode_dg15_ec_point(b"\x04" + bytes(64))
    with pytest.raises(LDSError, match="curve"):
        encode_dg15_ec_point(_point(key), "brainpoolP256r1")
    with pytest.raises(LDSError):
        encode_dg15(b"\x04\x00")


@pytest.mark.parametrize("data,reason", [
    (tlv.encode(0x6F, sequence(integer(1))), "unreadable"),
    (tlv.encode(0x6E, sequence(integer(1))), "expected tag 6F"),
    (tlv.encode(0x6F, sequence(sequence(oid("1.3.101.112")), tlv.encode(0x03, bytes(33)))),
     "unsupported key algorithm"),
])
def test_dg15_malformed_rejected(data, reason):
    """Garbage, a wrong tag and an unsupported key type raise LDSError."""
    with pytest.raises(LDSError, match=reason):
        decode_dg15(data)


@settings(max_examples=25)
@given(st.integers(1, AA_CURVES["secp256r1"].n - 1))
def test_explicit_round_trip_property(scalar):
    """Any P-256 public key round-trips through an explicit-parameter DG15."""
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    decoded = decode_dg15(encode_dg15_ec_point(_point(key)))
    assert decoded.public_numbers() == key.public_key().public_numbers()
