"""EF.SOD: the fast builder, its DER against asn1crypto, parsing, and signature checks."""

from __future__ import annotations

import datetime
import hashlib
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from asn1crypto import algos, cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd.lds.asn1 import integer, oid, sequence
from applets.emrtd.lds.dg1 import encode_dg1
from applets.emrtd.lds.dg2 import encode_dg2
from applets.emrtd.lds.dg13 import DG13, encode_dg13
from applets.emrtd.lds.dg14 import encode_dg14_aa
from applets.emrtd.lds.sod import SODBuilder, parse_sod
from applets.errors import LDSError
from applets.iso7816 import tlv
from tests.support.signers import SoftwareSigner, self_signed_certificate

NOW = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)


def _certificate(key, serial: int = 0x1234567890ABCDEF) -> bytes:
    return self_signed_certificate(key, "cardline test DS", serial=serial, not_before=NOW,
                                   days=3650)


def _ec_signer() -> SoftwareSigner:
    """An in-process ECDSA P-256 Document Signer with a self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    return SoftwareSigner(key, _certificate(key))


PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


class PSSSigner:
    """An in-process RSASSA-PSS Document Signer."""

    signature_algorithm = "rsassa-pss-sha256"

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(65537, 2048)
        self.certificate_der = _certificate(self.key, serial=7)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, PSS, hashes.SHA256())


@pytest.fixture(scope="module")
def signer() -> SoftwareSigner:
    return _ec_signer()


JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 60
DGS = {
    1: encode_dg1("I<UTOD231458907<<<<<<<<<<<<<<<7408122F1204159UTO<<<<<<<<<<<6"
                  "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"),
    2: encode_dg2(JPEG, 480, 640),
    13: encode_dg13(DG13(personal_id="001093047064", full_name="Ứng Hoàng Hiệp")),
    14: encode_dg14_aa(),
    15: tlv.encode(0x6F, sequence(sequence(oid("1.2.840.10045.2.1")), tlv.encode(3, b"\0"))),
}


def test_parse_exposes_every_part(signer):
    """The parsed SOD shows the hashes, attributes, sid and certificate the builder put in."""
    sod = parse_sod(SODBuilder(signer).build(DGS))
    assert sod.dg_hashes == {n: hashlib.sha256(v).digest() for n, v in DGS.items()}
    assert (sod.lds_version, sod.hash_algorithm, sod.digest_algorithm) == (0, "sha256", "sha256")
    assert sod.econtent_type == sod.content_type_attr == "2.23.136.1.1.1"
    assert sod.message_digest == hashlib.sha256(sod.econtent).digest()
    assert sod.signature_algorithm == "ecdsa-with-SHA256"
    assert sod.certificates == (signer.certificate_der,)
    assert sod.sid_issuer_serial is not None and sod.sid_issuer_serial[1] == 0x1234567890ABCDEF
    assert sod.sid_ski is None
    assert sod.signed_attrs_der[:1] == b"\x31"


def test_der_identical_to_asn1crypto(signer):
    """asn1crypto re-encodes the built ContentInfo and LDSSecurityObject byte for byte."""
    data = SODBuilder(signer).build(DGS)
    inner = tlv.decode_single(data, 0x77).value
    assert cms.ContentInfo.load(inner).dump(force=True) == inner


def test_der_identical_to_asn1crypto_construction(signer):
    """The same SignedData built from natives with asn1crypto gives the same bytes."""
    data = SODBuilder(signer).build(DGS)
    parsed = cms.ContentInfo.load(tlv.decode_single(data, 0x77).value)
    signed = parsed["content"]
    info = signed["signer_infos"][0]
    # ICAO 9303-10 §4.6.2.2 note 2: no NULL parameters (asn1crypto adds them by default).
    sha256 = algos.DigestAlgorithm.load(bytes.fromhex("300B0609608648016503040201"))
    rebuilt = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData({
        "version": "v3", "digest_algorithms": [sha256],
        "encap_content_info": {"content_type": "2.23.136.1.1.1",
                               "content": signed["encap_content_info"]["content"].native},
        "certificates": [cms.CertificateChoices.load(signer.certificate_der)],
        "signer_infos": [{
            "version": "v1", "sid": info["sid"], "digest_algorithm": sha256,
            "signed_attrs": [
                {"type": "content_type", "values": ["2.23.136.1.1.1"]},
                {"type": "message_digest", "values": [parse_sod(data).message_digest]}],
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": info["signature"].native}]})})
    assert b"\x77" + tlv.encode_length(len(rebuilt.dump())) + rebuilt.dump() == data


def test_signature_verifies_with_cryptography(signer):
    """The signature over the signed attributes verifies with the DS public key."""
    sod = parse_sod(SODBuilder(signer).build(DGS))
    signer.key.public_key().verify(sod.signature, sod.signed_attrs_der, ec.ECDSA(hashes.SHA256()))


def test_flipped_signature_byte_fails_verification(signer):
    """Flipping one byte of the signature value makes verification fail."""
    data = bytearray(SODBuilder(signer).build(DGS))
    signature = parse_sod(bytes(data)).signature
    data[bytes(data).rindex(signature) + 10] ^= 0x01
    sod = parse_sod(bytes(data))
    with pytest.raises(InvalidSignature):
        signer.key.public_key().verify(sod.signature, sod.signed_attrs_der,
                                       ec.ECDSA(hashes.SHA256()))


def test_flipped_dg_byte_changes_its_hash(signer):
    """A one-byte change in a DG changes that DG's hash and only that one."""
    builder = SODBuilder(signer)
    tampered = dict(DGS)
    tampered[2] = DGS[2][:100] + bytes([DGS[2][100] ^ 1]) + DGS[2][101:]
    before, after = parse_sod(builder.build(DGS)), parse_sod(builder.build(tampered))
    assert after.dg_hashes[2] != before.dg_hashes[2]
    assert after.dg_hashes[2] != hashlib.sha256(DGS[2]).digest()
    assert {n: h for n, h in after.dg_hashes.items() if n != 2} == \
        {n: h for n, h in before.dg_hashes.items() if n != 2}


