"""CSCA link certificates for rollover and PKCS#10 requests from a key on another token."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from asn1crypto import csr
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hsm import certificates as certs
from hsm.ecparams import explicit_spki
from hsm.errors import CertificateError
from tests.hsm.test_certificates import AT, _csca, _ds, _ec_signer, _openssl, _spki

VERIFY_AT = str(int((AT + timedelta(days=1)).timestamp()))


def csca_certificate(key: ec.EllipticCurvePrivateKey, *, name_serial: str,
                     ec_parameters: str = "explicit", country: str = "VN") -> bytes:
    """A self-signed CSCA for ``key``; ``name_serial`` tells one CSCA generation from the next."""
    return certs.build_csca_certificate(
        spki_der=_spki(key), serial_number=100 + int(name_serial), country=country,
        icao_code="VNM", common_name="CSCA Vietnam", name_serial=name_serial,
        validity=(AT, AT + timedelta(days=15 * 365)), usage=(AT, AT + timedelta(days=5 * 365)),
        sign=_ec_signer(key), ec_parameters=ec_parameters)


@pytest.fixture(scope="module")
def keys() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]:
    """The old and the new CSCA key."""
    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def _rollover(keys, ec_parameters: str = "explicit") -> tuple[bytes, bytes, bytes, bytes]:
    """(old CSCA, new CSCA, new-by-old link, old-by-new link)."""
    old = csca_certificate(keys[0], name_serial="1", ec_parameters=ec_parameters)
    new = csca_certificate(keys[1], name_serial="2", ec_parameters=ec_parameters)
    forward = certs.build_link_certificate(subject_csca_der=new, issuer_csca_der=old,
                                           serial_number=501, sign=_ec_signer(keys[0]))
    backward = certs.build_link_certificate(subject_csca_der=old, issuer_csca_der=new,
                                            serial_number=502, sign=_ec_signer(keys[1]))
    return old, new, forward, backward


def _extensions(der: bytes) -> dict[str, bytes]:
    return {e["extn_id"].native: e.dump()
            for e in certs.load_certificate(der)["tbs_certificate"]["extensions"]}


def test_link_certificate_carries_the_new_key_under_the_old_name(keys) -> None:
    """Subject, key and CA extensions are the new CSCA's; issuer and AKI are the old's."""
    old, new, link, _ = _rollover(keys)
    tbs, new_tbs = (certs.load_certificate(d)["tbs_certificate"] for d in (link, new))
    assert tbs["subject"] == new_tbs["subject"]
    assert tbs["issuer"] == certs.load_certificate(old).subject
    assert certs.subject_public_key_info(link) == certs.subject_public_key_info(new)
    assert certs.authority_key_identifier(link) == certs.subject_key_identifier(old)
    assert certs.subject_key_identifier(link) == certs.subject_key_identifier(new)
    assert tbs["validity"].native == new_tbs["validity"].native
    assert certs.is_ca(link) and certs.key_usage(link) == {"key_cert_sign", "crl_sign"}
    ours, theirs = _extensions(link), _extensions(new)
    assert ours.keys() == theirs.keys()
    for name in ("basic_constraints", "key_usage", "private_key_usage_period",
                 "subject_alt_name", "key_identifier"):
        assert ours[name] == theirs[name]
    certs.verify_certificate_signature(link, old)
    with pytest.raises(CertificateError):
        certs.verify_certificate_signature(link, new)


def test_reverse_link_certifies_the_old_key_with_the_new(keys) -> None:
    """Swapping the arguments gives the old key under the new CSCA's signature."""
    old, new, _, backward = _rollover(keys)
    assert certs.subject_public_key_info(backward) == certs.subject_public_key_info(old)
    assert certs.authority_key_identifier(backward) == certs.subject_key_identifier(new)
    certs.verify_certificate_signature(backward, new)


