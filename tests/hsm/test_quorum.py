"""Shamir k-of-n sharing over GF(2^8) and shares sealed under a person's passphrase."""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsm.errors import HSMError, QuorumError
from hsm.quorum import (
    DEFAULT_COST,
    MAX_MEMORY_KIB,
    OWASP_MINIMUM_COST,
    TAG_BYTES,
    KDFCost,
    Share,
    combine,
    gf_inverse,
    gf_mul,
    seal,
    sealed_cost,
    share_context,
    split,
    unseal,
)

FAST = KDFCost(memory_kib=64, iterations=1, lanes=1)  # tests only; never a default
PASSPHRASE = "Mật khẩu của An, đủ dài"
CONTEXT = share_context("CSCA-VNM", "Nguyen Van An")
SECRETS = st.binary(min_size=1, max_size=48)


@st.composite
def quorums(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """A secret with a quorum k of n, small enough for fast examples."""
    n = draw(st.integers(min_value=2, max_value=8))
    return draw(SECRETS), draw(st.integers(min_value=2, max_value=n)), n


def seeded(seed: int) -> random.Random:
    """A deterministic random source for splits (tests only)."""
    return random.Random(seed)


def test_gf_mul_known_answers() -> None:
    """FIPS-197 §4.2: {57}·{83} = {c1}; §4.2.1: {57}·{13} = {fe}; {53}·{ca} = {01}."""
    assert gf_mul(0x57, 0x83) == 0xC1
    assert gf_mul(0x83, 0x57) == 0xC1
    assert gf_mul(0x57, 0x13) == 0xFE
    assert gf_mul(0x53, 0xCA) == 0x01
    assert gf_inverse(0x53) == 0xCA


@given(st.integers(1, 255))
def test_every_non_zero_byte_has_its_inverse(a: int) -> None:
    """a · a⁻¹ = 1 for every non-zero byte."""
    assert gf_mul(a, gf_inverse(a)) == 1


def test_gf_refuses_values_outside_the_field() -> None:
    """Zero has no inverse and values above 255 are not field elements."""
    with pytest.raises(QuorumError):
        gf_inverse(0)
    with pytest.raises(QuorumError):
        gf_mul(256, 1)


def test_split_is_the_polynomial_at_each_index() -> None:
    """For k = 2 with a fixed coefficient c, share x holds (secret ‖ tag) ⊕ c·x per byte."""
    coefficient = bytes(range(0x30, 0x30 + 5 + TAG_BYTES))
    shares = split(b"12345", 2, 3, rng=lambda size: coefficient[:size])
    encoded = bytes(y ^ c for y, c in zip(shares[0].value, coefficient, strict=True))  # x = 1
    assert encoded[:5] == b"12345"
    for share in shares:
        expected = bytes(s ^ gf_mul(share.index, c)
                         for s, c in zip(encoded, coefficient, strict=True))
        assert share.value == expected


@settings(max_examples=60, deadline=None)
@given(quorums(), st.randoms(use_true_random=False))
def test_any_k_of_n_shares_recover_the_secret(quorum: tuple[bytes, int, int],
                                              order: random.Random) -> None:
    """Every k-subset of the n shares, in any order, gives back the secret."""
    secret, k, n = quorum
    shares = split(secret, k, n)
    for subset in itertools.combinations(shares, k):
        chosen = list(subset)
        order.shuffle(chosen)
        assert combine(chosen) == secret
    assert combine(shares) == secret


@settings(max_examples=60, deadline=None)
@given(quorums(), st.data())
def test_k_minus_one_shares_are_refused(quorum: tuple[bytes, int, int],
                                        data: st.DataObject) -> None:
    """k-1 shares are refused, also when their k field is lowered to pretend a quorum."""
    secret, k, n = quorum
    shares = data.draw(st.permutations(split(secret, k, n)))[: k - 1]
    with pytest.raises(QuorumError) as refused:
        combine(shares)
    assert refused.value.code == "too-few-shares"
    if k - 1 >= 2:
        forged = [Share(share.index, k - 1, share.value) for share in shares]
        with pytest.raises(QuorumError) as caught:
            combine(forged)
        assert caught.value.code == "integrity"


@settings(max_examples=40, deadline=None)
@given(quorums())
def test_a_duplicated_share_counts_once(quorum: tuple[bytes, int, int]) -> None:
    """k-1 distinct shares plus a copy of one of them are not a quorum."""
    secret, k, n = quorum
    shares = split(secret, k, n)[: k - 1]
    with pytest.raises(QuorumError, match="distinct"):
        combine([*shares, shares[0]])
    assert combine([*split(secret, k, n, rng=seeded(1).randbytes)[:k]] * 2) == secret


def test_two_different_shares_with_one_index_are_refused() -> None:
    """The same index carrying two different values is an inconsistency, not a choice."""
    first, second = split(b"pin", 2, 3), split(b"pin", 2, 3)
    with pytest.raises(QuorumError) as refused:
        combine([first[0], second[0], first[1]])
    assert refused.value.code == "inconsistent-shares"


@settings(max_examples=60, deadline=None)
@given(quorums(), st.data())
def test_mixed_splits_are_refused(quorum: tuple[bytes, int, int], data: st.DataObject) -> None:
    """k shares taken from two splits of the same secret never reassemble anything."""
    secret, k, n = quorum
    one, other = split(secret, k, n), split(secret, k, n)
    indexes = data.draw(st.permutations(range(n)))[:k]
    switched = data.draw(st.integers(0, k - 1))
    mixed = [(other if position == switched else one)[i] for position, i in enumerate(indexes)]
    with pytest.raises(QuorumError) as refused:
        combine(mixed)
    assert refused.value.code == "integrity"


def test_splits_of_different_quorums_are_refused() -> None:
    """Shares whose k or length differ come from different splits."""
    with pytest.raises(QuorumError, match="different splits"):
        combine([split(b"pin", 2, 3)[0], split(b"pin", 3, 3)[1], split(b"pin", 3, 3)[2]])
    with pytest.raises(QuorumError, match="different splits"):
        combine([split(b"pin", 2, 2)[0], split(b"pin!", 2, 2)[1]])


@settings(max_examples=60, deadline=None)
@given(quorums(), st.data())
def test_a_corrupted_share_is_refused(quorum: tuple[bytes, int, int],
                                      data: st.DataObject) -> None:
    """Flipping any bits of any byte of one share of a quorum is detected."""
    secret, k, n = quorum
    shares = split(secret, k, n)[:k]
    victim = data.draw(st.integers(0, k - 1))
    position = data.draw(st.integers(0, len(shares[victim].value) - 1))
    flip = data.draw(st.integers(1, 255))
    value = bytearray(shares[victim].value)
    value[position] ^= flip
    shares[victim] = Share(shares[victim].index, k, bytes(value))
    with pytest.raises(QuorumError) as refused:
        combine(shares)
    assert refused.value.code == "integrity"


@pytest.mark.parametrize(("k", "n"), [(1, 3), (0, 3), (4, 3), (2, 256), (256, 256)])
def test_quorum_parameters_are_checked(k: int, n: int) -> None:
    """2 <= k <= n <= 255, else QuorumError (an HSMError)."""
    with pytest.raises(HSMError, match="2 <= k <= n <= 255"):
        split(b"pin", k, n)


def test_empty_secret_and_no_shares_are_refused() -> None:
    """An empty secret cannot be split; nothing cannot be combined."""
    with pytest.raises(QuorumError, match="empty"):
        split(b"", 2, 3)
    with pytest.raises(QuorumError, match="no shares"):
        combine([])


def test_a_short_random_source_is_refused() -> None:
    """A random source that returns fewer bytes than asked is an error, not weak shares."""
    with pytest.raises(QuorumError, match="random source"):
        split(b"pin", 2, 3, rng=lambda size: b"\x00")


@given(st.integers(1, 255), st.integers(2, 255), st.binary(min_size=TAG_BYTES + 1, max_size=80))
def test_share_encoding_round_trips(index: int, k: int, value: bytes) -> None:
    """from_bytes(to_bytes(share)) is the share; the value is not in its repr."""
    share = Share(index, k, value)
    encoded = share.to_bytes()
    assert encoded[:3] == bytes([1, index, k])
    assert Share.from_bytes(encoded) == share
    assert value.hex() not in repr(share)


@pytest.mark.parametrize("encoded", [
    b"", b"\x01\x01", bytes([2, 1, 2]) + bytes(20), bytes([1, 0, 2]) + bytes(20),
    bytes([1, 1, 1]) + bytes(20), bytes([1, 1, 2]) + bytes(TAG_BYTES),
])
def test_bad_share_encodings_are_refused(encoded: bytes) -> None:
    """Unknown version, index 0, k = 1 and truncated values are refused on decoding."""
    with pytest.raises(QuorumError) as refused:
        Share.from_bytes(encoded)
    assert refused.value.code == "format"


def test_default_cost_is_at_least_the_owasp_minimum() -> None:
    """The default Argon2id cost is at least m = 19 MiB, t = 2, p = 1 in every dimension."""
    assert DEFAULT_COST.memory_kib >= OWASP_MINIMUM_COST.memory_kib
    assert DEFAULT_COST.iterations >= OWASP_MINIMUM_COST.iterations
    assert DEFAULT_COST.lanes >= OWASP_MINIMUM_COST.lanes


@settings(max_examples=15, deadline=None)
@given(st.binary(max_size=64), st.text(min_size=1, max_size=20), st.binary(min_size=1, max_size=40))
def test_seal_round_trips(data: bytes, passphrase: str, context: bytes) -> None:
    """unseal(seal(data)) is data under the same passphrase and context; the cost is recorded."""
    blob = seal(data, passphrase, context, cost=FAST)
    assert unseal(blob, passphrase, context) == data
    assert sealed_cost(blob) == FAST


def test_passphrase_is_normalised_to_nfc() -> None:
    """A Vietnamese passphrase typed with combining marks opens what its composed form sealed."""
    composed, decomposed = "Phở", "Pho\u031b\u0309"
    blob = seal(b"share", composed, CONTEXT, cost=FAST)
    assert unseal(blob, decomposed, CONTEXT) == b"share"


def test_seal_is_randomised_through_rng() -> None:
    """Salt and nonce come from rng: equal rng, equal blob; otherwise different blobs."""
    def fixed(size: int) -> bytes:
        return bytes(size)
    assert seal(b"x", PASSPHRASE, CONTEXT, cost=FAST, rng=fixed) == seal(
        b"x", PASSPHRASE, CONTEXT, cost=FAST, rng=fixed)
    assert seal(b"x", PASSPHRASE, CONTEXT, cost=FAST) != seal(b"x", PASSPHRASE, CONTEXT, cost=FAST)


def _refused(blob: bytes, passphrase: str, context: bytes) -> QuorumError:
    with pytest.raises(QuorumError) as refused:
        unseal(blob, passphrase, context)
    return refused.value


def test_wrong_passphrase_or_context_is_refused_without_secrets() -> None:
    """Another passphrase, officer or token fails with the same message, naming neither."""
    blob = seal(b"share-bytes", PASSPHRASE, CONTEXT, cost=FAST)
    for passphrase, context in [
        ("Mật khẩu của Bình", CONTEXT),
        (PASSPHRASE, share_context("CSCA-VNM", "Tran Thi Binh")),
        (PASSPHRASE, share_context("CSCA-VNM-2", "Nguyen Van An")),
    ]:
        error = _refused(blob, passphrase, context)
        assert error.code == "unseal-refused"
        assert "wrong passphrase or not this officer's share" in str(error)
        assert passphrase not in str(error) and "share-bytes" not in str(error)
        assert error.__cause__ is None and error.__suppress_context__


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_any_flipped_byte_is_refused(data: st.DataObject) -> None:
    """Changing any byte of a sealed share (header, salt, nonce, ciphertext, tag) is refused."""
    blob = bytearray(seal(b"share", PASSPHRASE, CONTEXT, cost=FAST))
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] ^= data.draw(st.integers(1, 255))
    codes = {"format", "kdf-parameters", "unseal-refused"}
    assert _refused(bytes(blob), PASSPHRASE, CONTEXT).code in codes


