"""CSCA and DS certificates per ICAO 9303-12, built with software keys (pure code path)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from hsm import certificates as certs
from hsm.ecparams import P256, explicit_parameters, explicit_spki, match_curve
from hsm.errors import CertificateError

AT = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)


def _spki(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _ec_signer(key: ec.EllipticCurvePrivateKey) -> certs.Signer:
    return lambda tbs: key.sign(tbs, ec.ECDSA(hashes.SHA256()))


def _csca(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
        signer: certs.Signer = lambda tbs: key.sign(tbs, pss, hashes.SHA256())  # noqa: E731
    else:
        signer = _ec_signer(key)
    return certs.build_csca_certificate(
        spki_der=_spki(key), serial_number=certs.serial_from_random(b"\x5a" * 16), country="VN",
        icao_code="VNM", common_name="CSCA Vietnam", name_serial="1",
        validity=(AT, AT + timedelta(days=15 * 365)), usage=(AT, AT + timedelta(days=5 * 365)),
        sign=signer,
    )


def _ds(csca_der: bytes, csca_key: ec.EllipticCurvePrivateKey, ds_key: ec.EllipticCurvePrivateKey,
        doc_types: tuple[str, ...] = ("ID",)) -> bytes:
    return certs.build_ds_certificate(
        spki_der=_spki(ds_key), serial_number=12345, csca_der=csca_der, icao_code="VNM",
        common_name="Document Signer VNM", name_serial="20260301001",
        validity=(AT, AT + timedelta(days=3740)), usage=(AT, AT + timedelta(days=90)),
        doc_types=doc_types, sign=_ec_signer(csca_key),
    )


@pytest.fixture(scope="module")
def keys() -> tuple[ec.EllipticCurvePrivateKey, ec.EllipticCurvePrivateKey]:
    """A CSCA and a DS software key pair."""
    return ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())


def test_p256_constants_match_cryptography() -> None:
    """Our explicit P-256 G, n and p agree with pyca/cryptography's SECP256R1."""
    g = ec.derive_private_key(1, ec.SECP256R1()).public_key().public_numbers()
    assert (g.x, g.y) == (P256.gx, P256.gy)
    minus_g = ec.derive_private_key(P256.n - 1, ec.SECP256R1()).public_key().public_numbers()
    assert (minus_g.x, minus_g.y) == (P256.gx, P256.p - P256.gy)  # -G = (x, p - y) checks p
    assert P256.on_curve(P256.gx, P256.gy) and P256.a == P256.p - 3
    with pytest.raises(ValueError):
        ec.derive_private_key(P256.n, ec.SECP256R1())  # n is the group order


def test_explicit_spki_has_specified_domain_with_cofactor(keys) -> None:
    """EC keys in certificates carry explicit parameters with cofactor and an uncompressed point."""
    info = asn1_keys.PublicKeyInfo.load(explicit_spki(_spki(keys[0])))
    parameters = info["algorithm"]["parameters"]
    assert parameters.name == "specified"
    assert parameters.chosen["cofactor"].native == 1
    assert bytes(info["public_key"].native)[0] == 0x04


def test_unknown_explicit_curve_is_rejected() -> None:
    """Explicit parameters that match no supported curve raise CertificateError."""
    wrong = explicit_parameters(P256).chosen.copy()
    wrong["order"] = P256.n - 2
    with pytest.raises(CertificateError):
        match_curve(asn1_keys.ECDomainParameters(name="specified", value=wrong))


def test_load_public_key_accepts_named_and_explicit(keys) -> None:
    """load_public_key gives the same key from a named-curve and an explicit-parameter SPKI."""
    named = certs.load_public_key(_spki(keys[0]))
    explicit = certs.load_public_key(explicit_spki(_spki(keys[0])))
    assert named.public_numbers() == explicit.public_numbers()


