"""Card-verifiable certificates (BSI TR-03110-3 App. C): the BSI worked example's chain, our
own chains checked by openpace's cvc-print, and the decoder's refusals."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from applets.emrtd import cvc, eac_oids
from applets.emrtd.cvc import CHAT, ISRights, Reference, Role
from common import curves

EAC = Path(__file__).resolve().parent.parent / "vectors" / "eac"
BSI = EAC / "bsi-worked-example-certs"
WORKED = json.loads((EAC / "vectors.json").read_text())["bsi_eac_worked_example_v1_01_ecdh"]
SHA256 = eac_oids.ID_TA_ECDSA_SHA_256


def bsi(name: str) -> cvc.CVCertificate:
    return cvc.CVCertificate.decode((BSI / name).read_bytes())


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    return b"\x04" + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def issue(signer_key, car: str, subject_key, chr_: str, chat: CHAT, effective: date,
          expiry: date, curve: curves.Curve | None = None) -> cvc.CVCertificate:
    """A certificate for ``subject_key`` signed by ``signer_key`` (domain parameters when
    ``curve`` is given, as a CVCA certificate carries them)."""
    domain = cvc.DomainParameters.from_curve(curve) if curve else None
    body = cvc.CertificateBody(Reference.parse(car), cvc.PublicKey(SHA256, point(subject_key),
                               domain), Reference.parse(chr_), chat, effective, expiry)
    return cvc.sign_body(body, cvc.software_signer(signer_key, SHA256))


def cvc_print(path: Path, trust_dir: Path) -> str:
    """cvc-print's description of the certificate at ``path`` (stdout)."""
    done = subprocess.run(["cvc-print", "--cvc", str(path), "--cvc-dir", str(trust_dir)],
                          capture_output=True, text=True, timeout=10, check=True)
    return done.stdout


def test_bsi_certificates_round_trip_byte_exact():
    """The three BSI certificates decode and encode back to the same bytes."""
    for path in BSI.iterdir():
        assert cvc.CVCertificate.decode(path.read_bytes()).encode() == path.read_bytes()


def test_bsi_files_are_the_worked_example_certificates():
    """The certificate files are the ones vectors.json quotes from the worked example."""
    for name, key in (("DECVCAAT00001", "cvca_cert"), ("DETESTDVDE019", "dv_cert"),
                      ("DETESTATDE019", "ta_cert")):
        assert (BSI / name).read_bytes() == bytes.fromhex(WORKED[key])


def test_bsi_certificate_fields():
    """CAR/CHR, dates, CHATs, algorithm and curve are the worked example's."""
    cvca, dv, term = bsi("DECVCAAT00001"), bsi("DETESTDVDE019"), bsi("DETESTATDE019")
    assert (str(cvca.body.car), str(cvca.body.chr)) == ("DECVCAAT00001", "DECVCAAT00001")
    assert (str(dv.body.car), str(dv.body.chr)) == ("DECVCAAT00001", "DETESTDVDE019")
    assert (str(term.body.car), str(term.body.chr)) == ("DETESTDVDE019", "DETESTATDE019")
    assert dv.body.chr == Reference("DE", "TESTDV", "DE019")
    assert (cvca.body.effective, cvca.body.expiry) == (date(2010, 9, 30), date(2011, 9, 25))
    assert (term.body.effective, term.body.expiry) == (date(2010, 9, 30), date(2010, 10, 30))
    assert cvca.body.chat == CHAT(eac_oids.ID_IS, b"\xc3")
    assert (cvca.body.chat.role, cvca.body.chat.rights) == (Role.CVCA, ISRights.DG3 | ISRights.DG4)
    assert dv.body.chat.role is Role.DV_DOMESTIC and term.body.chat.role is Role.TERMINAL
    assert dv.body.chat.oid == f"{eac_oids.ID_ROLES}.2" and dv.body.chat.rights is ISRights.NONE
    assert cvca.body.public_key.oid == eac_oids.ID_TA_ECDSA_SHA_512
    assert cvca.body.public_key.domain is not None
    assert cvca.body.public_key.domain.curve() is curves.BRAINPOOL_P512R1
    assert dv.body.public_key.domain is None and cvca.body.profile == 0


