"""The error root of the line controller."""

from __future__ import annotations


class PersonalizationError(Exception):
    """Root of every error raised by ``personalization``."""


class ConfigError(PersonalizationError):
    """``line.yaml`` or a document profile is wrong; the message names the key and the fix."""
