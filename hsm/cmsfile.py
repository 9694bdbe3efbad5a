"""Signed files across the registry boundary: CMS SignedData (RFC 5652 §5) with the content
inside, optionally in an EnvelopedData (RFC 5652 §6) to the factory's key-transport key.

Pure: bytes in, values out. The factory's RSA private key stays in the HSM and is reached
through :class:`Decrypt` (our own signed files are :mod:`hsm.cmssign`'s). Every
refusal is a :class:`Refused` carrying a code and a sentence a person can act on, never a byte
of the content.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from asn1crypto import cms, x509
from cryptography import x509 as cx509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7

from hsm.errors import HSMError, HSMUnavailable

MAX_BYTES = 64 * 1024 * 1024
KeyPadding = Literal["pkcs1"] | tuple[Literal["oaep"], str]
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
_NAMES = {"sha1": "SHA-1", "md5": "MD5", "md2": "MD2", "sha224": "SHA-224"}
_OAEP_HASHES = ("sha1", "sha256", "sha384", "sha512")  # RFC 8017 §7.1: SHA-1 is sound in OAEP
_AES_CBC = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}  # RFC 3565 §2.2
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)


class Refused(HSMError):  # noqa: N818 -- public name; says what happened
    """A file was not opened; ``code`` says which rule, ``reason`` says it to a person.

    Codes: ``not-cms``, ``too-large``, ``unsigned``, ``detached``, ``signers``,
    ``no-signer-certificate``, ``untrusted``, ``signer-expired``, ``signer-not-yet-valid``,
    ``trust-expired``, ``trust-not-yet-valid``, ``tampered``, ``algorithm``,
    ``other-recipient``, ``no-decryption``, ``undecryptable``.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Decrypt:
    """The factory's key-transport key: its certificate, and ``unwrap(encrypted_key,
    padding)`` that RSA-decrypts in the HSM (raising :class:`HSMError` or ``ValueError`` when
    the key does not decrypt)."""

    certificate: bytes
    unwrap: Callable[[bytes, KeyPadding], bytes]


@dataclass(frozen=True)
class Opened:
    """The content of a signed file, and who signed it."""

    content: bytes
    signer_subject: str  # RFC 4514
    signer_serial: str  # hex
    signer_sha256: str  # hex SHA-256 of the signer certificate's DER
    signed_at: datetime | None  # the signingTime attribute (RFC 5652 §11.3), when present
    encrypted: bool

    @property
    def signer(self) -> str:
        """Who signed, in one line: subject, serial and certificate SHA-256 (the journal's
        record of a received file; a certificate's data, no person's)."""
        return f"{self.signer_subject} serial {self.signer_serial} sha256 {self.signer_sha256}"


# --- opening ---------------------------------------------------------------------------------

def open_signed(data: bytes, *, trust: Sequence[bytes], now: datetime,
                decrypt: Decrypt | None = None, max_bytes: int = MAX_BYTES) -> Opened:
    """The content of a CMS SignedData file (decrypted first when it is an EnvelopedData),
    once its one signer is a ``trust`` certificate or issued by one, valid at ``now`` (aware),
    and its signature holds; :class:`Refused` otherwise."""
    if len(data) > max_bytes:
        raise Refused("too-large", f"the file is {len(data)} bytes, over the limit of "
                      f"{max_bytes} bytes")
    info = _content_info(data, "not-cms", "the file is not signed: it is not a CMS file (a "
                         "DER ContentInfo)")
    encrypted = info["content_type"].native == "enveloped_data"
    if encrypted:
        plain = _decrypted(info["content"], decrypt)
        info = _content_info(plain, "unsigned", "the decrypted file is not signed: it is not a "
                             "CMS file")
    signed = _signed_data(info)
    signer = signed["signer_infos"][0]
    digest, scheme = _algorithms(signer)
    certificate_der = _signer_certificate(signed, signer["sid"], trust)
    certificate = _load(certificate_der, "not-cms", "the signer's certificate is malformed")
    _check_trust(certificate, certificate_der, trust, now)
    _check_validity(certificate, now, "signer", "the signer's certificate")
    encapsulated = signed["encap_content_info"]
    content = bytes(encapsulated["content"])  # the octets, whatever the eContentType
    signed_at = _check_signature(signer, content, encapsulated["content_type"].dotted,
                                 certificate.public_key(), digest, scheme)
    return Opened(content, certificate.subject.rfc4514_string(),
                  format(certificate.serial_number, "x"),
                  hashlib.sha256(certificate_der).hexdigest(), signed_at, encrypted)


