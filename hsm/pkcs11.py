"""PKCS#11 adapter: the only module that imports python-pkcs11.

One library per process (python-pkcs11 allows no more), cached by path; one login per
(module, token), reference-counted, because PKCS#11 login state belongs to the application,
not to a session; a bounded pool of sessions, each checked out by one thread at a time,
because a session runs one operation at a time (PKCS#11 v2.40 §5.6). After ``fork()`` the
child is a new application (PKCS#11 Usage Guide §6.5.1): it drops every cached handle and
initialises and logs in again on first use.

Nothing here reads ``CKA_VALUE`` of a private key: private keys never leave the HSM.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pkcs11
import structlog
from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from pkcs11 import (
    MGF,
    Attribute,
    CertificateType,
    KeyType,
    Mechanism,
    MechanismFlag,
    ObjectClass,
)
from pkcs11 import exceptions as p11
from pkcs11.mechanisms import GCMParams
from pkcs11.util.ec import (
    encode_ec_public_key,
    encode_named_curve_parameters,
)
from pkcs11.util.rsa import encode_rsa_public_key

from hsm.errors import (
    HSMError,
    HSMUnavailable,
    KeyNotFound,
    KeyPolicyViolation,
    PINIncorrect,
    SigningRefused,
    TokenNotFound,
)

_log = structlog.get_logger()
CHECKOUT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class AlgorithmSpec:
    """How one of our algorithm names maps onto PKCS#11 key generation and signing."""

    key_type: str  # "EC" | "RSA"
    bits: int
    signature_algorithm: str  # the name the SOD builder expects


ALGORITHMS: dict[str, AlgorithmSpec] = {
    "ecdsa-p256": AlgorithmSpec("EC", 256, "ecdsa-with-SHA256"),
    "rsa-pss-2048": AlgorithmSpec("RSA", 2048, "rsassa-pss-sha256"),
    "rsa-pss-3072": AlgorithmSpec("RSA", 3072, "rsassa-pss-sha256"),
}
P256_NAMED_PARAMS = encode_named_curve_parameters("secp256r1")
# RFC 4055 / ICAO 9303-12 §4.1.6.1: RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32 octets.
_PSS_PARAMS = (Mechanism.SHA256, MGF.SHA256, 32)


def algorithm_spec(algorithm: str) -> AlgorithmSpec:
    """The spec of ``algorithm`` or a clear error listing the supported names."""
    try:
        return ALGORITHMS[algorithm]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS))
        raise ValueError(f"unknown algorithm {algorithm!r}; use one of {known}") from None


@dataclass(frozen=True)
class KeyAttributes:
    """The policy-relevant attributes of a private key object (never its value)."""

    label: str
    key_type: str  # "EC" | "RSA" | other KeyType name
    ec_params: bytes | None
    modulus_bits: int | None
    sensitive: bool
    extractable: bool
    never_extractable: bool
    always_sensitive: bool
    local: bool
    can_sign: bool


@dataclass(frozen=True)
class SecretKeyAttributes:
    """The policy-relevant attributes of a secret key object (never its value)."""

    label: str
    key_id: bytes
    key_type: str  # "AES" or another KeyType name
    value_len: int  # bytes
    sensitive: bool
    extractable: bool
    never_extractable: bool
    always_sensitive: bool
    local: bool
    copyable: bool
    can_encrypt: bool
    can_decrypt: bool
    can_wrap: bool
    can_unwrap: bool
    can_sign: bool
    can_derive: bool


# --- process-wide state: libraries and logins, reset in a forked child -----------------------

@dataclass
class _Login:
    token: Any
    anchor: Any  # the session whose C_Login holds the application's login
    users: int
    mechanisms: frozenset[int]


_LOCK = threading.Lock()
# python-pkcs11 calls C_Initialize(NULL): PKCS#11 v2.40 §5.4 then lets the module assume it is
# never entered from two threads at once (SoftHSM aborts if it is), yet python-pkcs11 releases
# the GIL inside C_Sign. So every call into the module is serialised by this lock; the pool still
# gives each thread its own session. Parallel signing throughput means several processes.
_CALL_LOCK = threading.RLock()
_LIBRARIES: dict[str, Any] = {}
_LOGINS: dict[tuple[str, str], _Login] = {}
_STALE: set[str] = set()
_GENERATION = 0


