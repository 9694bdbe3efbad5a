"""Per-batch wrapping keys in the HSM for the journal's data keys: crypto-shredding.

Each batch gets its own AES-256 key, generated in the HSM (token, private, sensitive, never
extractable, not copyable, encrypt/decrypt only) and labelled from the batch name. The
journal's data key is sealed by it inside the HSM with AES-GCM (NIST SP 800-38D), the batch
name bound as associated data. The purge destroys the batch's key object: every copy of the
wrapped blob, wherever it survives (old row versions, WAL, backups), is useless from then on.

Blob: ``version (1) ‖ key id (16) ‖ IV (12) ‖ ciphertext ‖ tag (16)``; the AAD is
``version ‖ key id ‖ batch (UTF-8)``. The key id is the wrapping key's CKA_ID, random per key,
so two keys made for one batch at once by two processes are never confused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Callable

import structlog

from hsm.errors import HSMError, KeyNotFound, KeyPolicyViolation
from hsm.pkcs11 import HSM, SecretKeyAttributes

LABEL_PREFIX = "JWRAP"
DATA_KEY_BYTES = 32
_PLAIN_BATCH = re.compile(r"[A-Za-z0-9._-]{1,64}")
_VERSION = b"\x01"
_ID_BYTES = 16
_IV_BYTES = 12  # NIST SP 800-38D §5.2.1.1: 96-bit IVs
_TAG_BYTES = 16
_HEADER = len(_VERSION) + _ID_BYTES
_BLOB_BYTES = _HEADER + _IV_BYTES + DATA_KEY_BYTES + _TAG_BYTES
_log = structlog.get_logger()


class KeyWrapError(HSMError):
    """A batch's data key could not be wrapped or unwrapped; names the batch and key label."""

    def __init__(self, batch: str, label: str, reason: str) -> None:
        super().__init__(f"batch {batch!r} (HSM key {label!r}): {reason}")
        self.batch = batch
        self.label = label
        self.reason = reason


class BatchKeyDestroyed(KeyWrapError):  # noqa: N818 -- public name; says what happened
    """The batch's wrapping key is not in the HSM: destroyed at the purge, so no copy of its
    wrapped data key opens any more."""

    def __init__(self, batch: str, label: str) -> None:
        super().__init__(batch, label, "its wrapping key was destroyed when the batch's "
                         "personal data was purged (or this token never held it); its data "
                         "key cannot be unwrapped")


class UnwrapRefused(KeyWrapError):  # noqa: N818 -- public name; says what happened
    """The HSM did not open the blob: altered, malformed, or wrapped for another batch."""


def wrapping_key_label(batch: str) -> str:
    """``JWRAP-<batch>`` for a plain name (ASCII letters, digits, ``.``, ``_``, ``-``; at most
    64), else ``JWRAP#<SHA-256 of the UTF-8 name, hex>``: bounded and printable, and never
    another batch's label, as ``#`` is in no plain name."""
    if _PLAIN_BATCH.fullmatch(batch):
        return f"{LABEL_PREFIX}-{batch}"
    return f"{LABEL_PREFIX}#{hashlib.sha256(_name(batch)).hexdigest()}"


def _name(batch: str) -> bytes:
    return batch.encode("utf-8", "surrogatepass")


def check_wrapping_key(key: SecretKeyAttributes) -> None:
    """Raise ``KeyPolicyViolation`` unless ``key`` may wrap a batch's data key."""
    rules = (
        (key.key_type == "AES" and key.value_len == 32, "not an AES-256 key"),
        (key.sensitive and key.always_sensitive, "SENSITIVE is not TRUE (always)"),
        (not key.extractable and key.never_extractable, "the key is or was extractable"),
        (key.local, "LOCAL is not TRUE (the key was not generated in the HSM)"),
        (not key.copyable, "COPYABLE is TRUE (a copy would survive the purge)"),
        (key.can_encrypt and key.can_decrypt, "ENCRYPT or DECRYPT is not TRUE"),
        (not (key.can_wrap or key.can_unwrap or key.can_sign or key.can_derive),
         "the key may also wrap, unwrap, sign or derive"),
    )
    for ok, problem in rules:
        if not ok:
            raise KeyPolicyViolation(key.label, problem)


class HSMKeyWrap:
    """The journal's ``DataKeyWrap`` on an open :class:`HSM`: one wrapping key per batch.

    Thread-safe: the HSM serialises its calls, and a lock here keeps one thread's
    find-or-create and destroy of a batch's key whole. ``rng`` makes IVs and key ids."""

    def __init__(self, hsm: HSM, *, rng: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._hsm = hsm
        self._rng = rng
        self._lock = threading.Lock()

    def wrap(self, key: bytes, batch: str) -> bytes:
        """``key`` (32 bytes) sealed in the HSM by ``batch``'s wrapping key, made on first use."""
        label = wrapping_key_label(batch)
        if len(key) != DATA_KEY_BYTES:
            raise KeyWrapError(batch, label, f"a data key must be {DATA_KEY_BYTES} bytes")
        header = _VERSION + self._key_id(batch, label)
        iv = self._rng(_IV_BYTES)
        sealed = self._hsm.encrypt_aes_gcm(label, header[1:], key, iv=iv,
                                           aad=header + _name(batch))
        return header + iv + sealed

    def _key_id(self, batch: str, label: str) -> bytes:
        with self._lock:
            found = self._hsm.secret_keys(label)
            for key in found:
                check_wrapping_key(key)  # a key someone else put there must pass the policy
            if found:
                return min(k.key_id for k in found)
            key_id = self._rng(_ID_BYTES)
            self._hsm.generate_aes_key(label, key_id)
        _log.info("hsm.keywrap.key_created", batch=batch, label=label)
        return key_id

    def unwrap(self, blob: bytes, batch: str) -> bytes:
        """The data key :meth:`wrap` sealed for ``batch``; :class:`BatchKeyDestroyed` once the
        batch's key is destroyed, :class:`UnwrapRefused` for any other failure."""
        label = wrapping_key_label(batch)
        if len(blob) != _BLOB_BYTES or blob[:1] != _VERSION:
            raise UnwrapRefused(batch, label, "the blob is not a wrapped data key")
        header, iv, sealed = blob[:_HEADER], blob[_HEADER:_HEADER + _IV_BYTES], \
            blob[_HEADER + _IV_BYTES:]
        try:
            return self._hsm.decrypt_aes_gcm(label, header[1:], sealed, iv=iv,
                                             aad=header + _name(batch))
        except KeyNotFound as exc:
            raise self._missing(batch, label) from exc
        except HSMError as exc:
            raise UnwrapRefused(batch, label, "the HSM did not open it: altered, or wrapped "
                                f"for another batch ({type(exc).__name__})") from exc

    def _missing(self, batch: str, label: str) -> KeyWrapError:
        if self._hsm.secret_keys(label):  # the batch has a key, but not the one named
            return UnwrapRefused(batch, label, "no key of this batch wrapped it: altered, or "
                                 "wrapped for another batch")
        return BatchKeyDestroyed(batch, label)

    def destroy(self, batch: str) -> bool:
        """Destroy ``batch``'s wrapping key(s) in the HSM: True when there was one. Idempotent."""
        label = wrapping_key_label(batch)
        with self._lock:
            destroyed = self._hsm.destroy_secret_keys(label)
        if destroyed:
            _log.info("hsm.keywrap.key_destroyed", batch=batch, label=label)
        else:
            _log.info("hsm.keywrap.key_already_gone", batch=batch, label=label)
        return destroyed > 0
