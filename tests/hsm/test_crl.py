"""CRLs signed by the CSCA (RFC 5280 §5, ICAO 9303-12), checked by us and by `openssl crl`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm import certificates as certs
from hsm.crl import REASONS, Revoked, build_crl, crl_revoked_serials, verify_crl
from hsm.errors import CertificateError
from tests.hsm.test_certificates import AT, _csca, _ds, _ec_signer, _openssl

THIS_UPDATE = AT + timedelta(days=30)


@pytest.fixture(scope="module")
def csca_key() -> ec.EllipticCurvePrivateKey:
    """The CSCA's software P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def csca(csca_key: ec.EllipticCurvePrivateKey) -> bytes:
    """A CSCA certificate with explicit EC parameters, as ICAO 9303-12 §4.1.6 requires."""
    return _csca(csca_key)


def _crl(csca_der: bytes, key: ec.EllipticCurvePrivateKey, revoked: list[Revoked],
         days: int = 90) -> bytes:
    return build_crl(csca_der=csca_der, revoked=revoked, this_update=THIS_UPDATE,
                     next_update=THIS_UPDATE + timedelta(days=days), crl_number=4,
                     sign=_ec_signer(key))


def _revoked() -> list[Revoked]:
    return [Revoked(12345, AT + timedelta(days=2), "keyCompromise"),
            Revoked(7, AT + timedelta(days=1), "superseded"),
            Revoked(2**100, AT, "cessationOfOperation"),
            Revoked(99, AT, "unspecified")]


def test_crl_profile(csca, csca_key) -> None:
    """A v2 CRL: issuer = CSCA subject, AKI = CSCA SKI, cRLNumber, entries sorted by serial."""
    der = _crl(csca, csca_key, _revoked())
    tbs = asn1_crl.CertificateList.load(der)["tbs_cert_list"]
    assert tbs["version"].native == "v2"
    assert tbs["issuer"] == certs.load_certificate(csca).subject
    assert tbs["this_update"].chosen.contents == b"260331080000Z"
    assert tbs["next_update"].native == THIS_UPDATE + timedelta(days=90)
    extensions = {e["extn_id"].native: e for e in tbs["crl_extensions"]}
    assert extensions["crl_number"]["extn_value"].native == 4
    key_id = extensions["authority_key_identifier"]["extn_value"].native["key_identifier"]
    assert key_id == certs.subject_key_identifier(csca)
    assert [e["user_certificate"].native for e in tbs["revoked_certificates"]] == [
        7, 99, 12345, 2**100]
    reason = tbs["revoked_certificates"][0]["crl_entry_extensions"][0]
    assert reason["extn_id"].native == "crl_reason" and reason["critical"].native is False
    # RFC 5280 §5.3.1: the reasonCode is left out rather than set to unspecified.
    assert tbs["revoked_certificates"][1]["crl_entry_extensions"].native is None
    verify_crl(der, csca)


def test_revoked_serials_round_trip(csca, csca_key) -> None:
    """crl_revoked_serials gives back every serial with its RFC 5280 reason name."""
    assert crl_revoked_serials(_crl(csca, csca_key, _revoked())) == {
        12345: "keyCompromise", 7: "superseded", 2**100: "cessationOfOperation",
        99: "unspecified"}


def test_empty_crl_has_no_revoked_list(csca, csca_key) -> None:
    """With nothing revoked, revokedCertificates is absent (RFC 5280 §5.1.2.6), not empty."""
    der = _crl(csca, csca_key, [])
    assert asn1_crl.CertificateList.load(der)["tbs_cert_list"]["revoked_certificates"].native \
        is None
    assert crl_revoked_serials(der) == {}
    verify_crl(der, csca)


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.integers(1, 2**159 - 1), st.sampled_from(sorted(REASONS)),
                       max_size=6))
def test_any_revocations_round_trip(csca, csca_key, entries: dict[int, str]) -> None:
    """Any set of serials and reasons comes back unchanged from the signed CRL."""
    revoked = [Revoked(serial, AT, reason) for serial, reason in entries.items()]
    der = _crl(csca, csca_key, revoked)
    assert crl_revoked_serials(der) == entries
    verify_crl(der, csca)


@pytest.mark.parametrize("days", [91, 365, 0, -1])
def test_crl_period_outside_90_days_is_refused(csca, csca_key, days: int) -> None:
    """nextUpdate more than 90 days after thisUpdate, or not after it, is refused."""
    with pytest.raises(CertificateError):
        _crl(csca, csca_key, [], days=days)


@pytest.mark.parametrize("revoked", [
    [Revoked(5, AT, "superseded"), Revoked(5, AT, "keyCompromise")],  # a serial twice
    [Revoked(5, THIS_UPDATE + timedelta(seconds=1), "superseded")],  # revoked in the future
])
def test_inconsistent_entries_are_refused(csca, csca_key, revoked: list[Revoked]) -> None:
    """A serial listed twice, or revoked after thisUpdate, is refused."""
    with pytest.raises(CertificateError):
        _crl(csca, csca_key, revoked)


