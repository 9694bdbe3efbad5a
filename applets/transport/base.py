"""The APDU-level capability every protocol depends on, and the card side the bridges drive.

A protocol (BAC, secure messaging, reading files, personalization) needs only something that
can exchange one APDU with a card — JMRTD's ``APDULevel…Capable`` cut. Two real
implementations exist: the PC/SC reader (``applets.transport.pcsc``) and
:class:`DirectTransport`, an in-process path straight into a :class:`CardLike`.
"""

from __future__ import annotations

from typing import Protocol

from applets.errors import APDUError
from applets.iso7816.apdu import CommandAPDU, ResponseAPDU


class Transport(Protocol):
    """Something that can exchange one APDU with a card (JMRTD's APDU-level capability)."""

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Send one command APDU and return the card's response."""
        ...

    @property
    def max_command_data(self) -> int:
        """Largest command data field the reader path carries (255 or 65535)."""
        ...


class CardLike(Protocol):
    """The card side, as the vpcd bridge drives it."""

    def atr(self) -> bytes:
        """The answer-to-reset the card presents after power-on."""
        ...

    def power_on(self) -> None:
        """Contact the card (field on): volatile state starts fresh."""
        ...

    def power_off(self) -> None:
        """Remove power (field off): volatile state such as SM keys is lost."""
        ...

    def reset(self) -> None:
        """Warm reset: like power off then on."""
        ...

    def execute(self, command: bytes) -> bytes:
        """Raw command APDU in, raw response APDU out; never raises."""
        ...


class DirectTransport:
    """An in-process :class:`Transport` straight into a :class:`CardLike` (no pcscd)."""

    def __init__(self, card: CardLike, max_command_data: int = 65535) -> None:
        self._card = card
        self._max_command_data = max_command_data

    @property
    def max_command_data(self) -> int:
        """Largest command data field this path carries."""
        return self._max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Encode, execute on the card, decode; refuse what the path cannot carry."""
        if len(command.data) > self._max_command_data:
            raise APDUError(f"{len(command.data)} bytes of command data exceed this path's "
                            f"{self._max_command_data}")
        return ResponseAPDU.decode(self._card.execute(command.encode()))
