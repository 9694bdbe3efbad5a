"""Explicit EC domain parameters (SEC 1 §C.2) for certificates, as ICAO 9303-12 §4.1.6 requires.

Pure: integers and DER in, DER and integers out.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import keys as asn1_keys

from hsm.errors import CertificateError


@dataclass(frozen=True)
class PrimeCurve:
    """A short-Weierstrass curve over a prime field, y² = x³ + ax + b, with base point G."""

    name: str  # the asn1crypto / cryptography name of the named curve
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int

    @property
    def size(self) -> int:
        """Octets of one field element."""
        return (self.p.bit_length() + 7) // 8

    def on_curve(self, x: int, y: int) -> bool:
        """Whether (x, y) satisfies the curve equation."""
        return (y * y - (x * x * x + self.a * x + self.b)) % self.p == 0


# SEC 2 v2 §2.4.2 (= NIST P-256); a test checks G, n and p against pyca/cryptography.
P256 = PrimeCurve(
    name="secp256r1",
    p=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF,
    a=0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC,
    b=0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B,
    gx=0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296,
    gy=0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5,
    n=0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    h=1,
)
KNOWN_CURVES: tuple[PrimeCurve, ...] = (P256,)


def explicit_parameters(curve: PrimeCurve) -> asn1_keys.ECDomainParameters:
    """SpecifiedECDomain: prime field, a, b, uncompressed G, order and cofactor (9303-12 §4.1.6)."""
    size = curve.size
    base = b"\x04" + curve.gx.to_bytes(size, "big") + curve.gy.to_bytes(size, "big")
    specified = asn1_keys.SpecifiedECDomain({
        "version": "ecdpVer1",
        "field_id": {"field_type": "prime_field", "parameters": curve.p},
        "curve": {"a": curve.a.to_bytes(size, "big"), "b": curve.b.to_bytes(size, "big")},
        "base": base,
        "order": curve.n,
        "cofactor": curve.h,  # ICAO 9303-12 §4.1.6: the cofactor MUST be included
    })
    return asn1_keys.ECDomainParameters(name="specified", value=specified)


def curve_by_name(name: str) -> PrimeCurve:
    """The known curve called ``name`` (asn1crypto naming), or ``CertificateError``."""
    for curve in KNOWN_CURVES:
        if curve.name == name:
            return curve
    raise CertificateError(f"EC curve {name!r} is not supported")


def match_curve(parameters: asn1_keys.ECDomainParameters) -> PrimeCurve:
    """The known curve that named or explicit ``parameters`` denote; unknown ones are refused."""
    if parameters.name == "named":
        return curve_by_name(parameters.chosen.native)
    if parameters.name != "specified":
        raise CertificateError("implicitCA EC parameters are not allowed")
    spec = parameters.chosen
    if spec["field_id"]["field_type"].native != "prime_field":
        raise CertificateError("only prime-field EC parameters are supported")
    found = (
        int(spec["field_id"]["parameters"].native),
        int.from_bytes(spec["curve"]["a"].native, "big"),
        int.from_bytes(spec["curve"]["b"].native, "big"),
        bytes(spec["base"].native),
        int(spec["order"].native),
        int(spec["cofactor"].native) if spec["cofactor"].native is not None else None,
    )
    for curve in KNOWN_CURVES:
        if found == _fingerprint(curve):
            return curve
    raise CertificateError("explicit EC parameters do not match any supported curve")


def _fingerprint(curve: PrimeCurve) -> tuple[int, int, int, bytes, int, int]:
    size = curve.size
    base = b"\x04" + curve.gx.to_bytes(size, "big") + curve.gy.to_bytes(size, "big")
    return (curve.p, curve.a, curve.b, base, curve.n, curve.h)


def explicit_spki(spki_der: bytes) -> bytes:
    """Rewrite an EC SubjectPublicKeyInfo with explicit parameters; RSA passes unchanged."""
    try:
        info = asn1_keys.PublicKeyInfo.load(spki_der)
        algorithm = info["algorithm"]["algorithm"].native
        if algorithm != "ec":
            return bytes(info.dump())
        curve = match_curve(info["algorithm"]["parameters"])
        point = bytes(info["public_key"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"malformed SubjectPublicKeyInfo: {exc}") from exc
    if len(point) != 1 + 2 * curve.size or point[0] != 0x04:
        raise CertificateError("EC public point must be uncompressed (ICAO 9303-12 §4.1.6)")
    rebuilt = asn1_keys.PublicKeyInfo({
        "algorithm": {"algorithm": "ec", "parameters": explicit_parameters(curve)},
        "public_key": point,
    })
    return bytes(rebuilt.dump())


def named_spki(spki_der: bytes) -> bytes:
    """Rewrite an EC SubjectPublicKeyInfo with its named-curve OID; RSA passes unchanged."""
    try:
        info = asn1_keys.PublicKeyInfo.load(spki_der)
        if info["algorithm"]["algorithm"].native != "ec":
            return bytes(info.dump())
        curve = match_curve(info["algorithm"]["parameters"])
        point = bytes(info["public_key"].native)
    except (ValueError, TypeError, KeyError) as exc:
        raise CertificateError(f"malformed SubjectPublicKeyInfo: {exc}") from exc
    rebuilt = asn1_keys.PublicKeyInfo({
        "algorithm": {"algorithm": "ec", "parameters": ("named", curve.name)},
        "public_key": point,
    })
    return bytes(rebuilt.dump())


def spki_form(spki_der: bytes, ec_parameters: str) -> bytes:
    """The SPKI with EC parameters ``"explicit"`` (ICAO 9303-12 §4.1.6) or ``"named"``."""
    if ec_parameters == "explicit":
        return explicit_spki(spki_der)
    if ec_parameters == "named":
        return named_spki(spki_der)
    raise CertificateError(f"EC parameters must be 'explicit' or 'named', not {ec_parameters!r}")
