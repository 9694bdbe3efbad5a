"""The error root of the ``applets`` package: everything a chip or a codec can refuse."""

from __future__ import annotations


class CardError(Exception):
    """Root of every error raised by ``applets``."""


class TLVError(CardError):
    """A BER-TLV structure is malformed (truncated, bad length, wrong tag)."""


class APDUError(CardError):
    """A command or response APDU cannot be built or parsed."""


class StatusWordError(CardError):
    """A card answered with a status word other than the one expected.

    Carries the status word so callers can tell a locked chip (6985) from a
    missing file (6A82) without parsing the message.
    """

    def __init__(self, sw: int, command: str = "", message: str = "") -> None:
        self.sw = sw
        self.command = command
        text = f"{command or 'command'} failed with SW {sw:04X}"
        if message:
            text += f": {message}"
        super().__init__(text)
