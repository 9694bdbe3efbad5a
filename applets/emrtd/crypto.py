"""Symmetric primitives of ICAO 9303-11 §9.7–9.8: 3DES/AES-CBC, padding, retail MAC, CMAC, KDF.

Pure functions over bytes, and keyed objects (:class:`KeyedCBC`, :class:`SessionMac`) for a
secure-messaging session, which keys its ciphers once instead of once per message. Two-key
3DES keys are 16 bytes and expanded to K1‖K2‖K1; single DES for the retail MAC is K‖K‖K
(cryptography's decrepit TripleDES, see reference/test-stack.md).
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
    return SessionMac(key, SMCipher.DES3).mac(padded)


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (NIST SP 800-38B) truncated to 8 bytes as ICAO 9303-11 §9.8.3.2 uses it."""
    suites = {suite.key_length: suite for suite in (SMCipher.AES128, SMCipher.AES192,
                                                    SMCipher.AES256)}
    if len(key) not in suites:
        raise CryptoError(f"AES key of {len(key)} bytes (16, 24 or 32 expected)")
    return SessionMac(key, suites[len(key)]).mac(data)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _algorithm(key: bytes, suite: SMCipher) -> TripleDES | algorithms.AES:
    if suite is SMCipher.DES3:
        return TripleDES(_des3_key(key))
    if len(key) != suite.key_length:
        raise CryptoError(f"{suite.name} key of {len(key)} bytes ({suite.key_length} expected)")
    return algorithms.AES(key)


class KeyedCBC:
    """CBC with one key and a fresh IV per message, over cipher contexts keyed once.

    A CBC context carries its last ciphertext block into the next call; folding that block
    (and the message's IV) into the first block makes every call equal a new context with that
    IV, without a new key schedule per message.
    """

    def __init__(self, key: bytes, suite: SMCipher) -> None:
        self.block = suite.block_size
        cipher = Cipher(_algorithm(key, suite), modes.CBC(bytes(self.block)))
        self._encryptor, self._decryptor = cipher.encryptor(), cipher.decryptor()
        self._encrypt_chain = self._decrypt_chain = bytes(self.block)
        # One block at a time, never a message: the AES SM IV E(KS_enc, SSC) (§9.8.6.2).
        self._ecb = Cipher(_algorithm(key, suite), modes.ECB()).encryptor()  # noqa: S305

    def _check(self, data: bytes, iv: bytes) -> None:
        if len(data) % self.block or len(iv) != self.block:
            raise CryptoError(f"{len(data)} bytes (IV {len(iv)}) do not fit the block size "
                              f"{self.block}")

    def encrypt(self, data: bytes, iv: bytes) -> bytes:
        """CBC encryption of block-aligned ``data`` under ``iv``."""
        self._check(data, iv)
        if not data:
            return b""
        first = _xor(data[: self.block], _xor(iv, self._encrypt_chain))
        out = self._encryptor.update(first + data[self.block :])
        self._encrypt_chain = out[-self.block :]
        return out

    def decrypt(self, data: bytes, iv: bytes) -> bytes:
        """CBC decryption of block-aligned ``data`` under ``iv``."""
        self._check(data, iv)
        if not data:
            return b""
        out = self._decryptor.update(data)
        first = _xor(out[: self.block], _xor(iv, self._decrypt_chain))
        self._decrypt_chain = data[-self.block :]
        return first + out[self.block :]

    def encrypt_block(self, block: bytes) -> bytes:
        """One block in ECB (the AES secure-messaging IV is E(KS_enc, SSC))."""
        if len(block) != self.block:
            raise CryptoError(f"a block is {self.block} bytes, not {len(block)}")
        return self._ecb.update(block)


class SessionMac:
    """The secure-messaging checksum of one key: retail MAC for 3DES, AES-CMAC for AES."""

    def __init__(self, key: bytes, suite: SMCipher) -> None:
        self.suite = suite
        if suite is SMCipher.DES3:
            if len(key) != 16:
                raise CryptoError(f"retail MAC key of {len(key)} bytes (16 expected)")
            k1 = key[:8]
            self._chain = KeyedCBC(k1, SMCipher.DES3)  # single DES as K1‖K1‖K1
            # The last block: E(K1) then D(K2) then E(K1), i.e. 3DES-EDE with K1‖K2‖K1.
            self._last = Cipher(TripleDES(key + k1), modes.ECB()).encryptor()  # noqa: S305
        else:
            self._cmac = CMAC(_algorithm(key, suite))

    def mac(self, data: bytes) -> bytes:
        """The 8-byte checksum; 3DES takes data already padded, AES-CMAC pads itself."""
        if self.suite is not SMCipher.DES3:
            mac = self._cmac.copy()
            mac.update(data)
            return mac.finalize()[:MAC_LENGTH]
        if not data or len(data) % 8:
            raise CryptoError(f"{len(data)} bytes is not a multiple of the block size 8")
        last = data[-8:]
        if len(data) > 8:
            last = _xor(last, self._chain.encrypt(data[:-8], bytes(8))[-8:])
        return self._last.update(last)


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
