"""EF.DG14, the chip's SecurityInfos (ICAO 9303-11 §9.2; 9303-10 §4.7.14).

cardline writes one ActiveAuthenticationInfo (9303-11 §9.2.12), which ECDSA Active
Authentication requires; the decoder lists every SecurityInfo and interprets only that one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag
from applets.errors import LDSError
from applets.iso7816 import tlv

FILE = "EF.DG14"
DG14_TAG = 0x6E
ID_AA = "2.23.136.1.1.5"  # ICAO 9303-11 §9.2.12: id-icao-mrtd-security-aaProtocolObject
ECDSA_PLAIN_SHA256 = "0.4.0.127.0.7.1.1.4.1.3"  # BSI TR-03111 ecdsa-plain-SHA256
AA_VERSION = 1


@dataclass(frozen=True, slots=True)
class DG14:
    """The SecurityInfos: the AA signature algorithm if present, and every (protocol, DER)."""

    aa_signature_algorithm: str | None
    infos: tuple[tuple[str, bytes], ...]


def active_authentication_info(signature_algorithm_oid: str = ECDSA_PLAIN_SHA256) -> bytes:
    """ActiveAuthenticationInfo ::= SEQUENCE { protocol, version (1), signatureAlgorithm }."""
    return asn1.sequence(asn1.oid(ID_AA), asn1.integer(AA_VERSION),
                         asn1.oid(signature_algorithm_oid))


def encode_dg14(infos: Sequence[bytes]) -> bytes:
    """DG14 around already-encoded SecurityInfo SEQUENCEs (a DER SET OF, sorted)."""
    for info in infos:
        asn1.single(info, DERTag.SEQUENCE, FILE)
    return tlv.encode(DG14_TAG, asn1.set_of(list(infos)))


def encode_dg14_aa(signature_algorithm_oid: str = ECDSA_PLAIN_SHA256) -> bytes:
    """DG14 holding only the ActiveAuthenticationInfo for ECDSA Active Authentication."""
    return encode_dg14([active_authentication_info(signature_algorithm_oid)])


def _read_info(info: tlv.TLV) -> tuple[str, list[tlv.TLV]]:
    parts = asn1.children(asn1.expect(info, DERTag.SEQUENCE, FILE, "SecurityInfo"), FILE)
    if len(parts) < 2 or parts[0].tag != DERTag.OID:
        raise LDSError(FILE, "SecurityInfo must be SEQUENCE { OID protocol, requiredData, … }")
    return asn1.decode_oid(parts[0].value, FILE), parts[1:]


def _aa_algorithm(parts: list[tlv.TLV]) -> str:
    """The signatureAlgorithm of an ActiveAuthenticationInfo (ICAO 9303-11 §9.2.12)."""
    if [p.tag for p in parts] != [DERTag.INTEGER, DERTag.OID]:
        raise LDSError(FILE, "ActiveAuthenticationInfo must hold INTEGER version and an OID")
    if asn1.decode_integer(parts[0].value, FILE) != AA_VERSION:
        raise LDSError(FILE, f"ActiveAuthenticationInfo version must be {AA_VERSION}")
    return asn1.decode_oid(parts[1].value, FILE)


def decode_dg14(data: bytes) -> DG14:
    """Parse DG14: a SET OF SecurityInfo; at most one ActiveAuthenticationInfo."""
    elements = asn1.children(asn1.single(asn1.single(data, DG14_TAG, FILE), DERTag.SET, FILE),
                             FILE)
    if not elements:
        raise LDSError(FILE, "SecurityInfos is empty")
    infos: list[tuple[str, bytes]] = []
    algorithm: str | None = None
    for element in elements:
        protocol, parts = _read_info(element)
        infos.append((protocol, tlv.encode(element.tag, element.value)))
        if protocol == ID_AA:
            if algorithm is not None:
                raise LDSError(FILE, "more than one ActiveAuthenticationInfo")
            algorithm = _aa_algorithm(parts)
    return DG14(algorithm, tuple(infos))