def _header(version: int = 1, memory: int = 64, iterations: int = 1, lanes: int = 1) -> bytes:
    return struct.pack(">BIBB16s12s", version, memory, iterations, lanes, bytes(16), bytes(12))


@pytest.mark.parametrize(("blob", "code"), [
    (_header(memory=0xFFFFFFFF) + bytes(32), "kdf-parameters"),
    (_header(memory=MAX_MEMORY_KIB + 1) + bytes(32), "kdf-parameters"),
    (_header(memory=7) + bytes(32), "kdf-parameters"),
    (_header(memory=64, lanes=9) + bytes(32), "kdf-parameters"),
    (_header(iterations=0) + bytes(32), "kdf-parameters"),
    (_header(iterations=11) + bytes(32), "kdf-parameters"),
    (_header(iterations=255) + bytes(32), "kdf-parameters"),
    (_header(lanes=0) + bytes(32), "kdf-parameters"),
    (_header(lanes=17, memory=1024) + bytes(32), "kdf-parameters"),
    (_header(version=2) + bytes(32), "format"),
    (_header(version=0) + bytes(32), "format"),
    (_header() + bytes(15), "format"),
    (b"", "format"),
])
def test_hostile_headers_are_refused_before_any_work(blob: bytes, code: str) -> None:
    """Unknown versions, truncation and absurd Argon2id costs are refused from the header."""
    assert _refused(blob, PASSPHRASE, CONTEXT).code == code


