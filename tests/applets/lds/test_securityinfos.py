"""SecurityInfos of EAC (PACE, CA, CA public key, TA, AA), EF.CardAccess and DG14 through them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd import curves
from applets.emrtd.curves import CURVES
from applets.emrtd.eac_oids import (
    ID_CA_ECDH_AES_CBC_CMAC_256,
    ID_PACE_ECDH_GM_AES_CBC_CMAC_128,
    ID_PK_ECDH,
    ID_TA,
)
from applets.emrtd.lds.asn1 import integer, oid, sequence
from applets.emrtd.lds.dg14 import decode_dg14, encode_dg14
from applets.emrtd.lds.ecpublickey import encode_spki, explicit_parameters
from applets.emrtd.lds.securityinfos import (
    ActiveAuthenticationInfo,
    ChipAuthenticationInfo,
    ChipAuthenticationPublicKeyInfo,
    PACEInfo,
    SecurityInfo,
    TerminalAuthenticationInfo,
    UnknownSecurityInfo,
    decode_card_access,
    decode_security_infos,
    encode_card_access,
    encode_security_infos,
)
from applets.errors import LDSError
from applets.iso7816 import tlv
from common.curves import BRAINPOOL_P256R1, Curve

EAC = Path(__file__).parents[2] / "vectors" / "eac"
VECTORS = json.loads((EAC / "vectors.json").read_text())
TRACES = json.loads((EAC / "traces.json").read_text())
APP_G = bytes.fromhex(VECTORS["icao_9303_11_appG1_pace_ecdh_gm_aes128_bp256"]["ef_cardaccess"])
BSI = bytes.fromhex(VECTORS["bsi_eac_worked_example_v1_01_ecdh"]["ef_cardaccess"])
DG14_AT, DG14_DE = (bytes.fromhex(trace["dg14"]) for trace in TRACES["ca_aes_traces"][:2])


def _point(curve: Curve, scalar: int) -> bytes:
    key = ec.derive_private_key(scalar, curve.crypto_curve()).public_key()
    return key.public_bytes(serialization.Encoding.X962,
                            serialization.PublicFormat.UncompressedPoint)


def test_appendix_g_card_access_byte_exact():
    """ICAO 9303-11 App. G.1's EF.CardAccess is one PACEInfo (ECDH-GM-AES-128, brainpoolP256r1)."""
    card_access = decode_card_access(APP_G)
    assert card_access.infos == (PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128, 13),)
    assert curves.by_pace_parameter_id(card_access.pace_infos[0].parameter_id or 0).name == (
        "brainpoolP256r1")
    assert encode_card_access(card_access.infos) == APP_G


def test_bsi_worked_example_card_access_byte_exact():
    """The BSI worked example's EF.CardAccess: TA v2, CA v2 key 1, PACE, three opaque infos."""
    card_access = decode_card_access(BSI)
    known = [i for i in card_access.infos if not isinstance(i, UnknownSecurityInfo)]
    assert known == [TerminalAuthenticationInfo(2), ChipAuthenticationInfo(key_id=1, version=2),
                     PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128, 13)]
    opaque = [i.protocol for i in card_access.infos if isinstance(i, UnknownSecurityInfo)]
    assert opaque == ["0.4.0.127.0.7.2.2.3.2", "0.4.0.127.0.7.2.2.6", "0.4.0.127.0.7.2.2.8"]
    assert encode_card_access(card_access.infos) == BSI


def test_real_dg14_decodes_to_brainpool_ca_key():
    """A passport's DG14: CA v1 AES-128, TA v1, PACE and the CA key with explicit bp256 params."""
    dg14 = decode_dg14(DG14_AT)
    (key,) = dg14.ca_public_keys
    assert key.curve is BRAINPOOL_P256R1 and key.key_id is None and not key.named_curve
    assert key.public_key.hex().upper() == (
        VECTORS["ca_v1_aes_real_transcript"]["chip_PK_from_DG14"])
    assert dg14.ca_infos == (ChipAuthenticationInfo(),)
    assert dg14.ta_info == TerminalAuthenticationInfo(1)
    assert dg14.aa_signature_algorithm is None
    assert encode_dg14(dg14.security_infos) == DG14_AT


def test_second_real_dg14_with_key_id_and_cam():
    """The second DG14 carries keyId 195 and a PACE-CAM PACEInfo; it re-encodes byte for byte."""
    dg14 = decode_dg14(DG14_DE)
    assert [k.key_id for k in dg14.ca_public_keys] == [195]
    assert [i.key_id for i in dg14.ca_infos] == [195]
    assert {i.protocol for i in dg14.pace_infos} == {ID_PACE_ECDH_GM_AES_CBC_CMAC_128,
                                                      "0.4.0.127.0.7.2.2.4.6.2"}
    assert dg14.infos[0][0] == ID_TA
    assert encode_dg14(dg14.security_infos) == DG14_DE