def test_csca_profile(keys) -> None:
    """The CSCA is v3, self-signed, cA with pathLen 0, keyCertSign+cRLSign, SAN/IAN locality VNM."""
    der = _csca(keys[0])
    cert = certs.load_certificate(der)
    tbs = cert["tbs_certificate"]
    assert tbs["version"].native == "v3" and tbs["serial_number"].native > 0
    assert tbs["subject"].native == {"country_name": "VN", "common_name": "CSCA Vietnam",
                                     "serial_number": "1"}
    assert tbs["validity"]["not_before"].name == "utc_time"
    assert tbs["validity"]["not_before"].chosen.contents == b"260301080000Z"
    assert certs.is_ca(der)
    ext = {e["extn_id"].native: e for e in tbs["extensions"]}
    assert ext["key_usage"]["critical"].native and ext["basic_constraints"]["critical"].native
    assert ext["key_usage"]["extn_value"].native == {"key_cert_sign", "crl_sign"}
    assert ext["basic_constraints"]["extn_value"].native == {"ca": True, "path_len_constraint": 0}
    san = ext["subject_alt_name"]["extn_value"].native
    assert san == [{"locality_name": "VNM"}] == ext["issuer_alt_name"]["extn_value"].native
    crl = ext["crl_distribution_points"]["extn_value"].native
    assert crl[0]["distribution_point"] == ["https://pkddownload1.icao.int/CRLs/VNM.crl"]
    assert certs.private_key_usage_period(der) == (AT, AT + timedelta(days=5 * 365))
    certs.verify_certificate_signature(der, der)


def test_ds_profile(keys) -> None:
    """The DS has digitalSignature only, AKI = CSCA SKI, DocumentType {ID}, no BasicConstraints."""
    csca = _csca(keys[0])
    der = _ds(csca, *keys)
    tbs = certs.load_certificate(der)["tbs_certificate"]
    ext = {e["extn_id"].dotted: e for e in tbs["extensions"]}
    assert "2.5.29.19" not in ext  # BasicConstraints is forbidden in a DS certificate
    assert ext["2.5.29.15"]["extn_value"].native == {"digital_signature"}
    assert ext["2.5.29.15"]["critical"].native is True
    assert ext[certs.DOCUMENT_TYPE_OID]["critical"].native is False
    assert certs.document_types(der) == {"ID"}
    assert certs.authority_key_identifier(der) == certs.subject_key_identifier(csca)
    assert certs.subject_key_identifier(der) is not None and not certs.is_ca(der)
    assert tbs["issuer"] == certs.load_certificate(csca)["tbs_certificate"]["subject"]
    assert certs.private_key_usage_period(der) == (AT, AT + timedelta(days=90))
    certs.verify_certificate_signature(der, csca)


def test_tampered_certificate_fails_verification(keys) -> None:
    """Changing one byte of the TBS makes verification raise CertificateError."""
    csca = _csca(keys[0])
    der = bytearray(_ds(csca, *keys))
    index = der.find(b"Document Signer VNM")
    der[index] ^= 0x01
    with pytest.raises(CertificateError):
        certs.verify_certificate_signature(bytes(der), csca)


