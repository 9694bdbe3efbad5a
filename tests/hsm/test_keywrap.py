"""The journal's per-batch wrapping keys on a real SoftHSM2 token: made in the HSM under the
key policy, bound to their batch, refusing altered blobs, and gone for good once destroyed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pkcs11
import pytest
from structlog.testing import capture_logs

from hsm.errors import KeyPolicyViolation
from hsm.keywrap import (
    BatchKeyDestroyed,
    HSMKeyWrap,
    KeyWrapError,
    UnwrapRefused,
    wrapping_key_label,
)
from hsm.pkcs11 import HSM
from hsm.softhsm import SoftHSMToken as Token

pytestmark = pytest.mark.softhsm
ODD_NAMES = ["lô 2026/11 — Hà Nội", "x" * 500, "", "B1\n", "JWRAP#B1", "a'b\"c;--", "B" * 65]


@pytest.fixture
def wrap(hsm: HSM) -> HSMKeyWrap:
    """The wrap on the test token."""
    return HSMKeyWrap(hsm)


def test_a_data_key_round_trips(wrap: HSMKeyWrap) -> None:
    """A data key wrapped for a batch unwraps for it, and the blob does not contain it."""
    key = os.urandom(32)
    blob = wrap.wrap(key, "B1")
    assert key not in blob
    assert wrap.unwrap(blob, "B1") == key


def test_each_wrap_seals_afresh_under_one_key_per_batch(wrap: HSMKeyWrap, hsm: HSM) -> None:
    """Two wraps of one batch give different blobs (fresh IVs) under one key object."""
    first, second = os.urandom(32), os.urandom(32)
    blobs = [wrap.wrap(first, "B1"), wrap.wrap(first, "B1"), wrap.wrap(second, "B1")]
    assert len(set(blobs)) == 3
    assert [wrap.unwrap(b, "B1") for b in blobs] == [first, first, second]
    assert len(hsm.secret_keys("JWRAP-B1")) == 1


def test_the_wrapping_key_is_sensitive_and_never_extractable(wrap: HSMKeyWrap,
                                                             hsm: HSM) -> None:
    """The batch's key is an AES-256 token key made in the HSM, sensitive, never extractable,
    not copyable, for encrypt/decrypt only; its value cannot be read."""
    wrap.wrap(os.urandom(32), "B1")
    [key] = hsm.secret_keys("JWRAP-B1")
    assert (key.key_type, key.value_len) == ("AES", 32)
    assert (key.sensitive, key.always_sensitive, key.local) == (True, True, True)
    assert (key.extractable, key.never_extractable, key.copyable) == (False, True, False)
    assert (key.can_encrypt, key.can_decrypt) == (True, True)
    assert not (key.can_wrap or key.can_unwrap or key.can_sign or key.can_derive)
    with hsm.session() as session:
        raw = session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, label="JWRAP-B1")
        assert raw[pkcs11.Attribute.TOKEN] and raw[pkcs11.Attribute.PRIVATE]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            raw[pkcs11.Attribute.VALUE]


def test_a_blob_for_one_batch_does_not_unwrap_as_another(wrap: HSMKeyWrap) -> None:
    """Batch A's blob is refused as batch B's, whether B has a key of its own or none."""
    blob = wrap.wrap(os.urandom(32), "A")
    with pytest.raises(BatchKeyDestroyed):
        wrap.unwrap(blob, "B")
    wrap.wrap(os.urandom(32), "B")
    with pytest.raises(UnwrapRefused):
        wrap.unwrap(blob, "B")


@pytest.mark.parametrize("where", [0, 1, 16, 17, 29, 40, 76])
def test_an_altered_blob_is_refused(wrap: HSMKeyWrap, where: int) -> None:
    """One bit flipped anywhere (version, key id, IV, ciphertext, tag) and the HSM refuses."""
    blob = bytearray(wrap.wrap(os.urandom(32), "B1"))
    blob[where] ^= 0x01
    with pytest.raises(UnwrapRefused):
        wrap.unwrap(bytes(blob), "B1")


@pytest.mark.parametrize("blob", [b"", b"\x01" * 76, b"\x01" * 78])
def test_a_blob_of_the_wrong_shape_is_refused(wrap: HSMKeyWrap, blob: bytes) -> None:
    """A blob of the wrong length is refused before the HSM is asked."""
    wrap.wrap(os.urandom(32), "B1")
    with pytest.raises(UnwrapRefused, match="not a wrapped data key"):
        wrap.unwrap(blob, "B1")


def test_only_a_256_bit_data_key_is_wrapped(wrap: HSMKeyWrap) -> None:
    """A data key of another length is refused (the journal's keys are AES-256)."""
    with pytest.raises(KeyWrapError, match="32 bytes"):
        wrap.wrap(os.urandom(16), "B1")


def test_after_destroy_the_blob_is_useless(wrap: HSMKeyWrap, hsm: HSM) -> None:
    """Destroying the batch's key removes it from the token; the blob then fails with a clear
    error; destroying again says there was nothing left; other batches are untouched."""
    key = os.urandom(32)
    blob, other = wrap.wrap(key, "B1"), wrap.wrap(key, "B2")
    assert wrap.destroy("B1") is True
    assert hsm.secret_keys("JWRAP-B1") == []
    with pytest.raises(BatchKeyDestroyed, match="destroyed when the batch's personal data was "
                       "purged") as refused:
        wrap.unwrap(blob, "B1")
    assert (refused.value.batch, refused.value.label) == ("B1", "JWRAP-B1")
    assert wrap.destroy("B1") is False
    assert wrap.unwrap(other, "B2") == key


_DESTROY_AT = """
import sys, time
from hsm.keywrap import HSMKeyWrap
from hsm.pkcs11 import HSM
module, label, pin, go = sys.argv[1:]
while time.time() < float(go):
    time.sleep(0.001)
with HSM(module, label, pin, sessions=1) as hsm:
    print(HSMKeyWrap(hsm).destroy("B1"))
"""


def test_processes_destroying_one_key_at_once_all_succeed(token: Token) -> None:
    """Three lines finishing one batch together each open the HSM and purge it: the first
    destroys the key, the others must find it gone, not fail. SoftHSM answers a key another
    process deleted between search and destroy with CKR_FUNCTION_FAILED, and a process that
    opens the token while another deletes a key file with CKR_GENERAL_ERROR, no such token
    or an uninitialised PIN. Six rounds, the three starting together."""
    for _ in range(6):
        with HSM(token.module, token.label, token.pin, sessions=1) as hsm:
            HSMKeyWrap(hsm).wrap(os.urandom(32), "B1")
        go = f"{time.time() + 0.8:.3f}"
        racers = [subprocess.Popen([sys.executable, "-c", _DESTROY_AT, token.module,
                                    token.label, token.pin, go], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for _ in range(3)]
        answers = [racer.communicate(timeout=60) for racer in racers]
        assert all(racer.returncode == 0 for racer in racers), answers
        said = [out.strip().splitlines()[-1] for out, _ in answers]
        assert "True" in said and set(said) <= {"True", "False"}, said
        with HSM(token.module, token.label, token.pin, sessions=1) as hsm:
            assert hsm.secret_keys("JWRAP-B1") == []


def test_a_destroyed_batch_wraps_again_under_a_new_key(wrap: HSMKeyWrap) -> None:
    """A batch name wrapped after its key was destroyed gets a new key; the old blob stays dead."""
    old = wrap.wrap(os.urandom(32), "B1")
    wrap.destroy("B1")
    key = os.urandom(32)
    assert wrap.unwrap(wrap.wrap(key, "B1"), "B1") == key
    with pytest.raises(UnwrapRefused):
        wrap.unwrap(old, "B1")


def test_odd_and_long_batch_names_get_bounded_distinct_labels(wrap: HSMKeyWrap) -> None:
    """Operator-chosen names (Vietnamese, 500 characters, empty, control characters, quotes,
    one that looks like a hashed label) get short printable labels, all distinct, and work."""
    labels = [wrapping_key_label(name) for name in ODD_NAMES]
    assert len(set(labels)) == len(labels)
    assert all(len(label) <= 70 and label.isprintable() and label.isascii() for label in labels)
    assert wrapping_key_label("B-2026.11_a") == "JWRAP-B-2026.11_a"
    key = os.urandom(32)
    blobs = {name: wrap.wrap(key, name) for name in ODD_NAMES}
    assert all(wrap.unwrap(blob, name) == key for name, blob in blobs.items())
    assert all(wrap.destroy(name) for name in ODD_NAMES)
    with pytest.raises(BatchKeyDestroyed):
        wrap.unwrap(blobs["x" * 500], "x" * 500)


def test_a_key_under_the_label_that_breaks_the_policy_is_refused(wrap: HSMKeyWrap,
                                                                 hsm: HSM) -> None:
    """An extractable key someone put under a batch's label is not used to wrap."""
    with hsm.session() as session:
        session.generate_key(pkcs11.KeyType.AES, 256, label="JWRAP-B1", id=b"\x00" * 16,
                             store=True, template={pkcs11.Attribute.EXTRACTABLE: True,
                                                   pkcs11.Attribute.SENSITIVE: False})
    with pytest.raises(KeyPolicyViolation):
        wrap.wrap(os.urandom(32), "B1")


def test_threads_wrapping_one_new_batch_make_one_key(wrap: HSMKeyWrap, hsm: HSM) -> None:
    """Eight threads wrapping for the same new batch at once share one key; all blobs open."""
    keys = [os.urandom(32) for _ in range(8)]
    blobs: dict[int, bytes] = {}

    def work(index: int) -> None:
        blobs[index] = wrap.wrap(keys[index], "B1")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(hsm.secret_keys("JWRAP-B1")) == 1
    assert [wrap.unwrap(blobs[i], "B1") for i in range(8)] == keys


def test_logs_carry_the_batch_and_label_only(wrap: HSMKeyWrap) -> None:
    """Creating and destroying a key log the batch and label, never key material."""
    key = os.urandom(32)
    with capture_logs() as logs:
        blob = wrap.wrap(key, "B1")
        wrap.destroy("B1")
        wrap.destroy("B1")
    assert [e["event"] for e in logs] == ["hsm.keywrap.key_created",
                                          "hsm.keywrap.key_destroyed",
                                          "hsm.keywrap.key_already_gone"]
    assert all(set(e) == {"event", "log_level", "batch", "label"} for e in logs)
    assert not [e for e in logs if key.hex() in str(e) or blob.hex() in str(e)]