def test_eac_dg14_built_from_models_round_trips():
    """A DG14 of CA info, CA key, PACEInfo, TA and AA decodes to the same models."""
    infos: list[SecurityInfo] = [
        ChipAuthenticationInfo(key_id=1), PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128, 13),
        ChipAuthenticationPublicKeyInfo(BRAINPOOL_P256R1, _point(BRAINPOOL_P256R1, 7), 1),
        TerminalAuthenticationInfo(), ActiveAuthenticationInfo()]
    data = encode_dg14(infos)
    dg14 = decode_dg14(data)
    assert sorted(map(repr, dg14.security_infos)) == sorted(map(repr, infos))
    assert dg14.aa_signature_algorithm == ActiveAuthenticationInfo().signature_algorithm
    assert [p for p, _ in dg14.infos].count(ID_PK_ECDH) == 1
    assert encode_dg14([der for _, der in dg14.infos]) == data


@pytest.mark.parametrize("curve", CURVES, ids=[c.label for c in CURVES])
def test_explicit_parameters_name_the_curve(curve):
    """A CA key with explicit domain parameters decodes back to its named Curve."""
    info = ChipAuthenticationPublicKeyInfo(curve, _point(curve, 12345))
    (decoded,) = decode_security_infos(encode_security_infos([info]), "EF.DG14")
    assert decoded == info and isinstance(decoded, ChipAuthenticationPublicKeyInfo)
    assert decoded.curve is curve


def test_named_curve_key_accepted():
    """A CA key naming its curve by OID decodes too, flagged as named."""
    info = ChipAuthenticationPublicKeyInfo(BRAINPOOL_P256R1, _point(BRAINPOOL_P256R1, 3),
                                           named_curve=True)
    encoded = encode_security_infos([info])
    assert oid(BRAINPOOL_P256R1.oid) in encoded
    assert decode_security_infos(encoded, "EF.DG14") == (info,)


def _pk_info(curve: Curve = BRAINPOOL_P256R1, *, parameters: bytes | None = None,
             point: bytes | None = None) -> bytes:
    """A ChipAuthenticationPublicKeyInfo with the given parameters / point, not validated."""
    algorithm = sequence(oid("1.2.840.10045.2.1"), parameters or explicit_parameters(curve))
    bits = tlv.encode(0x03, b"\x00" + (point or _point(curve, 5)))
    return sequence(oid(ID_PK_ECDH), sequence(algorithm, bits))


def _explicit(p: Curve = BRAINPOOL_P256R1, **changes: int) -> bytes:
    """Explicit parameters of ``p`` with some of p, a, b, n, h replaced."""
    values = {"p": p.p, "a": p.a, "b": p.b, "n": p.n, "h": p.h} | changes
    size = p.size
    return sequence(integer(1), sequence(oid("1.2.840.10045.1.1"), integer(values["p"])),
                    sequence(tlv.encode(4, values["a"].to_bytes(size, "big")),
                             tlv.encode(4, values["b"].to_bytes(size, "big"))),
                    tlv.encode(4, _point(p, 1)), integer(values["n"]), integer(values["h"]))


NOT_ON_CURVE = b"\x04" + (1).to_bytes(32, "big") + (1).to_bytes(32, "big")
INFO_ERRORS = [
    (_pk_info(parameters=_explicit(b=7)), "match no EAC curve"),
    (_pk_info(parameters=_explicit(n=5)), "match no EAC curve"),
    (_pk_info(parameters=_explicit(h=2)), "cofactor 2"),
    (_pk_info(parameters=oid("1.3.132.0.10")), "curve EAC does not use"),
    (_pk_info(parameters=sequence(integer(1), sequence(oid("1.2.840.10045.1.2"), integer(3)),
                                  sequence(), tlv.encode(4, b"\x04"), integer(3))),
     "curve must be|prime-field"),
    (_pk_info(point=NOT_ON_CURVE), "not on brainpoolP256r1"),
    (_pk_info(point=b"\x02" + bytes(32)), "not an uncompressed"),
    (sequence(oid(ID_PK_ECDH), integer(1)), "expected tag 30"),
    (sequence(oid(ID_PACE_ECDH_GM_AES_CBC_CMAC_128), integer(1), integer(13)), "version 1"),
    (sequence(oid(ID_PACE_ECDH_GM_AES_CBC_CMAC_128), integer(2), integer(13), integer(1)),
     "optional INTEGER"),
    (sequence(oid(ID_CA_ECDH_AES_CBC_CMAC_256), integer(4)), "version 4"),
    (sequence(oid(ID_CA_ECDH_AES_CBC_CMAC_256), integer(1), integer(-1)), "negative"),
    (sequence(oid(ID_TA), integer(1), integer(1)), "optional FileID"),
    (sequence(oid(ID_TA), integer(3)), "version 3"),
    (sequence(oid(ID_TA)), "SEQUENCE { OID"),
]


