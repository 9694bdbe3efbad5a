"""The one error root of cardline; each package's own root derives from it."""

from __future__ import annotations


class CardlineError(Exception):
    """The root of every error cardline raises; front ends catch this one type."""
