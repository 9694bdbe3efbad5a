"""Errors of the people rules: each carries a code for front ends to render, and a message."""

from __future__ import annotations

from personalization.errors import PersonalizationError


class PeopleError(PersonalizationError):
    """A rule about accounts, roles or passphrases refused something; ``code`` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PolicyViolation(PeopleError):  # noqa: N818 - reads as what happened
    """An account name, a role set or a passphrase breaks the policy."""


class WrongPassphrase(PeopleError):  # noqa: N818 - reads as what happened
    """The passphrase does not match the account's hash (or there is no such account)."""

    def __init__(self) -> None:
        super().__init__("wrong_passphrase", "unknown account or wrong passphrase")