def _content_info(data: bytes, code: str, reason: str) -> cms.ContentInfo:
    try:
        info = cms.ContentInfo.load(data, strict=True)
        info.native  # noqa: B018 -- forces asn1crypto's lazy parser over every field
    except _PARSE_ERRORS as exc:
        raise Refused(code, reason) from exc
    return info


def _signed_data(info: cms.ContentInfo) -> cms.SignedData:
    kind = info["content_type"].native
    if kind != "signed_data":
        held = "plain data" if kind == "data" else kind
        raise Refused("unsigned", f"the file is not signed: it holds {held}, not a CMS "
                      "SignedData")
    signed = info["content"]
    if signed["encap_content_info"]["content"].native is None:
        raise Refused("detached", "the signature is detached: the file carries no content")
    count = len(signed["signer_infos"])
    if count != 1:
        raise Refused("signers", f"the file has {count or 'no'} signer{'s' * (count != 1)}; "
                      "a signed file has exactly one")
    return signed


def _signer_certificate(signed: cms.SignedData, sid: cms.SignerIdentifier,
                        trust: Sequence[bytes]) -> bytes:
    carried = [] if signed["certificates"].native is None else \
        [bytes(c.chosen.dump()) for c in signed["certificates"] if c.name == "certificate"]
    for der in [*carried, *trust]:
        try:
            if _identifies(sid, x509.Certificate.load(der)):
                return der
        except _PARSE_ERRORS:
            continue  # a malformed candidate identifies nobody
    raise Refused("no-signer-certificate", "the signer's certificate is neither in the file "
                  "nor in the trust list")


def _identifies(sid: cms.SignerIdentifier | cms.RecipientIdentifier,
                certificate: x509.Certificate) -> bool:
    """RFC 5652 §5.3 / §6.2.1: issuerAndSerialNumber, or subjectKeyIdentifier."""
    if sid.name == "issuer_and_serial_number":
        return bool(certificate.issuer == sid.chosen["issuer"]
                    and certificate.serial_number == sid.chosen["serial_number"].native)
    return bool(certificate.key_identifier == sid.chosen.native)


def _load(der: bytes, code: str, reason: str) -> cx509.Certificate:
    try:
        return cx509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise Refused(code, reason) from exc


def _check_trust(certificate: cx509.Certificate, der: bytes, trust: Sequence[bytes],
                 now: datetime) -> None:
    """Trusted: a trust certificate itself, or issued by one that is a CA (one level)."""
    if der in trust:
        return
    for anchor_der in trust:
        anchor = _load(anchor_der, "untrusted", "a trust certificate is malformed")
        if anchor.subject != certificate.issuer or not _is_ca(anchor):
            continue
        try:
            certificate.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        name = anchor.subject.rfc4514_string()
        _check_validity(anchor, now, "trust", f"the trust certificate {name!r} that issued "
                        "the signer's")
        return
    raise Refused("untrusted", f"the signer {certificate.subject.rfc4514_string()!r} is not "
                  "trusted: neither a trust certificate nor issued by one")


