"""The error root of the HSM package and its subclasses, each carrying the data a person needs.

No error message ever carries a PIN, key material or personal data.
"""

from __future__ import annotations

from common.errors import CardlineError


class HSMError(CardlineError):
    """Root of every error raised by ``hsm``."""


class HSMUnavailable(HSMError):  # noqa: N818 -- public name; says what happened
    """The PKCS#11 module cannot be loaded or the device stopped answering."""

    def __init__(self, module: str, reason: str) -> None:
        super().__init__(f"HSM module {module} is unavailable: {reason}")
        self.module = module
        self.reason = reason


class TokenNotFound(HSMError):  # noqa: N818 -- public name; says what happened
    """No token with this label is present in any slot of the module."""

    def __init__(self, token: str) -> None:
        super().__init__(f"HSM token {token!r} not found; check hsm.token in line.yaml")
        self.token = token


class PINIncorrect(HSMError):  # noqa: N818 -- public name; says what happened
    """The token refused the user PIN (wrong, locked or expired); the PIN itself is never shown."""

    def __init__(self, token: str, reason: str = "PIN incorrect") -> None:
        super().__init__(f"HSM token {token!r} refused the PIN: {reason}")
        self.token = token
        self.reason = reason


class KeyNotFound(HSMError):  # noqa: N818 -- public name; says what happened
    """No key object with this label (and ID) exists on the token."""

    def __init__(self, label: str) -> None:
        super().__init__(f"HSM key {label!r} not found on the token")
        self.label = label


class KeyPolicyViolation(HSMError):  # noqa: N818 -- public name; says what happened
    """A key's attributes break the key policy (extractable, not sensitive, wrong type…)."""

    def __init__(self, label: str, attribute: str) -> None:
        super().__init__(f"HSM key {label!r} violates the key policy: {attribute}")
        self.label = label
        self.attribute = attribute


class SigningRefused(HSMError):  # noqa: N818 -- public name; says what happened
    """The HSM (or the inventory) refused one signature."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(f"signing with {label!r} refused: {reason}")
        self.label = label
        self.reason = reason


class KeyRetired(HSMError):  # noqa: N818 -- public name; says what happened
    """The DS key's usage period or document count is used up; a new DS key is needed."""

    def __init__(self, label: str, reason: str) -> None:
        super().__init__(
            f"DS key {label!r} is retired ({reason}); a security officer must run "
            "`cardline keys new-ds` with two officers to activate a new Document Signer key"
        )
        self.label = label
        self.reason = reason


class CeremonyError(HSMError):
    """A key ceremony was refused (quorum, missing CSCA, bad parameters)."""


class CertificateError(HSMError):
    """A certificate is malformed, uses an unsupported key, or its signature does not verify."""


class InventoryError(HSMError):
    """The key inventory database is missing, inconsistent or cannot be written."""


class QuorumError(HSMError):
    """A secret could not be split, reassembled, sealed or unsealed; ``code`` says which rule.

    Codes: ``parameters``, ``format``, ``too-few-shares``, ``inconsistent-shares``,
    ``integrity``, ``kdf-parameters``, ``unseal-refused``. The message never carries a
    passphrase, a share or the secret.
    """

    def __init__(self, message: str, *, code: str = "quorum") -> None:
        super().__init__(message)
        self.code = code
