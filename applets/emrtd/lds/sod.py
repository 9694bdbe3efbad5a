"""EF.SOD, the Document Security Object: ``77 L ContentInfo(SignedData(LDSSecurityObject))``.

ICAO 9303-10 §4.6.2 (LDSSecurityObject, Table 37 SignedData profile) over RFC 5652 (CMS).
:class:`SODBuilder` writes it by byte concatenation around constant pieces prepared once
(the production line signs one per card); :func:`parse_sod` reads it with asn1crypto.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from asn1crypto import cms, x509

from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag, header
from applets.errors import LDSError
from applets.iso7816 import tlv

__all__ = ["HASH_ALGORITHMS", "SOD", "SODBuilder", "SODSigner", "UnsignedSOD", "parse_sod"]

FILE = "EF.SOD"
SOD_TAG = 0x77
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_LDS_SECURITY_OBJECT = "2.23.136.1.1.1"  # ICAO 9303-10 §4.6.2.1
ID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
HASH_ALGORITHMS: dict[str, str] = {  # hashlib name → OID (NIST CSOR)
    "sha224": "2.16.840.1.101.3.4.2.4", "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2", "sha512": "2.16.840.1.101.3.4.2.3",
}
_NULL = b"\x05\x00"


def _rsassa_pss_sha256() -> bytes:
    """RSASSA-PSS-params (RFC 4055 §3.1): SHA-256, MGF1 with SHA-256, salt length 32."""
    sha256 = asn1.sequence(asn1.oid(HASH_ALGORITHMS["sha256"]), _NULL)
    mgf1 = asn1.sequence(asn1.oid("1.2.840.113549.1.1.8"), sha256)
    params = asn1.sequence(tlv.encode(DERTag.CONTEXT_0, sha256), tlv.encode(DERTag.CONTEXT_1, mgf1),
                           tlv.encode(DERTag.CONTEXT_2, asn1.integer(32)))
    return asn1.sequence(asn1.oid("1.2.840.113549.1.1.10"), params)


# SignatureAlgorithmIdentifier DER by name: ECDSA without parameters (RFC 5758 §3.2),
# RSA PKCS #1 v1.5 with NULL (ICAO 9303-10 §4.6.2.2 note 2), RSASSA-PSS with its parameters.
SIGNATURE_ALGORITHMS: dict[str, Callable[[], bytes]] = {
    "ecdsa-with-SHA256": lambda: asn1.sequence(asn1.oid("1.2.840.10045.4.3.2")),
    "ecdsa-with-SHA384": lambda: asn1.sequence(asn1.oid("1.2.840.10045.4.3.3")),
    "ecdsa-with-SHA512": lambda: asn1.sequence(asn1.oid("1.2.840.10045.4.3.4")),
    "sha256WithRSAEncryption": lambda: asn1.sequence(asn1.oid("1.2.840.113549.1.1.11"), _NULL),
    "rsassa-pss-sha256": _rsassa_pss_sha256,
}


class SODSigner(Protocol):
    """What :class:`SODBuilder` needs from the Document Signer (an HSM key, in production)."""

    @property
    def certificate_der(self) -> bytes:
        """The Document Signer certificate, DER."""

    @property
    def signature_algorithm(self) -> str:
        """A key of :data:`SIGNATURE_ALGORITHMS`, e.g. ``"ecdsa-with-SHA256"``."""

    def sign(self, data: bytes) -> bytes:
        """The signature over ``data`` (DER signed attributes, tag 31), hashing included.

        For ECDSA the result is a DER Ecdsa-Sig-Value, as SignerInfo.signature holds it.
        """


class _Hash(Protocol):
    """What the SOD needs of a hashlib object."""

    def digest(self) -> bytes:
        """The digest of the data hashed so far."""


# The hashlib constructors by name: calling one directly skips hashlib.new's name lookup.
_HASH_CONSTRUCTORS: dict[str, Callable[[bytes], _Hash]] = {
    "sha224": hashlib.sha224, "sha256": hashlib.sha256,
    "sha384": hashlib.sha384, "sha512": hashlib.sha512,
}


@dataclass(frozen=True, slots=True)
class UnsignedSOD:
    """An EF.SOD before its signature: what :meth:`SODBuilder.sign` completes.

    Preparing many cards, the hashing (Python and memory work) runs for a batch before the
    batch's signatures (HSM calls), which keeps each kind of work in a run.
    """

    econtent: bytes  # the DER LDSSecurityObject
    signed_attributes: bytes  # the DER SET OF Attribute (tag 31) the signature covers


class SODBuilder:
    """Builds EF.SOD for one card at a time around pieces encoded once in the constructor."""

    def __init__(self, signer: SODSigner, hash_algorithm: str = "sha256",
                 lds_version: tuple[str, str] | None = None) -> None:
        if hash_algorithm not in HASH_ALGORITHMS:
            raise LDSError(FILE, f"hash algorithm {hash_algorithm!r} is not supported")
        if signer.signature_algorithm not in SIGNATURE_ALGORITHMS:
            raise LDSError(FILE, f"signature algorithm {signer.signature_algorithm!r} unknown")
        self._signer = signer
        self._hash = _HASH_CONSTRUCTORS[hash_algorithm]
        size = hashlib.new(hash_algorithm).digest_size
        # ICAO 9303-10 §4.6.2.2 note 2: DigestAlgorithmIdentifiers omit the NULL parameters.
        digest_algorithm = asn1.sequence(asn1.oid(HASH_ALGORITHMS[hash_algorithm]))
        self._lso_head = asn1.integer(0 if lds_version is None else 1) + digest_algorithm
        self._lso_tail = b"" if lds_version is None else _version_info(*lds_version)
        # DataGroupHash ::= SEQUENCE { INTEGER n, OCTET STRING h }: a fixed prefix per DG.
        self._dg_prefix = {n: header(b"\x30", 5 + size) + bytes((2, 1, n, 4, size))
                           for n in range(1, 17)}
        self._content_type_attr = asn1.sequence(
            asn1.oid(ID_CONTENT_TYPE), asn1.set_of([asn1.oid(ID_LDS_SECURITY_OBJECT)]))
        # message-digest Attribute up to the digest; the digest value completes it.
        self._digest_attr_prefix = (header(b"\x30", 15 + size) + asn1.oid(ID_MESSAGE_DIGEST)
                                    + header(b"\x31", 2 + size) + bytes((4, size)))
        self._content_type_first = self._content_type_attr < self._digest_attr_prefix
        self._prepare_certificate(signer.certificate_der)
        self._signature_algorithm = SIGNATURE_ALGORITHMS[signer.signature_algorithm]()
        # SignerInfo (RFC 5652 §5.3) up to its signed attributes: version 1, sid, digest.
        self._signer_info_head = b"\x02\x01\x01" + self._sid + digest_algorithm
        self._signed_data_head = asn1.integer(3) + asn1.set_of([digest_algorithm])
        self._econtent_type = asn1.oid(ID_LDS_SECURITY_OBJECT)
        self._signed_data_oid = asn1.oid(ID_SIGNED_DATA)

    def _prepare_certificate(self, certificate_der: bytes) -> None:
        """certificates [0] and the issuerAndSerialNumber sid (RFC 5652 §5.3, SignerInfo v1)."""
        try:
            certificate = x509.Certificate.load(certificate_der, strict=True)
            issuer = certificate["tbs_certificate"]["issuer"].dump()
            serial = certificate["tbs_certificate"]["serial_number"].native
        except ValueError as exc:
            raise LDSError(FILE, f"Document Signer certificate unreadable: {exc}") from exc
        self._certificates = tlv.encode(DERTag.CONTEXT_0, certificate_der)
        self._sid = asn1.sequence(issuer, asn1.integer(serial))

    def security_object(self, dg_contents: Mapping[int, bytes]) -> bytes:
        """The DER LDSSecurityObject: the hash of each complete DG file, by DG number."""
        if not 2 <= len(dg_contents) <= 16:  # ICAO 9303-10 §4.6.2.3: SIZE (2..16)
            raise LDSError(FILE, f"{len(dg_contents)} data groups; a SOD covers 2 to 16")
        prefix, new = self._dg_prefix, self._hash
        try:
            hashes = b"".join([prefix[n] + new(dg_contents[n]).digest()
                               for n in sorted(dg_contents)])
        except KeyError as exc:
            raise LDSError(FILE, f"data group number {exc.args[0]} not in 1..16") from exc
        body = self._lso_head + header(b"\x30", len(hashes)) + hashes + self._lso_tail
        return header(b"\x30", len(body)) + body

    def signed_attributes(self, econtent: bytes) -> bytes:
        """The content of the signed attributes: content-type and message-digest, DER-ordered."""
        digest = self._digest_attr_prefix + self._hash(econtent).digest()
        ct = self._content_type_attr
        return ct + digest if self._content_type_first else digest + ct

    def unsigned(self, dg_contents: Mapping[int, bytes]) -> UnsignedSOD:
        """EF.SOD up to its signature: the DG hashes and the signed attributes (no signer call)."""
        econtent = self.security_object(dg_contents)
        attributes = self.signed_attributes(econtent)
        # RFC 5652 §5.4: the signature covers the attributes as a SET OF (tag 31).
        return UnsignedSOD(econtent, header(b"\x31", len(attributes)) + attributes)

    def sign(self, unsigned: UnsignedSOD) -> bytes:
        """The complete EF.SOD: ``unsigned`` signed once by the signer."""
        attributes = unsigned.signed_attributes
        signature = self._signer.sign(attributes)
        # RFC 5652 §5.3: signedAttrs [0] IMPLICIT, the SET's length and content unchanged.
        signer_info = (self._signer_info_head + b"\xa0" + attributes[1:]
                       + self._signature_algorithm + header(b"\x04", len(signature)) + signature)
        signer_infos = header(b"\x30", len(signer_info)) + signer_info
        octets = header(b"\x04", len(unsigned.econtent)) + unsigned.econtent
        encap = self._econtent_type + header(b"\xa0", len(octets)) + octets
        signed = (self._signed_data_head + header(b"\x30", len(encap)) + encap + self._certificates
                  + header(b"\x31", len(signer_infos)) + signer_infos)
        explicit = header(b"\x30", len(signed)) + signed
        content_info = self._signed_data_oid + header(b"\xa0", len(explicit)) + explicit
        inner = header(b"\x30", len(content_info)) + content_info
        return header(b"\x77", len(inner)) + inner

    def build(self, dg_contents: Mapping[int, bytes]) -> bytes:
        """EF.SOD over the complete DG files ``{number: bytes}``, signed once by the signer."""
        return self.sign(self.unsigned(dg_contents))


def _version_info(lds_version: str, unicode_version: str) -> bytes:
    """LDSVersionInfo (ICAO 9303-10 §4.6.2.3, LDSSecurityObject v1): two PrintableStrings."""
    if not (lds_version.isdigit() and len(lds_version) == 4
            and unicode_version.isdigit() and len(unicode_version) == 6):
        raise LDSError(FILE, "LDS version is 'aabb' and Unicode version 'aabbcc' (digits)")
    return asn1.sequence(tlv.encode(DERTag.PRINTABLE_STRING, lds_version.encode()),
                         tlv.encode(DERTag.PRINTABLE_STRING, unicode_version.encode()))


@dataclass(frozen=True, slots=True)
class SOD:
    """The parts of an EF.SOD that passive authentication needs, as they were on the chip."""

    lds_version: int
    hash_algorithm: str
    dg_hashes: dict[int, bytes]
    econtent: bytes
    econtent_type: str
    signed_attrs_der: bytes
    message_digest: bytes
    content_type_attr: str
    signature: bytes
    signature_algorithm: str
    signature_algorithm_der: bytes
    digest_algorithm: str
    certificates: tuple[bytes, ...]
    sid_issuer_serial: tuple[bytes, int] | None
    sid_ski: bytes | None


_SIGNATURE_NAMES = {
    "1.2.840.10045.4.3.2": "ecdsa-with-SHA256", "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
    "1.2.840.10045.4.3.4": "ecdsa-with-SHA512", "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
    "1.2.840.113549.1.1.10": "rsassa-pss",
}
_HASH_NAMES = {oid: name for name, oid in HASH_ALGORITHMS.items()}


def _hash_name(algorithm: cms.DigestAlgorithm) -> str:
    dotted = algorithm["algorithm"].dotted
    if dotted not in _HASH_NAMES:
        raise LDSError(FILE, f"unknown hash algorithm {dotted}")
    return _HASH_NAMES[dotted]


def _signed_data(data: bytes) -> cms.SignedData:
    """The SignedData of ``77 { ContentInfo }``, checking the wrapper and the content type."""
    content_info = cms.ContentInfo.load(asn1.single(data, SOD_TAG, FILE), strict=True)
    if content_info["content_type"].dotted != ID_SIGNED_DATA:
        raise LDSError(FILE, f"content type {content_info['content_type'].dotted} not signedData")
    signed: cms.SignedData = content_info["content"]
    if signed["version"].native != "v3":  # ICAO 9303-10 Table 37
        raise LDSError(FILE, f"SignedData version {signed['version'].native}, expected v3")
    if len(signed["signer_infos"]) != 1:  # ICAO 9303-10 Table 37: one signer recommended
        raise LDSError(FILE, f"{len(signed['signer_infos'])} SignerInfos, expected exactly one")
    return signed


def _security_object(econtent: bytes) -> tuple[int, str, dict[int, bytes]]:
    """(version, hash algorithm, {DG: hash}) of the LDSSecurityObject, checked."""
    lso = asn1.LDSSecurityObject.load(econtent, strict=True)
    version = lso["version"].native
    if version not in (0, 1) or (version == 1) != bool(lso["lds_version_info"].native):
        raise LDSError(FILE, f"LDSSecurityObject version {version} inconsistent with its content")
    name = _hash_name(lso["hash_algorithm"])
    size = hashlib.new(name).digest_size
    hashes: dict[int, bytes] = {}
    for item in lso["data_group_hash_values"]:
        number, value = item["data_group_number"].native, item["data_group_hash_value"].native
        if not 1 <= number <= 16 or number in hashes or len(value) != size:
            raise LDSError(FILE, f"bad or repeated hash entry for data group {number}")
        hashes[number] = value
    if not 2 <= len(hashes) <= 16:
        raise LDSError(FILE, f"{len(hashes)} data group hashes; 2 to 16 required")
    return version, name, hashes


def _attributes(signer: cms.SignerInfo) -> tuple[bytes, str, bytes]:
    """(signed attributes as signed (SET, tag 31), content-type value, message digest)."""
    attrs = signer["signed_attrs"]
    if not attrs.contents:  # RFC 5652 §5.3: required when eContentType is not id-data
        raise LDSError(FILE, "SignerInfo has no signed attributes")
    found = {}
    for attr in attrs:
        if attr["type"].dotted in found or len(attr["values"]) != 1:
            raise LDSError(FILE, f"attribute {attr['type'].dotted} repeated or multi-valued")
        found[attr["type"].dotted] = attr["values"][0]
    if ID_CONTENT_TYPE not in found or ID_MESSAGE_DIGEST not in found:
        raise LDSError(FILE, "signed attributes lack content-type or message-digest")
    der = tlv.encode(DERTag.SET, attrs.contents)  # RFC 5652 §5.4: signed as a SET OF (tag 31)
    return der, found[ID_CONTENT_TYPE].dotted, found[ID_MESSAGE_DIGEST].native


def _sid(signer: cms.SignerInfo) -> tuple[tuple[bytes, int] | None, bytes | None]:
    sid = signer["sid"]
    if sid.name == "issuer_and_serial_number":
        return (sid.chosen["issuer"].dump(), sid.chosen["serial_number"].native), None
    return None, sid.chosen.native


def parse_sod(data: bytes) -> SOD:
    """Read EF.SOD strictly; the signature is not verified here (that is QA's job)."""
    try:
        return _parse(data)
    except (ValueError, TypeError, KeyError) as exc:
        raise LDSError(FILE, f"malformed CMS structure: {exc}") from exc


def _parse(data: bytes) -> SOD:
    signed = _signed_data(data)
    encap = signed["encap_content_info"]
    econtent_type = encap["content_type"].dotted
    if econtent_type != ID_LDS_SECURITY_OBJECT:  # ICAO 9303-10 Table 37
        raise LDSError(FILE, f"eContentType {econtent_type} is not ldsSecurityObject")
    if not encap["content"].contents:
        raise LDSError(FILE, "encapContentInfo has no eContent")
    econtent = bytes(encap["content"].native)
    version, hash_name, hashes = _security_object(econtent)
    signer = signed["signer_infos"][0]
    attrs_der, content_type_attr, digest = _attributes(signer)
    if content_type_attr != econtent_type:  # RFC 5652 §11.1
        raise LDSError(FILE, "content-type attribute differs from eContentType")
    issuer_serial, ski = _sid(signer)
    if not signed["certificates"].contents:  # ICAO 9303-10 Table 37: DS certificate included
        raise LDSError(FILE, "SignedData carries no certificate")
    algorithm = signer["signature_algorithm"]
    return SOD(
        lds_version=version, hash_algorithm=hash_name, dg_hashes=hashes, econtent=econtent,
        econtent_type=econtent_type, signed_attrs_der=attrs_der, message_digest=digest,
        content_type_attr=content_type_attr, signature=signer["signature"].native,
        signature_algorithm=_SIGNATURE_NAMES.get(algorithm["algorithm"].dotted,
                                                 algorithm["algorithm"].dotted),
        signature_algorithm_der=algorithm.dump(),
        digest_algorithm=_hash_name(signer["digest_algorithm"]),
        certificates=tuple(c.chosen.dump() for c in signed["certificates"]),
        sid_issuer_serial=issuer_serial, sid_ski=ski,
    )
