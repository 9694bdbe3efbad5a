"""The Document Signer: signs SOD content with the active DS key in the HSM, counting each use.

``DSSigner`` matches, by structure, the signer protocol the SOD builder expects:
``certificate_der``, ``signature_algorithm`` and ``sign(data)``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime

from asn1crypto import keys as asn1_keys

from hsm.certificates import subject_public_key_info
from hsm.ecparams import explicit_spki, match_curve
from hsm.errors import CertificateError, KeyPolicyViolation, KeyRetired
from hsm.inventory import KeyInventory, KeyRecord, SignatureCounter
from hsm.pkcs11 import HSM, KeyAttributes, algorithm_spec

Clock = Callable[[], datetime]


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
        self, module_path: str, token_label: str, pin: str, inventory: KeyInventory, *,
        key_label: str | None = None, sessions: int = 2, clock: Clock = utc_now, block: int = 256,
    ) -> None:
        self._hsm = HSM(module_path, token_label, pin, sessions=sessions)
        self._inventory = inventory
        self._key_label = key_label
        self._clock = clock
        self._block = block
        self._stack = ExitStack()
        self._record: KeyRecord | None = None
        self._counter: SignatureCounter | None = None

    def __enter__(self) -> DSSigner:
        with ExitStack() as stack:
            record = self._ds_record()
            stack.enter_context(self._hsm)
            self._check_key(record)
            counter = SignatureCounter(self._inventory, record, block=self._block)
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
        record, counter = self._active()
        counter.take(self._clock())  # reserve before signing: a crash over-counts, never under
        return self._hsm.sign(record.label, data, record.algorithm, record.key_id)