def _openssl_verify(inner: bytes, certificate_der: bytes, tmp_path: Path) -> int:
    (tmp_path / "sod.der").write_bytes(inner)
    cert = x509.load_der_x509_certificate(certificate_der)
    (tmp_path / "ds.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "sod.der"),
         "-CAfile", str(tmp_path / "ds.pem"), "-purpose", "any", "-binary",
         "-out", str(tmp_path / "econtent.der")],
        capture_output=True, check=False, timeout=30).returncode


@pytest.mark.parametrize("make_signer", [_ec_signer, PSSSigner])
def test_openssl_cms_verify_accepts(make_signer, tmp_path):
    """openssl cms -verify accepts the SOD (ECDSA and RSASSA-PSS) and returns the eContent."""
    signer = make_signer()
    inner = tlv.decode_single(SODBuilder(signer).build(DGS), 0x77).value
    assert _openssl_verify(inner, signer.certificate_der, tmp_path) == 0
    assert (tmp_path / "econtent.der").read_bytes() == parse_sod(
        SODBuilder(signer).build(DGS)).econtent


def test_openssl_rejects_tampered_security_object(signer, tmp_path):
    """openssl refuses a SOD whose LDSSecurityObject changed after signing."""
    data = bytearray(SODBuilder(signer).build(DGS))
    position = bytes(data).index(hashlib.sha256(DGS[2]).digest())
    data[position] ^= 0x01
    inner = tlv.decode_single(bytes(data), 0x77).value
    assert _openssl_verify(inner, signer.certificate_der, tmp_path) != 0


def test_lds_v1_with_version_info(signer):
    """With LDS version info the security object is v1 and carries it."""
    sod = parse_sod(SODBuilder(signer, lds_version=("0108", "150000")).build(DGS))
    assert sod.lds_version == 1
    assert b"\x13\x040108\x13\x06150000" in sod.econtent


def test_sha384_hashes(signer):
    """Another hash algorithm changes the hash sizes and the algorithm names."""
    sod = parse_sod(SODBuilder(signer, "sha384").build(DGS))
    assert sod.hash_algorithm == sod.digest_algorithm == "sha384"
    assert sod.dg_hashes[1] == hashlib.sha384(DGS[1]).digest()


@pytest.mark.parametrize("dgs,reason", [
    ({1: DGS[1]}, "2 to 16"), ({1: DGS[1], 17: b"x"}, "not in 1..16"),
    ({1: DGS[1], 0: b"x"}, "not in 1..16"),
])
def test_builder_rejects_bad_dg_sets(signer, dgs, reason):
    """Fewer than two DGs or DG numbers outside 1..16 are refused."""
    with pytest.raises(LDSError, match=reason):
        SODBuilder(signer).build(dgs)


def test_builder_rejects_bad_configuration(signer):
    """Unknown hash or signature algorithms and unreadable certificates are refused."""
    with pytest.raises(LDSError, match="hash"):
        SODBuilder(signer, "md5")

    odd = replace(signer, signature_algorithm="dsa-with-SHA1")
    with pytest.raises(LDSError, match="signature algorithm"):
        SODBuilder(odd)

    broken = replace(signer, certificate_der=b"\x30\x03\x02\x01\x01")
    with pytest.raises(LDSError, match="certificate"):
        SODBuilder(broken)


