"""SecurityInfos (ICAO 9303-11 §9.2; BSI TR-03110-3 A.1.1) and EF.CardAccess.

    SecurityInfo ::= SEQUENCE { protocol OBJECT IDENTIFIER, requiredData ANY,
                                optionalData ANY OPTIONAL }

The EAC infos are decoded into small frozen models and encoded back: PACEInfo,
ChipAuthenticationInfo, ChipAuthenticationPublicKeyInfo (ECDH, its SubjectPublicKeyInfo with
explicit X9.62 domain parameters resolved to a named :class:`~common.curves.Curve`),
TerminalAuthenticationInfo and ActiveAuthenticationInfo. Any other protocol is kept as an
opaque :class:`UnknownSecurityInfo` (its OID and DER). EF.CardAccess (FID 011C in the master
file) is a DER SET OF SecurityInfos holding at least one PACEInfo (9303-11 §4.4, §9.2).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from applets.emrtd.eac_oids import (
    ID_CA,
    ID_CA_ECDH_AES_CBC_CMAC_128,
    ID_PACE,
    ID_PK_ECDH,
    ID_TA,
)
from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag
from applets.emrtd.lds.ecpublickey import decode_spki, encode_spki
from applets.errors import LDSError
from applets.iso7816 import tlv
from common.curves import Curve

CARD_ACCESS = "EF.CardAccess"
ID_AA = "2.23.136.1.1.5"  # ICAO 9303-11 §9.2.12: id-icao-mrtd-security-aaProtocolObject
ECDSA_PLAIN_SHA256 = "0.4.0.127.0.7.1.1.4.1.3"  # BSI TR-03111 ecdsa-plain-SHA256
AA_VERSION = 1
PACE_VERSION = 2  # ICAO 9303-11 §9.2: PACEInfo version SHALL be 2
CA_VERSIONS = (1, 2, 3)  # TR-03110-3 A.1.1: CA version 1 (9303-11), 2 and 3 (EAC2)
TA_VERSIONS = (1, 2)  # TR-03110-3 A.1.1: TA version 1 (9303-11), 2 (EAC2)
# TR-03110-3 A.1.1 / 9303-11 §9.2: id-PACE-{DH,ECDH}-{GM,IM}, id-PACE-ECDH-CAM, then the
# cipher (1 3DES, 2-4 AES-128/192/256). id-CA-{DH,ECDH} then the cipher likewise.
PACE_PROTOCOLS = frozenset(f"{ID_PACE}.{m}.{c}" for m in (1, 2, 3, 4, 6) for c in range(1, 5))
CA_PROTOCOLS = frozenset(f"{ID_CA}.{k}.{c}" for k in (1, 2) for c in range(1, 5))


@dataclass(frozen=True, slots=True)
class PACEInfo:
    """PACEInfo ::= SEQUENCE { protocol, version (2), parameterId INTEGER OPTIONAL }."""

    protocol: str
    parameter_id: int | None = None
    version: int = PACE_VERSION

    def encode(self) -> bytes:
        """The DER SEQUENCE."""
        _check(self.protocol in PACE_PROTOCOLS, f"{self.protocol} is not a PACE protocol")
        _check(self.version == PACE_VERSION, f"PACEInfo version must be {PACE_VERSION}")
        return _info(self.protocol, asn1.integer(self.version), _optional(self.parameter_id))


@dataclass(frozen=True, slots=True)
class ChipAuthenticationInfo:
    """ChipAuthenticationInfo ::= SEQUENCE { protocol, version, keyId INTEGER OPTIONAL }."""

    protocol: str = ID_CA_ECDH_AES_CBC_CMAC_128
    key_id: int | None = None
    version: int = 1

    def encode(self) -> bytes:
        """The DER SEQUENCE."""
        _check(self.protocol in CA_PROTOCOLS, f"{self.protocol} is not a CA protocol")
        _check(self.version in CA_VERSIONS, f"CA version must be one of {CA_VERSIONS}")
        return _info(self.protocol, asn1.integer(self.version), _optional(self.key_id))


@dataclass(frozen=True, slots=True)
class ChipAuthenticationPublicKeyInfo:
    """ChipAuthenticationPublicKeyInfo ::= SEQUENCE { id-PK-ECDH, SubjectPublicKeyInfo,
    keyId INTEGER OPTIONAL }: an uncompressed point on ``curve``. The parameters are explicit
    (9303-11 §9.2, as for every chip key: 9303-12 §4.1.6) unless ``named_curve`` is set."""

    curve: Curve
    public_key: bytes
    key_id: int | None = None
    named_curve: bool = False

    @property
    def protocol(self) -> str:
        """The protocol OID (ID_PK_ECDH)."""
        return ID_PK_ECDH

    def encode(self) -> bytes:
        """The DER SEQUENCE."""
        spki = encode_spki(self.curve, self.public_key, named_curve=self.named_curve)
        return _info(ID_PK_ECDH, spki, _optional(self.key_id))


@dataclass(frozen=True, slots=True)
class TerminalAuthenticationInfo:
    """TerminalAuthenticationInfo ::= SEQUENCE { id-TA, version, efCVCA FileID OPTIONAL }
    (``ef_cvca`` is the FileID SEQUENCE of TR-03110 v1.11, kept as its DER)."""

    version: int = 1
    ef_cvca: bytes | None = None

    @property
    def protocol(self) -> str:
        """The protocol OID (ID_TA)."""
        return ID_TA

    def encode(self) -> bytes:
        """The DER SEQUENCE."""
        _check(self.version in TA_VERSIONS, f"TA version must be one of {TA_VERSIONS}")
        if self.ef_cvca is not None:
            asn1.single(self.ef_cvca, DERTag.SEQUENCE, "SecurityInfo")
        return _info(ID_TA, asn1.integer(self.version), self.ef_cvca or b"")


@dataclass(frozen=True, slots=True)
class ActiveAuthenticationInfo:
    """ActiveAuthenticationInfo ::= SEQUENCE { protocol, version (1), signatureAlgorithm }
    (ICAO 9303-11 §9.2.12)."""

    signature_algorithm: str = ECDSA_PLAIN_SHA256

    @property
    def protocol(self) -> str:
        """The protocol OID (ID_AA)."""
        return ID_AA

    def encode(self) -> bytes:
        """The DER SEQUENCE."""
        return _info(ID_AA, asn1.integer(AA_VERSION), asn1.oid(self.signature_algorithm))


@dataclass(frozen=True, slots=True)
class UnknownSecurityInfo:
    """A SecurityInfo this module does not interpret: its protocol and complete DER."""

    protocol: str
    der: bytes

    def encode(self) -> bytes:
        """The DER as read."""
        return self.der


SecurityInfo = (PACEInfo | ChipAuthenticationInfo | ChipAuthenticationPublicKeyInfo
                | TerminalAuthenticationInfo | ActiveAuthenticationInfo | UnknownSecurityInfo)


def _check(condition: bool, reason: str, file: str = "SecurityInfo") -> None:
    if not condition:
        raise LDSError(file, reason)


def _info(protocol: str, *parts: bytes) -> bytes:
    return asn1.sequence(asn1.oid(protocol), *parts)


def _optional(number: int | None) -> bytes:
    """An optional keyId / parameterId: a non-negative INTEGER when present."""
    if number is None:
        return b""
    _check(number >= 0, f"identifier {number} is negative")
    return asn1.integer(number)


def _tags(parts: list[tlv.TLV], *expected: int) -> bool:
    return [p.tag for p in parts] == list(expected)


def _integer(obj: tlv.TLV, file: str, what: str) -> int:
    value = asn1.decode_integer(asn1.expect(obj, DERTag.INTEGER, file, what), file)
    _check(value >= 0, f"{what} is negative", file)
    return value


def _version_and_id(parts: list[tlv.TLV], file: str, what: str,
                    allowed: tuple[int, ...]) -> tuple[int, int | None]:
    """``version INTEGER, id INTEGER OPTIONAL``, the body of PACEInfo and CA info."""
    _check(len(parts) in (1, 2), f"{what} must hold version and an optional INTEGER", file)
    version = _integer(parts[0], file, f"{what} version")
    _check(version in allowed, f"{what} version {version} not in {allowed}", file)
    return version, _integer(parts[1], file, f"{what} id") if len(parts) == 2 else None


def _pace(protocol: str, parts: list[tlv.TLV], file: str) -> PACEInfo:
    version, parameter_id = _version_and_id(parts, file, "PACEInfo", (PACE_VERSION,))
    return PACEInfo(protocol, parameter_id, version)


def _ca(protocol: str, parts: list[tlv.TLV], file: str) -> ChipAuthenticationInfo:
    version, key_id = _version_and_id(parts, file, "ChipAuthenticationInfo", CA_VERSIONS)
    return ChipAuthenticationInfo(protocol, key_id, version)


def _ta(_: str, parts: list[tlv.TLV], file: str) -> TerminalAuthenticationInfo:
    _check(_tags(parts, DERTag.INTEGER) or _tags(parts, DERTag.INTEGER, DERTag.SEQUENCE),
           "TerminalAuthenticationInfo must hold version and an optional FileID", file)
    version = _integer(parts[0], file, "TerminalAuthenticationInfo version")
    _check(version in TA_VERSIONS, f"TerminalAuthenticationInfo version {version} not in "
                                   f"{TA_VERSIONS}", file)
    ef_cvca = tlv.encode(parts[1].tag, parts[1].value) if len(parts) == 2 else None
    return TerminalAuthenticationInfo(version, ef_cvca)


def _aa(_: str, parts: list[tlv.TLV], file: str) -> ActiveAuthenticationInfo:
    """ICAO 9303-11 §9.2.12: version 1 and the signatureAlgorithm (required for ECDSA)."""
    _check(_tags(parts, DERTag.INTEGER, DERTag.OID),
           "ActiveAuthenticationInfo must hold INTEGER version and an OID", file)
    _check(asn1.decode_integer(parts[0].value, file) == AA_VERSION,
           f"ActiveAuthenticationInfo version must be {AA_VERSION}", file)
    return ActiveAuthenticationInfo(asn1.decode_oid(parts[1].value, file))


def _pk(_: str, parts: list[tlv.TLV], file: str) -> ChipAuthenticationPublicKeyInfo:
    _check(len(parts) in (1, 2), "ChipAuthenticationPublicKeyInfo must hold the "
                                 "SubjectPublicKeyInfo and an optional keyId", file)
    curve, point, named = decode_spki(tlv.encode(parts[0].tag, parts[0].value), file)
    key_id = _integer(parts[1], file, "keyId") if len(parts) == 2 else None
    return ChipAuthenticationPublicKeyInfo(curve, point, key_id, named)


_Decoder = Callable[[str, list[tlv.TLV], str], SecurityInfo]
_DECODERS: dict[str, _Decoder] = {ID_PK_ECDH: _pk, ID_TA: _ta, ID_AA: _aa}


def _decoder(protocol: str) -> _Decoder | None:
    if protocol in PACE_PROTOCOLS:
        return _pace
    if protocol in CA_PROTOCOLS:
        return _ca
    return _DECODERS.get(protocol)


def _read_info(info: tlv.TLV, file: str) -> tuple[str, list[tlv.TLV]]:
    parts = asn1.children(asn1.expect(info, DERTag.SEQUENCE, file, "SecurityInfo"), file)
    _check(len(parts) >= 2 and parts[0].tag == DERTag.OID,
           "SecurityInfo must be SEQUENCE { OID protocol, requiredData, … }", file)
    return asn1.decode_oid(parts[0].value, file), parts[1:]


def decode_security_info(info: tlv.TLV, file: str) -> SecurityInfo:
    """One SecurityInfo (a decoded SEQUENCE): a model for the EAC/AA protocols, else opaque."""
    protocol, parts = _read_info(info, file)
    decoder = _decoder(protocol)
    if decoder is None:
        return UnknownSecurityInfo(protocol, tlv.encode(info.tag, info.value))
    return decoder(protocol, parts, file)


def encode_security_infos(infos: Sequence[SecurityInfo]) -> bytes:
    """SecurityInfos ::= SET OF SecurityInfo, in DER order (X.690 §11.6)."""
    encoded = [info.encode() for info in infos]
    for der in encoded:  # an opaque info must still be one SEQUENCE
        asn1.single(der, DERTag.SEQUENCE, "SecurityInfo")
    return asn1.set_of(encoded)


def decode_security_infos(data: bytes, file: str) -> tuple[SecurityInfo, ...]:
    """The elements of a SET OF SecurityInfo filling ``data`` (at least one)."""
    elements = asn1.children(asn1.single(data, DERTag.SET, file), file)
    _check(bool(elements), "SecurityInfos is empty", file)
    return tuple(decode_security_info(element, file) for element in elements)


@dataclass(frozen=True, slots=True)
class CardAccess:
    """The decoded EF.CardAccess: its SecurityInfos in file order."""

    infos: tuple[SecurityInfo, ...]

    @property
    def pace_infos(self) -> tuple[PACEInfo, ...]:
        """The PACEInfos, one per PACE protocol and domain the chip offers."""
        return tuple(info for info in self.infos if isinstance(info, PACEInfo))


def encode_card_access(infos: Sequence[SecurityInfo]) -> bytes:
    """EF.CardAccess: the SET OF SecurityInfos; PACE needs a PACEInfo (9303-11 §4.4, §9.2)."""
    _check(any(isinstance(info, PACEInfo) for info in infos),
           "EF.CardAccess must hold a PACEInfo", CARD_ACCESS)
    return encode_security_infos(infos)


def decode_card_access(data: bytes) -> CardAccess:
    """Parse EF.CardAccess strictly; at least one PACEInfo."""
    card_access = CardAccess(decode_security_infos(data, CARD_ACCESS))
    _check(bool(card_access.pace_infos), "EF.CardAccess holds no PACEInfo", CARD_ACCESS)
    return card_access
