"""The error root of the ``applets`` package: everything a chip or a codec can refuse."""

from __future__ import annotations

from common.errors import CardlineError


class CardError(CardlineError):
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


class LDSError(CardError):
    """An LDS file (EF.COM, a data group, EF.SOD) cannot be encoded or decoded.

    ``file`` names the elementary file (``EF.DG13``) and ``reason`` says what is wrong.
    """

    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(f"{file}: {reason}")


class MRZError(LDSError):
    """A machine readable zone is malformed; ``field`` names the MRZ field at fault."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        super().__init__("MRZ", f"{field}: {reason}")


class ResponseTooLongError(APDUError):
    """A card answered with more data than the command's Le asked for (ISO 7816-4 §5.1: Ne is
    the maximum number of bytes expected); the bytes are refused, never taken as data."""

    def __init__(self, command: str, ne: int, received: int) -> None:
        self.command = command
        self.ne = ne
        self.received = received
        super().__init__(f"{command or 'command'}: {received} bytes of response data, "
                         f"Le asked for at most {ne}")


class GetResponseLimitError(APDUError):
    """A card kept answering 61xx (more data available) past the cap on GET RESPONSE rounds."""

    def __init__(self, command: str, rounds: int) -> None:
        self.command = command
        self.rounds = rounds
        super().__init__(f"{command or 'command'}: still 61xx after {rounds} GET RESPONSE rounds")
