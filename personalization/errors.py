"""The error root of the line controller."""

from __future__ import annotations

from common.errors import CardlineError


class PersonalizationError(CardlineError):
    """Root of every error raised by ``personalization``."""


class ConfigError(PersonalizationError):
    """``line.yaml`` or a document profile is wrong; the message names the key and the fix."""
