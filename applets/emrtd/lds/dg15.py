"""EF.DG15, the Active Authentication public key: ``6F L SubjectPublicKeyInfo``.

ICAO 9303-10 Table 78 / 9303-11 §6.1.5. Chip EC keys carry EXPLICIT domain parameters
(ICAO 9303-12 §4.1.6, BSI TR-03111 §4.1.1), which pyca/cryptography cannot load; they
are parsed with asn1crypto and matched, parameter by parameter, to a named curve. An RSA key
must pass :func:`rsa_key_problem` before anyone computes with it.
"""

from __future__ import annotations

from asn1crypto import keys
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from applets.emrtd.lds import asn1
from applets.emrtd.lds.asn1 import DERTag
from applets.errors import LDSError
from applets.iso7816 import tlv
from common.curves import SECP256R1, SECP384R1, Curve, match_specified

FILE = "EF.DG15"
DG15_TAG = 0x6F
ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"  # ANSI X9.62 / RFC 3279
ID_PRIME_FIELD = "1.2.840.10045.1.1"

DG15PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
# A chip's RSA key is bounded before any operation with it, since the cost of s^e mod n grows
# with both: a 32768-bit modulus makes one Active Authentication take about a minute. The
# modulus bound is our policy, not a spec rule (ICAO 9303 sets no maximum); the exponent's
# upper bound is FIPS 186-5 §A.1.1's (e < 2^256).
MAX_RSA_MODULUS_BITS = 4096
MAX_RSA_EXPONENT_BITS = 256
# The curves an EC Active Authentication key may be on here, by name.
AA_CURVES: dict[str, Curve] = {curve.name: curve for curve in (SECP256R1, SECP384R1)}


def rsa_key_problem(modulus: int, exponent: int) -> str | None:
    """Why an RSA public key (n, e) is refused before any operation with it; None if it is not."""
    if modulus.bit_length() > MAX_RSA_MODULUS_BITS:
        return f"RSA modulus of {modulus.bit_length()} bits exceeds {MAX_RSA_MODULUS_BITS}"
    if modulus < 3 or modulus % 2 == 0:
        return "RSA modulus is not an odd number above 2"
    # RFC 8017 §3.1: 3 ≤ e ≤ n − 1 with gcd(e, λ(n)) = 1, so e is odd (λ(n) is even).
    if exponent < 3 or exponent % 2 == 0 or exponent >= modulus:
        return "RSA public exponent is not an odd number between 3 and n − 1"
    if exponent.bit_length() > MAX_RSA_EXPONENT_BITS:
        return f"RSA public exponent of {exponent.bit_length()} bits exceeds 2^256 (FIPS 186-5)"
    return None


def encode_dg15(public_key_spki_der: bytes) -> bytes:
    """DG15 around a DER SubjectPublicKeyInfo."""
    asn1.single(public_key_spki_der, DERTag.SEQUENCE, FILE)
    return tlv.encode(DG15_TAG, public_key_spki_der)


def _octets(value: int, size: int) -> bytes:
    return tlv.encode(DERTag.OCTET_STRING, value.to_bytes(size, "big"))


def explicit_parameters(params: Curve) -> bytes:
    """ECParameters (SEC 1 §C.2 / RFC 3279 §2.3.5): version 1, prime field, a, b, G, n, h."""
    field_id = asn1.sequence(asn1.oid(ID_PRIME_FIELD), asn1.integer(params.p))
    curve = asn1.sequence(_octets(params.a, params.size), _octets(params.b, params.size))
    return asn1.sequence(asn1.integer(1), field_id, curve,
                         tlv.encode(DERTag.OCTET_STRING, params.base),
                         asn1.integer(params.n), asn1.integer(params.h))


def encode_dg15_ec_point(uncompressed_point: bytes, curve: str = "secp256r1") -> bytes:
    """DG15 with an EC key given as its uncompressed point, with explicit domain parameters."""
    params = AA_CURVES.get(curve)
    if params is None:
        raise LDSError(FILE, f"curve {curve!r} is not one of {sorted(AA_CURVES)}")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(params.crypto_curve(), uncompressed_point)
    except ValueError as exc:
        raise LDSError(FILE, f"not a point on {curve}") from exc
    if len(uncompressed_point) != 1 + 2 * params.size:
        raise LDSError(FILE, "the point must be uncompressed (ICAO 9303-12 §4.1.6)")
    algorithm = asn1.sequence(asn1.oid(ID_EC_PUBLIC_KEY), explicit_parameters(params))
    key = tlv.encode(DERTag.BIT_STRING, b"\x00" + uncompressed_point)
    return encode_dg15(asn1.sequence(algorithm, key))


def _named_for(specified: keys.SpecifiedECDomain) -> Curve:
    """The known curve whose every parameter equals the explicit ones, or an error."""
    if specified["field_id"]["field_type"].dotted != ID_PRIME_FIELD:
        raise LDSError(FILE, "only prime-field curves are supported")
    params = match_specified(specified, AA_CURVES.values())
    if params is None:
        raise LDSError(FILE, "explicit EC domain parameters match no supported curve")
    return params


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
    return ec.EllipticCurvePublicKey.from_encoded_point(params.crypto_curve(), point)


def _algorithm(spki: bytes) -> str:
    """The key algorithm OID, read with our own codec (RFC 5280 §4.1.2.7: SEQUENCE { SEQUENCE
    { OID, parameters }, BIT STRING }): asn1crypto raises KeyError for an OID it does not know."""
    try:
        fields = asn1.children(asn1.single(spki, DERTag.SEQUENCE, FILE), FILE)
        if len(fields) != 2:
            raise LDSError(FILE, "not SEQUENCE { algorithm, subjectPublicKey }")
        identifier = asn1.children(asn1.expect(fields[0], DERTag.SEQUENCE, FILE, "algorithm"),
                                   FILE)
        if not identifier:
            raise LDSError(FILE, "empty AlgorithmIdentifier")
        return asn1.decode_oid(asn1.expect(identifier[0], DERTag.OID, FILE, "algorithm"), FILE)
    except LDSError as exc:
        raise LDSError(FILE, f"unreadable SubjectPublicKeyInfo: {exc.reason}") from exc


def decode_dg15(data: bytes) -> DG15PublicKey:
    """The public key of DG15: RSA (within :func:`rsa_key_problem`'s bounds), or EC with a named
    curve or explicit parameters."""
    spki = asn1.single(data, DG15_TAG, FILE)
    algorithm = _algorithm(spki)
    try:
        if algorithm == ID_EC_PUBLIC_KEY:
            return _ec_key(keys.PublicKeyInfo.load(spki, strict=True), spki)
        key = load_der_public_key(spki)
    except UnsupportedAlgorithm:
        raise LDSError(FILE, f"unsupported key algorithm {algorithm}") from None
    except (ValueError, TypeError, KeyError) as exc:  # KeyError: an OID asn1crypto does not know
        raise LDSError(FILE, f"unreadable SubjectPublicKeyInfo: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise LDSError(FILE, f"unsupported key algorithm {algorithm}")
    numbers = key.public_numbers()
    problem = rsa_key_problem(numbers.n, numbers.e)
    if problem is not None:
        raise LDSError(FILE, problem)
    return key