def test_bsi_chain_verifies():
    """CVCA self-signed, DV signed by the CVCA, terminal signed by the DV."""
    cvca, dv, term = bsi("DECVCAAT00001"), bsi("DETESTDVDE019"), bsi("DETESTATDE019")
    curve = curves.BRAINPOOL_P512R1
    cvc.verify(cvca, cvca.body.public_key.point, curve)
    cvc.verify(dv, cvca.body.public_key.point, curve)
    cvc.verify(term, dv.body.public_key.point, curve)
    with pytest.raises(cvc.SignatureError):
        cvc.verify(term, cvca.body.public_key.point, curve)


@pytest.mark.parametrize("curve", [curves.BRAINPOOL_P256R1, curves.SECP256R1],
                         ids=lambda c: c.label)
def test_built_chain_parses_and_verifies_in_cvc_print(curve, tmp_path):
    """A CVCA (with domain parameters), a DV and an IS we build are read and verified by
    cvc-print and by our own verifier."""
    keys = [ec.generate_private_key(curve.crypto_curve()) for _ in range(3)]
    today = date.today()
    start, end = today - timedelta(days=30), today + timedelta(days=365)
    chain = {
        "VNCVCA00001": issue(keys[0], "VNCVCA00001", keys[0], "VNCVCA00001",
                             CHAT.inspection_system(Role.CVCA, ISRights.DG3 | ISRights.DG4),
                             start, end + timedelta(days=365), curve),
        "VNDVMPS0001": issue(keys[0], "VNCVCA00001", keys[1], "VNDVMPS0001",
                             CHAT.inspection_system(Role.DV_DOMESTIC, ISRights.DG3), start, end),
        "VNISHN00001": issue(keys[1], "VNDVMPS0001", keys[2], "VNISHN00001",
                             CHAT.inspection_system(Role.TERMINAL, ISRights.DG3), start, end),
    }
    trust = tmp_path / "trust"
    trust.mkdir()
    for name, cert in chain.items():
        (tmp_path / name).write_bytes(cert.encode())
        (trust / name).write_bytes(cert.encode())
        text = cvc_print(tmp_path / name, trust)
        assert f"CHR: {name}" in text and f"Effective Date: {start.isoformat()}" in text
        assert "certificate verified" in text
    assert "CVCA certificate" in cvc_print(tmp_path / "VNCVCA00001", trust)
    assert "CAR: VNCVCA00001" in cvc_print(tmp_path / "VNDVMPS0001", trust)
    is_text = cvc_print(tmp_path / "VNISHN00001", trust)
    assert "Inspection system" in is_text and "Terminal certificate" in is_text
    assert "Read fingerprint" in is_text and "Read iris" not in is_text
    assert f"Expiration Date: {end.isoformat()}" in is_text
    cvc.verify(chain["VNDVMPS0001"], point(keys[0]), curve)
    cvc.verify(chain["VNISHN00001"], point(keys[1]), curve)


def test_tampered_signature_refused_by_us_and_cvc_print(tmp_path):
    """A flipped signature bit fails our verifier and cvc-print's."""
    key = ec.generate_private_key(ec.SECP256R1())
    today = date.today()
    cert = issue(key, "VNCVCA00001", key, "VNCVCA00001", CHAT.inspection_system(Role.CVCA),
                 today, today + timedelta(days=90), curves.SECP256R1)
    bad = replace(cert, signature=cert.signature[:-1] + bytes([cert.signature[-1] ^ 1]))
    with pytest.raises(cvc.SignatureError):
        cvc.verify(bad, point(key), curves.SECP256R1)
    (tmp_path / "VNCVCA00001").write_bytes(bad.encode())
    assert "certificate not verified" in cvc_print(tmp_path / "VNCVCA00001", tmp_path)


def test_sign_body_with_an_hsm_style_signer():
    """sign_body takes any callable returning r ‖ s and refuses one that returns odd bytes."""
    body = bsi("DETESTDVDE019").body
    assert cvc.sign_body(body, lambda message: bytes(128)).signature == bytes(128)
    with pytest.raises(cvc.CVCError) as caught:
        cvc.sign_body(body, lambda message: b"\x01")
    assert caught.value.field == "signature"


