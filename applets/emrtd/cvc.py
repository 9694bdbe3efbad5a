"""Card-verifiable certificates of the EAC PKI (BSI TR-03110-3 App. C; ICAO 9303-11 §7.1).

``7F21 { 7F4E body, 5F37 signature }``: the body holds the profile identifier, CAR, the public
key (7F49), CHR, CHAT, effective and expiry dates and optional extensions, in that order
(TR-03110-3 Table C.1). Bytes in, frozen values out, ``encode`` back byte for byte. Signatures
are plain r ‖ s (BSI TR-03111 §5.2.1); a signer is any callable that returns them, so an HSM
can sign where the tests use :func:`software_signer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import IntEnum, IntFlag

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from applets.emrtd import curves, eac_oids
from applets.emrtd.lds import asn1
from applets.errors import CardError, LDSError, TLVError
from applets.iso7816 import tlv
from common.curves import Curve

Signer = Callable[[bytes], bytes]  # message → plain r ‖ s (the signer hashes)
MAX_CERTIFICATE = 2048  # a brainpoolP512r1 CVCA certificate with domain parameters is 759
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    eac_oids.ID_TA_ECDSA_SHA_1: hashes.SHA1,  # TR-03110-3 A.2.1.1 still lists SHA-1
    eac_oids.ID_TA_ECDSA_SHA_224: hashes.SHA224, eac_oids.ID_TA_ECDSA_SHA_256: hashes.SHA256,
    eac_oids.ID_TA_ECDSA_SHA_384: hashes.SHA384, eac_oids.ID_TA_ECDSA_SHA_512: hashes.SHA512,
}
# Bounds on each value (tag → min, max bytes), checked before the value is interpreted.
_BOUNDS = {0x5F29: (1, 1), 0x42: (8, 16), 0x5F20: (8, 16), 0x5F25: (6, 6), 0x5F24: (6, 6),
           0x06: (1, 32), 0x53: (1, 5), 0x5F37: (2, 2 * 66), 0x65: (0, 1024), 0x86: (3, 133),
           **{tag: (1, 133) for tag in (0x81, 0x82, 0x83, 0x84, 0x85, 0x87)}}
_NAMES = {0x7F21: "certificate", 0x7F4E: "body", 0x5F29: "profile identifier", 0x42: "CAR",
          0x7F49: "public key", 0x5F20: "CHR", 0x7F4C: "CHAT", 0x5F25: "effective date",
          0x5F24: "expiry date", 0x65: "extensions", 0x5F37: "signature", 0x06: "OID",
          0x53: "CHAT template", 0x81: "prime p", 0x82: "coefficient a", 0x83: "coefficient b",
          0x84: "base point G", 0x85: "order n", 0x86: "public point Y", 0x87: "cofactor f"}
_DOMAIN_TAGS = (0x81, 0x82, 0x83, 0x84, 0x85)


class CVCError(CardError):
    """A CV certificate cannot be encoded or decoded; ``field`` names the element at fault."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"CV certificate {field}: {reason}")


class SignatureError(CardError):
    """A plain ECDSA signature does not verify under the given key."""


class Role(IntEnum):
    """Role bits 7–6 of the CHAT's first byte (TR-03110-3 App. C.4)."""

    CVCA = 0xC0
    DV_DOMESTIC = 0x80
    DV_FOREIGN = 0x40
    TERMINAL = 0x00


class ISRights(IntFlag):
    """Read rights of an inspection system (TR-03110-3 App. C.4.1): bit 0 DG3, bit 1 DG4."""

    NONE = 0
    DG3 = 0x01
    DG4 = 0x02


