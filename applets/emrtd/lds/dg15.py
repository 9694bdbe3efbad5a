"""EF.DG15, the Active Authentication public key: ``6F L SubjectPublicKeyInfo``.

ICAO 9303-10 Table 78 / 9303-11 §6.1.5. Chip EC keys carry EXPLICIT domain parameters
(ICAO 9303-12 §4.1.6, BSI TR-03111 §4.1.1), which pyca/cryptography cannot load; they
are parsed with asn1crypto and matched, parameter by parameter, to a named curve.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import keys
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag
from applets.errors import LDSError
from applets.iso7816 import tlv

FILE = "EF.DG15"
DG15_TAG = 0x6F
ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"  # ANSI X9.62 / RFC 3279
ID_PRIME_FIELD = "1.2.840.10045.1.1"

DG15PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


@dataclass(frozen=True, slots=True)
class CurveParameters:
    """Prime-field curve y² = x³ + ax + b over GF(p), base point G of order n, cofactor h."""

    name: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int = 1

    @property
    def size(self) -> int:
        """The length in bytes of one field element."""
        return (self.p.bit_length() + 7) // 8

    @property
    def base(self) -> bytes:
        """G as an uncompressed point (SEC 1 §2.3.3)."""
        return b"\x04" + self.gx.to_bytes(self.size, "big") + self.gy.to_bytes(self.size, "big")

    def curve(self) -> ec.EllipticCurve:
        """The cryptography curve object with the same parameters."""
        return _CURVE_CLASSES[self.name]()


# SEC 2 v2 §2.4.2 / FIPS 186-4 D.1.2.3 (P-256) and SEC 2 §2.5.1 / D.1.2.4 (P-384).
CURVES: dict[str, CurveParameters] = {
    "secp256r1": CurveParameters(
        "secp256r1",
        p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
        a=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
        b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
        gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
        gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
        n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    ),
    "secp384r1": CurveParameters(
        "secp384r1",
        p=2**384 - 2**128 - 2**96 + 2**32 - 1,
        a=2**384 - 2**128 - 2**96 + 2**32 - 4,
        b=int("B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875A"
              "C656398D8A2ED19D2A85C8EDD3EC2AEF", 16),
        gx=int("AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
               "5502F25DBF55296C3A545E3872760AB7", 16),
        gy=int("3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C0"
               "0A60B1CE1D7E819D7A431D7C90EA0E5F", 16),
        n=int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
              "581A0DB248B0A77AECEC196ACCC52973", 16),
    ),
}
_CURVE_CLASSES: dict[str, type[ec.EllipticCurve]] = {
    "secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1,
}


def encode_dg15(public_key_spki_der: bytes) -> bytes:
    """DG15 around a DER SubjectPublicKeyInfo."""
    asn1.single(public_key_spki_der, DERTag.SEQUENCE, FILE)
    return tlv.encode(DG15_TAG, public_key_spki_der)


def _octets(value: int, size: int) -> bytes:
    return tlv.encode(DERTag.OCTET_STRING, value.to_bytes(size, "big"))


def explicit_parameters(params: CurveParameters) -> bytes:
    """ECParameters (SEC 1 §C.2 / RFC 3279 §2.3.5): version 1, prime field, a, b, G, n, h."""
    field_id = asn1.sequence(asn1.oid(ID_PRIME_FIELD), asn1.integer(params.p))
    curve = asn1.sequence(_octets(params.a, params.size), _octets(params.b, params.size))
    return asn1.sequence(asn1.integer(1), field_id, curve,
                         tlv.encode(DERTag.OCTET_STRING, params.base),
                         asn1.integer(params.n), asn1.integer(params.h))


def encode_dg15_ec_point(uncompressed_point: bytes, curve: str = "secp256r1") -> bytes:
    """DG15 with an EC key given as its uncompressed point, with explicit domain parameters."""
    params = CURVES.get(curve)
    if params is None:
        raise LDSError(FILE, f"curve {curve!r} is not one of {sorted(CURVES)}")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(params.curve(), uncompressed_point)
    except ValueError as exc:
        raise LDSError(FILE, f"not a point on {curve}") from exc
    if len(uncompressed_point) != 1 + 2 * params.size:
        raise LDSError(FILE, "the point must be uncompressed (ICAO 9303-12 §4.1.6)")
    algorithm = asn1.sequence(asn1.oid(ID_EC_PUBLIC_KEY), explicit_parameters(params))
    key = tlv.encode(DERTag.BIT_STRING, b"\x00" + uncompressed_point)
    return encode_dg15(asn1.sequence(algorithm, key))


def _named_for(specified: keys.SpecifiedECDomain) -> CurveParameters:
    """The known curve whose every parameter equals the explicit ones, or an error."""
    if specified["field_id"]["field_type"].dotted != ID_PRIME_FIELD:
        raise LDSError(FILE, "only prime-field curves are supported")
    cofactor = specified["cofactor"].native
    found = (
        specified["field_id"]["parameters"].native,
        int.from_bytes(specified["curve"]["a"].native, "big"),
        int.from_bytes(specified["curve"]["b"].native, "big"),
        specified["base"].native, specified["order"].native, cofactor,
    )
    for params in CURVES.values():
        if found == (params.p, params.a, params.b, params.base, params.n, params.h):
            return params
    raise LDSError(FILE, "explicit EC domain parameters match no supported curve")


def _ec_key(info: keys.PublicKeyInfo, spki: bytes) -> ec.EllipticCurvePublicKey:
    parameters = info["algorithm"]["parameters"]
    if parameters.name == "named":
        key = load_der_public_key(spki)
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise LDSError(FILE, "named-curve SPKI is not an EC key")
        return key
    if parameters.name != "specified":
        raise LDSError(FILE, "implicitly-CA EC parameters are not allowed")
    params = _named_for(parameters.chosen)
    point = info["public_key"].native
    return ec.EllipticCurvePublicKey.from_encoded_point(params.curve(), point)


def decode_dg15(data: bytes) -> DG15PublicKey:
    """The public key of DG15: RSA, or EC with a named curve or explicit parameters."""
    spki = asn1.single(data, DG15_TAG, FILE)
    try:
        info = keys.PublicKeyInfo.load(spki, strict=True)
        algorithm = info["algorithm"]["algorithm"].dotted
        if algorithm == ID_EC_PUBLIC_KEY:
            return _ec_key(info, spki)
        key = load_der_public_key(spki)
    except (ValueError, TypeError) as exc:
        raise LDSError(FILE, f"unreadable SubjectPublicKeyInfo: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise LDSError(FILE, f"unsupported key algorithm {algorithm}")
    return key