def _after_fork_in_child() -> None:
    # PKCS#11 UG §6.5.1: a forked child is a new application; never reuse the parent's handles.
    global _LOCK, _CALL_LOCK, _GENERATION
    _LOCK = threading.Lock()
    _CALL_LOCK = threading.RLock()
    _STALE.update(_LIBRARIES)
    _LIBRARIES.clear()
    _LOGINS.clear()
    _GENERATION += 1


os.register_at_fork(after_in_child=_after_fork_in_child)


def _load_library(path: str) -> Any:
    if path in _LIBRARIES:
        return _LIBRARIES[path]
    if not os.path.isfile(path):  # python-pkcs11 0.8.0 segfaulted on a missing file (#206)
        raise HSMUnavailable(path, "the PKCS#11 module file does not exist")
    with _CALL_LOCK:
        return _load_library_locked(path)


def _load_library_locked(path: str) -> Any:
    try:
        lib = pkcs11.lib(path)
        if path in _STALE:  # inherited from the parent: C_Finalize what we inherited, then init
            _STALE.discard(path)
            _reinitialize(lib)
    except p11.PKCS11Error as exc:
        raise HSMUnavailable(path, f"{type(exc).__name__} {exc}".strip()) from exc
    _LIBRARIES[path] = lib
    return lib


def _reinitialize(lib: Any) -> None:
    with suppress(p11.PKCS11Error):  # the inherited state may be gone; init afresh is what counts
        lib.finalize()
    lib.initialize()


def release_module(path: str) -> None:
    """C_Finalize ``path`` once nobody uses it (tests, or a CLI switching configuration)."""
    with _LOCK:
        if any(module == path for module, _ in _LOGINS):
            raise HSMUnavailable(path, "the module is still in use by an open HSM")
        lib = _LIBRARIES.pop(path, None)
        if lib is not None:
            with _CALL_LOCK, translate_errors(path):
                lib.finalize()


def _get_token(lib: Any, token_label: str) -> Any:
    try:
        return lib.get_token(token_label=token_label)
    except (p11.NoSuchToken, p11.MultipleTokensReturned) as exc:
        raise TokenNotFound(token_label) from exc
    except p11.PKCS11Error as exc:  # CKR_GENERAL_ERROR and the like, from the module itself
        raise translate(exc, token_label) from exc


def _open_logged_in(token: Any, token_label: str, pin: str) -> Any:
    with translate_errors(token_label):
        try:
            return token.open(rw=True, user_pin=pin)
        except p11.UserAlreadyLoggedIn:
            # Login is per application; a stale login is as good as ours.
            return token.open(rw=True)


def _acquire_login(path: str, token_label: str, pin: str) -> _Login:
    with _LOCK, _CALL_LOCK:
        login = _LOGINS.get((path, token_label))
        if login is None:
            login = _first_login(path, token_label, pin)
            _LOGINS[(path, token_label)] = login
        login.users += 1
        return login


def _first_login(path: str, token_label: str, pin: str) -> _Login:
    """The token found, its mechanisms read and a logged-in session opened.

    A token kept in files (SoftHSM) can be read half-changed by a process that opens it
    while another process adds or deletes a key: the module then answers CKR_GENERAL_ERROR,
    does not list the token, or finds its user PIN not initialised, and keeps that view until
    it is initialised again (three processes starting at once, one destroying a key: 10
    failed opens in 20 rounds). On those answers the module is finalised (when nothing else
    in this process uses it) and the open tried again after a short pause,
    :data:`_OPEN_ATTEMPTS` times in all. Any other refusal is raised at once: a wrong PIN
    above all, which counts against the token."""
    for attempt in range(1, _OPEN_ATTEMPTS + 1):
        try:
            token = _get_token(_load_library(path), token_label)
            with translate_errors(token_label):
                mechanisms = frozenset(int(m) for m in token.slot.get_mechanisms())
            return _Login(token, _open_logged_in(token, token_label, pin), 0, mechanisms)
        except (TokenNotFound, HSMUnavailable, PINIncorrect) as exc:
            if attempt == _OPEN_ATTEMPTS or not isinstance(exc.__cause__, _TOKEN_IN_FLUX):
                raise
            _log.info("hsm.open_retried", token=token_label, attempt=attempt,
                      answer=type(exc.__cause__).__name__)
            if not any(module == path for module, _ in _LOGINS):
                lib = _LIBRARIES.pop(path, None)
                if lib is not None:
                    with suppress(p11.PKCS11Error):
                        lib.finalize()
            time.sleep(_OPEN_PAUSE_S * attempt)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _release_login(path: str, token_label: str) -> None:
    with _LOCK:
        login = _LOGINS.get((path, token_label))
        if login is None:
            return
        login.users -= 1
        if login.users == 0:
            del _LOGINS[(path, token_label)]
            with _CALL_LOCK, translate_errors(token_label):
                login.anchor.close()  # the last user: C_Logout + C_CloseSession


