"""Explicit EC domain parameters (SEC 1 §C.2) for certificates, as ICAO 9303-12 §4.1.6 requires.

Pure: integers and DER in, DER and integers out.
"""

from __future__ import annotations

from asn1crypto import keys as asn1_keys

from common.curves import SECP256R1, Curve, match_specified
from hsm.errors import CertificateError

# The HSM's keys and certificates are P-256 only (the key policy of hsm.signer).
P256 = SECP256R1
KNOWN_CURVES: tuple[Curve, ...] = (P256,)


def explicit_parameters(curve: Curve) -> asn1_keys.ECDomainParameters:
    """SpecifiedECDomain: prime field, a, b, uncompressed G, order and cofactor (9303-12 §4.1.6)."""
    size = curve.size
    specified = asn1_keys.SpecifiedECDomain({
        "version": "ecdpVer1",
        "field_id": {"field_type": "prime_field", "parameters": curve.p},
        "curve": {"a": curve.a.to_bytes(size, "big"), "b": curve.b.to_bytes(size, "big")},
        "base": curve.base,
        "order": curve.n,
        "cofactor": curve.h,  # ICAO 9303-12 §4.1.6: the cofactor MUST be included
    })
    return asn1_keys.ECDomainParameters(name="specified", value=specified)


def curve_by_name(name: str) -> Curve:
    """The known curve called ``name`` (asn1crypto naming), or ``CertificateError``."""
    for curve in KNOWN_CURVES:
        if curve.name == name:
            return curve
    raise CertificateError(f"EC curve {name!r} is not supported")


def match_curve(parameters: asn1_keys.ECDomainParameters) -> Curve:
    """The known curve that named or explicit ``parameters`` denote; unknown ones are refused."""
    if parameters.name == "named":
        return curve_by_name(parameters.chosen.native)
    if parameters.name != "specified":
        raise CertificateError("implicitCA EC parameters are not allowed")
    spec = parameters.chosen
    if spec["field_id"]["field_type"].native != "prime_field":
        raise CertificateError("only prime-field EC parameters are supported")
    curve = match_specified(spec, KNOWN_CURVES)
    if curve is None:
        raise CertificateError("explicit EC parameters do not match any supported curve")
    return curve


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
