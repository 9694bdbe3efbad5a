"""CSCA master lists (ICAO 9303-12 §9): built, read and verified by us and by `openssl cms`."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from applets.emrtd.lds.asn1 import single
from applets.emrtd.lds.sod import SODBuilder
from hsm import certificates as certs
from hsm import masterlist
from hsm.errors import CertificateError
from tests.hsm.test_certificates import AT, _csca, _ds, _ec_signer, _openssl, _spki
from tests.hsm.test_link_and_request import VERIFY_AT, csca_certificate
from tests.support.signers import SoftwareSigner

ML_OID_DER = bytes.fromhex("0606678108010102")  # OBJECT IDENTIFIER 2.23.136.1.1.2


class Party:
    """A CSCA, a master-list signer it certified, and a foreign CSCA to list as well."""

    def __init__(self, ec_parameters: str) -> None:
        self.csca_key = ec.generate_private_key(ec.SECP256R1())
        self.signer_key = ec.generate_private_key(ec.SECP256R1())
        self.csca = csca_certificate(self.csca_key, name_serial="1", ec_parameters=ec_parameters)
        self.signer = masterlist.build_master_list_signer_certificate(
            spki_der=_spki(self.signer_key), serial_number=31, csca_der=self.csca,
            icao_code="VNM", common_name="Master List Signer VNM", name_serial="1",
            validity=(AT, AT + timedelta(days=3 * 365)), usage=(AT, AT + timedelta(days=365)),
            sign=_ec_signer(self.csca_key), ec_parameters=ec_parameters)
        self.foreign = _csca(ec.generate_private_key(ec.SECP256R1()))

    def master_list(self, digest: str = "sha256") -> bytes:
        """The master list of both CSCAs, signed with ``digest``."""
        algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[digest]
        return masterlist.build_master_list(
            csca_certificates=[self.csca, self.foreign], signer_der=self.signer,
            sign=lambda data: self.signer_key.sign(data, ec.ECDSA(algorithm)),
            at=AT + timedelta(days=1), digest=digest)


@pytest.fixture(scope="module")
def explicit() -> Party:
    """Keys and certificates with explicit EC parameters (ICAO 9303-12 §4.1.6)."""
    return Party("explicit")


@pytest.fixture(scope="module")
def named() -> Party:
    """Keys and certificates with named curves, so that OpenSSL 3 builds the chain."""
    return Party("named")


def test_signer_certificate_profile(explicit: Party) -> None:
    """digitalSignature, critical EKU cscaMasterListSigningKey, not a CA, AKI = CSCA SKI."""
    der = explicit.signer
    extensions = {e["extn_id"].native: e
                  for e in certs.load_certificate(der)["tbs_certificate"]["extensions"]}
    assert "basic_constraints" not in extensions and not certs.is_ca(der)
    assert extensions["key_usage"]["critical"].native is True
    assert certs.key_usage(der) == {"digital_signature"}
    assert extensions["extended_key_usage"]["critical"].native is True
    assert certs.extended_key_usage(der) == {"2.23.136.1.1.3"}
    assert certs.authority_key_identifier(der) == certs.subject_key_identifier(explicit.csca)
    certs.verify_certificate_signature(der, explicit.csca)


def test_master_list_structure(explicit: Party) -> None:
    """SignedData v3, eContentType cscaMasterList, signer + CSCA certificates, three attributes."""
    signed = cms.ContentInfo.load(explicit.master_list())["content"]
    assert signed["version"].native == "v3"
    assert signed["encap_content_info"]["content_type"].dotted == "2.23.136.1.1.2"
    assert {c.chosen.dump() for c in signed["certificates"]} == {explicit.signer, explicit.csca}
    assert signed["crls"].native is None
    info = signed["signer_infos"][0]
    assert info["version"].native == "v1"
    assert info["digest_algorithm"]["parameters"].native is None  # RFC 5754 §2: absent
    assert {a["type"].native for a in info["signed_attrs"]} == {
        "content_type", "message_digest", "signing_time"}
    times = [a["values"][0] for a in info["signed_attrs"] if a["type"].native == "signing_time"]
    assert times[0].name == "utc_time" and times[0].native == AT + timedelta(days=1)


def test_read_and_verify_return_the_certificates(explicit: Party) -> None:
    """read_master_list and verify_master_list give back exactly the listed CSCAs."""
    der = explicit.master_list()
    assert sorted(masterlist.read_master_list(der)) == sorted([explicit.csca, explicit.foreign])
    assert sorted(masterlist.verify_master_list(der, explicit.csca)) == sorted(
        [explicit.csca, explicit.foreign])


def test_verify_under_another_csca_fails(explicit: Party, named: Party) -> None:
    """A master list does not verify under a CSCA that did not certify its signer."""
    with pytest.raises(CertificateError):
        masterlist.verify_master_list(explicit.master_list(), named.csca)
    with pytest.raises(CertificateError):  # a CSCA listed in it is not its signer's issuer
        masterlist.verify_master_list(explicit.master_list(), explicit.foreign)


def test_build_refuses_a_signer_no_listed_csca_issued(explicit: Party, named: Party) -> None:
    """The signer must be certified by one of the listed CSCAs, and carry the ML signer EKU."""
    with pytest.raises(CertificateError, match="no listed CSCA"):
        masterlist.build_master_list(csca_certificates=[explicit.foreign],
                                     signer_der=explicit.signer,
                                     sign=_ec_signer(explicit.signer_key), at=AT)
    ds = _ds(explicit.csca, explicit.csca_key, explicit.signer_key)
    with pytest.raises(CertificateError, match="cscaMasterListSigningKey"):
        masterlist.build_master_list(csca_certificates=[explicit.csca], signer_der=ds,
                                     sign=_ec_signer(explicit.signer_key), at=AT)
    with pytest.raises(CertificateError, match="CSCA"):  # a DS is no entry for a master list
        masterlist.build_master_list(csca_certificates=[explicit.csca, ds],
                                     signer_der=explicit.signer,
                                     sign=_ec_signer(explicit.signer_key), at=AT)


def _tamper(der: bytes) -> bytes:
    """Flip one bit of a listed CSCA's name inside the eContent."""
    data = bytearray(der)
    data[data.index(b"CSCA Vietnam")] ^= 0x01
    return bytes(data)