def test_empty_passphrase_or_context_is_refused() -> None:
    """Sealing needs a passphrase and a context binding the share to a token and officer."""
    with pytest.raises(QuorumError, match="empty passphrase"):
        seal(b"x", "", CONTEXT, cost=FAST)
    with pytest.raises(QuorumError, match="context"):
        seal(b"x", PASSPHRASE, b"", cost=FAST)


def test_share_contexts_are_unambiguous() -> None:
    """Moving characters between the token label and the officer name changes the context."""
    assert share_context("ab", "c") != share_context("a", "bc")
    assert share_context("CSCA", "An") == share_context("CSCA", "An")


@settings(max_examples=10, deadline=None)
@given(quorums())
def test_sealed_shares_reassemble_the_secret(quorum: tuple[bytes, int, int]) -> None:
    """Split, encode and seal each share per officer, then unseal k of them and combine."""
    secret, k, n = quorum
    officers = [f"officer-{i}" for i in range(n)]
    sealed = [seal(share.to_bytes(), f"pass {name}", share_context("CSCA", name), cost=FAST)
              for share, name in zip(split(secret, k, n), officers, strict=True)]
    opened = [Share.from_bytes(unseal(blob, f"pass {name}", share_context("CSCA", name)))
              for blob, name in list(zip(sealed, officers, strict=True))[n - k:]]
    assert combine(opened) == secret
