"""Split knowledge of a token PIN: Shamir k-of-n secret sharing, and shares sealed per person.

Sharing (Shamir, "How to share a secret", CACM 22(11), 1979) works byte by byte over GF(2^8)
with the AES polynomial x^8 + x^4 + x^3 + x + 1 (FIPS-197 §4.2). Before splitting, a 16-byte
tag (truncated SHA-256 of a domain label and the secret) is appended; ``combine`` checks it in
constant time, so too few genuine shares, shares of different splits or a corrupted share are
refused instead of yielding a wrong secret. Each multiplication that touches secret bytes is a
public scalar (a share index or a Lagrange coefficient) times all bytes of a value at once, by
shifts, masks and XOR: no branch and no table lookup depends on a secret byte.

Share: ``version (1) ‖ index (1) ‖ k (1) ‖ value``.

Sealed share: ``version (1) ‖ memory KiB (4, big-endian) ‖ iterations (1) ‖ lanes (1) ‖
salt (16) ‖ nonce (12) ‖ ciphertext ‖ GCM tag (16)``. Argon2id (RFC 9106) derives a 256-bit key
from the NFC-normalised UTF-8 passphrase and the salt; AES-256-GCM (NIST SP 800-38D) seals with
``header ‖ context`` as associated data, which binds the share to one officer and one token.

Python cannot wipe memory: callers keep secrets in as few objects as they can and drop them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hsm.errors import QuorumError

Random = Callable[[int], bytes]

MAX_SHARES = 255  # GF(2^8) has 255 non-zero points; x = 0 is the secret itself
TAG_BYTES = 16
SHARE_VERSION = 1
SEALED_VERSION = 1
MAX_MEMORY_KIB = 1024 * 1024  # 1 GiB: the most a sealed share's header may make us allocate
MAX_ITERATIONS = 10
MAX_LANES = 16
_TAG_LABEL = b"cardline shamir tag v1\x00"
_REDUCTION = 0x1B  # FIPS-197 §4.2: m(x) = x^8 + x^4 + x^3 + x + 1 without its x^8 term
_SHARE_HEADER = struct.Struct(">BBB")  # version, index, k
_SEALED_HEADER = struct.Struct(">BIBB16s12s")  # version, memory, iterations, lanes, salt, nonce
_SALT_BYTES = 16
_NONCE_BYTES = 12  # NIST SP 800-38D §5.2.1.1: 96-bit IVs
_GCM_TAG_BYTES = 16
_KEY_BYTES = 32
_CONTEXT_LABEL = b"cardline token-pin share v1"


@dataclass(frozen=True, slots=True)
class KDFCost:
    """Argon2id cost (RFC 9106 §3.1): memory in KiB, passes and lanes, bounded both ways."""

    memory_kib: int = 65536
    iterations: int = 3
    lanes: int = 1

    def __post_init__(self) -> None:
        # RFC 9106 §3.1: at least 8 KiB of memory per lane. The upper bounds keep a hostile
        # header from making us allocate or compute without limit.
        if not (1 <= self.lanes <= MAX_LANES and 1 <= self.iterations <= MAX_ITERATIONS
                and 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB):
            raise QuorumError(
                f"Argon2id cost out of bounds (memory {self.memory_kib} KiB, iterations "
                f"{self.iterations}, lanes {self.lanes}); allowed: 1-{MAX_LANES} lanes, "
                f"1-{MAX_ITERATIONS} iterations, 8 KiB per lane to {MAX_MEMORY_KIB} KiB",
                code="kdf-parameters")


# OWASP Password Storage Cheat Sheet, Argon2id minimum: m = 19 MiB, t = 2, p = 1.
OWASP_MINIMUM_COST = KDFCost(memory_kib=19456, iterations=2, lanes=1)
# 64 MiB, three passes: above the OWASP minimum, and an unseal stays well under a second.
DEFAULT_COST = KDFCost()


@dataclass(frozen=True, slots=True)
class Share:
    """One point of a split: its index (x, 1..255), the quorum ``k`` and the value (y per byte)."""

    index: int
    k: int
    value: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.index <= MAX_SHARES:
            raise QuorumError(f"share index {self.index} is not in 1..255", code="format")
        if not 2 <= self.k <= MAX_SHARES:
            raise QuorumError(f"share quorum k={self.k} is not in 2..255", code="format")
        if len(self.value) <= TAG_BYTES:
            raise QuorumError("share value too short to hold a secret and its tag", code="format")

    def to_bytes(self) -> bytes:
        """``version ‖ index ‖ k ‖ value``."""
        return _SHARE_HEADER.pack(SHARE_VERSION, self.index, self.k) + self.value

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        """The share ``to_bytes`` wrote, or ``QuorumError`` for another version or a bad field."""
        if len(data) < _SHARE_HEADER.size:
            raise QuorumError("share truncated", code="format")
        version, index, k = _SHARE_HEADER.unpack_from(data)
        if version != SHARE_VERSION:
            raise QuorumError(f"share format version {version} is not supported", code="format")
        return cls(index, k, bytes(data[_SHARE_HEADER.size:]))


def _mul_lanes(scalar: int, lanes: int, width: int) -> int:
    """``scalar`` times each byte of ``lanes`` (``width`` bytes, big-endian) in GF(2^8).

    Branches only on the bits of ``scalar``, which is public; the bytes of ``lanes`` go through
    shifts, masks and XOR only (FIPS-197 §4.2.1: xtime, applied to every byte at once).
    """
    ones = int.from_bytes(b"\x01" * width, "big")
    product = 0
    for bit in range(8):
        if scalar >> bit & 1:
            product ^= lanes
        carries = (lanes >> 7) & ones
        lanes = ((lanes << 1) & (ones * 0xFE)) ^ (carries * _REDUCTION)
    return product


def gf_mul(a: int, b: int) -> int:
    """The product of two bytes in GF(2^8) with the AES polynomial (FIPS-197 §4.2)."""
    if not (0 <= a <= 0xFF and 0 <= b <= 0xFF):
        raise QuorumError("GF(2^8) elements are bytes 0..255", code="parameters")
    return _mul_lanes(a, b, 1)


def gf_inverse(a: int) -> int:
    """The inverse of a non-zero byte in GF(2^8): a^254, as a^255 = 1 (FIPS-197 §4.2)."""
    if not 1 <= a <= 0xFF:
        raise QuorumError("only a non-zero byte has an inverse in GF(2^8)", code="parameters")
    result, power, exponent = 1, a, 254
    while exponent:
        if exponent & 1:
            result = gf_mul(result, power)
        power, exponent = gf_mul(power, power), exponent >> 1
    return result


def _tag(secret: bytes) -> bytes:
    return hashlib.sha256(_TAG_LABEL + secret).digest()[:TAG_BYTES]


def _random(rng: Random, size: int) -> bytes:
    data = rng(size)
    if len(data) != size:
        raise QuorumError(f"the random source gave {len(data)} bytes, not {size}",
                          code="parameters")
    return data


def split(secret: bytes, k: int, n: int, rng: Random = secrets.token_bytes) -> list[Share]:
    """``n`` shares of ``secret``: any ``k`` of them reassemble it, fewer tell nothing of it."""
    if not 2 <= k <= n <= MAX_SHARES:
        raise QuorumError(f"a quorum needs 2 <= k <= n <= 255 (got k={k}, n={n})",
                          code="parameters")
    if not secret:
        raise QuorumError("the secret to split is empty", code="parameters")
    encoded = bytes(secret) + _tag(bytes(secret))
    width = len(encoded)
    # Shamir 1979: per byte, a random polynomial of degree <= k-1 whose constant term is the
    # secret byte; share x is its value at x.
    coefficients = [int.from_bytes(_random(rng, width), "big") for _ in range(k - 1)]
    constant = int.from_bytes(encoded, "big")
    return [Share(x, k, _evaluate(constant, coefficients, x, width).to_bytes(width, "big"))
            for x in range(1, n + 1)]


def _evaluate(constant: int, coefficients: list[int], x: int, width: int) -> int:
    value = 0
    for coefficient in reversed(coefficients):  # Horner's rule, highest degree first
        value = _mul_lanes(x, value ^ coefficient, width)
    return value ^ constant


def combine(shares: Sequence[Share]) -> bytes:
    """The secret of a quorum of shares, or ``QuorumError``; an index given twice counts once.

    Every distinct share given takes part, so one corrupted share among more than ``k`` is
    refused rather than outvoted.
    """
    points = _distinct(shares)
    k, width = _common_shape(points)
    if len(points) < k:
        raise QuorumError(f"{len(points)} distinct share(s) given; this split needs {k}",
                          code="too-few-shares")
    encoded = _interpolate_at_zero(points, width).to_bytes(width, "big")
    secret, tag = encoded[:-TAG_BYTES], encoded[-TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(secret)):
        raise QuorumError("the shares do not reassemble a secret: one is corrupted, they come "
                          "from different splits, or fewer than k are genuine", code="integrity")
    return secret


def _distinct(shares: Sequence[Share]) -> dict[int, Share]:
    points: dict[int, Share] = {}
    for share in shares:
        seen = points.setdefault(share.index, share)
        if seen.k != share.k or not hmac.compare_digest(seen.value, share.value):
            raise QuorumError(f"two different shares carry index {share.index}",
                              code="inconsistent-shares")
    return points


def _common_shape(points: dict[int, Share]) -> tuple[int, int]:
    shapes = {(share.k, len(share.value)) for share in points.values()}
    if not shapes:
        raise QuorumError("no shares given", code="too-few-shares")
    if len(shapes) > 1:
        raise QuorumError("the shares come from different splits (their k or length differ)",
                          code="inconsistent-shares")
    return shapes.pop()


def _interpolate_at_zero(points: dict[int, Share], width: int) -> int:
    # Lagrange at x = 0; in GF(2^8) minus is XOR: l_j(0) = Π x_m / Π (x_m ⊕ x_j), m ≠ j.
    result = 0
    for xj, share in points.items():
        numerator, denominator = 1, 1
        for xm in points:
            if xm != xj:
                numerator, denominator = gf_mul(numerator, xm), gf_mul(denominator, xm ^ xj)
        coefficient = gf_mul(numerator, gf_inverse(denominator))
        result ^= _mul_lanes(coefficient, int.from_bytes(share.value, "big"), width)
    return result


def share_context(token_label: str, officer: str) -> bytes:
    """The associated data binding a sealed PIN share to one token and one officer.

    Each field is length-prefixed, so no pair of names can produce another pair's context.
    """
    fields = (name.encode("utf-8", "surrogatepass") for name in (token_label, officer))
    return _CONTEXT_LABEL + b"".join(struct.pack(">I", len(f)) + f for f in fields)


def _check_inputs(passphrase: str, context: bytes) -> None:
    if not passphrase:
        raise QuorumError("an empty passphrase cannot seal or open a share", code="parameters")
    if not context:
        raise QuorumError("a sealed share needs a context naming its token and officer",
                          code="parameters")


def _derive_key(passphrase: str, salt: bytes, cost: KDFCost) -> bytes:
    # NFC: the same Vietnamese passphrase typed with composed or combining marks is one key.
    secret = unicodedata.normalize("NFC", passphrase).encode("utf-8", "surrogatepass")
    try:
        return hash_secret_raw(secret, salt, time_cost=cost.iterations,
                               memory_cost=cost.memory_kib, parallelism=cost.lanes,
                               hash_len=_KEY_BYTES, type=Type.ID)
    except HashingError as exc:
        raise QuorumError(f"Argon2id failed: {exc}", code="kdf-parameters") from None


def seal(data: bytes, passphrase: str, context: bytes, *, cost: KDFCost = DEFAULT_COST,
         rng: Random = secrets.token_bytes) -> bytes:
    """``data`` encrypted under a key derived from ``passphrase``, bound to ``context``."""
    _check_inputs(passphrase, context)
    salt, nonce = _random(rng, _SALT_BYTES), _random(rng, _NONCE_BYTES)
    header = _SEALED_HEADER.pack(SEALED_VERSION, cost.memory_kib, cost.iterations, cost.lanes,
                                 salt, nonce)
    key = _derive_key(passphrase, salt, cost)
    return header + AESGCM(key).encrypt(nonce, bytes(data), header + context)


def sealed_cost(blob: bytes) -> KDFCost:
    """The Argon2id cost a sealed share's header asks for, or ``QuorumError`` if out of bounds."""
    return _parse_header(blob)[1]