@dataclass(frozen=True, slots=True)
class Reference:
    """A CAR or CHR (TR-03110-3 A.6.1): country code, holder mnemonic, sequence number."""

    country: str
    mnemonic: str
    sequence: str

    def __post_init__(self) -> None:
        if len(self.country) != 2 or not (self.country.isascii() and self.country.isalpha()):
            raise CVCError("reference", f"country code {self.country!r} is not 2 letters")
        if not 1 <= len(self.mnemonic) <= 9 or not _latin1(self.mnemonic):
            raise CVCError("reference", f"mnemonic {self.mnemonic!r} is not 1–9 ISO 8859-1 "
                           "characters")
        # A.6.1: 5 alphanumerics (digits, or a country code and 3 digits as in DE019)
        if len(self.sequence) != 5 or not (self.sequence.isascii() and self.sequence.isalnum()):
            raise CVCError("reference", f"sequence {self.sequence!r} is not 5 alphanumerics")

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Split ``DECVCAAT00001`` into DE / CVCAAT / 00001."""
        return cls(text[:2], text[2:-5], text[-5:])

    def __str__(self) -> str:
        return self.country + self.mnemonic + self.sequence

    def encode(self) -> bytes:
        """The ISO 8859-1 bytes a CAR/CHR data object carries."""
        return str(self).encode("latin-1")


@dataclass(frozen=True, slots=True)
class CHAT:
    """Certificate Holder Authorization Template: role OID and the relative authorization."""

    oid: str
    template: bytes

    @classmethod
    def inspection_system(cls, role: Role, rights: ISRights = ISRights.NONE) -> CHAT:
        """The one-byte CHAT of the eMRTD's EAC (id-IS)."""
        return cls(eac_oids.ID_IS, bytes((role | rights,)))

    @property
    def role(self) -> Role:
        """CVCA, domestic or foreign DV, or terminal."""
        return Role(self.template[0] & 0xC0)

    @property
    def rights(self) -> ISRights:
        """DG3/DG4 read rights; none unless the role OID is id-IS."""
        if self.oid != eac_oids.ID_IS:
            return ISRights.NONE
        return ISRights(self.template[-1] & (ISRights.DG3 | ISRights.DG4))

    def encode(self) -> bytes:
        """7F4C { 06 OID, 53 template }."""
        return tlv.encode(0x7F4C, _oid(self.oid) + tlv.encode(0x53, self.template))


@dataclass(frozen=True, slots=True)
class DomainParameters:
    """81 p, 82 a, 83 b, 84 G, 85 n, 87 f as their bytes (TR-03110-3 D.3.3)."""

    p: bytes
    a: bytes
    b: bytes
    g: bytes
    n: bytes
    f: bytes | None

    @classmethod
    def from_curve(cls, curve: Curve) -> DomainParameters:
        """Unsigned big-endian integers; G uncompressed with coordinates of the field size."""
        return cls(_unsigned(curve.p), _unsigned(curve.a), _unsigned(curve.b), curve.base,
                   _unsigned(curve.n), _unsigned(curve.h))

    def curve(self) -> Curve:
        """The named curve with these parameters."""
        size = (len(self.g) - 1) // 2
        if len(self.g) != 1 + 2 * size or self.g[0] != 4:
            raise CVCError("base point G", "not an uncompressed point")
        gx, gy = _int(self.g[1 : 1 + size]), _int(self.g[1 + size :])
        try:
            return curves.by_parameters(_int(self.p), _int(self.a), _int(self.b), gx, gy,
                                        _int(self.n))
        except KeyError as exc:
            raise CVCError("public key", "domain parameters of no supported curve") from exc


@dataclass(frozen=True, slots=True)
class PublicKey:
    """7F49 { 06 algorithm OID, [domain parameters], 86 public point }."""

    oid: str
    point: bytes
    domain: DomainParameters | None = None

    def encode(self) -> bytes:
        """The public key data object, domain parameters in tag order around 86."""
        parts = [_oid(self.oid)]
        if self.domain is not None:
            d = self.domain
            parts += [tlv.encode(t, v) for t, v in zip(_DOMAIN_TAGS, (d.p, d.a, d.b, d.g, d.n),
                                                       strict=True)]
        parts.append(tlv.encode(0x86, self.point))
        if self.domain is not None and self.domain.f is not None:
            parts.append(tlv.encode(0x87, self.domain.f))
        return tlv.encode(0x7F49, b"".join(parts))

    @classmethod
    def decode(cls, value: bytes) -> PublicKey:
        """Parse the value of 7F49; the domain parameters come all together or not at all."""
        tags = ((0x06, True), *((t, False) for t in _DOMAIN_TAGS), (0x86, True), (0x87, False))
        fields = _ordered(value, tags, "public key")
        present = [t in fields for t in _DOMAIN_TAGS]
        if any(present) and not all(present):
            raise CVCError("public key", "incomplete domain parameters (81–85)")
        domain = None
        if all(present):
            d = [fields[t] for t in _DOMAIN_TAGS]
            domain = DomainParameters(d[0], d[1], d[2], d[3], d[4], fields.get(0x87))
        elif 0x87 in fields:
            raise CVCError("cofactor f", "present without domain parameters")
        return cls(_decode_oid(fields[0x06]), fields[0x86], domain)