def _is_ca(certificate: cx509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(cx509.BasicConstraints).value.ca
    except (cx509.ExtensionNotFound, ValueError):
        return False


def _check_validity(certificate: cx509.Certificate, now: datetime, code: str,
                    whose: str) -> None:
    # RFC 5280 §4.1.2.5: valid from notBefore through notAfter, both inclusive
    if now < certificate.not_valid_before_utc:
        day = certificate.not_valid_before_utc.date().isoformat()
        raise Refused(f"{code}-not-yet-valid", f"{whose} is not valid until {day}")
    if now > certificate.not_valid_after_utc:
        day = certificate.not_valid_after_utc.date().isoformat()
        raise Refused(f"{code}-expired", f"{whose} expired on {day}")


# --- algorithms and the signature ------------------------------------------------------------

Scheme = tuple[padding.AsymmetricPadding | None, hashes.HashAlgorithm]  # None: ECDSA


def _hash(name: str, role: str) -> hashes.HashAlgorithm:
    if name not in _HASHES:  # RFC 8551 §2.1 / NIST SP 800-131A: no SHA-1 or MD5 for signatures
        shown = _NAMES.get(name, name)
        raise Refused("algorithm", f"the {role} algorithm {shown} is not accepted (SHA-256, "
                      "SHA-384 or SHA-512 only)")
    return _HASHES[name]()


def _algorithms(signer: cms.SignerInfo) -> tuple[str, Scheme]:
    """The digest algorithm's name and how the signature is checked (RFC 5754, RFC 4056)."""
    digest = signer["digest_algorithm"]["algorithm"].native
    _hash(digest, "digest")
    algorithm = signer["signature_algorithm"]
    name = algorithm["algorithm"].native
    if name == "rsassa_pkcs1v15":  # rsaEncryption: the hash is the digestAlgorithm's
        return digest, (padding.PKCS1v15(), _hash(digest, "signature"))
    if name.endswith("_rsa"):
        return digest, (padding.PKCS1v15(), _hash(algorithm.hash_algo, "signature"))
    if name.endswith("_ecdsa"):
        return digest, (None, _hash(algorithm.hash_algo, "signature"))
    if name == "rsassa_pss":  # RFC 4056 §2: the parameters carry hash, MGF1 hash and salt
        params = algorithm["parameters"]
        mgf = params["mask_gen_algorithm"]
        if mgf["algorithm"].native != "mgf1":
            raise Refused("algorithm", f"the RSASSA-PSS mask generation {mgf['algorithm'].native}"
                          " is not supported (MGF1 only)")
        mgf1 = padding.MGF1(_hash(mgf["parameters"]["algorithm"].native, "MGF1 hash"))
        return digest, (padding.PSS(mgf1, params["salt_length"].native),
                        _hash(params["hash_algorithm"]["algorithm"].native, "signature"))
    raise Refused("algorithm", f"the signature algorithm {name} is not supported (RSA "
                  "PKCS #1 v1.5, RSASSA-PSS or ECDSA only)")


def _check_signature(signer: cms.SignerInfo, content: bytes, content_type: str,
                     key: object, digest: str, scheme: Scheme) -> datetime | None:
    """RFC 5652 §5.4: with signed attributes the signature covers their DER as a SET OF, and
    contentType and messageDigest bind the content (§11.1, §11.2); without, the content."""
    attributes = signer["signed_attrs"]
    signed_at = None
    data = content
    if attributes.native:
        found = _attribute_values(attributes)
        if found.get("content_type") != content_type:
            raise Refused("tampered", "the content was changed after signing (its type is "
                          "not the signed one)")
        expected = hashlib.new(digest, content).digest()
        found_digest = found.get("message_digest")
        if not isinstance(found_digest, bytes) or not hmac.compare_digest(found_digest,
                                                                          expected):
            raise Refused("tampered", "the content was changed after signing (its digest "
                          "is not the signed one)")
        moment = found.get("signing_time")
        signed_at = moment if isinstance(moment, datetime) else None
        data = bytes(cms.CMSAttributes(contents=attributes.contents).dump())
    _verify(key, scheme, bytes(signer["signature"].native), data)
    return signed_at


def _attribute_values(attributes: cms.CMSAttributes) -> dict[str, object]:
    found: dict[str, object] = {}
    for attribute in attributes:
        name = attribute["type"].native
        if name in found or len(attribute["values"]) != 1:  # RFC 5652 §11: single-valued
            raise Refused("not-cms", f"the signed attribute {name} is repeated or multi-valued")
        value = attribute["values"][0]
        found[name] = value.dotted if name == "content_type" else value.native
    return found


def _verify(key: object, scheme: Scheme, signature: bytes, data: bytes) -> None:
    pad, digest = scheme
    try:
        if pad is None and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(digest))
        elif pad is not None and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, pad, digest)
        else:
            raise Refused("algorithm", "the signature algorithm does not fit the signer's key")
    except InvalidSignature as exc:
        raise Refused("tampered", "the content was changed after signing (the signature "
                      "does not verify)") from exc