@pytest.mark.parametrize(("serial", "reason"), [
    (5, "removeFromCRL"), (5, "key_compromise"), (5, "bogus"), (0, "superseded"),
    (-3, "superseded"), (2**159, "superseded")])
def test_bad_entry_is_refused(serial: int, reason: str) -> None:
    """Unknown or delta-CRL-only reasons and non-positive or over-long serials are refused."""
    with pytest.raises(CertificateError):
        Revoked(serial, AT, reason)


def test_ds_certificate_cannot_issue_a_crl(csca, csca_key) -> None:
    """Only a certificate with cRLSign can issue a CRL; a DS certificate is refused."""
    ds = _ds(csca, csca_key, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CertificateError):
        _crl(ds, csca_key, [])


def test_crl_from_another_csca_fails(csca, csca_key) -> None:
    """A CRL does not verify under a different CSCA's certificate."""
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = _csca(other_key)  # same name, different key: only the AKI and signature tell
    with pytest.raises(CertificateError):
        verify_crl(_crl(other, other_key, _revoked()), csca)


def _tamper(der: bytes) -> bytes:
    """Flip the low bit of serial 12345 (0x3039) in the TBSCertList."""
    data = bytearray(der)
    index = data.index(bytes.fromhex("02023039"))
    data[index + 3] ^= 0x01
    return bytes(data)


def _write(tmp_path: Path, csca_der: bytes, crl_der: bytes) -> tuple[str, str]:
    (tmp_path / "csca.pem").write_text(certs.certificate_to_pem(csca_der))
    (tmp_path / "crl.der").write_bytes(crl_der)
    return str(tmp_path / "csca.pem"), str(tmp_path / "crl.der")


def _openssl_verifies(csca_pem: str, crl_path: str) -> bool:
    result = _openssl("crl", "-inform", "DER", "-in", crl_path, "-CAfile", csca_pem, "-noout")
    output = result.stdout + result.stderr
    return result.returncode == 0 and "verify OK" in output


def test_openssl_reads_and_verifies_the_ec_crl(csca, csca_key, tmp_path: Path) -> None:
    """`openssl crl` prints the serials and reasons, and verifies the signature (explicit EC)."""
    csca_pem, crl_path = _write(tmp_path, csca, _crl(csca, csca_key, _revoked()))
    text = _openssl("crl", "-inform", "DER", "-in", crl_path, "-noout", "-text").stdout
    assert "Version 2" in text and "X509v3 CRL Number" in text
    assert "X509v3 Authority Key Identifier" in text
    assert "Serial Number: 3039" in text and "Key Compromise" in text  # 12345
    assert "Serial Number: 07" in text and "Superseded" in text
    assert "Cessation Of Operation" in text and "Serial Number: 63" in text  # 99
    assert "Next Update: Jun 29 08:00:00 2026 GMT" in text
    assert _openssl_verifies(csca_pem, crl_path)


def test_tampered_crl_fails_us_and_openssl(csca, csca_key, tmp_path: Path) -> None:
    """One flipped bit in a revoked serial fails verify_crl and `openssl crl -CAfile`."""
    tampered = _tamper(_crl(csca, csca_key, _revoked()))
    assert 12344 in crl_revoked_serials(tampered)
    with pytest.raises(CertificateError):
        verify_crl(tampered, csca)
    assert not _openssl_verifies(*_write(tmp_path, csca, tampered))


def test_rsa_pss_crl(tmp_path: Path) -> None:
    """An RSA CSCA signs its CRL with RSASSA-PSS; we and `openssl crl` both verify it."""
    key = rsa.generate_private_key(65537, 2048)
    csca = _csca(key)
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    der = build_crl(csca_der=csca, revoked=_revoked(), this_update=THIS_UPDATE,
                    next_update=THIS_UPDATE + timedelta(days=7), crl_number=1,
                    sign=lambda tbs: key.sign(tbs, pss, hashes.SHA256()))
    assert asn1_crl.CertificateList.load(der)["signature_algorithm"].signature_algo == "rsassa_pss"
    verify_crl(der, csca)
    csca_pem, crl_path = _write(tmp_path, csca, der)
    text = _openssl("crl", "-inform", "DER", "-in", crl_path, "-noout", "-text").stdout
    assert "rsassaPss" in text and "Key Compromise" in text
    assert _openssl_verifies(csca_pem, crl_path)
    with pytest.raises(CertificateError):
        verify_crl(_tamper(der), csca)
    assert not _openssl_verifies(*_write(tmp_path, csca, _tamper(der)))


def test_malformed_crl_raises_certificate_error(csca) -> None:
    """Garbage bytes raise CertificateError, not an asn1crypto exception."""
    with pytest.raises(CertificateError):
        crl_revoked_serials(b"\x30\x03\x02\x01\x01")
    with pytest.raises(CertificateError):
        verify_crl(csca, csca)