def test_plain_and_der_signatures_convert_both_ways():
    """r ‖ s padded to the field size and DER ECDSA-Sig-Value convert into each other."""
    plain = bytes(31) + b"\x05" + bytes(31) + b"\x07"
    assert cvc.plain_signature(cvc.der_signature(plain), 32) == plain


def test_dates_are_one_digit_per_byte():
    """2010-09-30 is 01 00 00 09 03 00; years outside 2000–2099 and non-dates are refused."""
    assert cvc.encode_date(date(2010, 9, 30)) == bytes.fromhex("010000090300")
    assert cvc.decode_date(bytes.fromhex("010000090300"), "x") == date(2010, 9, 30)
    with pytest.raises(cvc.CVCError):
        cvc.encode_date(date(1999, 12, 31))
    for bad in ("0100000903", "010001030300", "0A0000090300"):
        with pytest.raises(cvc.CVCError):
            cvc.decode_date(bytes.fromhex(bad), "effective date")


def test_references_are_country_mnemonic_sequence():
    """CAR/CHR split into 2-letter country, mnemonic and 5-character sequence."""
    assert Reference.parse("DECVCAAT00001") == Reference("DE", "CVCAAT", "00001")
    for bad in ("D1CVCA00001", "DE00001", "DECVCAAT0000!", "DEMNEMONIC1200001"):
        with pytest.raises(cvc.CVCError):
            Reference.parse(bad)


def _mutate(data: bytes, old: str, new: str) -> bytes:
    raw = data.hex().upper()
    assert old in raw
    return bytes.fromhex(raw.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new", "field"), [
    ("5F290100", "5F290101", "profile identifier"),
    ("5F2506010000090300", "5F25060100000903FF", "effective date"),
    ("5F24060100010003", "5F24060100011303", "expiry date"),
    ("5F200D4445544553544456444530313", "5F210D4445544553544456444530313", "CHR"),
    ("420D4445435643", "420D4431435643", "CAR"),
])
def test_decode_errors_name_the_field(old, new, field):
    """Malformed elements are refused with an error that names the element."""
    with pytest.raises(cvc.CVCError) as caught:
        cvc.CVCertificate.decode(_mutate((BSI / "DETESTDVDE019").read_bytes(), old, new))
    assert caught.value.field == field


def test_structural_refusals():
    """Truncation, trailing bytes, oversize input, non-canonical lengths and domain
    parameters outside a CVCA certificate are all refused."""
    raw = (BSI / "DETESTDVDE019").read_bytes()
    cvca = bsi("DECVCAAT00001")
    for data in (raw[:-1], raw + b"\x00", bytes(cvc.MAX_CERTIFICATE + 1),
                 _mutate(raw, "5F290100", "5F29810100")):
        with pytest.raises(cvc.CVCError):
            cvc.CVCertificate.decode(data)
    dv = bsi("DETESTDVDE019")
    with_domain = replace(dv.body, public_key=cvca.body.public_key)
    with pytest.raises(cvc.CVCError) as caught:
        with_domain.encode()
    assert caught.value.field == "public key"


@settings(max_examples=40, deadline=None)
@given(mnemonic=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=9),
       sequence=st.text("0123456789", min_size=5, max_size=5),
       role=st.sampled_from(list(Role)[1:]), rights=st.integers(0, 3),
       effective=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
       extensions=st.none() | st.binary(max_size=40))
def test_body_round_trip_property(mnemonic, sequence, role, rights, effective, extensions):
    """Any well-formed non-CVCA body decodes back to the same value and bytes."""
    body = cvc.CertificateBody(
        Reference("VN", mnemonic, sequence), cvc.PublicKey(SHA256, b"\x04" + bytes(64)),
        Reference("DE", mnemonic, sequence), CHAT.inspection_system(role, ISRights(rights)),
        effective, effective, extensions)
    assert cvc.CertificateBody.decode(body.encode()) == body