def _parse_header(blob: bytes) -> tuple[bytes, KDFCost, bytes, bytes]:
    if len(blob) < 1:
        raise QuorumError("sealed share is empty", code="format")
    if blob[0] != SEALED_VERSION:
        raise QuorumError(f"sealed share format version {blob[0]} is not supported",
                          code="format")
    if len(blob) < _SEALED_HEADER.size + _GCM_TAG_BYTES:
        raise QuorumError("sealed share truncated", code="format")
    _, memory, iterations, lanes, salt, nonce = _SEALED_HEADER.unpack_from(blob)
    cost = KDFCost(memory_kib=memory, iterations=iterations, lanes=lanes)
    return bytes(blob[:_SEALED_HEADER.size]), cost, salt, nonce


def unseal(blob: bytes, passphrase: str, context: bytes) -> bytes:
    """The data ``seal`` sealed, or ``QuorumError`` (wrong passphrase or context, altered)."""
    _check_inputs(passphrase, context)
    header, cost, salt, nonce = _parse_header(blob)
    key = _derive_key(passphrase, salt, cost)
    try:
        return AESGCM(key).decrypt(nonce, bytes(blob[len(header):]), header + context)
    except InvalidTag:
        # from None: nothing of the key, the passphrase or the blob travels with the error.
        raise QuorumError("the sealed share did not open: wrong passphrase or not this "
                          "officer's share for this token, or it was altered",
                          code="unseal-refused") from None