@pytest.mark.parametrize("info,reason", INFO_ERRORS, ids=[r for _, r in INFO_ERRORS])
def test_malformed_security_infos_rejected(info, reason):
    """Wrong versions, extra fields, unknown curves and bad points raise LDSError naming it."""
    with pytest.raises(LDSError, match=reason) as caught:
        decode_security_infos(tlv.encode(0x31, info), "EF.DG14")
    assert caught.value.file == "EF.DG14"


@pytest.mark.parametrize("data,reason", [
    (b"\x31\x00", "empty"), (APP_G[:-1], "runs past"), (APP_G + b"\x00", "trailing"),
    (b"\x30" + APP_G[1:], "expected tag 31"),
    (tlv.encode(0x31, sequence(oid(ID_TA), integer(1))), "no PACEInfo"),
])
def test_card_access_structure_errors(data, reason):
    """EF.CardAccess must be a non-empty SET holding a PACEInfo, with nothing trailing."""
    with pytest.raises(LDSError, match=reason) as caught:
        decode_card_access(data)
    assert caught.value.file == "EF.CardAccess"


@pytest.mark.parametrize("infos,reason", [
    ([TerminalAuthenticationInfo()], "must hold a PACEInfo"),
    ([PACEInfo(ID_CA_ECDH_AES_CBC_CMAC_256)], "not a PACE protocol"),
    ([PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128, version=1)], "version must be 2"),
    ([PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128, -1)], "identifier -1 is negative"),
    ([PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128),
      ChipAuthenticationInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128)], "not a CA protocol"),
    ([PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128), TerminalAuthenticationInfo(5)], "TA version"),
    ([PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128),
      ChipAuthenticationPublicKeyInfo(BRAINPOOL_P256R1, NOT_ON_CURVE)], "not on"),
    ([PACEInfo(ID_PACE_ECDH_GM_AES_CBC_CMAC_128), UnknownSecurityInfo("1.2", b"\x02\x01\x00")],
     "expected tag 30"),
])
def test_encoder_rejects_bad_models(infos, reason):
    """Encoding refuses a CardAccess without PACEInfo, wrong protocols, versions and points."""
    with pytest.raises(LDSError, match=reason):
        encode_card_access(infos)


def test_unknown_info_kept_opaque():
    """An unknown protocol keeps its OID and exact DER, and re-encodes unchanged."""
    other = sequence(oid("1.2.3.4"), tlv.encode(0x16, b"anything"))
    (info,) = decode_security_infos(tlv.encode(0x31, other), "EF.DG14")
    assert info == UnknownSecurityInfo("1.2.3.4", other)
    assert encode_security_infos([info]) == tlv.encode(0x31, other)


def test_ta_file_id_kept():
    """TerminalAuthenticationInfo's optional efCVCA FileID (TR-03110 v1.11) survives decoding."""
    file_id = sequence(tlv.encode(4, b"\x01\x1c"), tlv.encode(4, b"\x1c"))
    info = TerminalAuthenticationInfo(1, file_id)
    assert decode_security_infos(encode_security_infos([info]), "EF.DG14") == (info,)


def test_spki_encoder_refuses_compressed_point():
    """encode_spki wants the uncompressed point of the named curve."""
    with pytest.raises(LDSError, match="uncompressed"):
        encode_spki(BRAINPOOL_P256R1, _point(BRAINPOOL_P256R1, 9)[:33])


_PACE = st.builds(PACEInfo, protocol=st.sampled_from(sorted(
    f"0.4.0.127.0.7.2.2.4.{m}.{c}" for m in (1, 2, 3, 4, 6) for c in (1, 2, 3, 4))),
    parameter_id=st.none() | st.integers(0, 2**40))
_CA = st.builds(ChipAuthenticationInfo, protocol=st.sampled_from(sorted(
    f"0.4.0.127.0.7.2.2.3.{k}.{c}" for k in (1, 2) for c in (1, 2, 3, 4))),
    key_id=st.none() | st.integers(0, 2**64), version=st.sampled_from([1, 2, 3]))
_TA = st.builds(TerminalAuthenticationInfo, version=st.sampled_from([1, 2]))
_AA = st.builds(ActiveAuthenticationInfo, signature_algorithm=st.sampled_from(
    ["0.4.0.127.0.7.1.1.4.1.3", "0.4.0.127.0.7.1.1.4.1.4", "1.2.840.10045.4.3.2"]))
_PK = st.builds(lambda curve, scalar, key_id: ChipAuthenticationPublicKeyInfo(
    curve, _point(curve, scalar), key_id), st.sampled_from(CURVES),
    st.integers(1, 2**160), st.none() | st.integers(0, 255))


@settings(max_examples=60)
@given(st.lists(_PACE, min_size=1, max_size=2), st.lists(_CA | _TA | _AA | _PK, max_size=4))
def test_card_access_round_trip_property(pace, others):
    """Any set of PACE, CA, TA, AA and CA-key infos round-trips through EF.CardAccess."""
    data = encode_card_access(pace + others)
    decoded = decode_card_access(data)
    assert sorted(map(repr, decoded.infos)) == sorted(map(repr, pace + others))
    assert encode_card_access(decoded.infos) == data