# One PKCS#11 error class -> one of ours. ``context`` is the key label or token label.
_ERROR_TABLE: dict[type[p11.PKCS11Error], Callable[[str, str], HSMError]] = {
    p11.PinIncorrect: lambda c, _: PINIncorrect(c),
    p11.PinInvalid: lambda c, _: PINIncorrect(c, "PIN has invalid characters"),
    p11.PinLenRange: lambda c, _: PINIncorrect(c, "PIN length out of range"),
    p11.PinLocked: lambda c, _: PINIncorrect(c, "PIN locked; the SO must unlock it"),
    p11.PinExpired: lambda c, _: PINIncorrect(c, "PIN expired"),
    p11.UserPinNotInitialized: lambda c, _: PINIncorrect(c, "user PIN not initialised"),
    p11.NoSuchToken: lambda c, _: TokenNotFound(c),
    p11.TokenNotPresent: lambda c, _: TokenNotFound(c),
    p11.TokenNotRecognised: lambda c, _: TokenNotFound(c),
    p11.SlotIDInvalid: lambda c, _: TokenNotFound(c),
    p11.NoSuchKey: lambda c, _: KeyNotFound(c),
    p11.KeyHandleInvalid: lambda c, _: KeyNotFound(c),
    p11.ObjectHandleInvalid: lambda c, _: KeyNotFound(c),
    p11.MultipleObjectsReturned: lambda c, _: KeyPolicyViolation(c, "label/ID is ambiguous"),
    p11.AttributeSensitive: lambda c, _: KeyPolicyViolation(c, "attribute is sensitive"),
    p11.KeyUnextractable: lambda c, _: KeyPolicyViolation(c, "key is unextractable"),
    p11.UserNotLoggedIn: lambda c, _: SigningRefused(c, "token is not logged in"),
    p11.KeyTypeInconsistent: lambda c, _: SigningRefused(c, "key type does not fit mechanism"),
    p11.MechanismInvalid: lambda c, _: SigningRefused(c, "mechanism not supported by token"),
    p11.MechanismParamInvalid: lambda c, _: SigningRefused(c, "mechanism parameter invalid"),
    p11.FunctionRejected: lambda c, _: SigningRefused(c, "the HSM rejected the operation"),
    p11.FunctionFailed: lambda c, _: SigningRefused(c, "the HSM operation failed"),
    p11.OperationActive: lambda c, _: SigningRefused(c, "another operation is active"),
    p11.DataLenRange: lambda c, _: SigningRefused(c, "data length out of range"),
    p11.GeneralError: lambda c, d: HSMUnavailable(c, f"general error {d}".strip()),
    p11.DeviceError: lambda c, d: HSMUnavailable(c, f"device error {d}".strip()),
    p11.DeviceRemoved: lambda c, _: HSMUnavailable(c, "device removed"),
    p11.DeviceMemory: lambda c, _: HSMUnavailable(c, "device memory full"),
    p11.SessionHandleInvalid: lambda c, _: HSMUnavailable(c, "session handle invalid"),
    p11.SessionClosed: lambda c, _: HSMUnavailable(c, "session closed"),
    p11.SessionCount: lambda c, _: HSMUnavailable(c, "too many sessions"),
}


def translate(exc: p11.PKCS11Error, context: str) -> HSMError:
    """Our error for a python-pkcs11 error; unknown classes become a plain ``HSMError``."""
    detail = str(exc)
    for klass in type(exc).__mro__:
        factory = _ERROR_TABLE.get(klass)
        if factory is not None:
            return factory(context, detail)
    return HSMError(f"HSM error on {context!r}: {type(exc).__name__} {detail}".strip())


@contextmanager
def translate_errors(context: str) -> Iterator[None]:
    """Turn a python-pkcs11 exception into one of ours, ``raise … from`` the original."""
    try:
        yield
    except p11.PKCS11Error as exc:
        raise translate(exc, context) from exc


# --- the session pool ---------------------------------------------------------------------------

@dataclass
class _Pooled:
    session: Any
    keys: dict[tuple[str, bytes | None], Any] = field(default_factory=dict)

    def private_key(self, label: str, key_id: bytes | None) -> Any:
        """The private key handle, found once per session and cached (SoftHSM #614)."""
        cached = self.keys.get((label, key_id))
        if cached is None:
            cached = _find(self.session, ObjectClass.PRIVATE_KEY, label, key_id)
            self.keys[(label, key_id)] = cached
        return cached


