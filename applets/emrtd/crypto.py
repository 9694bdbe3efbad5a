"""Symmetric primitives of ICAO 9303-11 §9.7–9.8: 3DES/AES-CBC, padding, retail MAC, CMAC, KDF.

Pure functions over bytes. Two-key 3DES keys are 16 bytes and expanded to K1‖K2‖K1;
single DES for the retail MAC is K‖K‖K (cryptography's decrepit TripleDES, see
reference/test-stack.md).
"""

from __future__ import annotations

import hashlib
from enum import Enum

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from applets.emrtd.errors import CryptoError

MAC_LENGTH = 8  # ICAO 9303-11 §9.8.3: both retail MAC and AES-CMAC are cut to 8 bytes


class SMCipher(Enum):
    """The cipher suites of BAC/PACE/CA secure messaging (ICAO 9303-11 §9.8.3)."""

    DES3 = (16, 8)
    AES128 = (16, 16)
    AES192 = (24, 16)
    AES256 = (32, 16)

    @property
    def key_length(self) -> int:
        """Length of KS_enc / KS_mac in bytes."""
        return self.value[0]

    @property
    def block_size(self) -> int:
        """Cipher block size: 8 for 3DES, 16 for AES (also the SSC length)."""
        return self.value[1]


def pad(data: bytes, block_size: int = 8) -> bytes:
    """ISO/IEC 9797-1 padding method 2: append 80 then 00 up to a block boundary."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block_size)


def unpad(data: bytes) -> bytes:
    """Remove ISO/IEC 9797-1 method 2 padding, raising when it is not there."""
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80:
        raise CryptoError("ISO 9797-1 method 2 padding not found")
    return stripped[:-1]


def _des3_key(key: bytes) -> bytes:
    if len(key) == 16:
        return key + key[:8]  # two-key 3DES as K1‖K2‖K1
    if len(key) in (8, 24):
        return key * (24 // len(key))
    raise CryptoError(f"3DES key of {len(key)} bytes (8, 16 or 24 expected)")


def _cbc(algorithm: TripleDES | algorithms.AES, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    if len(data) % len(iv):
        raise CryptoError(f"{len(data)} bytes is not a multiple of the block size {len(iv)}")
    cipher = Cipher(algorithm, modes.CBC(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def des3_encrypt(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    """Two-key 3DES-CBC encryption of block-aligned data (IV zero unless given)."""
    return _cbc(TripleDES(_des3_key(key)), iv, data, encrypt=True)


def des3_decrypt(key: bytes, data: bytes, iv: bytes = bytes(8)) -> bytes:
    """Two-key 3DES-CBC decryption of block-aligned data."""
    return _cbc(TripleDES(_des3_key(key)), iv, data, encrypt=False)


def aes_encrypt(key: bytes, data: bytes, iv: bytes = bytes(16)) -> bytes:
    """AES-CBC encryption of block-aligned data."""
    return _cbc(algorithms.AES(key), iv, data, encrypt=True)


def aes_decrypt(key: bytes, data: bytes, iv: bytes = bytes(16)) -> bytes:
    """AES-CBC decryption of block-aligned data."""
    return _cbc(algorithms.AES(key), iv, data, encrypt=False)


def retail_mac(key: bytes, padded: bytes) -> bytes:
    """ISO/IEC 9797-1 MAC algorithm 3 with DES over already padded data (8 bytes).

    Single-DES CBC with K1 over every block, then the last block is decrypted with K2 and
    encrypted with K1 again.
    """
    if len(key) != 16:
        raise CryptoError(f"retail MAC key of {len(key)} bytes (16 expected)")
    k1, k2 = key[:8], key[8:]
    chained = _cbc(TripleDES(k1 * 3), bytes(8), padded, encrypt=True)[-8:]
    step = _cbc(TripleDES(k2 * 3), bytes(8), chained, encrypt=False)
    return _cbc(TripleDES(k1 * 3), bytes(8), step, encrypt=True)


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B) truncated to 8 bytes as ICAO 9303-11 §9.8.3.2 uses it."""
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()[:MAC_LENGTH]


def kdf(seed: bytes, counter: int, suite: SMCipher = SMCipher.DES3) -> bytes:
    """ICAO 9303-11 §9.7.1: key = H(K ‖ c as 32-bit big endian), cut to the suite's length.

    SHA-1 for 3DES and AES-128, SHA-256 for AES-192 and AES-256. 3DES keys are not
    parity-adjusted (§9.7.1.1 makes it optional; DES ignores the parity bits).
    """
    data = seed + counter.to_bytes(4, "big")
    if suite in (SMCipher.DES3, SMCipher.AES128):
        return hashlib.sha1(data).digest()[:16]  # noqa: S324 - ICAO 9303-11 §9.7.1 mandates SHA-1
    return hashlib.sha256(data).digest()[: suite.key_length]


def adjust_parity(key: bytes) -> bytes:
    """Set each byte's low bit so that it has odd parity (DES key parity, FIPS 46-3)."""
    return bytes((b & 0xFE) | (bin(b >> 1).count("1") + 1) % 2 for b in key)
