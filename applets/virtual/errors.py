"""Errors of the virtual encoder bank: pcscd harness, card host and its control socket."""

from __future__ import annotations

from applets.errors import CardError


class VirtualError(CardError):
    """Root of the errors raised by the virtual encoders (a :class:`CardError`)."""


class BankError(VirtualError):
    """The encoder bank cannot start or stop; the message says why and what to do."""


class HostError(VirtualError):
    """The card host refused or failed a control request (``op`` names the request)."""

    def __init__(self, op: str, reason: str) -> None:
        self.op = op
        self.reason = reason
        super().__init__(f"card host: {op} failed: {reason}")
