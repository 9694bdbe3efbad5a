"""Symmetric primitives of ICAO 9303-11 §9.7–9.8 against App. D and RFC 4493."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from applets.emrtd import crypto
from applets.emrtd.crypto import SMCipher
from applets.emrtd.errors import CryptoError

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
BAC = json.loads((VECTORS / "icao-appendix-d" / "bac.json").read_text())
CMAC = json.loads((VECTORS / "rfc4493-aes-cmac.json").read_text())


def h(text: str) -> bytes:
    return bytes.fromhex(text)


@given(st.binary(max_size=100), st.sampled_from([8, 16]))
def test_padding_round_trips_and_aligns(data, block):
    """Method-2 padding always reaches a block boundary and unpads to the original."""
    padded = crypto.pad(data, block)
    assert len(padded) % block == 0 and len(padded) > len(data)
    assert crypto.unpad(padded) == data


@pytest.mark.parametrize("bad", [b"", bytes(8), b"\x01\x02\x00\x00"])
def test_unpad_rejects_missing_marker(bad):
    """Data without the 80 marker is refused instead of silently truncated."""
    with pytest.raises(CryptoError):
        crypto.unpad(bad)


def test_kdf_matches_appendix_d_raw_keys():
    """KDF(K_seed, 1/2) gives the raw K_enc and K_mac of App. D.2."""
    seed = h(BAC["k_seed"])
    assert crypto.kdf(seed, 1) == h(BAC["k_enc_raw"])
    assert crypto.kdf(seed, 2) == h(BAC["k_mac_raw"])


def test_parity_adjustment_matches_appendix_d():
    """Parity adjustment of the raw keys gives App. D.2's adjusted keys."""
    assert crypto.adjust_parity(h(BAC["k_enc_raw"])) == h(BAC["k_enc_parity"])
    assert crypto.adjust_parity(h(BAC["k_mac_raw"])) == h(BAC["k_mac_parity"])


@given(st.binary(min_size=1, max_size=32))
def test_parity_adjusted_bytes_have_odd_parity(key):
    """Every adjusted byte has an odd number of one bits and keeps its top seven bits."""
    for before, after in zip(key, crypto.adjust_parity(key), strict=True):
        assert bin(after).count("1") % 2 == 1 and before >> 1 == after >> 1


def test_kdf_key_lengths_per_suite():
    """AES-192/256 keys come from SHA-256 at 24/32 bytes; AES-128 equals the SHA-1 key."""
    seed = h(BAC["k_seed"])
    assert len(crypto.kdf(seed, 1, SMCipher.AES192)) == 24
    assert len(crypto.kdf(seed, 1, SMCipher.AES256)) == 32
    assert crypto.kdf(seed, 1, SMCipher.AES128) == crypto.kdf(seed, 1, SMCipher.DES3)


def test_des3_and_retail_mac_match_appendix_d():
    """3DES-CBC of S and the retail MAC over padded E_IFD give App. D.3's E_IFD and M_IFD."""
    plain = h(BAC["rnd_ifd"] + BAC["rnd_ic"] + BAC["k_ifd"])
    encrypted = crypto.des3_encrypt(h(BAC["k_enc_raw"]), plain)
    assert encrypted == h(BAC["e_ifd"])
    assert crypto.retail_mac(h(BAC["k_mac_raw"]), crypto.pad(encrypted)) == h(BAC["m_ifd"])
    assert crypto.des3_decrypt(h(BAC["k_enc_raw"]), encrypted) == plain


@given(st.binary(max_size=64).map(crypto.pad), st.binary(min_size=16, max_size=16))
def test_des3_round_trips(data, key):
    """3DES-CBC decryption inverts encryption for any key and aligned data."""
    assert crypto.des3_decrypt(key, crypto.des3_encrypt(key, data)) == data


@given(st.binary(max_size=64).map(lambda d: crypto.pad(d, 16)),
       st.sampled_from([16, 24, 32]), st.binary(min_size=16, max_size=16))