def _find(session: Any, object_class: ObjectClass, label: str, key_id: bytes | None) -> Any:
    with translate_errors(label):
        return session.get_key(object_class=object_class, label=label, id=key_id)


class _SessionPool:
    """At most ``size`` sessions; a thread holds one exclusively while it works."""

    def __init__(self, token: Any, size: int) -> None:
        self._token = token
        self._size = size
        self._idle: queue.LifoQueue[_Pooled] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    @contextmanager
    def checkout(self) -> Iterator[_Pooled]:
        pooled = self._take()
        try:
            yield pooled
        finally:
            self._idle.put(pooled)

    def _take(self) -> _Pooled:
        with self._lock:
            grow = self._idle.empty() and self._created < self._size
            self._created += grow
        if not grow:
            return self._idle.get(timeout=CHECKOUT_TIMEOUT_SECONDS)
        try:
            with _CALL_LOCK, translate_errors(str(self._token.label)):
                return _Pooled(self._token.open(rw=True))  # logged in: login is per application
        except BaseException:
            with self._lock:
                self._created -= 1
            raise

    def close(self) -> None:
        while True:
            try:
                pooled = self._idle.get_nowait()
            except queue.Empty:
                return
            with _CALL_LOCK, translate_errors(str(self._token.label)):
                pooled.session.close()


