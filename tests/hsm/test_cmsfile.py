"""Registry files opened by hsm.cmsfile: made by the real `openssl cms` in each variant the
registry may use, opened to exactly their content; each way a file can be wrong refused with
its own code and sentence; and the files we sign verified by `openssl cms -verify`."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms, pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from hsm.cmsfile import Decrypt, KeyPadding, Opened, Refused, open_signed
from hsm.cmssign import sign_enveloping

NOW = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)  # after any cert is made
CONTENT = (b'{"application":"A-0001","name":"Nguy\xe1\xbb\x85n V\xc4\x83n An"}\r\n'
           b'{"application":"A-0002","name":"Tr\xe1\xba\xa7n Th\xe1\xbb\x8b B\xc3\xacnh"}\n')
SIGNER_EXT = ("keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\n"
              "authorityKeyIdentifier=keyid\n")
_HASHES: dict[str, type[hashes.SHA1 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


def _openssl(*args: str | Path) -> bytes:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, check=False,
                          timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def _der(path: Path) -> bytes:
    return bytes(pem.unarmor(path.read_bytes())[2])


@dataclass(frozen=True)
class PKI:
    """The registry's CAs and signers and two factories' recipient keys, as files."""

    folder: Path

    def cert(self, name: str) -> bytes:
        return _der(self.folder / f"{name}.pem")

    def sign(self, signer: str, *options: str, content: bytes = CONTENT) -> bytes:
        """`openssl cms -sign -nodetach` over ``content`` by ``signer``."""
        source = self.folder / "batch.jsonl"
        source.write_bytes(content)
        return _openssl("cms", "-sign", "-nodetach", "-binary", "-outform", "DER", "-in", source,
                        "-signer", self.folder / f"{signer}.pem",
                        "-inkey", self.folder / f"{signer}.key", *options)

    def encrypt(self, p7m: bytes, recipient: str, *options: str) -> bytes:
        """`openssl cms -encrypt` of a whole file to ``recipient``."""
        source = self.folder / "batch.p7m"
        source.write_bytes(p7m)
        return _openssl("cms", "-encrypt", "-binary", "-outform", "DER", "-in", source,
                        "-recip", self.folder / f"{recipient}.pem", *options)

    def decrypt(self, recipient: str = "factory") -> Decrypt:
        """A recipient key held in software, standing in for the HSM."""
        key = serialization.load_pem_private_key(
            (self.folder / f"{recipient}.key").read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey)

        def unwrap(encrypted: bytes, scheme: KeyPadding) -> bytes:
            if scheme == "pkcs1":
                return key.decrypt(encrypted, padding.PKCS1v15())
            digest = _HASHES[scheme[1]]()
            return key.decrypt(encrypted, padding.OAEP(padding.MGF1(digest), digest, None))

        return Decrypt(self.cert(recipient), unwrap)


def _issue(folder: Path, name: str, ca: str, key: str, extensions: str = SIGNER_EXT) -> None:
    (folder / f"{name}.ext").write_text(extensions)
    _openssl("req", "-new", "-newkey", key, "-nodes", "-keyout", folder / f"{name}.key",
             "-out", folder / f"{name}.csr", "-subj", f"/O=Registry/CN={name}")
    _openssl("x509", "-req", "-in", folder / f"{name}.csr", "-CA", folder / f"{ca}.pem",
             "-CAkey", folder / f"{ca}.key", "-CAcreateserial",
             "-days", "30", "-extfile", folder / f"{name}.ext", "-out", folder / f"{name}.pem")


def _self_signed(folder: Path, name: str, key: str, extra: tuple[str, ...] = ()) -> None:
    _openssl("req", "-x509", "-newkey", key, "-nodes", "-keyout", folder / f"{name}.key",
             "-out", folder / f"{name}.pem", "-subj", f"/O=Registry/CN={name}", "-days", "365",
             *extra)


def _timed(folder: Path, name: str, ca: str, window: tuple[datetime, datetime],
           is_ca: bool = False) -> None:
    """A certificate with a chosen validity (openssl 3.0 cannot back-date), via cryptography."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_cert = x509.load_der_x509_certificate(_der(folder / f"{ca}.pem")) if ca else None
    issuer_key = serialization.load_pem_private_key((folder / f"{ca}.key").read_bytes(),
                                                    None) if ca else key
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Registry"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(window[0]).not_valid_after(window[1])
               .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True))
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """Made once per module: keys are the slow part."""
    folder = tmp_path_factory.mktemp("pki")
    ca_ext = ("-addext", "basicConstraints=critical,CA:true",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    _self_signed(folder, "registry-ca", "rsa:2048", ca_ext)
    _self_signed(folder, "other-ca", "rsa:2048", ca_ext)
    p256 = folder / "p256.param"
    p256.write_bytes(_openssl("ecparam", "-name", "prime256v1"))
    p384 = folder / "p384.param"
    p384.write_bytes(_openssl("ecparam", "-name", "secp384r1"))
    _issue(folder, "ec256", "registry-ca", f"ec:{p256}")
    _issue(folder, "ec384", "registry-ca", f"ec:{p384}")
    _issue(folder, "rsa", "registry-ca", "rsa:2048")
    _issue(folder, "stranger", "other-ca", f"ec:{p256}")
    _timed(folder, "expired", "registry-ca", (NOW - timedelta(days=400), NOW - timedelta(days=3)))
    _timed(folder, "future", "registry-ca", (NOW + timedelta(days=2), NOW + timedelta(days=300)))
    _timed(folder, "old-ca", "", (NOW - timedelta(days=900), NOW - timedelta(days=1)), True)
    _timed(folder, "orphan", "old-ca", (NOW - timedelta(days=30), NOW + timedelta(days=30)))
    _self_signed(folder, "factory", "rsa:2048")
    _self_signed(folder, "other-factory", "rsa:2048")
    return PKI(folder)


def _open(pki: PKI, data: bytes, **kwargs: object) -> Opened:
    options: dict[str, object] = {"trust": [pki.cert("registry-ca")], "now": NOW, **kwargs}
    return open_signed(data, **options)  # type: ignore[arg-type]


# --- what opens ------------------------------------------------------------------------------

SIGNED = {
    "ecdsa-p256-sha256": ("ec256", ()),
    "ecdsa-p384-sha384": ("ec384", ("-md", "sha384")),
    "ecdsa-p256-sha512": ("ec256", ("-md", "sha512")),
    "rsa-pkcs1-sha256": ("rsa", ()),
    "rsa-pkcs1-sha512": ("rsa", ("-md", "sha512")),
    "rsa-pss-sha256": ("rsa", ("-keyopt", "rsa_padding_mode:pss")),
    "rsa-pss-sha384": ("rsa", ("-md", "sha384", "-keyopt", "rsa_padding_mode:pss")),
    "ecdsa-noattr": ("ec256", ("-noattr",)),
    "rsa-pkcs1-noattr": ("rsa", ("-noattr",)),
    "rsa-pss-noattr": ("rsa", ("-noattr", "-keyopt", "rsa_padding_mode:pss")),
}


@pytest.mark.parametrize("variant", sorted(SIGNED))
def test_openssl_signed_file_opens_to_its_exact_content(pki: PKI, variant: str) -> None:
    """Each signing variant of `openssl cms -sign -nodetach` opens to exactly the signed bytes."""
    signer, options = SIGNED[variant]
    opened = _open(pki, pki.sign(signer, *options))
    certificate = x509.load_der_x509_certificate(pki.cert(signer))
    assert opened.content == CONTENT and not opened.encrypted
    assert opened.signer_subject == f"CN={signer},O=Registry"
    assert opened.signer_serial == format(certificate.serial_number, "x")
    assert opened.signer_sha256 == certificate.fingerprint(hashes.SHA256()).hex()
    if "-noattr" in options:
        assert opened.signed_at is None
    else:
        assert opened.signed_at is not None
        assert abs(opened.signed_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_nocerts_takes_the_signer_certificate_from_the_trust_list(pki: PKI) -> None:
    """With -nocerts the signer's certificate comes from the trust list."""
    data = pki.sign("ec256", "-nocerts")
    opened = _open(pki, data, trust=[pki.cert("registry-ca"), pki.cert("ec256")])
    assert opened.content == CONTENT and opened.signer_subject == "CN=ec256,O=Registry"


def test_a_trusted_signer_certificate_needs_no_ca(pki: PKI) -> None:
    """A signer certificate that is itself in the trust list is trusted."""
    assert _open(pki, pki.sign("stranger"), trust=[pki.cert("stranger")]).content == CONTENT


ENCRYPTED = {
    "aes-256-cbc-pkcs1": ("-aes-256-cbc",),
    "aes-128-cbc-pkcs1": ("-aes-128-cbc",),
    "aes-192-cbc-oaep-sha1": ("-aes-192-cbc", "-keyopt", "rsa_padding_mode:oaep"),
    "aes-256-cbc-oaep-sha256": ("-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep",
                                "-keyopt", "rsa_oaep_md:sha256"),
    "aes-128-cbc-keyid": ("-aes-128-cbc", "-keyid"),
}


@pytest.mark.parametrize("variant", sorted(ENCRYPTED))
def test_encrypted_file_decrypts_then_opens(pki: PKI, variant: str) -> None:
    """A signed file encrypted to the factory by `openssl cms -encrypt` opens to its content."""
    options = ENCRYPTED[variant]
    keyid = "-keyid" in options
    data = pki.encrypt(pki.sign("ec256"), "factory", *(o for o in options if o != "-keyid"))
    if keyid:  # -keyid must precede -recip to name the recipient by subjectKeyIdentifier
        source = pki.folder / "batch.p7m"
        data = _openssl("cms", "-encrypt", "-binary", "-outform", "DER", "-in", source,
                        "-keyid", "-recip", pki.folder / "factory.pem", "-aes-128-cbc")
        assert cms.ContentInfo.load(data)["content"]["recipient_infos"][0].chosen["rid"].name \
            == "subject_key_identifier"
    opened = _open(pki, data, decrypt=pki.decrypt())
    assert opened.content == CONTENT and opened.encrypted


# --- what is refused -------------------------------------------------------------------------

def _flip(data: bytes, at: int) -> bytes:
    at %= len(data)
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def _no_signer(pki: PKI) -> bytes:
    info = cms.ContentInfo.load(pki.sign("ec256"))
    info["content"]["signer_infos"] = []
    return bytes(info.dump(force=True))


def _two_signers(pki: PKI) -> bytes:
    return pki.sign("ec256", "-signer", str(pki.folder / "rsa.pem"),
                    "-inkey", str(pki.folder / "rsa.key"))


def _detached(pki: PKI) -> bytes:
    return _openssl("cms", "-sign", "-binary", "-outform", "DER", "-in",
                    pki.folder / "batch.jsonl", "-signer", pki.folder / "ec256.pem",
                    "-inkey", pki.folder / "ec256.key")


def _data_create(pki: PKI) -> bytes:
    return _openssl("cms", "-data_create", "-binary", "-outform", "DER", "-in",
                    pki.folder / "batch.jsonl")


def _tampered_content(pki: PKI) -> bytes:
    data = pki.sign("rsa")
    return _flip(data, data.index(CONTENT) + 7)


def _tampered_content_noattr(pki: PKI) -> bytes:
    data = pki.sign("ec256", "-noattr")
    return _flip(data, data.index(CONTENT) + 7)


Case = tuple[Callable[[PKI], bytes], dict[str, object], str, str]
REFUSALS: dict[str, Case] = {
    "empty": (lambda p: b"", {}, "not-cms", "the file is not signed: it is not a CMS file"),
    "garbage": (lambda p: b"\x30\x82\x01\x00garbage", {}, "not-cms",
                "it is not a CMS file (a DER ContentInfo)"),
    "plain file": (lambda p: CONTENT, {}, "not-cms", "it is not a CMS file"),
    "trailing bytes": (lambda p: p.sign("ec256") + b"\n", {}, "not-cms", "not a CMS file"),
    "oversized": (lambda p: p.sign("ec256"), {"max_bytes": 100}, "too-large",
                  "bytes, over the limit of 100 bytes"),
    "data_create": (_data_create, {}, "unsigned",
                    "the file is not signed: it holds plain data, not a CMS SignedData"),
    "detached": (_detached, {}, "detached",
                 "the signature is detached: the file carries no content"),
    "two signers": (_two_signers, {}, "signers", "the file has 2 signers; a signed file has "
                    "exactly one"),
    "no signer": (_no_signer, {}, "signers", "the file has no signers"),
    "certificate missing": (lambda p: p.sign("ec256", "-nocerts"), {}, "no-signer-certificate",
                            "the signer's certificate is neither in the file nor in the trust "
                            "list"),
    "untrusted": (lambda p: p.sign("stranger"), {}, "untrusted",
                  "the signer 'CN=stranger,O=Registry' is not trusted: neither a trust "
                  "certificate nor issued by one"),
    "issuer not in trust": (lambda p: p.sign("ec256"), {"trust_names": ["other-ca"]},
                            "untrusted", "is not trusted"),
    "expired": (lambda p: p.sign("expired"), {}, "signer-expired",
                f"the signer's certificate expired on {(NOW - timedelta(days=3)).date()}"),
    "not yet valid": (lambda p: p.sign("future"), {}, "signer-not-yet-valid",
                      "the signer's certificate is not valid until "
                      f"{(NOW + timedelta(days=2)).date()}"),
    "issuer expired": (lambda p: p.sign("orphan"), {"trust_names": ["registry-ca", "old-ca"]},
                       "trust-expired", "the trust certificate 'CN=old-ca,O=Registry' that "
                       f"issued the signer's expired on {(NOW - timedelta(days=1)).date()}"),
    "content tampered": (_tampered_content, {}, "tampered",
                         "the content was changed after signing (its digest is not the signed "
                         "one)"),
    "content tampered, no attributes": (_tampered_content_noattr, {}, "tampered",
                                        "the content was changed after signing (the signature "
                                        "does not verify)"),
    "signature tampered": (lambda p: _flip(p.sign("ec256"), -1), {}, "tampered",
                           "the content was changed after signing (the signature does not "
                           "verify)"),
    "rsa signature tampered": (lambda p: _flip(p.sign("rsa", "-keyopt",
                                                      "rsa_padding_mode:pss"), -1), {},
                               "tampered", "the signature does not verify"),
    "sha1": (lambda p: p.sign("rsa", "-md", "sha1"), {}, "algorithm",
             "the digest algorithm SHA-1 is not accepted (SHA-256, SHA-384 or SHA-512 only)"),
    "md5": (lambda p: p.sign("rsa", "-md", "md5"), {}, "algorithm",
            "the digest algorithm MD5 is not accepted"),
    "des3": (lambda p: p.encrypt(p.sign("ec256"), "factory", "-des3"), {"decrypt": "factory"},
             "algorithm", "the content encryption tripledes_3key is not supported (AES-CBC"),
    "other recipient": (lambda p: p.encrypt(p.sign("ec256"), "other-factory", "-aes-256-cbc"),
                        {"decrypt": "factory"}, "other-recipient",
                        "the file is encrypted to another recipient, not this factory's key "
                        "(serial "),
    "no decryption": (lambda p: p.encrypt(p.sign("ec256"), "factory", "-aes-256-cbc"), {},
                      "no-decryption", "the file is encrypted, and no decryption key was given"),
    "wrong key": (lambda p: p.encrypt(p.sign("ec256"), "factory", "-aes-256-cbc"),
                  {"decrypt": "factory-with-other-key"}, "undecryptable",
                  "the file could not be decrypted with this factory's key"),
    "encrypted plain file": (lambda p: p.encrypt(CONTENT, "factory", "-aes-128-cbc"),
                             {"decrypt": "factory"}, "unsigned",
                             "the decrypted file is not signed: it is not a CMS file"),
    "encrypted data_create": (lambda p: p.encrypt(_data_create(p), "factory", "-aes-128-cbc"),
                              {"decrypt": "factory"}, "unsigned",
                              "the file is not signed: it holds plain data"),
}


def _options(pki: PKI, given: dict[str, object]) -> dict[str, object]:
    options = dict(given)
    if "trust_names" in options:
        names = options.pop("trust_names")
        assert isinstance(names, list)
        options["trust"] = [pki.cert(name) for name in names]
    if options.get("decrypt") == "factory":
        options["decrypt"] = pki.decrypt()
    elif options.get("decrypt") == "factory-with-other-key":  # right certificate, wrong key
        options["decrypt"] = Decrypt(pki.cert("factory"), pki.decrypt("other-factory").unwrap)
    return options


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_wrong_file_is_refused_with_its_reason(pki: PKI, case: str) -> None:
    """Each way a file can be wrong is refused with its own code and sentence."""
    make, given, code, reason = REFUSALS[case]
    with pytest.raises(Refused) as refused:
        _open(pki, make(pki), **_options(pki, given))
    assert refused.value.code == code
    assert reason in str(refused.value)
    assert str(refused.value) == refused.value.reason


def test_no_refusal_carries_content(pki: PKI) -> None:
    """A refusal never quotes the content: the registry's data stays out of logs."""
    for case in ("content tampered", "plain file", "encrypted plain file", "detached"):
        make, given, _, _ = REFUSALS[case]
        with pytest.raises(Refused) as refused:
            _open(pki, make(pki), **_options(pki, given))
        assert b"A-0001" not in str(refused.value).encode() and "Nguy" not in str(refused.value)


# --- what we sign ----------------------------------------------------------------------------

def _own_certificate(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cardline factory signing L1")])
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(NOW - timedelta(days=1))
                   .not_valid_after(NOW + timedelta(days=365))
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                                False, False), critical=True)
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.DER)


