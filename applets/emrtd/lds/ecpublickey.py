"""Chip EC public keys as SubjectPublicKeyInfo with explicit X9.62 domain parameters.

ICAO 9303-12 §4.1.6 and BSI TR-03111 §4.1.1 have chips carry their EC keys (the Chip
Authentication key of DG14 among them) with EXPLICIT domain parameters; here they are written
from, and read back to, a named :class:`~common.curves.Curve`, every parameter compared
(:func:`applets.emrtd.curves.by_parameters`). Pure: bytes in, curve and point out.
"""

from __future__ import annotations

from applets.emrtd import curves
from applets.emrtd.eac_oids import ID_EC_PUBLIC_KEY, ID_PRIME_FIELD
from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag
from applets.errors import LDSError
from applets.iso7816 import tlv
from common.curves import Curve

# SEQUENCE { version, fieldID, curve, base, order[, cofactor] } (RFC 3279 §2.3.5)
_EC_PARAMETERS = (DERTag.INTEGER, DERTag.SEQUENCE, DERTag.SEQUENCE, DERTag.OCTET_STRING,
                  DERTag.INTEGER)


def _check(condition: bool, reason: str, file: str) -> None:
    if not condition:
        raise LDSError(file, reason)


def _tags(parts: list[tlv.TLV], *expected: int) -> bool:
    return [p.tag for p in parts] == list(expected)


def _octets(value: bytes) -> bytes:
    return tlv.encode(DERTag.OCTET_STRING, value)


def explicit_parameters(curve: Curve) -> bytes:
    """X9.62 ECParameters (RFC 3279 §2.3.5): version 1, prime field p, curve a b, base G
    uncompressed, order n, cofactor h; a and b as field-size octet strings (SEC 1 §2.3.5)."""
    field_id = asn1.sequence(asn1.oid(ID_PRIME_FIELD), asn1.integer(curve.p))
    shape = asn1.sequence(_octets(curve.a.to_bytes(curve.size, "big")),
                          _octets(curve.b.to_bytes(curve.size, "big")))
    return asn1.sequence(asn1.integer(1), field_id, shape, _octets(curve.base),
                         asn1.integer(curve.n), asn1.integer(curve.h))


def check_point(curve: Curve, point: bytes, file: str) -> tuple[int, int]:
    """An uncompressed point (SEC 1 §2.3.3) with coordinates below p that lies on ``curve``."""
    _check(len(point) == 1 + 2 * curve.size and point[:1] == b"\x04",
           f"EC public key is not an uncompressed {curve.label} point", file)
    x, y = (int.from_bytes(point[1 + i * curve.size : 1 + (i + 1) * curve.size], "big")
            for i in (0, 1))
    _check(x < curve.p and y < curve.p and curve.on_curve(x, y),
           f"EC public key is not on {curve.label}", file)
    return x, y


def _explicit_curve(parameters: bytes, file: str) -> Curve:
    """The named curve of explicit ECParameters, every parameter compared (9303-12 §4.1.6)."""
    parts = asn1.children(parameters, file)
    _check(_tags(parts, *_EC_PARAMETERS) or _tags(parts, *_EC_PARAMETERS, DERTag.INTEGER),
           "ECParameters must be { version, fieldID, curve, base, order, cofactor? }", file)
    _check(asn1.decode_integer(parts[0].value, file) == 1, "ECParameters version must be 1", file)
    field = asn1.children(parts[1].value, file)
    _check(_tags(field, DERTag.OID, DERTag.INTEGER)
           and asn1.decode_oid(field[0].value, file) == ID_PRIME_FIELD,
           "only prime-field domain parameters are supported", file)
    shape = asn1.children(parts[2].value, file)
    _check(_tags(shape, DERTag.OCTET_STRING, DERTag.OCTET_STRING)
           or _tags(shape, DERTag.OCTET_STRING, DERTag.OCTET_STRING, DERTag.BIT_STRING),
           "ECParameters curve must be { a, b, seed? }", file)
    p, n = asn1.decode_integer(field[1].value, file), asn1.decode_integer(parts[4].value, file)
    a, b = (int.from_bytes(element.value, "big") for element in shape[:2])
    base = parts[3].value
    size = (p.bit_length() + 7) // 8
    _check(len(base) == 1 + 2 * size and base[:1] == b"\x04",
           "ECParameters base point is not uncompressed", file)
    try:
        curve = curves.by_parameters(p, a, b, int.from_bytes(base[1 : 1 + size], "big"),
                                     int.from_bytes(base[1 + size :], "big"), n)
    except KeyError:
        raise LDSError(file, "explicit domain parameters match no EAC curve") from None
    cofactor = asn1.decode_integer(parts[5].value, file) if len(parts) == 6 else curve.h
    _check(cofactor == curve.h, f"cofactor {cofactor} is not {curve.label}'s {curve.h}", file)
    return curve


def decode_spki(spki: bytes, file: str) -> tuple[Curve, bytes, bool]:
    """SubjectPublicKeyInfo { { id-ecPublicKey, parameters }, BIT STRING point } (RFC 5480):
    the curve, the uncompressed point, and whether the curve was named by its OID."""
    parts = asn1.children(asn1.single(spki, DERTag.SEQUENCE, file), file)
    _check(_tags(parts, DERTag.SEQUENCE, DERTag.BIT_STRING),
           "SubjectPublicKeyInfo must be { algorithm, subjectPublicKey }", file)
    algorithm = asn1.children(parts[0].value, file)
    _check(len(algorithm) == 2 and algorithm[0].tag == DERTag.OID
           and asn1.decode_oid(algorithm[0].value, file) == ID_EC_PUBLIC_KEY,
           "public key algorithm is not id-ecPublicKey with parameters", file)
    named = algorithm[1].tag == DERTag.OID
    if named:
        try:
            curve = curves.by_oid(asn1.decode_oid(algorithm[1].value, file))
        except KeyError:
            raise LDSError(file, "EC public key on a curve EAC does not use") from None
    else:
        parameters = asn1.expect(algorithm[1], DERTag.SEQUENCE, file, "ECParameters")
        curve = _explicit_curve(parameters, file)
    bits = parts[1].value
    _check(bits[:1] == b"\x00", "subjectPublicKey BIT STRING has unused bits", file)
    check_point(curve, bits[1:], file)
    return curve, bits[1:], named


def encode_spki(curve: Curve, point: bytes, *, named_curve: bool = False) -> bytes:
    """SubjectPublicKeyInfo { { id-ecPublicKey, explicit parameters (or the curve's OID) },
    BIT STRING point } for an uncompressed point on ``curve``."""
    check_point(curve, point, "SubjectPublicKeyInfo")
    parameters = asn1.oid(curve.oid) if named_curve else explicit_parameters(curve)
    return asn1.sequence(asn1.sequence(asn1.oid(ID_EC_PUBLIC_KEY), parameters),
                         tlv.encode(DERTag.BIT_STRING, b"\x00" + point))