# --- decrypting ------------------------------------------------------------------------------

def _undecryptable() -> Refused:
    # RFC 3218 §2.3: one answer whatever failed, so the file is no padding oracle
    return Refused("undecryptable", "the file could not be decrypted with this factory's key")


def _decrypted(enveloped: cms.EnvelopedData, decrypt: Decrypt | None) -> bytes:
    if decrypt is None:
        raise Refused("no-decryption", "the file is encrypted, and no decryption key was given")
    ours = x509.Certificate.load(decrypt.certificate)
    recipient = next((r.chosen for r in enveloped["recipient_infos"] if r.name == "ktri"
                      and _identifies(r.chosen["rid"], ours)), None)
    if recipient is None:
        raise Refused("other-recipient", "the file is encrypted to another recipient, not this "
                      f"factory's key (serial {ours.serial_number:x})")
    key_padding = _key_padding(recipient["key_encryption_algorithm"])
    content = enveloped["encrypted_content_info"]
    size = _content_key_size(content)
    try:
        key = decrypt.unwrap(bytes(recipient["encrypted_key"].native), key_padding)
    except HSMUnavailable:
        raise
    except (HSMError, ValueError) as exc:
        raise _undecryptable() from exc
    if len(key) != size:
        raise _undecryptable()
    return _decrypt_content(content, key)


def _key_padding(algorithm: cms.KeyEncryptionAlgorithm) -> KeyPadding:
    name = algorithm["algorithm"].native
    if name == "rsaes_pkcs1v15":
        return "pkcs1"
    if name != "rsaes_oaep":
        raise Refused("algorithm", f"the key transport {name} is not supported (RSA PKCS #1 "
                      "v1.5 or RSAES-OAEP only)")
    params = algorithm["parameters"]  # RFC 4055 §4.1: absent fields are SHA-1 and MGF1-SHA-1
    digest = params["hash_algorithm"]["algorithm"].native
    mgf = params["mask_gen_algorithm"]
    if digest not in _OAEP_HASHES or mgf["algorithm"].native != "mgf1" \
            or mgf["parameters"]["algorithm"].native != digest \
            or params["p_source_algorithm"]["parameters"].native != b"":
        raise Refused("algorithm", f"the RSAES-OAEP parameters (hash {digest}) are not "
                      "supported (MGF1 with the same hash, no label)")
    return ("oaep", digest)


def _content_key_size(content: cms.EncryptedContentInfo) -> int:
    name = content["content_encryption_algorithm"]["algorithm"].native
    if name not in _AES_CBC:
        raise Refused("algorithm", f"the content encryption {name} is not supported (AES-CBC "
                      "with 128, 192 or 256-bit keys only)")
    if content["encrypted_content"].native is None:
        raise Refused("detached", "the encrypted file carries no encrypted content")
    return _AES_CBC[name]


def _decrypt_content(content: cms.EncryptedContentInfo, key: bytes) -> bytes:
    iv = content["content_encryption_algorithm"]["parameters"].native
    ciphertext = bytes(content["encrypted_content"].native)
    if not isinstance(iv, bytes) or len(iv) != 16 or len(ciphertext) % 16:
        raise _undecryptable()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = PKCS7(128).unpadder()  # RFC 5652 §6.3
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise _undecryptable() from exc