def _signer(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
            digest: hashes.HashAlgorithm) -> Callable[[bytes], bytes]:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return lambda data: key.sign(data, ec.ECDSA(digest))
    pss = padding.PSS(padding.MGF1(digest), digest.digest_size)
    return lambda data: key.sign(data, pss, digest)


@pytest.mark.parametrize(("kind", "digest"), [("ec", "sha256"), ("ec", "sha384"),
                                              ("rsa", "sha256")])
def test_openssl_verifies_what_we_sign(tmp_path: Path, kind: str, digest: str) -> None:
    """sign_enveloping's file verifies with `openssl cms -verify -CAfile` and opens again."""
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else \
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = _own_certificate(key)
    at = NOW - timedelta(hours=1)
    data = sign_enveloping(CONTENT, certificate=certificate, at=at, digest=digest,
                           sign=_signer(key, _HASHES[digest]()))
    (tmp_path / "own.pem").write_bytes(pem.armor("CERTIFICATE", certificate))
    (tmp_path / "results.p7m").write_bytes(data)
    out = _openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "results.p7m",
                   "-CAfile", tmp_path / "own.pem", "-purpose", "any")
    assert out == CONTENT
    opened = open_signed(data, trust=[certificate], now=NOW)
    assert opened.content == CONTENT and opened.signed_at == at


def test_openssl_refuses_what_we_sign_once_tampered(tmp_path: Path) -> None:
    """A byte changed in our signed content fails `openssl cms -verify` and open_signed."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _own_certificate(key)
    data = sign_enveloping(CONTENT, certificate=certificate, at=NOW,
                           sign=_signer(key, hashes.SHA256()))
    data = _flip(data, data.index(CONTENT) + 3)
    (tmp_path / "own.pem").write_bytes(pem.armor("CERTIFICATE", certificate))
    (tmp_path / "results.p7m").write_bytes(data)
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                           str(tmp_path / "results.p7m"), "-CAfile", str(tmp_path / "own.pem"),
                           "-purpose", "any"], capture_output=True, check=False, timeout=60)
    assert done.returncode != 0
    with pytest.raises(Refused, match="changed after signing"):
        open_signed(data, trust=[certificate], now=NOW)