def test_aes_round_trips(data, key_length, iv):
    """AES-CBC decryption inverts encryption for every key length."""
    key = bytes(range(key_length))
    assert crypto.aes_decrypt(key, crypto.aes_encrypt(key, data, iv), iv) == data


@pytest.mark.parametrize("case", CMAC["cases"])
def test_aes_cmac_matches_rfc_4493(case):
    """AES-CMAC equals RFC 4493's MAC cut to 8 bytes."""
    assert crypto.aes_cmac(h(CMAC["key"]), h(case["message"])) == h(case["mac"])[:8]


def test_bad_key_and_block_lengths_raise():
    """Wrong key sizes and unaligned data raise CryptoError, never a foreign exception."""
    with pytest.raises(CryptoError):
        crypto.des3_encrypt(bytes(10), bytes(8))
    with pytest.raises(CryptoError):
        crypto.des3_encrypt(bytes(16), bytes(7))
    with pytest.raises(CryptoError):
        crypto.retail_mac(bytes(8), bytes(8))


def _reference_cbc(key: bytes, suite: SMCipher, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    """A fresh context per message: what KeyedCBC must equal."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    algorithm = (TripleDES(key + key[:8]) if suite is SMCipher.DES3 else algorithms.AES(key))
    cipher = Cipher(algorithm, modes.CBC(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def _reference_retail_mac(key: bytes, padded: bytes) -> bytes:
    """ISO 9797-1 MAC algorithm 3 step by step: DES-CBC(K1), then D(K2), then E(K1)."""
    k1, k2 = key[:8], key[8:]
    chained = _reference_cbc(k1 + k1, SMCipher.DES3, bytes(8), padded, True)[-8:]
    step = _reference_cbc(k2 + k2, SMCipher.DES3, bytes(8), chained, False)
    return _reference_cbc(k1 + k1, SMCipher.DES3, bytes(8), step, True)


_MESSAGES = st.lists(st.tuples(st.binary(max_size=80), st.binary(min_size=16, max_size=16),
                               st.booleans()), min_size=1, max_size=8)


@pytest.mark.parametrize("suite", [SMCipher.DES3, SMCipher.AES128, SMCipher.AES256])
@given(messages=_MESSAGES, key=st.binary(min_size=32, max_size=32))
def test_keyed_cbc_equals_a_fresh_context_per_message(suite, messages, key):
    """Messages in any order, each with its own IV, come out as with a new context each."""
    key = key[: suite.key_length]
    keyed = crypto.KeyedCBC(key, suite)
    for data, iv, encrypt in messages:
        iv, padded = iv[: suite.block_size], crypto.pad(data, suite.block_size)
        expected = _reference_cbc(key, suite, iv, padded, encrypt)
        got = keyed.encrypt(padded, iv) if encrypt else keyed.decrypt(padded, iv)
        assert got == expected


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=6), st.binary(min_size=16,
                                                                          max_size=16))
def test_session_mac_equals_the_retail_mac_step_by_step(messages, key):
    """The keyed retail MAC (two cipher calls) equals the three-step definition, call after
    call."""
    session = crypto.SessionMac(key, SMCipher.DES3)
    for message in messages:
        padded = crypto.pad(message)
        assert session.mac(padded) == _reference_retail_mac(key, padded)
        assert crypto.retail_mac(key, padded) == _reference_retail_mac(key, padded)


def test_keyed_cbc_refuses_unaligned_data_and_bad_ivs():
    """Unaligned data and an IV of the wrong size raise CryptoError and leave the chain intact."""
    keyed = crypto.KeyedCBC(bytes(range(16)), SMCipher.DES3)
    with pytest.raises(CryptoError):
        keyed.encrypt(bytes(7), bytes(8))
    with pytest.raises(CryptoError):
        keyed.decrypt(bytes(8), bytes(16))
    assert keyed.encrypt(bytes(8), bytes(8)) == crypto.des3_encrypt(bytes(range(16)), bytes(8))