class HSM:
    """One token of one PKCS#11 module, logged in, with a session pool; a context manager."""

    def __init__(self, module_path: str, token_label: str, pin: str, *, sessions: int = 2) -> None:
        self.module_path = module_path
        self.token_label = token_label
        self._pin = pin
        self._sessions = sessions
        self._pool: _SessionPool | None = None
        self._ecdsa_sha256 = False
        self._generation = -1

    def __enter__(self) -> HSM:
        self._open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open(self) -> None:
        login = _acquire_login(self.module_path, self.token_label, self._pin)
        self._pool = _SessionPool(login.token, self._sessions)
        # SoftHSM 2.6 lacks CKM_ECDSA_SHA256: then hash here and sign the digest with CKM_ECDSA.
        self._ecdsa_sha256 = int(Mechanism.ECDSA_SHA256) in login.mechanisms
        self._generation = _GENERATION

    def close(self) -> None:
        """Close the pooled sessions and release the login (only in the process that opened)."""
        pool, self._pool = self._pool, None
        if pool is not None and self._generation == _GENERATION:
            try:
                pool.close()
            finally:
                _release_login(self.module_path, self.token_label)

    @contextmanager
    def _checkout(self) -> Iterator[_Pooled]:
        if self._pool is None:
            raise HSMUnavailable(self.module_path, "the HSM is not open; use it as `with HSM(...)`")
        if self._generation != _GENERATION:
            self._open()  # forked child: new application, new login, new sessions
        pool = self._pool
        with pool.checkout() as pooled, _CALL_LOCK:
            yield pooled

    @contextmanager
    def session(self) -> Iterator[Any]:
        """A raw python-pkcs11 session from the pool (for tests and tools; not for signing)."""
        with self._checkout() as pooled:
            yield pooled.session

    def generate_keypair(self, label: str, key_id: bytes, algorithm: str) -> bytes:
        """Generate a signing key pair IN the HSM; returns its DER SPKI (EC: named curve)."""
        spec = algorithm_spec(algorithm)
        private = {
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False, Attribute.SIGN: True,
        }
        public: dict[Attribute, Any] = {Attribute.TOKEN: True, Attribute.VERIFY: True}
        if spec.key_type == "EC":
            public[Attribute.EC_PARAMS] = P256_NAMED_PARAMS
        with self._checkout() as pooled, translate_errors(label):
            pub, _ = pooled.session.generate_keypair(
                KeyType.EC if spec.key_type == "EC" else KeyType.RSA,
                None if spec.key_type == "EC" else spec.bits,
                id=key_id, label=label, store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                private_template=private, public_template=public,
            )
            return _spki(pub)

    def generate_ec_keypair(self, label: str, key_id: bytes, curve_oid: str) -> bytes:
        """Generate an EC signing key pair on the named curve ``curve_oid`` (dotted OID, e.g.
        brainpoolP256r1) IN the HSM, private key sensitive and never extractable; returns the
        uncompressed public point (the value of a CV certificate's tag 86)."""
        private = {
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DERIVE: False,
        }
        public = {Attribute.TOKEN: True, Attribute.VERIFY: True,
                  Attribute.EC_PARAMS: encode_named_curve_parameters(curve_oid)}
        with self._checkout() as pooled, translate_errors(label):
            pub, _ = pooled.session.generate_keypair(
                KeyType.EC, None, id=key_id, label=label, store=True,
                capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
                private_template=private, public_template=public,
            )
            return _ec_point(pub)

    def public_point(self, label: str, key_id: bytes | None = None) -> bytes:
        """The uncompressed point of the EC public key object ``label`` (+ ``key_id``)."""
        with self._checkout() as pooled, translate_errors(label):
            return _ec_point(_find(pooled.session, ObjectClass.PUBLIC_KEY, label, key_id))

    def sign_digest_ecdsa(self, label: str, digest: bytes, key_id: bytes | None = None) -> bytes:
        """CKM_ECDSA over a digest the caller computed: the plain r ‖ s the HSM returns
        (PKCS#11 v2.40 Current Mechanisms §2.3.6; BSI TR-03111 §5.2.1 plain format)."""
        with self._checkout() as pooled:
            try:
                with translate_errors(label):
                    key = pooled.private_key(label, key_id)
                    return bytes(key.sign(digest, mechanism=Mechanism.ECDSA))
            except BaseException:
                pooled.keys.pop((label, key_id), None)  # the handle may be stale
                raise

    def public_key_info(self, label: str, key_id: bytes | None = None) -> bytes:
        """The DER SubjectPublicKeyInfo of the public key object ``label`` (+ ``key_id``)."""
        with self._checkout() as pooled, translate_errors(label):
            return _spki(_find(pooled.session, ObjectClass.PUBLIC_KEY, label, key_id))

    def key_attributes(self, label: str, key_id: bytes | None = None) -> KeyAttributes:
        """Read the policy attributes of the private key ``label`` (never CKA_VALUE)."""
        with self._checkout() as pooled, translate_errors(label):
            key = _find(pooled.session, ObjectClass.PRIVATE_KEY, label, key_id)
            return _attributes(label, key)

    def sign(self, label: str, data: bytes, algorithm: str, key_id: bytes | None = None) -> bytes:
        """Sign ``data`` in the HSM: DER Ecdsa-Sig-Value for ECDSA, raw for RSASSA-PSS."""
        spec = algorithm_spec(algorithm)
        with self._checkout() as pooled:
            try:
                with translate_errors(label):
                    key = pooled.private_key(label, key_id)
                    raw = _sign_raw(key, data, spec, ecdsa_sha256=self._ecdsa_sha256)
            except BaseException:
                pooled.keys.pop((label, key_id), None)  # the handle may be stale
                raise
        # ICAO 9303-10 / RFC 5753: CMS carries ECDSA as DER SEQUENCE { r, s }, PKCS#11 gives r‖s.
        return der_ecdsa_signature(raw) if spec.key_type == "EC" else bytes(raw)

    # -- key transport: an RSA key that only decrypts, and the certificates next to keys -------

    def generate_decryption_keypair(self, label: str, key_id: bytes, bits: int = 3072) -> bytes:
        """Generate an RSA key-transport pair IN the HSM; returns its DER SPKI. The private key
        is sensitive, never extractable and decrypts only (no sign, unwrap or derive)."""
        with self._checkout() as pooled, translate_errors(label):
            pub, _ = pooled.session.generate_keypair(
                KeyType.RSA, bits, id=key_id, label=label, store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                private_template=_DECRYPT_TEMPLATE, public_template=_ENCRYPT_TEMPLATE,
            )
            return _spki(pub)

    def decrypt_rsa(self, label: str, data: bytes, padding: str = "pkcs1",
                    oaep_hash: str = "sha1", key_id: bytes | None = None) -> bytes:
        """RSA-decrypt ``data`` in the HSM with RSAES-PKCS1-v1_5 (``"pkcs1"``) or RSAES-OAEP
        (``"oaep"``, MGF1 with ``oaep_hash``, empty label). Data that does not decrypt is a
        plain :class:`HSMError`, the same whatever the cause (RFC 8017 §7.1.2 note)."""
        if padding not in ("pkcs1", "oaep") or oaep_hash not in _OAEP:
            raise ValueError(f"unsupported RSA padding {padding!r} / {oaep_hash!r}")
        with self._checkout() as pooled, translate_errors(label):
            key = _find(pooled.session, ObjectClass.PRIVATE_KEY, label, key_id)
            try:
                if padding == "pkcs1":
                    return bytes(key.decrypt(data, mechanism=Mechanism.RSA_PKCS))
                return _decrypt_oaep(key, data, oaep_hash)
            except (p11.GeneralError, p11.EncryptedDataInvalid, p11.EncryptedDataLenRange,
                    ValueError) as exc:  # SoftHSM 2.6 says CKR_GENERAL_ERROR for bad padding
                raise HSMError(f"HSM key {label!r}: the data does not decrypt under it") from exc

    def store_certificate(self, label: str, der: bytes, key_id: bytes | None = None) -> None:
        """Keep an X.509 certificate on the token (a public token object) under ``label``;
        refused when one is there already."""
        certificate = asn1_x509.Certificate.load(der)
        template = {
            Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE:
            CertificateType.X_509, Attribute.TOKEN: True, Attribute.PRIVATE: False,
            Attribute.LABEL: label, Attribute.VALUE: der, Attribute.SUBJECT:
            certificate.subject.dump(), Attribute.ISSUER: certificate.issuer.dump(),
            Attribute.SERIAL_NUMBER: certificate["tbs_certificate"]["serial_number"].dump(),
        }
        if key_id is not None:
            template[Attribute.ID] = key_id
        with self._checkout() as pooled, translate_errors(label):
            if _certificates(pooled.session, label):
                raise HSMError(f"HSM token already holds a certificate labelled {label!r}")
            pooled.session.create_object(template)

    def certificate(self, label: str) -> bytes | None:
        """The DER of the X.509 certificate labelled ``label`` on the token, or None."""
        with self._checkout() as pooled, translate_errors(label):
            found = _certificates(pooled.session, label)
            if len(found) > 1:
                raise HSMError(f"HSM token holds {len(found)} certificates labelled {label!r}")
            return bytes(found[0][Attribute.VALUE]) if found else None

    # -- secret keys: AES keys made and used in the HSM, never read out ----------------------

    def generate_aes_key(self, label: str, key_id: bytes) -> None:
        """Generate an AES-256 token key IN the HSM: private, sensitive, never extractable,
        not copyable, for encrypt/decrypt only (no wrap, unwrap, sign or derive)."""
        with self._checkout() as pooled, translate_errors(label):
            pooled.session.generate_key(KeyType.AES, 256, label=label, id=key_id, store=True,
                                        template=_AES_TEMPLATE)

    def secret_keys(self, label: str) -> list[SecretKeyAttributes]:
        """The attributes of every secret key labelled ``label`` (none: an empty list)."""
        with self._checkout() as pooled, translate_errors(label):
            return [_secret_attributes(label, k) for k in _secret_keys(pooled.session, label)]

    def encrypt_aes_gcm(self, label: str, key_id: bytes, data: bytes, *, iv: bytes,
                        aad: bytes) -> bytes:
        """AES-GCM in the HSM under the secret key ``label`` + ``key_id``: the ciphertext
        followed by its 128-bit tag (NIST SP 800-38D)."""
        with self._checkout() as pooled, translate_errors(label):
            key = _find(pooled.session, ObjectClass.SECRET_KEY, label, key_id)
            return bytes(key.encrypt(data, mechanism=Mechanism.AES_GCM,
                                     mechanism_param=GCMParams(iv, aad, 128)))

    def decrypt_aes_gcm(self, label: str, key_id: bytes, sealed: bytes, *, iv: bytes,
                        aad: bytes) -> bytes:
        """The inverse of :meth:`encrypt_aes_gcm`; the HSM checks the tag. A tag that does not
        verify is a plain :class:`HSMError` (SoftHSM 2.6 reports it as CKR_GENERAL_ERROR,
        SoftHSMv2 #689; PKCS#11 v2.40 C_Decrypt says CKR_ENCRYPTED_DATA_INVALID)."""
        with self._checkout() as pooled, translate_errors(label):
            key = _find(pooled.session, ObjectClass.SECRET_KEY, label, key_id)
            try:
                return bytes(key.decrypt(sealed, mechanism=Mechanism.AES_GCM,
                                         mechanism_param=GCMParams(iv, aad, 128)))
            except (p11.GeneralError, p11.EncryptedDataInvalid, p11.EncryptedDataLenRange) as exc:
                raise HSMError(f"HSM key {label!r}: the sealed data does not verify") from exc

    def destroy_secret_keys(self, label: str) -> int:
        """Destroy (C_DestroyObject) every secret key labelled ``label``; how many it did.

        Several processes may destroy the same key at once (lines finishing one batch
        together). SoftHSM keeps each token object in a file another process can delete
        between our search and our C_DestroyObject: the search or the destroy then fails
        with CKR_OBJECT_HANDLE_INVALID or, in SoftHSM 2.6, CKR_FUNCTION_FAILED. Such a round
        is searched again; after :data:`_DESTROY_ROUNDS` a key still found is destroyed with
        its error, if any, raised."""
        destroyed = 0
        with self._checkout() as pooled, translate_errors(label):
            for _ in range(_DESTROY_ROUNDS):
                try:
                    keys = _secret_keys(pooled.session, label)
                    if not keys:
                        return destroyed
                    for key in keys:
                        key.destroy()
                        destroyed += 1
                except _VANISHED:
                    continue
            for key in _secret_keys(pooled.session, label):
                key.destroy()
                destroyed += 1
        return destroyed