def _openssl_cms(tmp_path: Path, ml_der: bytes, *trust: str) -> tuple[bool, bytes]:
    """(verified, content) from `openssl cms -verify`, with ``trust`` options."""
    (tmp_path / "ml.der").write_bytes(ml_der)
    (tmp_path / "content.der").unlink(missing_ok=True)
    result = _openssl("cms", "-verify", "-inform", "DER", "-in", str(tmp_path / "ml.der"),
                      *trust, "-out", str(tmp_path / "content.der"))
    ok = result.returncode == 0 and "Verification successful" in result.stderr
    content = (tmp_path / "content.der").read_bytes() if ok else b""
    return ok, content


def _trust(tmp_path: Path, csca_der: bytes) -> tuple[str, ...]:
    (tmp_path / "csca.pem").write_text(certs.certificate_to_pem(csca_der))
    return ("-CAfile", str(tmp_path / "csca.pem"), "-purpose", "any", "-attime", VERIFY_AT)


@pytest.mark.parametrize("digest", ["sha256", "sha384"])
def test_openssl_verifies_the_chain(named: Party, tmp_path: Path, digest: str) -> None:
    """`openssl cms -verify` checks signature and chain to the CSCA; asn1parse sees the list.

    Named curves: OpenSSL 3 refuses a chain with explicit EC parameters (next test).
    """
    der = named.master_list(digest)
    ok, content = _openssl_cms(tmp_path, der, *_trust(tmp_path, named.csca))
    assert ok
    assert content == bytes(cms.ContentInfo.load(der)["content"]["encap_content_info"]
                            ["content"].native)
    (tmp_path / "content.der").write_bytes(content)
    parsed = _openssl("asn1parse", "-inform", "DER", "-in", str(tmp_path / "content.der"))
    lines = parsed.stdout.splitlines()
    assert "d=1" in lines[1] and "INTEGER" in lines[1] and ":00" in lines[1]  # version v0
    assert "d=1" in lines[2] and "cons: SET" in lines[2]  # certList
    assert sum("d=2" in line and "cons: SEQUENCE" in line for line in lines) == 2


