"""The PC/SC transport: the one module that imports pyscard (``smartcard``).

pyscard speaks ``list[int]`` and integer return codes; this edge converts to ``bytes`` and
maps every PC/SC return code to a typed :class:`ReaderError` that names the reader.
Only the low-level ``smartcard.scard`` layer is used, so one APDU costs one SCardTransmit.
"""

from __future__ import annotations

import contextlib
import time
from types import TracebackType

from smartcard import scard

from applets.errors import APDUError, CardError
from applets.iso7816.apdu import SHORT_MAX_LC, CommandAPDU, ResponseAPDU

# Measured on pcscd 1.9.9 + vpcd 3.3: a vpcd message is at most 65535 bytes, so a command
# with extended Lc and Le carries at most 65535 - 4 (header) - 3 (Lc) - 2 (Le) data bytes.
UNREPORTED_MAX_COMMAND_DATA = 65526
_PROTOCOLS = scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
_REMOVAL_GRACE_S = 1.5  # pcscd polls a reader for presence about every 0.4 s
# PC/SC v2 part 10 §2.2: CM_IOCTL_GET_FEATURE_REQUEST, FEATURE_GET_TLV_PROPERTIES (0x12),
# and §2.6.14 property dwMaxAPDUDataSize (tag 0x0A).
_FEATURE_REQUEST = scard.SCARD_CTL_CODE(3400)
_FEATURE_GET_TLV_PROPERTIES = 0x12
_PROPERTY_MAX_APDU_DATA = 0x0A


class ReaderError(CardError):
    """A PC/SC call failed; carries the reader name, the reason and the PC/SC code."""

    def __init__(self, reader: str, reason: str, code: int | None = None) -> None:
        self.reader = reader
        self.reason = reason
        self.code = code
        super().__init__(f"reader {reader!r}: {reason}")


class ReaderNotFound(ReaderError):  # noqa: N818 - reads as what happened
    """No reader of that name is attached to pcscd."""


class CardInUseError(ReaderError):
    """Another program holds the card in this reader (each terminal connects exclusively)."""


class NoCardError(ReaderError):
    """The reader holds no card (or none arrived in time)."""


class CardRemovedError(ReaderError):
    """The card left the reader while connected."""


class PCSCServiceError(ReaderError):
    """pcscd is not running or stopped while in use."""


_ERRORS: dict[int, type[ReaderError]] = {
    scard.SCARD_E_UNKNOWN_READER: ReaderNotFound,
    scard.SCARD_E_READER_UNAVAILABLE: ReaderNotFound,
    scard.SCARD_E_NO_READERS_AVAILABLE: ReaderNotFound,
    scard.SCARD_E_NO_SMARTCARD: NoCardError,
    scard.SCARD_E_SHARING_VIOLATION: CardInUseError,
    scard.SCARD_E_TIMEOUT: NoCardError,
    scard.SCARD_W_REMOVED_CARD: CardRemovedError,
    scard.SCARD_E_NO_SERVICE: PCSCServiceError,
    scard.SCARD_E_SERVICE_STOPPED: PCSCServiceError,
}


def _error(code: int, reader: str, action: str) -> ReaderError:
    code &= 0xFFFFFFFF
    message = scard.SCardGetErrorMessage(code)
    return _ERRORS.get(code, ReaderError)(reader, f"{action}: {message} (0x{code:08X})", code)


def _check(code: int, reader: str, action: str) -> None:
    if code != scard.SCARD_S_SUCCESS:
        raise _error(code, reader, action)


def _establish(reader: str) -> int:
    code, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    _check(code, reader, "cannot reach pcscd")
    return int(context)


def list_readers() -> list[str]:
    """The names of the readers pcscd offers, one per slot (e.g. ``"Encoder 0 00 00"``)."""
    context = _establish("*")
    try:
        code, readers = scard.SCardListReaders(context, [])
        if code & 0xFFFFFFFF == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        _check(code, "*", "cannot list readers")
        return [str(name) for name in readers]
    finally:
        scard.SCardReleaseContext(context)