def test_link_certificate_validity_can_be_given(keys) -> None:
    """An explicit validity replaces the subject certificate's."""
    old = csca_certificate(keys[0], name_serial="1")
    new = csca_certificate(keys[1], name_serial="2")
    window = (AT + timedelta(days=1), AT + timedelta(days=10 * 365))
    link = certs.build_link_certificate(subject_csca_der=new, issuer_csca_der=old,
                                        serial_number=9, sign=_ec_signer(keys[0]),
                                        validity=window)
    validity = certs.load_certificate(link)["tbs_certificate"]["validity"]
    assert (validity["not_before"].native, validity["not_after"].native) == window


def test_link_certificate_refuses_wrong_parties(keys) -> None:
    """A DS, the same key twice, or CSCAs of two countries cannot be linked."""
    old = csca_certificate(keys[0], name_serial="1")
    ds = _ds(old, keys[0], ec.generate_private_key(ec.SECP256R1()))
    same_key = csca_certificate(keys[0], name_serial="3")
    foreign = csca_certificate(keys[1], name_serial="2", country="LA")
    for subject, why in ((ds, "cA"), (same_key, "different CSCA keys"), (foreign, "country")):
        with pytest.raises(CertificateError, match=why):
            certs.build_link_certificate(subject_csca_der=subject, issuer_csca_der=old,
                                         serial_number=1, sign=_ec_signer(keys[0]))


def _write(tmp_path: Path, **certificates: bytes) -> dict[str, str]:
    paths = {}
    for name, der in certificates.items():
        (tmp_path / f"{name}.pem").write_text(certs.certificate_to_pem(der))
        paths[name] = str(tmp_path / f"{name}.pem")
    return paths


def test_openssl_verifies_both_links(keys, tmp_path: Path) -> None:
    """`openssl verify -partial_chain` accepts new-by-old under old and old-by-new under new.

    Named curves: OpenSSL 3 refuses any certificate with explicit EC parameters while building
    a chain (error 94, X509_V_ERR_EC_KEY_EXPLICIT_PARAMS), whatever its signature.
    """
    old, new, forward, backward = _rollover(keys, ec_parameters="named")
    paths = _write(tmp_path, old=old, new=new, forward=forward, backward=backward)
    for anchor, link in (("old", "forward"), ("new", "backward")):
        result = _openssl("verify", "-attime", VERIFY_AT, "-partial_chain",
                          "-CAfile", paths[anchor], paths[link])
        assert result.returncode == 0 and ": OK" in result.stdout, result.stderr
    result = _openssl("verify", "-attime", VERIFY_AT, "-partial_chain",
                      "-CAfile", paths["new"], paths["forward"])
    assert result.returncode != 0  # the new-by-old link does not verify under the new key


def test_openssl_objects_only_to_explicit_parameters_in_a_link(keys, tmp_path: Path) -> None:
    """With ICAO's explicit EC parameters, `openssl verify`'s only complaint is error 94."""
    old, _, forward, _ = _rollover(keys)
    paths = _write(tmp_path, old=old, forward=forward)
    result = _openssl("verify", "-attime", VERIFY_AT, "-partial_chain",
                      "-CAfile", paths["old"], paths["forward"])
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    errors = {line.split(" at ")[0] for line in lines
              if line.startswith("error ") and " at " in line}
    assert errors == {"error 94"}, result.stdout + result.stderr


def test_tampered_link_fails_openssl(keys, tmp_path: Path) -> None:
    """A link certificate with one bit flipped in its subject fails `openssl verify`."""
    old, _, forward, _ = _rollover(keys, ec_parameters="named")
    tampered = bytearray(forward)
    tampered[tampered.rindex(b"CSCA Vietnam")] ^= 0x01
    paths = _write(tmp_path, old=old, forward=bytes(tampered))
    result = _openssl("verify", "-attime", VERIFY_AT, "-partial_chain",
                      "-CAfile", paths["old"], paths["forward"])
    assert result.returncode != 0
    with pytest.raises(CertificateError):
        certs.verify_certificate_signature(bytes(tampered), old)


