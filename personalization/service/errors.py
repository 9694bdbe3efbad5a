"""Errors the services raise on their own account (the packages below raise theirs)."""

from __future__ import annotations

from personalization.errors import PersonalizationError


class ServiceError(PersonalizationError):
    """An operation cannot be done as asked; the message says why and what to do."""


class NotFound(ServiceError):  # noqa: N818 - reads as what happened
    """The batch, key, file, reader or station named does not exist."""


class LineNotUp(ServiceError):  # noqa: N818 - reads as what happened
    """The line's machines (encoders, printers) are not running."""
