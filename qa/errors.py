"""The error root of the ``qa`` package: operational failures, never a failed card.

A card that fails a check is a :class:`qa.verify.Verdict` with reasons, not an exception.
These errors mean QA could not do its job at all (no reader, no card, an unreadable trust
store) and nothing may be concluded about the card.
"""

from __future__ import annotations

from common.errors import CardlineError


class QAError(CardlineError):
    """Root of every error raised by ``qa``."""


class ReaderUnavailableError(QAError):
    """The reader or the card went away while QA was talking to it."""

    def __init__(self, reader: str, reason: str) -> None:
        self.reader = reader
        self.reason = reason
        super().__init__(f"reader {reader!r}: {reason}")


class TrustStoreError(QAError):
    """A CSCA trust store file cannot be read or holds no usable certificate."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"trust store {source}: {reason}")


class AccessKeyError(QAError):
    """The document keys given for BAC are malformed (not a TD1 MRZ, dates not YYMMDD)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")
