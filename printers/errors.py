"""The error root of ``printers``: every printer fault is a typed exception naming the printer."""

from __future__ import annotations

from common.errors import CardlineError


class PrinterError(CardlineError):
    """Root of every error raised by ``printers``; ``printer`` names the station or port."""

    def __init__(self, printer: str, message: str) -> None:
        super().__init__(f"{printer}: {message}" if printer else message)
        self.printer = printer
        self.message = message

    def with_printer(self, printer: str) -> PrinterError:
        """The same error, re-addressed to ``printer`` (used at the driver boundary)."""
        clone = type(self).__new__(type(self))
        clone.__dict__.update(self.__dict__)
        PrinterError.__init__(clone, printer, self.message)
        return clone


class PrinterFault(PrinterError):  # noqa: N818 - public name; says what happened
    """The printer reported a condition an operator must clear (the reply is kept)."""

    def __init__(self, printer: str, message: str, reply: str = "") -> None:
        super().__init__(printer, message)
        self.reply = reply


class RibbonOut(PrinterFault):
    """The ribbon has ended or is missing."""


class FeederEmpty(PrinterFault):
    """No blank card in the feeder."""


class CoverOpen(PrinterFault):
    """The printer cover is open."""


class CardJam(PrinterFault):
    """A card is stuck, or is not where the last move should have put it."""


class RejectBoxFull(PrinterFault):
    """The reject box cannot take another card."""


class HeadTooHot(PrinterFault):
    """The print head is cooling down; printing resumes when it is cool."""


class CommandRefused(PrinterFault):
    """The printer refused a command (unknown command, bad parameter, wrong state)."""


class PrinterOffline(PrinterError):  # noqa: N818 - public name; says what happened
    """The printer did not answer within the timeout, or the link could not be opened."""


class GarbledReply(PrinterError):  # noqa: N818 - public name; says what happened
    """The printer answered something that is not a reply of the protocol."""

    def __init__(self, printer: str, message: str, raw: bytes = b"") -> None:
        super().__init__(printer, message)
        self.raw = raw


class LayoutError(PrinterError):
    """The card-face layout is wrong, or a field does not fit its box."""


class FontMissing(PrinterError):  # noqa: N818 - public name; says what happened
    """A font the card face needs is not installed; the message names the Debian package."""


class FaceError(PrinterError):
    """The card-face data cannot be rendered: an unreadable photo, or text that does not fit."""
