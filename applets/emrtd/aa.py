"""Active Authentication of ICAO 9303-11 §6.1: the chip signs the terminal's challenge.

ECDSA (§6.1.2.3): plain signature r ‖ s as BSI TR-03111 §5.2.1 encodes it, over the hash
of RND.IFD. RSA (§6.1.2.2): ISO/IEC 9796-2 digital signature scheme 1 with partial message
recovery. Also the ISO 7816-8 public key template (7F49) GENERATE ASYMMETRIC KEY PAIR returns.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from applets.emrtd.errors import AAError
from applets.emrtd.lds.dg15 import rsa_key_problem
from applets.errors import TLVError
from applets.iso7816 import tlv

CHALLENGE_LENGTH = 8  # ICAO 9303-11 §6.1: RND.IFD is 8 bytes
P256_OID = bytes.fromhex("2A8648CE3D030107")  # 1.2.840.10045.3.1.7 (secp256r1)
TAG_PUBLIC_KEY = 0x7F49
TAG_OID = 0x06
TAG_POINT = 0x86
# ISO/IEC 9796-2 §B.6 trailer byte before CC for each hash (SHA-1 may also use trailer BC).
_TRAILERS: dict[int, hashes.HashAlgorithm] = {
    0x33: hashes.SHA1(),  # noqa: S303 - verifying legacy RSA-AA chips (9303-11 §6.1.2.2)
    0x38: hashes.SHA224(), 0x34: hashes.SHA256(), 0x36: hashes.SHA384(), 0x35: hashes.SHA512(),
}


def _field_bytes(curve: ec.EllipticCurve) -> int:
    return (curve.key_size + 7) // 8


def sign_ecdsa(
    key: ec.EllipticCurvePrivateKey, challenge: bytes,
    algorithm: hashes.HashAlgorithm | None = None,
) -> bytes:
    """Card side: ECDSA over the challenge, returned as plain r ‖ s (BSI TR-03111)."""
    der = key.sign(challenge, ec.ECDSA(algorithm or hashes.SHA256()))
    r, s = decode_dss_signature(der)
    size = _field_bytes(key.curve)
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _verify_ecdsa(
    key: ec.EllipticCurvePublicKey, challenge: bytes, signature: bytes,
    algorithm: hashes.HashAlgorithm,
) -> None:
    size = _field_bytes(key.curve)
    if len(signature) != 2 * size:
        raise AAError(f"plain ECDSA signature of {len(signature)} bytes ({2 * size} expected)")
    r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
    try:
        key.verify(encode_dss_signature(r, s), challenge, ec.ECDSA(algorithm))
    except InvalidSignature as exc:
        raise AAError("ECDSA Active Authentication signature does not verify") from exc


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    context = hashes.Hash(algorithm)
    context.update(data)
    return context.finalize()


def _recover_representative(key: rsa.RSAPublicKey, signature: bytes) -> bytes:
    numbers = key.public_numbers()
    problem = rsa_key_problem(numbers.n, numbers.e)  # before s^e mod n, whose cost they set
    if problem is not None:
        raise AAError(problem)
    size = (numbers.n.bit_length() + 7) // 8
    value = int.from_bytes(signature, "big")
    if len(signature) != size or value >= numbers.n:
        raise AAError("RSA signature has the wrong size for the key")
    recovered = pow(value, numbers.e, numbers.n)
    if recovered & 0x0F != 0x0C:  # ISO/IEC 9796-2: the signer may have sent n − s
        recovered = numbers.n - recovered
    return recovered.to_bytes(size, "big")


def verify_iso9796_2(key: rsa.RSAPublicKey, challenge: bytes, signature: bytes) -> bytes:
    """ISO/IEC 9796-2 scheme 1, partial recovery: check and return the recovered M1."""
    f = _recover_representative(key, signature)
    if f[-1] == 0xBC:  # trailer option 1: implicit SHA-1
        algorithm, trailer = _TRAILERS[0x33], 1
    elif f[-1] == 0xCC and f[-2] in _TRAILERS:
        algorithm, trailer = _TRAILERS[f[-2]], 2
    else:
        raise AAError("ISO 9796-2 trailer not recognised")
    if f[0] != 0x6A:  # header 01 + partial recovery 1 + padding 01010
        raise AAError("ISO 9796-2 header is not 6A (partial recovery)")
    digest_end = len(f) - trailer
    digest_start = digest_end - algorithm.digest_size
    m1, digest = f[1:digest_start], f[digest_start:digest_end]
    if not hmac.compare_digest(_digest(algorithm, m1 + challenge), digest):
        raise AAError("ISO 9796-2 hash over M1 ‖ RND.IFD does not match")
    return m1


def verify_aa(
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, challenge: bytes,
    signature: bytes, algorithm: hashes.HashAlgorithm | None = None,
) -> None:
    """Terminal side: raise :class:`AAError` unless ``signature`` signs ``challenge``."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        _verify_ecdsa(public_key, challenge, signature, algorithm or hashes.SHA256())
    else:
        verify_iso9796_2(public_key, challenge, signature)


def encode_public_key_template(key: ec.EllipticCurvePublicKey) -> bytes:
    """ISO 7816-8 public key template: 7F49 { 06 curve OID, 86 uncompressed point }."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise AAError(f"curve {key.curve.name} has no template encoding here")
    point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return tlv.encode(TAG_PUBLIC_KEY, tlv.encode(TAG_OID, P256_OID) + tlv.encode(TAG_POINT, point))


def decode_public_key_template(data: bytes) -> ec.EllipticCurvePublicKey:
    """Parse the 7F49 template of a P-256 key back into a public key."""
    try:
        body = tlv.decode_single(data, TAG_PUBLIC_KEY).value
        oid, point = tlv.find(body, TAG_OID), tlv.find(body, TAG_POINT)
    except TLVError as exc:
        raise AAError(f"public key template malformed: {exc}") from exc
    if oid != P256_OID:
        raise AAError(f"curve OID {oid.hex()} is not secp256r1")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise AAError("public point is not on the curve") from exc