# --- PKCS#10 ---------------------------------------------------------------------------------

def _request(key: ec.EllipticCurvePrivateKey, ec_parameters: str = "explicit") -> bytes:
    return certs.build_certification_request(
        spki_der=_spki(key), country="VN", common_name="Document Signer VNM",
        name_serial="20260301001", sign=_ec_signer(key), ec_parameters=ec_parameters)


def _openssl_req_verifies(tmp_path: Path, request_der: bytes) -> bool:
    (tmp_path / "req.der").write_bytes(request_der)
    result = _openssl("req", "-inform", "DER", "-in", str(tmp_path / "req.der"),
                      "-verify", "-noout")
    return result.returncode == 0 and "verify OK" in result.stdout + result.stderr


def test_request_verifies_and_yields_its_key(tmp_path: Path) -> None:
    """A DS key's request verifies (us and `openssl req`) and gives back its explicit SPKI."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = _request(key)
    assert certs.verify_certification_request(request) == explicit_spki(_spki(key))
    info = csr.CertificationRequest.load(request)["certification_request_info"]
    assert info["version"].native == "v1" and info["attributes"].native == []
    assert info["subject"].native == {"country_name": "VN", "common_name": "Document Signer VNM",
                                      "serial_number": "20260301001"}
    assert _openssl_req_verifies(tmp_path, request)


def test_ceremony_certifies_exactly_the_requested_key(keys) -> None:
    """The SPKI a verified request yields becomes the DS certificate's key, under the CSCA."""
    csca = _csca(keys[0])
    ds_key = ec.generate_private_key(ec.SECP256R1())
    spki = certs.verify_certification_request(_request(ds_key, "named"))
    ds = certs.build_ds_certificate(
        spki_der=spki, serial_number=3, csca_der=csca, icao_code="VNM",
        common_name="Document Signer VNM", name_serial="1",
        validity=(AT, AT + timedelta(days=3740)), usage=(AT, AT + timedelta(days=90)),
        doc_types=("ID",), sign=_ec_signer(keys[0]))
    assert certs.subject_public_key_info(ds) == explicit_spki(spki)
    certs.verify_certificate_signature(ds, csca)


def test_tampered_request_fails_us_and_openssl(tmp_path: Path) -> None:
    """One flipped bit in the subject fails verify_certification_request and `openssl req`."""
    request = bytearray(_request(ec.generate_private_key(ec.SECP256R1())))
    request[request.index(b"Document Signer")] ^= 0x01
    with pytest.raises(CertificateError):
        certs.verify_certification_request(bytes(request))
    assert not _openssl_req_verifies(tmp_path, bytes(request))


def test_request_signed_by_another_key_fails(tmp_path: Path) -> None:
    """A request naming one key but signed by another is refused by us and by OpenSSL."""
    named, signer = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    request = certs.build_certification_request(
        spki_der=_spki(named), country="VN", common_name="DS", name_serial="1",
        sign=_ec_signer(signer))
    with pytest.raises(CertificateError):
        certs.verify_certification_request(request)
    assert not _openssl_req_verifies(tmp_path, request)


def test_rsa_pss_request(tmp_path: Path) -> None:
    """An RSA key's request is signed with RSASSA-PSS and verifies with us and OpenSSL."""
    key = rsa.generate_private_key(65537, 2048)
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    request = certs.build_certification_request(
        spki_der=_spki(key), country="VN", common_name="DS", name_serial="1",
        sign=lambda info: key.sign(info, pss, hashes.SHA256()))
    assert certs.verify_certification_request(request) == _spki(key)
    assert _openssl_req_verifies(tmp_path, request)


def test_malformed_request_raises_certificate_error() -> None:
    """Garbage bytes raise CertificateError, not an asn1crypto exception."""
    with pytest.raises(CertificateError):
        certs.verify_certification_request(b"\x30\x03\x02\x01\x00")