def _der_integer(value: bytes) -> bytes:
    """A DER INTEGER of an unsigned big-endian number (X.690 §8.3: minimal, non-negative)."""
    value = value.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return bytes((0x02, len(value))) + value


def der_ecdsa_signature(raw: bytes) -> bytes:
    """PKCS#11 r‖s → DER Ecdsa-Sig-Value ``SEQUENCE { r INTEGER, s INTEGER }`` (RFC 5753)."""
    if not raw or len(raw) % 2 or len(raw) > 132:
        raise SigningRefused("ECDSA", f"HSM returned a {len(raw)}-byte signature")
    half = len(raw) // 2
    body = _der_integer(raw[:half]) + _der_integer(raw[half:])
    length = bytes((len(body),)) if len(body) < 0x80 else bytes((0x81, len(body)))
    return b"\x30" + length + body


def _sign_raw(key: Any, data: bytes, spec: AlgorithmSpec, *, ecdsa_sha256: bool) -> bytes:
    if spec.key_type == "EC" and ecdsa_sha256:
        return bytes(key.sign(data, mechanism=Mechanism.ECDSA_SHA256))
    if spec.key_type == "EC":  # the digest is public; the private key still never leaves the HSM
        return bytes(key.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA))
    mechanism = Mechanism.SHA256_RSA_PKCS_PSS
    return bytes(key.sign(data, mechanism=mechanism, mechanism_param=_PSS_PARAMS))


