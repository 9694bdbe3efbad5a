"""Public keys and signature verification for certificates and SODs; raises, never returns bool.

pyca/cryptography cannot load EC keys with explicit parameters (pyca/cryptography#5659), so
explicit parameters are matched to a known named curve first (ICAO 9303-12 §4.1.6).
"""

from __future__ import annotations

from asn1crypto import algos
from asn1crypto import keys as asn1_keys
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from hsm.ecparams import match_curve
from hsm.errors import CertificateError

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}  # ICAO 9303-12 §4.1.6: SHA-224/256/384/512 only
_CURVES: dict[str, ec.EllipticCurve] = {"secp256r1": ec.SECP256R1()}
SIGNATURE_ALGORITHM_NAMES = {  # our short names -> AlgorithmIdentifier
    "ecdsa-with-SHA256": {"algorithm": "sha256_ecdsa"},
    "rsassa-pss-sha256": {
        "algorithm": "rsassa_pss",
        "parameters": {
            "hash_algorithm": {"algorithm": "sha256"}, "salt_length": 32,
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}},
        },
    },
}


def load_public_key(spki_der: bytes) -> PublicKey:
    """A cryptography public key from an SPKI: RSA, or EC with named or explicit parameters."""
    try:
        info = asn1_keys.PublicKeyInfo.load(spki_der, strict=True)
        algorithm = info["algorithm"]["algorithm"].native
        if algorithm == "ec":
            curve = match_curve(info["algorithm"]["parameters"])
            point = bytes(info["public_key"].native)
            return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[curve.name], point)
        if algorithm in ("rsa", "rsassa_pss"):
            key = load_der_public_key(spki_der)
            if isinstance(key, rsa.RSAPublicKey):
                return key
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"unusable public key: {exc}") from exc
    raise CertificateError(f"unsupported public key algorithm {algorithm!r}")


def _algorithm(algorithm: algos.SignedDigestAlgorithm | str) -> algos.SignedDigestAlgorithm:
    if isinstance(algorithm, str):
        try:
            return algos.SignedDigestAlgorithm(SIGNATURE_ALGORITHM_NAMES[algorithm])
        except KeyError:
            raise CertificateError(f"unknown signature algorithm {algorithm!r}") from None
    return algorithm


def _hash(name: str) -> hashes.HashAlgorithm:
    try:
        return _HASHES[name]()
    except KeyError:
        raise CertificateError(f"hash algorithm {name!r} is not allowed") from None


def verify_signature(
    spki_der: bytes,
    algorithm: algos.SignedDigestAlgorithm | str,
    signature: bytes,
    data: bytes,
) -> None:
    """Raise ``CertificateError`` unless ``signature`` over ``data`` verifies under the key."""
    key = load_public_key(spki_der)
    identifier = _algorithm(algorithm)
    try:
        kind = identifier.signature_algo
        if kind == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(_hash(identifier.hash_algo)))
        elif kind == "rsassa_pss" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, *_pss(identifier))
        elif kind == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), _hash(identifier.hash_algo))
        else:
            raise CertificateError(f"signature algorithm {kind} does not fit the key")
    except InvalidSignature as exc:
        raise CertificateError("signature does not verify") from exc
    except ValueError as exc:
        raise CertificateError(f"malformed signature or algorithm: {exc}") from exc


def _pss(identifier: algos.SignedDigestAlgorithm) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    params = identifier["parameters"]
    digest = _hash(params["hash_algorithm"]["algorithm"].native)
    mgf = params["mask_gen_algorithm"]
    if mgf["algorithm"].native != "mgf1":
        raise CertificateError("RSASSA-PSS must use MGF1")
    mgf_hash = _hash(mgf["parameters"]["algorithm"].native)
    salt = int(params["salt_length"].native)
    return padding.PSS(padding.MGF1(mgf_hash), salt), digest