def test_openssl_with_explicit_parameters(explicit: Party, tmp_path: Path) -> None:
    """ICAO explicit parameters: OpenSSL 3 verifies the signature (-noverify) but no chain.

    OpenSSL 3 rejects explicit EC parameters while building a chain (X509_V_ERR_EC_KEY_EXPLICIT
    _PARAMS), so with -CAfile it fails whatever the signature; -noverify checks the signature.
    """
    der = explicit.master_list()
    ok, content = _openssl_cms(tmp_path, der, "-noverify")
    assert ok and content
    ok, _ = _openssl_cms(tmp_path, der, *_trust(tmp_path, explicit.csca))
    assert not ok


def test_rsa_pss_master_list(tmp_path: Path) -> None:
    """RSA keys: RSASSA-PSS with SHA-384 over the attributes; we and `openssl cms` verify it."""
    csca_key, signer_key = (rsa.generate_private_key(65537, 2048) for _ in range(2))
    csca = _csca(csca_key)
    signer = masterlist.build_master_list_signer_certificate(
        spki_der=_spki(signer_key), serial_number=32, csca_der=csca, icao_code="VNM",
        common_name="Master List Signer VNM", name_serial="2",
        validity=(AT, AT + timedelta(days=365)),
        sign=lambda tbs: csca_key.sign(tbs, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                                       hashes.SHA256()))
    der = masterlist.build_master_list(
        csca_certificates=[csca], signer_der=signer, at=AT, digest="sha384",
        sign=lambda data: signer_key.sign(data, padding.PSS(padding.MGF1(hashes.SHA384()), 48),
                                          hashes.SHA384()))
    info = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    assert info["signature_algorithm"].signature_algo == "rsassa_pss"
    assert info["signature_algorithm"]["parameters"]["salt_length"].native == 48
    assert masterlist.verify_master_list(der, csca) == [csca]
    assert _openssl_cms(tmp_path, der, *_trust(tmp_path, csca))[0]


def test_tampered_master_list_fails_us_and_openssl(named: Party, tmp_path: Path) -> None:
    """One flipped bit in the content fails read_master_list and `openssl cms -verify`."""
    tampered = _tamper(named.master_list())
    with pytest.raises(CertificateError, match="message-digest"):
        masterlist.read_master_list(tampered)
    assert not _openssl_cms(tmp_path, tampered, *_trust(tmp_path, named.csca))[0]
    assert not _openssl_cms(tmp_path, tampered, "-noverify")[0]


def test_forged_signature_fails_us_and_openssl(named: Party, tmp_path: Path) -> None:
    """A master list signed by a key other than its signer certificate's fails both."""
    forged = masterlist.build_master_list(
        csca_certificates=[named.csca], signer_der=named.signer,
        sign=_ec_signer(named.csca_key), at=AT)
    with pytest.raises(CertificateError, match="signature"):
        masterlist.read_master_list(forged)
    assert not _openssl_cms(tmp_path, forged, *_trust(tmp_path, named.csca))[0]


def test_wrong_content_type_is_refused() -> None:
    """A correctly signed SignedData of another type (an EF.SOD) is not a master list."""
    sod = SODBuilder(SoftwareSigner.create()).build({1: b"\x61\x00", 2: b"\x75\x00"})
    with pytest.raises(CertificateError, match=re.escape("eContentType 2.23.136.1.1.1 ")):
        masterlist.read_master_list(single(sod, 0x77, "EF.SOD"))


def test_relabelled_content_type_is_refused(explicit: Party) -> None:
    """The master list relabelled as an LDS security object is refused by its content type."""
    relabelled = explicit.master_list().replace(ML_OID_DER, ML_OID_DER[:-1] + b"\x01")
    with pytest.raises(CertificateError, match="not id-icao-cscaMasterList"):
        masterlist.read_master_list(relabelled)


def test_malformed_input_raises_certificate_error(explicit: Party) -> None:
    """Garbage and a bare certificate raise CertificateError, not an asn1crypto exception."""
    for data in (b"\x30\x03\x02\x01\x00", explicit.csca):
        with pytest.raises(CertificateError):
            masterlist.read_master_list(data)