@dataclass(frozen=True, slots=True)
class CertificateBody:
    """The signed part of a CV certificate (7F4E)."""

    car: Reference
    public_key: PublicKey
    chr: Reference
    chat: CHAT
    effective: date
    expiry: date
    extensions: bytes | None = None  # the value of 65, kept as it came
    profile: int = 0

    def encode(self) -> bytes:
        """7F4E { 5F29, 42, 7F49, 5F20, 7F4C, 5F25, 5F24, [65] }."""
        if self.public_key.domain is not None and self.chat.role is not Role.CVCA:
            # TR-03110-3 D.3.3: domain parameters only in CVCA certificates
            raise CVCError("public key", "domain parameters in a non-CVCA certificate")
        parts = [tlv.encode(0x5F29, bytes((self.profile,))), tlv.encode(0x42, self.car.encode()),
                 self.public_key.encode(), tlv.encode(0x5F20, self.chr.encode()),
                 self.chat.encode(), tlv.encode(0x5F25, encode_date(self.effective)),
                 tlv.encode(0x5F24, encode_date(self.expiry))]
        if self.extensions is not None:
            parts.append(tlv.encode(0x65, self.extensions))
        return tlv.encode(0x7F4E, b"".join(parts))

    @classmethod
    def decode(cls, data: bytes) -> CertificateBody:
        """Parse a complete 7F4E object (tag and length included)."""
        tags = ((0x5F29, True), (0x42, True), (0x7F49, True), (0x5F20, True), (0x7F4C, True),
                (0x5F25, True), (0x5F24, True), (0x65, False))
        fields = _ordered(_single(data, 0x7F4E), tags, "body")
        if fields[0x5F29] != b"\x00":  # TR-03110-3 C.1.1: profile identifier 0 (version 1)
            raise CVCError("profile identifier", f"{fields[0x5F29].hex()} is not 00")
        chat = _ordered(fields[0x7F4C], ((0x06, True), (0x53, True)), "CHAT")
        body = cls(_reference(fields[0x42], "CAR"), PublicKey.decode(fields[0x7F49]),
                   _reference(fields[0x5F20], "CHR"), CHAT(_decode_oid(chat[0x06]), chat[0x53]),
                   decode_date(fields[0x5F25], "effective date"),
                   decode_date(fields[0x5F24], "expiry date"), fields.get(0x65))
        if body.encode() != data:
            raise CVCError("body", "not in the canonical encoding")
        return body


@dataclass(frozen=True, slots=True)
class CVCertificate:
    """A body and the issuer's plain r ‖ s signature over its encoding."""

    body: CertificateBody
    signature: bytes

    def pso_data(self) -> bytes:
        """The data of PSO:Verify Certificate: the body ‖ 5F37 signature (no 7F21)."""
        return self.body.encode() + tlv.encode(0x5F37, self.signature)

    def encode(self) -> bytes:
        """7F21 { 7F4E, 5F37 }."""
        return tlv.encode(0x7F21, self.pso_data())

    @classmethod
    def decode(cls, data: bytes) -> CVCertificate:
        """Parse a complete 7F21 certificate, at most :data:`MAX_CERTIFICATE` bytes."""
        if len(data) > MAX_CERTIFICATE:
            raise CVCError("certificate", f"{len(data)} bytes, more than {MAX_CERTIFICATE}")
        return cls.from_pso_data(_single(data, 0x7F21))

    @classmethod
    def from_pso_data(cls, data: bytes) -> CVCertificate:
        """Parse body ‖ 5F37, as PSO:Verify Certificate carries a certificate."""
        if len(data) > MAX_CERTIFICATE:
            raise CVCError("certificate", f"{len(data)} bytes, more than {MAX_CERTIFICATE}")
        try:
            body_tlv = tlv.decode_one(data)
        except TLVError as exc:
            raise CVCError("body", str(exc)) from exc
        fields = _ordered(data[body_tlv.end :], ((0x5F37, True),), "certificate")
        return cls(CertificateBody.decode(data[: body_tlv.end]), fields[0x5F37])


def sign_body(body: CertificateBody, signer: Signer) -> CVCertificate:
    """The certificate of ``body`` signed by ``signer`` (which returns plain r ‖ s)."""
    signature = signer(body.encode())
    if not signature or len(signature) % 2:
        raise CVCError("signature", f"signer returned {len(signature)} bytes, not r ‖ s")
    return CVCertificate(body, signature)


def hash_for(algorithm: str) -> hashes.HashAlgorithm:
    """The hash of an id-TA-ECDSA-SHA-* algorithm (TR-03110-3 A.2.1.1)."""
    if algorithm not in _HASHES:
        raise CVCError("public key", f"algorithm {algorithm} is not id-TA-ECDSA-SHA-*")
    return _HASHES[algorithm]()


