"""EF.DG14, the chip's SecurityInfos (ICAO 9303-11 §9.2; 9303-10 §4.7.14).

A DER SET OF SecurityInfo (:mod:`applets.emrtd.lds.securityinfos`): the ActiveAuthenticationInfo
ECDSA Active Authentication requires (9303-11 §9.2.12) and, on an EAC chip, the Chip
Authentication info and public key, PACEInfo and TerminalAuthenticationInfo (DG14 is REQUIRED
when CA or PACE is supported). The decoder interprets those and keeps every info's DER.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag
from applets.emrtd.lds.securityinfos import (
    AA_VERSION,
    ECDSA_PLAIN_SHA256,
    ID_AA,
    ActiveAuthenticationInfo,
    ChipAuthenticationInfo,
    ChipAuthenticationPublicKeyInfo,
    PACEInfo,
    SecurityInfo,
    TerminalAuthenticationInfo,
    decode_security_info,
)
from applets.errors import LDSError
from applets.iso7816 import tlv

__all__ = ["AA_VERSION", "DG14", "DG14_TAG", "ECDSA_PLAIN_SHA256", "FILE", "ID_AA",
           "active_authentication_info", "decode_dg14", "encode_dg14", "encode_dg14_aa"]

FILE = "EF.DG14"
DG14_TAG = 0x6E


@dataclass(frozen=True, slots=True)
class DG14:
    """The SecurityInfos: the AA signature algorithm if present, every (protocol, DER), and
    every info decoded (:class:`~applets.emrtd.lds.securityinfos.UnknownSecurityInfo` for the
    protocols not interpreted), in file order."""

    aa_signature_algorithm: str | None
    infos: tuple[tuple[str, bytes], ...]
    security_infos: tuple[SecurityInfo, ...] = ()

    @property
    def ca_infos(self) -> tuple[ChipAuthenticationInfo, ...]:
        """The ChipAuthenticationInfos."""
        return tuple(i for i in self.security_infos if isinstance(i, ChipAuthenticationInfo))

    @property
    def ca_public_keys(self) -> tuple[ChipAuthenticationPublicKeyInfo, ...]:
        """The ChipAuthenticationPublicKeyInfos (ECDH keys on a named EAC curve)."""
        return tuple(i for i in self.security_infos
                     if isinstance(i, ChipAuthenticationPublicKeyInfo))

    @property
    def pace_infos(self) -> tuple[PACEInfo, ...]:
        """The PACEInfos."""
        return tuple(i for i in self.security_infos if isinstance(i, PACEInfo))

    @property
    def ta_info(self) -> TerminalAuthenticationInfo | None:
        """The TerminalAuthenticationInfo, if the chip supports Terminal Authentication."""
        found = [i for i in self.security_infos if isinstance(i, TerminalAuthenticationInfo)]
        return found[0] if found else None


def active_authentication_info(signature_algorithm_oid: str = ECDSA_PLAIN_SHA256) -> bytes:
    """ActiveAuthenticationInfo ::= SEQUENCE { protocol, version (1), signatureAlgorithm }."""
    return ActiveAuthenticationInfo(signature_algorithm_oid).encode()


def encode_dg14(infos: Sequence[bytes | SecurityInfo]) -> bytes:
    """DG14 around SecurityInfos, models or already-encoded SEQUENCEs (a DER SET OF, sorted)."""
    encoded = [info if isinstance(info, bytes) else info.encode() for info in infos]
    for info in encoded:
        asn1.single(info, DERTag.SEQUENCE, FILE)
    return tlv.encode(DG14_TAG, asn1.set_of(encoded))


def encode_dg14_aa(signature_algorithm_oid: str = ECDSA_PLAIN_SHA256) -> bytes:
    """DG14 holding only the ActiveAuthenticationInfo for ECDSA Active Authentication."""
    return encode_dg14([active_authentication_info(signature_algorithm_oid)])


def decode_dg14(data: bytes) -> DG14:
    """Parse DG14: a SET OF SecurityInfo, each known one strictly; at most one AA info."""
    elements = asn1.children(asn1.single(asn1.single(data, DG14_TAG, FILE), DERTag.SET, FILE),
                             FILE)
    if not elements:
        raise LDSError(FILE, "SecurityInfos is empty")
    decoded = tuple(decode_security_info(element, FILE) for element in elements)
    aa = [info for info in decoded if isinstance(info, ActiveAuthenticationInfo)]
    if len(aa) > 1:
        raise LDSError(FILE, "more than one ActiveAuthenticationInfo")
    raw = tuple(tlv.encode(element.tag, element.value) for element in elements)
    infos = tuple((info.protocol, der) for info, der in zip(decoded, raw, strict=True))
    return DG14(aa[0].signature_algorithm if aa else None, infos, decoded)