def _ec_point(public_key: Any) -> bytes:
    """CKA_EC_POINT is the DER OCTET STRING of the point (PKCS#11 v2.40 §2.3.3); unwrap it."""
    value = bytes(public_key[Attribute.EC_POINT])
    try:
        point = bytes(asn1_core.OctetString.load(value).native)
    except ValueError:
        point = value  # some modules return the bare point
    if not point or point[0] != 0x04:
        raise KeyPolicyViolation(str(public_key.label), "EC public point is not uncompressed")
    return point


def _spki(public_key: Any) -> bytes:
    if public_key.key_type == KeyType.EC:
        return bytes(encode_ec_public_key(public_key))
    rsa = asn1_keys.RSAPublicKey.load(encode_rsa_public_key(public_key))
    info = asn1_keys.PublicKeyInfo({"algorithm": {"algorithm": "rsa"}, "public_key": rsa})
    return bytes(info.dump())


def _attributes(label: str, key: Any) -> KeyAttributes:
    key_type = KeyType(key[Attribute.KEY_TYPE])
    return KeyAttributes(
        label=label,
        key_type=key_type.name,
        ec_params=bytes(key[Attribute.EC_PARAMS]) if key_type == KeyType.EC else None,
        modulus_bits=len(key[Attribute.MODULUS]) * 8 if key_type == KeyType.RSA else None,
        sensitive=bool(key[Attribute.SENSITIVE]),
        extractable=bool(key[Attribute.EXTRACTABLE]),
        never_extractable=bool(key[Attribute.NEVER_EXTRACTABLE]),
        always_sensitive=bool(key[Attribute.ALWAYS_SENSITIVE]),
        local=bool(key[Attribute.LOCAL]),
        can_sign=bool(key[Attribute.SIGN]),
    )


_DECRYPT_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False, Attribute.DECRYPT: True, Attribute.SIGN: False,
    Attribute.SIGN_RECOVER: False, Attribute.UNWRAP: False, Attribute.DERIVE: False,
}
_ENCRYPT_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True, Attribute.ENCRYPT: True, Attribute.VERIFY: False,
    Attribute.VERIFY_RECOVER: False, Attribute.WRAP: False,
}
_OAEP = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1), "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384), "sha512": (Mechanism.SHA512, MGF.SHA512),
}