def test_wrong_issuer_fails_verification(keys) -> None:
    """A DS certificate does not verify under a different CSCA's key."""
    csca = _csca(keys[0])
    other = _csca(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(CertificateError):
        certs.verify_certificate_signature(_ds(csca, *keys), other)


def test_rsa_pss_csca_verifies() -> None:
    """An RSA-PSS CSCA certificate carries RSASSA-PSS parameters and verifies."""
    der = _csca(rsa.generate_private_key(65537, 2048))
    algorithm = certs.load_certificate(der)["signature_algorithm"]
    assert algorithm.signature_algo == "rsassa_pss"
    assert algorithm["parameters"]["salt_length"].native == 32
    certs.verify_certificate_signature(der, der)


def test_malformed_input_raises_certificate_error() -> None:
    """Garbage bytes raise CertificateError, not an asn1crypto exception."""
    with pytest.raises(CertificateError):
        certs.load_certificate(b"\x30\x03\x02\x01")
    with pytest.raises(CertificateError):
        certs.load_public_key(b"\x30\x00")


def test_lowercase_country_is_refused(keys) -> None:
    """countryName must be two upper-case letters (ICAO 9303-12 Table 5)."""
    with pytest.raises(CertificateError):
        certs.build_csca_certificate(
            spki_der=_spki(keys[0]), serial_number=1, country="vn", icao_code="VNM",
            common_name="CSCA", name_serial="1", validity=(AT, AT), usage=(AT, AT),
            sign=_ec_signer(keys[0]))


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def test_openssl_parses_and_checks_the_ec_signature(keys, tmp_path: Path) -> None:
    """OpenSSL parses both EC certificates and verifies the DS signature with the CSCA key."""
    csca = _csca(keys[0])
    ds = _ds(csca, *keys)
    (tmp_path / "csca.pem").write_text(certs.certificate_to_pem(csca))
    (tmp_path / "ds.pem").write_text(certs.certificate_to_pem(ds))
    text = _openssl("x509", "-noout", "-text", "-in", str(tmp_path / "ds.pem")).stdout
    assert "Private Key Usage Period" in text and "2.23.136.1.1.6.2" in text
    assert "Field Type: prime-field" in text  # explicit parameters, as 9303-12 §4.1.6 demands
    public = _openssl("x509", "-noout", "-pubkey", "-in", str(tmp_path / "csca.pem")).stdout
    (tmp_path / "csca.pub").write_text(public)
    cert = certs.load_certificate(ds)
    (tmp_path / "tbs").write_bytes(cert["tbs_certificate"].dump())
    (tmp_path / "sig").write_bytes(bytes(cert["signature_value"].native))
    result = _openssl("dgst", "-sha256", "-verify", str(tmp_path / "csca.pub"),
                      "-signature", str(tmp_path / "sig"), str(tmp_path / "tbs"))
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr


def test_openssl_verify_flags_only_explicit_parameters(keys, tmp_path: Path) -> None:
    """`openssl verify` (OpenSSL 3.0, strict) objects only to the ICAO explicit EC parameters."""
    csca = _csca(keys[0])
    (tmp_path / "csca.pem").write_text(certs.certificate_to_pem(csca))
    (tmp_path / "ds.pem").write_text(certs.certificate_to_pem(_ds(csca, *keys)))
    at = str(int((AT + timedelta(days=1)).timestamp()))
    result = _openssl("verify", "-attime", at, "-CAfile", str(tmp_path / "csca.pem"),
                      str(tmp_path / "ds.pem"))
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    errors = {line.split(" at ")[0] for line in lines
              if line.startswith("error ") and " at " in line}
    assert errors <= {"error 94"}, result.stdout + result.stderr  # 94 = EC_KEY_EXPLICIT_PARAMS


def test_openssl_verify_accepts_an_rsa_pss_chain(tmp_path: Path) -> None:
    """`openssl verify` accepts an RSA-PSS CSCA and a DS it certified (no EC parameters)."""
    csca_key = rsa.generate_private_key(65537, 2048)
    csca = _csca(csca_key)
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32)
    ds = certs.build_ds_certificate(
        spki_der=_spki(rsa.generate_private_key(65537, 2048)), serial_number=7, csca_der=csca,
        icao_code="VNM", common_name="Document Signer VNM", name_serial="1",
        validity=(AT, AT + timedelta(days=3740)), usage=(AT, AT + timedelta(days=90)),
        doc_types=("ID",), sign=lambda tbs: csca_key.sign(tbs, pss, hashes.SHA256()),
    )
    (tmp_path / "csca.pem").write_text(certs.certificate_to_pem(csca))
    (tmp_path / "ds.pem").write_text(certs.certificate_to_pem(ds))
    at = str(int((AT + timedelta(days=1)).timestamp()))
    result = _openssl("verify", "-attime", at, "-CAfile", str(tmp_path / "csca.pem"),
                      str(tmp_path / "ds.pem"))
    assert result.returncode == 0, result.stdout + result.stderr
    certs.verify_certificate_signature(ds, csca)


@given(st.sets(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2),
               min_size=1, max_size=5))
def test_document_type_list_round_trips(types: set[str]) -> None:
    """DocumentTypeListSyntax encodes and decodes any set of 1-2 letter types, in DER."""
    value = certs.DocumentTypeListSyntax({"version": 0, "doc_type_list": sorted(types)})
    der = value.dump()
    again = certs.DocumentTypeListSyntax.load(der, strict=True)
    assert set(again["doc_type_list"].native) == types
    assert again.dump(force=True) == der


@given(st.binary(min_size=16, max_size=16))
def test_serial_is_positive_and_short(random_bytes: bytes) -> None:
    """A serial from 16 random octets is positive and at most 16 octets (or refused when zero)."""
    try:
        serial = certs.serial_from_random(random_bytes)
    except CertificateError:
        assert int.from_bytes(random_bytes, "big") >> 1 == 0
        return
    assert 0 < serial < 2**127