def _resign(data: bytes, mutate) -> bytes:
    """Parse the SOD with asn1crypto, let ``mutate`` change it, and re-wrap it in 77."""
    info = cms.ContentInfo.load(tlv.decode_single(data, 0x77).value)
    mutate(info["content"])
    return tlv.encode(0x77, info.dump(force=True))


def _drop_attrs(signed):
    signed["signer_infos"][0]["signed_attrs"] = cms.CMSAttributes([])


def _two_signers(signed):
    signed["signer_infos"] = [signed["signer_infos"][0], signed["signer_infos"][0]]


def _econtent_type(signed):
    signed["encap_content_info"]["content_type"] = "data"


def _version(signed):
    signed["version"] = "v1"


def _no_certificates(signed):
    signed["certificates"] = cms.CertificateSet([])


def _only_content_type(signed):
    signed["signer_infos"][0]["signed_attrs"] = cms.CMSAttributes(
        [{"type": "content_type", "values": ["2.23.136.1.1.1"]}])


def _other_content_type(signed):
    signed["signer_infos"][0]["signed_attrs"] = cms.CMSAttributes([
        {"type": "content_type", "values": ["2.23.136.1.1.2"]},
        {"type": "message_digest", "values": [bytes(32)]}])


@pytest.mark.parametrize("mutate,reason", [
    (_drop_attrs, "signed attributes"), (_two_signers, "exactly one"),
    (_econtent_type, "eContentType"), (_version, "version"),
    (_no_certificates, "no certificate"), (_only_content_type, "message-digest"),
    (_other_content_type, "differs from eContentType"),
])
def test_parse_rejects_profile_violations(signer, mutate, reason):
    """Missing signed attributes, several signers, wrong types or versions raise LDSError."""
    with pytest.raises(LDSError, match=reason):
        parse_sod(_resign(SODBuilder(signer).build(DGS), mutate))


@pytest.mark.parametrize("lso,reason", [
    (sequence(integer(0), sequence(oid("2.16.840.1.101.3.4.2.1")),
              sequence(sequence(integer(1), tlv.encode(4, bytes(32))))), "2 to 16"),
    (sequence(integer(0), sequence(oid("2.16.840.1.101.3.4.2.1")),
              sequence(sequence(integer(1), tlv.encode(4, bytes(32))),
                       sequence(integer(1), tlv.encode(4, bytes(32))))), "repeated"),
    (sequence(integer(0), sequence(oid("2.16.840.1.101.3.4.2.1")),
              sequence(sequence(integer(1), tlv.encode(4, bytes(20))),
                       sequence(integer(2), tlv.encode(4, bytes(32))))), "data group 1"),
    (sequence(integer(1), sequence(oid("2.16.840.1.101.3.4.2.1")),
              sequence(sequence(integer(1), tlv.encode(4, bytes(32))),
                       sequence(integer(2), tlv.encode(4, bytes(32))))), "inconsistent"),
    (sequence(integer(0), sequence(oid("1.3.14.3.2.26")),
              sequence(sequence(integer(1), tlv.encode(4, bytes(20))),
                       sequence(integer(2), tlv.encode(4, bytes(20))))), "unknown hash"),
])
def test_parse_rejects_bad_security_objects(signer, lso, reason):
    """Security objects with too few, repeated or wrong-size hashes are rejected."""
    def mutate(signed):
        signed["encap_content_info"]["content"] = lso
    with pytest.raises(LDSError, match=reason):
        parse_sod(_resign(SODBuilder(signer).build(DGS), mutate))


@pytest.mark.parametrize("data,reason", [
    (b"\x77\x03\x30\x01\x00", "malformed"), (b"\x78\x00", "expected tag 77"),
    (tlv.encode(0x77, sequence(oid("1.2.840.113549.1.7.1"), tlv.encode(0xA0, b"\x04\x00"))),
     "not signedData"),
])
def test_parse_rejects_garbage(data, reason):
    """Non-CMS content, a wrong wrapper tag and non-SignedData content raise LDSError."""
    with pytest.raises(LDSError, match=reason):
        parse_sod(data)


def test_parse_rejects_trailing_bytes(signer):
    """Bytes after the 77 object are refused."""
    with pytest.raises(LDSError, match="trailing"):
        parse_sod(SODBuilder(signer).build(DGS) + b"\x00")


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.integers(1, 16), st.binary(min_size=1, max_size=300), min_size=2,
                       max_size=16))
def test_build_parse_property(signer, dgs):
    """Any set of 2..16 DGs builds a SOD whose parsed hashes match and whose DER re-dumps."""
    data = SODBuilder(signer).build(dgs)
    sod = parse_sod(data)
    assert sod.dg_hashes == {n: hashlib.sha256(v).digest() for n, v in dgs.items()}
    inner = tlv.decode_single(data, 0x77).value
    assert cms.ContentInfo.load(inner).dump(force=True) == inner