def _decrypt_oaep(key: Any, data: bytes, hash_name: str) -> bytes:
    try:
        return bytes(key.decrypt(data, mechanism=Mechanism.RSA_PKCS_OAEP,
                                 mechanism_param=(*_OAEP[hash_name], None)))
    except (p11.ArgumentsBad, p11.MechanismParamInvalid, p11.MechanismInvalid):
        pass  # SoftHSM 2.6 does OAEP with SHA-1 only: raw RSA in the HSM, OAEP decoding here
    size = len(key[Attribute.MODULUS])
    encoded = bytes(key.decrypt(data, mechanism=Mechanism.RSA_X_509)).rjust(size, b"\x00")
    return _eme_oaep_decode(encoded, hash_name)


def _mgf1(seed: bytes, length: int, hash_name: str) -> bytes:
    """RFC 8017 §B.2.1 MGF1."""
    size = hashlib.new(hash_name).digest_size
    blocks = (hashlib.new(hash_name, seed + i.to_bytes(4, "big")).digest()
              for i in range(-(-length // size)))
    return b"".join(blocks)[:length]


def _eme_oaep_decode(encoded: bytes, hash_name: str) -> bytes:
    """RFC 8017 §7.1.2 step 3, empty label; one error whatever failed (§7.1.2 note)."""
    size = hashlib.new(hash_name).digest_size
    if len(encoded) < 2 * size + 2:
        raise ValueError("decryption error")
    masked_seed, masked_db = encoded[1:1 + size], encoded[1 + size:]
    seed = bytes(a ^ b for a, b in zip(masked_seed, _mgf1(masked_db, size, hash_name),
                                       strict=True))
    db = bytes(a ^ b for a, b in zip(masked_db, _mgf1(seed, len(masked_db), hash_name),
                                     strict=True))
    rest = db[size:].lstrip(b"\x00")
    label_ok = hmac.compare_digest(db[:size], hashlib.new(hash_name, b"").digest())
    if not (label_ok & (encoded[0] == 0) & (rest[:1] == b"\x01")):
        raise ValueError("decryption error")
    return rest[1:]


def _certificates(session: Any, label: str) -> list[Any]:
    return list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                     Attribute.LABEL: label}))


_AES_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False, Attribute.COPYABLE: False, Attribute.ENCRYPT: True,
    Attribute.DECRYPT: True, Attribute.WRAP: False, Attribute.UNWRAP: False,
    Attribute.SIGN: False, Attribute.VERIFY: False, Attribute.DERIVE: False,
}


_OPEN_ATTEMPTS = 5
_OPEN_PAUSE_S = 0.05  # then 0.1, 0.15, 0.2: half a second in all before giving up
# what a file-backed token answers an open while another process changes its files
_TOKEN_IN_FLUX = (p11.GeneralError, p11.NoSuchToken, p11.UserPinNotInitialized)
_DESTROY_ROUNDS = 3
# what a search or C_DestroyObject answers when another process destroyed the key first
_VANISHED = (p11.ObjectHandleInvalid, p11.FunctionFailed)


def _secret_keys(session: Any, label: str) -> list[Any]:
    # list(): finish the search (C_FindObjectsFinal) before using what it found
    return list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                     Attribute.LABEL: label}))


def _secret_attributes(label: str, key: Any) -> SecretKeyAttributes:
    return SecretKeyAttributes(
        label=label,
        key_id=bytes(key[Attribute.ID]),
        key_type=KeyType(key[Attribute.KEY_TYPE]).name,
        value_len=int(key[Attribute.VALUE_LEN]),
        sensitive=bool(key[Attribute.SENSITIVE]),
        extractable=bool(key[Attribute.EXTRACTABLE]),
        never_extractable=bool(key[Attribute.NEVER_EXTRACTABLE]),
        always_sensitive=bool(key[Attribute.ALWAYS_SENSITIVE]),
        local=bool(key[Attribute.LOCAL]),
        copyable=bool(key[Attribute.COPYABLE]),
        can_encrypt=bool(key[Attribute.ENCRYPT]),
        can_decrypt=bool(key[Attribute.DECRYPT]),
        can_wrap=bool(key[Attribute.WRAP]),
        can_unwrap=bool(key[Attribute.UNWRAP]),
        can_sign=bool(key[Attribute.SIGN]),
        can_derive=bool(key[Attribute.DERIVE]),
    )