def _max_apdu_data(properties: bytes) -> int | None:
    """dwMaxAPDUDataSize from a PC/SC part 10 TLV property list, if present."""
    index = 0
    while index + 2 <= len(properties):
        tag, length = properties[index], properties[index + 1]
        value = properties[index + 2 : index + 2 + length]
        if tag == _PROPERTY_MAX_APDU_DATA and value:
            return int.from_bytes(value, "little")
        index += 2 + length
    return None


class PCSCTransport:
    """One PC/SC reader as a :class:`~applets.transport.base.Transport` (a context manager).

    Entering connects if a card is present; :meth:`wait_for_card` waits for one otherwise.
    The card is held exclusively (``SCARD_SHARE_EXCLUSIVE``): while an encoder or a QA desk
    talks to it, no other program on the machine can slip commands in between.
    """

    def __init__(self, reader_name: str, *, max_command_data: int | None = None) -> None:
        self.reader = reader_name
        self._max_command_data = max_command_data
        self._context: int | None = None
        self._card: int | None = None
        self._protocol = 0
        self._atr = b""

    def __enter__(self) -> PCSCTransport:
        self._context = _establish(self.reader)
        try:
            self._probe_reader()
        except ReaderError:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect (leaving the card as it is) and release the PC/SC context."""
        self._disconnect(scard.SCARD_LEAVE_CARD)
        if self._context is not None:
            scard.SCardReleaseContext(self._context)
            self._context = None

    @property
    def atr(self) -> bytes:
        """The answer-to-reset of the connected card (empty when none is connected)."""
        return self._atr

    @property
    def connected(self) -> bool:
        """True while a card connection is held."""
        return self._card is not None

    @property
    def max_command_data(self) -> int:
        """Largest command data field: the option, what the driver reports, or the vpcd fact."""
        if self._max_command_data is None:
            self._max_command_data = self._detect_max_command_data()
        return self._max_command_data

    def transmit(self, command: CommandAPDU) -> ResponseAPDU:
        """Send one command APDU, return the response; PC/SC failures raise ReaderError."""
        if len(command.data) > self.max_command_data:
            raise APDUError(
                f"reader {self.reader!r} carries at most {self.max_command_data} command "
                f"data bytes, not {len(command.data)}"
            )
        if self._card is None:
            self.connect()
        code, response = scard.SCardTransmit(self._card, self._protocol, list(command.encode()))
        if code != scard.SCARD_S_SUCCESS:
            raise self._transmit_failed(code)
        return ResponseAPDU.decode(bytes(response))

    def connect(self) -> bytes:
        """Connect to the card in the reader (T=0 or T=1) and return its ATR."""
        context = self._require_context()
        self._disconnect(scard.SCARD_LEAVE_CARD)
        code, card, protocol = scard.SCardConnect(
            context, self.reader, scard.SCARD_SHARE_EXCLUSIVE, _PROTOCOLS
        )
        _check(code, self.reader, "cannot connect to the card")
        self._card, self._protocol = card, protocol
        self._atr = self._read_atr()
        return self._atr

    def reconnect(self, reset: bool) -> bytes:
        """Re-establish the connection, with a warm reset if ``reset``; returns the ATR."""
        if self._card is None:
            return self.connect()
        disposition = scard.SCARD_RESET_CARD if reset else scard.SCARD_LEAVE_CARD
        code, protocol = scard.SCardReconnect(
            self._card, scard.SCARD_SHARE_EXCLUSIVE, _PROTOCOLS, disposition
        )
        if code != scard.SCARD_S_SUCCESS:
            self._disconnect(scard.SCARD_LEAVE_CARD)
            raise _error(code, self.reader, "cannot reconnect to the card")
        self._protocol = protocol
        self._atr = self._read_atr()
        return self._atr

    def wait_for_card(self, timeout_s: float) -> bytes:
        """Wait until a card is in the reader, connect to it and return its ATR."""
        self._wait_state(scard.SCARD_STATE_PRESENT, timeout_s, "no card arrived")
        return self.connect()

    def wait_for_removal(self, timeout_s: float) -> None:
        """Wait until the reader is empty, then drop the stale connection."""
        self._wait_state(scard.SCARD_STATE_EMPTY, timeout_s, "the card was not removed")
        self._disconnect(scard.SCARD_LEAVE_CARD)

    def _wait_state(self, wanted: int, timeout_s: float, reason: str) -> None:
        context = self._require_context()
        deadline = time.monotonic() + timeout_s
        state = scard.SCARD_STATE_UNAWARE
        while True:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            code, states = scard.SCardGetStatusChange(
                context, remaining_ms if state else 0, [(self.reader, state)]
            )
            if code & 0xFFFFFFFF == scard.SCARD_E_TIMEOUT:
                raise NoCardError(self.reader, f"{reason} within {timeout_s:g} s", code)
            _check(code, self.reader, "cannot watch the reader")
            state = states[0][1] & ~scard.SCARD_STATE_CHANGED
            if state & wanted:
                return
            if state & scard.SCARD_STATE_UNKNOWN:
                raise ReaderNotFound(self.reader, "the reader is not attached to pcscd")

    def _transmit_failed(self, code: int) -> ReaderError:
        code &= 0xFFFFFFFF
        if code in (scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_W_REMOVED_CARD):
            # A card pulled mid-exchange fails the exchange before pcscd's presence poll
            # notices; give the poll its time to tell removal from a transmission fault.
            try:
                self.wait_for_removal(_REMOVAL_GRACE_S)
            except ReaderError:
                return _error(code, self.reader, "transmit failed")
            return CardRemovedError(self.reader, "the card was removed", code)
        return _error(code, self.reader, "transmit failed")

    def _probe_reader(self) -> None:
        code, states = scard.SCardGetStatusChange(
            self._require_context(), 0, [(self.reader, scard.SCARD_STATE_UNAWARE)]
        )
        _check(code, self.reader, "cannot query the reader")
        state = states[0][1]
        if state & scard.SCARD_STATE_UNKNOWN:
            raise ReaderNotFound(self.reader, "no such reader is attached to pcscd")
        if state & scard.SCARD_STATE_PRESENT and not state & scard.SCARD_STATE_MUTE:
            # The card may leave while we look, or another terminal may hold it: then the
            # transport opens unconnected (watching the reader needs no connection).
            with contextlib.suppress(NoCardError, CardRemovedError, CardInUseError):
                self.connect()

    def _read_atr(self) -> bytes:
        code, _name, _state, _protocol, atr = scard.SCardStatus(self._card)
        _check(code, self.reader, "cannot read the card status")
        return bytes(atr)

    def _detect_max_command_data(self) -> int:
        if self._card is None:
            self.connect()
        code, features = scard.SCardControl(self._card, _FEATURE_REQUEST, [])
        if code != scard.SCARD_S_SUCCESS:
            return UNREPORTED_MAX_COMMAND_DATA
        raw = bytes(features)
        for index in range(0, len(raw) - 5, 6):  # tag, length 4, ioctl code big-endian
            if raw[index] == _FEATURE_GET_TLV_PROPERTIES:
                ioctl = int.from_bytes(raw[index + 2 : index + 6], "big")
                code, properties = scard.SCardControl(self._card, ioctl, [])
                reported = _max_apdu_data(bytes(properties)) if code == 0 else None
                if reported is not None:
                    return min(reported, UNREPORTED_MAX_COMMAND_DATA) or SHORT_MAX_LC
        return UNREPORTED_MAX_COMMAND_DATA

    def _require_context(self) -> int:
        if self._context is None:
            raise ReaderError(self.reader, "the transport is not open; use it in a with block")
        return self._context

    def _disconnect(self, disposition: int) -> None:
        if self._card is not None:
            scard.SCardDisconnect(self._card, disposition)
            self._card = None
            self._atr = b""
