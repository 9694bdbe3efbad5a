"""The factory's registry keys on a real SoftHSM token: made once and kept, their private
halves never leaving the HSM; a batch `openssl cms -encrypt`ed to the ENC certificate opens
through the HSM; the results we sign verify with `openssl cms -verify`."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pkcs11 import Attribute, ObjectClass

from hsm.cmsfile import open_signed
from hsm.errors import CertificateError
from hsm.factory import (
    ENC_LABEL,
    SIGN_LABEL,
    FactoryKeys,
    ensure_factory_keys,
    factory_certificates,
    factory_decrypt,
    sign_results,
)
from hsm.pkcs11 import HSM
from hsm.softhsm import SoftHSMToken, throwaway_token
from tests.hsm.conftest import TOKEN

pytestmark = pytest.mark.softhsm
NOW = datetime.now(UTC).replace(microsecond=0)
CONTENT = b'{"application":"A-0001","chip":"04A1B2C3","state":"issued"}\n'


def _openssl(*args: str | Path) -> bytes:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False,
                          timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _pem(path: Path, der: bytes) -> Path:
    path.write_bytes(pem.armor("CERTIFICATE", der))
    return path


@pytest.fixture(scope="module")
def line_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SoftHSMToken,
                                                                           FactoryKeys]]:
    """A line token whose factory keys are made once for the module (RSA-3072 is slow); no
    HSM stays open between tests, so a test may still take a fresh token of its own."""
    with throwaway_token(tmp_path_factory.mktemp("line") / "data", TOKEN) as token:
        with HSM(token.module, token.label, token.pin) as opened:
            keys = ensure_factory_keys(opened, line="L1", now=NOW)
        yield token, keys


@pytest.fixture
def line_hsm(line_token: tuple[SoftHSMToken, FactoryKeys]) -> Iterator[HSM]:
    """The line token, opened for one test."""
    token = line_token[0]
    with HSM(token.module, token.label, token.pin) as opened:
        yield opened


@pytest.fixture
def keys(line_token: tuple[SoftHSMToken, FactoryKeys]) -> FactoryKeys:
    """The factory keys of line L1."""
    return line_token[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry signer (self-signed ECDSA P-256) and a batch it signed, as files."""
    folder = tmp_path_factory.mktemp("registry")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", folder / "reg.key", "-out", folder / "reg.pem", "-days", "30",
             "-subj", "/O=Registry/CN=batch signer")
    (folder / "batch.jsonl").write_bytes(CONTENT)
    _openssl("cms", "-sign", "-nodetach", "-binary", "-outform", "DER", "-in",
             folder / "batch.jsonl", "-signer", folder / "reg.pem", "-inkey", folder / "reg.key",
             "-out", folder / "batch.p7m")
    return folder


def _objects(hsm: HSM, object_class: ObjectClass, label: str) -> int:
    with hsm.session() as session:
        return len(list(session.get_objects({Attribute.CLASS: object_class,
                                             Attribute.LABEL: label})))


def test_the_keys_are_made_once_and_kept(line_hsm: HSM, keys: FactoryKeys) -> None:
    """ensure_factory_keys is idempotent: the same certificates, one object of each kind."""
    again = ensure_factory_keys(line_hsm, line="L1", now=NOW + timedelta(days=1))
    assert again == keys == factory_certificates(line_hsm)
    for label in (SIGN_LABEL, ENC_LABEL):
        for kind in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY, ObjectClass.CERTIFICATE):
            assert _objects(line_hsm, kind, label) == 1, (label, kind)


def test_the_certificates_say_who_and_what_for(keys: FactoryKeys) -> None:
    """SIGN: self-signed P-256, digitalSignature; ENC: RSA-3072, keyEncipherment, issued by
    SIGN; both five years, cardline, a positive 63-bit serial."""
    sign = x509.load_der_x509_certificate(keys.sign_certificate)
    enc = x509.load_der_x509_certificate(keys.enc_certificate)
    assert sign.subject.rfc4514_string() == "CN=cardline factory signing L1,O=cardline"
    assert enc.subject.rfc4514_string() == "CN=cardline factory encryption L1,O=cardline"
    sign.verify_directly_issued_by(sign)
    enc.verify_directly_issued_by(sign)
    assert isinstance(sign.public_key(), ec.EllipticCurvePublicKey)
    enc_key = enc.public_key()
    assert isinstance(enc_key, rsa.RSAPublicKey) and enc_key.key_size == 3072
    sign_usage = sign.extensions.get_extension_for_class(x509.KeyUsage).value
    enc_usage = enc.extensions.get_extension_for_class(x509.KeyUsage).value
    assert sign_usage.digital_signature and not sign_usage.key_encipherment
    assert enc_usage.key_encipherment and not enc_usage.digital_signature
    for certificate in (sign, enc):
        assert 0 < certificate.serial_number < 2**63
        life = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert life == timedelta(days=5 * 365) and certificate.not_valid_before_utc == NOW