def plain_signature(der: bytes, size: int) -> bytes:
    """DER ECDSA-Sig-Value → r ‖ s, each padded to ``size`` bytes (TR-03111 §5.2.1)."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def der_signature(plain: bytes) -> bytes:
    """r ‖ s → DER ECDSA-Sig-Value."""
    half = len(plain) // 2
    return encode_dss_signature(int.from_bytes(plain[:half], "big"),
                                int.from_bytes(plain[half:], "big"))


def software_signer(key: ec.EllipticCurvePrivateKey, algorithm: str) -> Signer:
    """A signer over a ``cryptography`` private key (tests; production signs in the HSM)."""
    size = (key.curve.key_size + 7) // 8

    def sign(message: bytes) -> bytes:
        return plain_signature(key.sign(message, ec.ECDSA(hash_for(algorithm))), size)
    return sign


def public_key(curve: Curve, point: bytes) -> ec.EllipticCurvePublicKey:
    """The key of an uncompressed point, refusing points off the curve."""
    if len(point) != 1 + 2 * curve.size or point[0] != 4:
        raise SignatureError(f"public point of {len(point)} bytes is not uncompressed")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve.crypto_curve(), point)
    except ValueError as exc:
        raise SignatureError(f"public point is not on {curve.label}") from exc


def verify_plain(point: bytes, curve: Curve, algorithm: str, message: bytes,
                 signature: bytes) -> None:
    """Raise :class:`SignatureError` unless ``signature`` (r ‖ s) signs ``message``."""
    if len(signature) != 2 * curve.size:
        raise SignatureError(f"signature of {len(signature)} bytes ({2 * curve.size} expected)")
    try:
        public_key(curve, point).verify(der_signature(signature), message,
                                        ec.ECDSA(hash_for(algorithm)))
    except InvalidSignature as exc:
        raise SignatureError("signature does not verify") from exc


def verify(cert: CVCertificate, issuer_public_point: bytes, curve: Curve,
           algorithm: str | None = None) -> None:
    """Check the issuer's signature; ``algorithm`` is the issuer key's (default: the
    certificate's own, which EAC chains share)."""
    verify_plain(issuer_public_point, curve, algorithm or cert.body.public_key.oid,
                 cert.body.encode(), cert.signature)


def encode_date(day: date) -> bytes:
    """TR-03110-3 D.2.1.3: YYMMDD, one digit per byte (2010-09-30 → 01 00 00 09 03 00)."""
    if not 2000 <= day.year <= 2099:
        raise CVCError("date", f"year {day.year} is outside 2000–2099")
    return bytes(int(c) for c in day.strftime("%y%m%d"))


def decode_date(value: bytes, field: str) -> date:
    """Six digit bytes back to a date."""
    if len(value) != 6 or any(b > 9 for b in value):
        raise CVCError(field, f"{value.hex()} is not six digits")
    yy, mm, dd = (value[i] * 10 + value[i + 1] for i in (0, 2, 4))
    try:
        return date(2000 + yy, mm, dd)
    except ValueError as exc:
        raise CVCError(field, f"{value.hex()} is not a calendar date") from exc


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return text.isprintable()


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _unsigned(number: int) -> bytes:
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big")


def _oid(dotted: str) -> bytes:
    try:
        return asn1.oid(dotted)
    except LDSError as exc:
        raise CVCError("OID", exc.reason) from exc


def _decode_oid(value: bytes) -> str:
    try:
        return asn1.decode_oid(value, "CV certificate")
    except LDSError as exc:
        raise CVCError("OID", exc.reason) from exc


def _reference(value: bytes, field: str) -> Reference:
    try:
        return Reference.parse(value.decode("latin-1"))
    except CVCError as exc:
        raise CVCError(field, exc.reason) from exc


def _single(data: bytes, tag: int) -> bytes:
    try:
        return tlv.decode_single(data, tag).value
    except TLVError as exc:
        raise CVCError(_NAMES[tag], str(exc)) from exc


def _ordered(data: bytes, tags: tuple[tuple[int, bool], ...], where: str) -> dict[int, bytes]:
    """The values of the objects filling ``data``, in the order ``tags`` lists them; each
    (tag, required) pair; unknown, repeated, misplaced or missing objects are refused."""
    try:
        objects = tlv.decode_all(data)
    except TLVError as exc:
        raise CVCError(where, str(exc)) from exc
    found: dict[int, bytes] = {}
    position = 0
    for obj in objects:
        while position < len(tags) and tags[position][0] != obj.tag:
            _require_absent(tags[position], where)
            position += 1
        if position == len(tags):
            raise CVCError(where, f"unexpected or misplaced tag {obj.tag:X}")
        low, high = _BOUNDS.get(obj.tag, (0, MAX_CERTIFICATE))
        if not low <= len(obj.value) <= high:
            raise CVCError(_NAMES[obj.tag], f"{len(obj.value)} bytes, not {low}–{high}")
        found[obj.tag] = obj.value
        position += 1
    for entry in tags[position:]:
        _require_absent(entry, where)
    return found


def _require_absent(entry: tuple[int, bool], where: str) -> None:
    tag, required = entry
    if required:
        raise CVCError(_NAMES[tag], f"missing from the {where}")
