"""The Document Signer: signs SOD content with the active DS key in the HSM, counting each use.

``DSSigner`` matches, by structure, the signer protocol the SOD builder expects:
``certificate_der``, ``signature_algorithm`` and ``sign(data)``. A line runs for shifts on
end while security officers rotate DS keys, so a signer that follows "the active DS" (no
fixed label) can move to the key a ceremony made active (:meth:`DSSigner.follow_rotation`);
:meth:`DSSigner.pinned` holds one key still, so that a certificate and the signatures put
next to it always belong together.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime

import structlog
from asn1crypto import keys as asn1_keys

from hsm.certificates import subject_public_key_info
from hsm.ecparams import explicit_spki, match_curve
from hsm.errors import CertificateError, KeyPolicyViolation, KeyRetired
from hsm.inventory import InventoryPort, KeyRecord, SignatureCounter
from hsm.pkcs11 import HSM, KeyAttributes, algorithm_spec

Clock = Callable[[], datetime]
_log = structlog.get_logger()


def utc_now() -> datetime:
    """The wall clock in UTC (the default clock; tests pass their own)."""
    return datetime.now(UTC)


def check_key_policy(attributes: KeyAttributes, algorithm: str) -> None:
    """Raise ``KeyPolicyViolation`` unless the private key may be a DS key for ``algorithm``."""
    label = attributes.label
    # reliability-and-keys §1.1 rule 2: refuse unless SENSITIVE, !EXTRACTABLE,
    # NEVER_EXTRACTABLE and LOCAL (generated in the HSM), with the expected type and curve.
    rules = (
        (attributes.sensitive, "SENSITIVE is not TRUE"),
        (not attributes.extractable, "EXTRACTABLE is TRUE"),
        (attributes.never_extractable, "NEVER_EXTRACTABLE is not TRUE"),
        (attributes.local, "LOCAL is not TRUE (key was not generated in the HSM)"),
        (attributes.can_sign, "SIGN is not TRUE"),
    )
    for ok, problem in rules:
        if not ok:
            raise KeyPolicyViolation(label, problem)
    spec = algorithm_spec(algorithm)
    if attributes.key_type != spec.key_type:
        raise KeyPolicyViolation(label, f"key type {attributes.key_type}, expected {spec.key_type}")
    if spec.key_type == "RSA" and attributes.modulus_bits != spec.bits:
        raise KeyPolicyViolation(label, f"RSA modulus of {attributes.modulus_bits} bits")
    if spec.key_type == "EC":
        _check_curve(label, attributes.ec_params or b"")


def _check_curve(label: str, ec_params: bytes) -> None:
    try:
        curve = match_curve(asn1_keys.ECDomainParameters.load(ec_params))
    except (CertificateError, ValueError, TypeError) as exc:
        raise KeyPolicyViolation(label, "EC curve is not P-256") from exc
    if curve.name != "secp256r1":
        raise KeyPolicyViolation(label, f"EC curve {curve.name}, expected P-256")


class DSSigner:
    """A context manager: HSM session pool + policy-checked DS key + durable signature count."""

    def __init__(
        self, module_path: str, token_label: str, pin: str, inventory: InventoryPort, *,
        key_label: str | None = None, sessions: int = 2, clock: Clock = utc_now, block: int = 256,
        status_every_s: float = 1.0,
    ) -> None:
        self._hsm = HSM(module_path, token_label, pin, sessions=sessions)
        self._inventory = inventory
        self._key_label = key_label
        self._clock = clock
        self._block = block
        self._status_every_s = status_every_s  # how soon a key retired elsewhere is noticed
        self._stack = ExitStack()
        self._record: KeyRecord | None = None
        self._counter: SignatureCounter | None = None
        self._rotation = threading.Lock()

    def __enter__(self) -> DSSigner:
        with ExitStack() as stack:
            record = self._ds_record()
            stack.enter_context(self._hsm)
            self._check_key(record)
            counter = SignatureCounter(self._inventory, record, block=self._block,
                                       status_every_s=self._status_every_s)
            stack.callback(counter.close)
            self._record, self._counter = record, counter
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._record = self._counter = None
        self._stack.close()

    def _ds_record(self) -> KeyRecord:
        if self._key_label is None:
            record = self._inventory.active("DS")
            if record is None:
                raise KeyRetired("(none)", "there is no active DS key")
        else:
            record = self._inventory.get(self._key_label)
        if record.role != "DS":
            raise KeyPolicyViolation(record.label, f"role is {record.role}, not DS")
        if record.status != "active":
            raise KeyRetired(record.label, f"its status is {record.status}")
        return record

    def _check_key(self, record: KeyRecord) -> None:
        check_key_policy(self._hsm.key_attributes(record.label, record.key_id), record.algorithm)
        in_hsm = explicit_spki(self._hsm.public_key_info(record.label, record.key_id))
        if in_hsm != explicit_spki(subject_public_key_info(record.certificate)):
            raise KeyPolicyViolation(record.label, "HSM public key differs from the DS certificate")

    def _active(self) -> tuple[KeyRecord, SignatureCounter]:
        if self._record is None or self._counter is None:
            raise KeyRetired("(none)", "the signer is not open; use it as `with DSSigner(...)`")
        return self._record, self._counter

    @property
    def label(self) -> str:
        """The DS key label in use."""
        return self._active()[0].label

    @property
    def certificate_der(self) -> bytes:
        """The DS certificate, DER."""
        return self._active()[0].certificate

    @property
    def signature_algorithm(self) -> str:
        """``"ecdsa-with-SHA256"`` or ``"rsassa-pss-sha256"``."""
        return algorithm_spec(self._active()[0].algorithm).signature_algorithm

    def sign(self, data: bytes) -> bytes:
        """Sign ``data`` (DER Ecdsa-Sig-Value for ECDSA); counts one document; thread-safe."""
        return self._sign_with(*self._active(), data)

    def _sign_with(self, record: KeyRecord, counter: SignatureCounter, data: bytes) -> bytes:
        counter.take(self._clock())  # reserve before signing: a crash over-counts, never under
        return self._hsm.sign(record.label, data, record.algorithm, record.key_id)

    def pinned(self) -> PinnedSigner:
        """The key in use now, held still (see :class:`PinnedSigner`)."""
        return PinnedSigner(self, *self._active())

    def current(self, record: KeyRecord) -> bool:
        """True while ``record`` is the key this signer uses."""
        return self._record is record

    def follow_rotation(self) -> bool:
        """Move to the inventory's active DS when a ceremony has made another key active.

        True when it moved; False when it already uses the active DS, when there is none, or
        when it was opened on a fixed key label. The new key passes the same policy and
        certificate checks as at opening (``KeyPolicyViolation`` otherwise).
        """
        if self._key_label is not None:
            return False
        with self._rotation:
            current, old_counter = self._active()
            record = self._inventory.active("DS")
            if record is None or record.label == current.label:
                return False
            self._check_key(record)
            counter = SignatureCounter(self._inventory, record, block=self._block,
                                       status_every_s=self._status_every_s)
            self._stack.callback(counter.close)
            self._record, self._counter = record, counter
            old_counter.close()  # the retired key's unused reservation goes back
        _log.info("hsm.signer.rotated", retired=current.label, active=record.label)
        return True


class PinnedSigner:
    """One DS key of a :class:`DSSigner`, held still: the SOD builder takes its certificate once
    and every signature it asks for is made with that same key — or refused with
    ``KeyRetired`` once the signer has moved on, never made with a newer key behind a stale
    certificate."""

    def __init__(self, signer: DSSigner, record: KeyRecord, counter: SignatureCounter) -> None:
        self._signer, self._record, self._counter = signer, record, counter

    @property
    def label(self) -> str:
        """The DS key label."""
        return self._record.label

    @property
    def certificate_der(self) -> bytes:
        """The DS certificate, DER."""
        return self._record.certificate

    @property
    def signature_algorithm(self) -> str:
        """``"ecdsa-with-SHA256"`` or ``"rsassa-pss-sha256"``."""
        return algorithm_spec(self._record.algorithm).signature_algorithm

    def sign(self, data: bytes) -> bytes:
        """Sign with the pinned key while the signer still uses it."""
        if not self._signer.current(self._record):
            raise KeyRetired(self._record.label, "superseded by a newer DS key")
        return self._signer._sign_with(self._record, self._counter, data)