def test_the_private_keys_never_leave_the_hsm(line_hsm: HSM, keys: FactoryKeys) -> None:
    """Both private keys are sensitive and never extractable; ENC decrypts and never signs."""
    for label in (SIGN_LABEL, ENC_LABEL):
        attributes = line_hsm.key_attributes(label)
        assert attributes.sensitive and attributes.always_sensitive and attributes.local
        assert not attributes.extractable and attributes.never_extractable
    assert line_hsm.key_attributes(SIGN_LABEL).can_sign
    assert not line_hsm.key_attributes(ENC_LABEL).can_sign
    with line_hsm.session() as session:
        enc = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ENC_LABEL)
        assert enc[Attribute.DECRYPT] and not enc[Attribute.UNWRAP]


@pytest.mark.parametrize("options", [
    ("-aes-256-cbc",),
    ("-aes-128-cbc", "-keyopt", "rsa_padding_mode:oaep"),
    ("-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256"),
], ids=["pkcs1", "oaep-sha1", "oaep-sha256"])
def test_a_batch_encrypted_to_the_factory_opens_through_the_hsm(
        line_hsm: HSM, keys: FactoryKeys, registry: Path, tmp_path: Path,
        options: tuple[str, ...]) -> None:
    """`openssl cms -encrypt` to the exported ENC certificate decrypts in the HSM and opens."""
    recipient = _pem(tmp_path / "factory-enc.pem", keys.enc_certificate)
    data = _openssl("cms", "-encrypt", "-binary", "-outform", "DER",
                    "-in", registry / "batch.p7m", "-recip", recipient, *options)
    trust = [bytes(pem.unarmor((registry / "reg.pem").read_bytes())[2])]
    opened = open_signed(data, trust=trust, now=datetime.now(UTC),
                         decrypt=factory_decrypt(line_hsm, keys))
    assert opened.content == CONTENT and opened.encrypted
    assert opened.signer_subject == "CN=batch signer,O=Registry"


def test_openssl_verifies_the_results_we_sign(line_hsm: HSM, keys: FactoryKeys,
                                              tmp_path: Path) -> None:
    """sign_results verifies with `openssl cms -verify -CAfile <SIGN certificate>`."""
    data = sign_results(line_hsm, keys, CONTENT, NOW)
    (tmp_path / "results.p7m").write_bytes(data)
    out = _openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "results.p7m",
                   "-CAfile", _pem(tmp_path / "factory-sign.pem", keys.sign_certificate),
                   "-purpose", "any")
    assert out == CONTENT
    opened = open_signed(data, trust=[keys.sign_certificate], now=NOW)
    assert opened.signed_at == NOW
    assert opened.signer_sha256 == x509.load_der_x509_certificate(
        keys.sign_certificate).fingerprint(hashes.SHA256()).hex()


def test_a_fresh_token_has_no_factory_certificates(hsm: HSM) -> None:
    """Before ensure_factory_keys, factory_certificates says None."""
    assert factory_certificates(hsm) is None


def test_a_certificate_naming_another_key_is_refused(hsm: HSM, tmp_path: Path) -> None:
    """A stale certificate lying under FACTORY-SIGN, of another key, is refused, not used."""
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", tmp_path / "k.pem", "-out", tmp_path / "c.pem", "-subj", "/CN=stale")
    hsm.store_certificate(SIGN_LABEL, bytes(pem.unarmor((tmp_path / "c.pem").read_bytes())[2]))
    with pytest.raises(CertificateError, match="names another key"):
        ensure_factory_keys(hsm, line="L1", now=NOW)
