"""The card side of the vsmartcard vpcd socket protocol: a virtual card plugged into a reader.

vpcd (a pcscd reader driver) listens on a TCP port; the card connects to it. Every message,
both ways, is a 2-byte big-endian length and that many bytes. A 1-byte message from the
reader is a control (00 power off, 01 power on, 02 reset, 04 send the ATR); anything longer
is a command APDU answered by one response APDU. Closing the socket pulls the card out.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Protocol

import structlog

from applets.transport.base import CardLike

_log = structlog.get_logger()
_HEADER = 2
CARD_FAULT = b"\x6f\x00"  # ISO 7816-4 §5.6: 6F00, no precise diagnosis


class Control(IntEnum):
    """The one-byte control messages vpcd sends to its card."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    ATR = 0x04


class TimingModel(Protocol):
    """What the bridge needs of ``applets.virtual.timing.CardTiming``."""

    def cost(self, command_len: int, response_len: int, eeprom_bytes_written: int) -> float:
        """Seconds the real chip would take for this exchange."""
        ...


@dataclass(slots=True)
class CardWork:
    """What the card in one reader has done: APDUs answered and the time spent computing them.

    The time is the card's own processing (the virtual chip's Python and crypto), without the
    timing model's sleeps and without the socket: a benchmark subtracts it to see what the
    terminal adds, since a zero-latency chip is meant to answer at once.
    """

    apdus: int = 0
    busy_s: float = 0.0


def frame(body: bytes) -> bytes:
    """One vpcd message: 2-byte big-endian length, then the body."""
    return len(body).to_bytes(_HEADER, "big") + body


def handle_message(card: CardLike, message: bytes) -> bytes | None:
    """The card's answer to one vpcd message (``None`` for controls that take no answer)."""
    if len(message) == 1:
        control = message[0]
        if control == Control.ATR:
            return card.atr()
        if control == Control.POWER_OFF:
            card.power_off()
        elif control == Control.POWER_ON:
            card.power_on()
        elif control == Control.RESET:
            card.reset()
        return None
    try:
        return card.execute(message)
    except Exception as exc:  # a faulty card answers 6F00; it must not kill the reader
        _log.error("virtual_card_fault", error=type(exc).__name__)
        return CARD_FAULT


class VPCDCardBridge:
    """Plugs one :class:`CardLike` into one vpcd reader port, in its own thread.

    ``insert`` connects the card (pcscd sees it arrive), ``remove`` closes the socket (pcscd
    sees it leave). When vpcd goes away (pcscd restarts) the bridge reconnects.
    """

    def __init__(
        self,
        host: str,
        port: int,
        card: CardLike | None = None,
        timing: TimingModel | None = None,
        *,
        retry_s: float = 0.05,
    ) -> None:
        self.host = host
        self.port = port
        self._card = card
        self._timing = timing
        self._retry_s = retry_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.work = CardWork()  # written by the bridge thread only

    def __enter__(self) -> VPCDCardBridge:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def card(self) -> CardLike | None:
        """The card currently in the reader, if any."""
        return self._card

    @property
    def connected(self) -> bool:
        """True while the card's socket to vpcd is open."""
        return self._socket is not None

    def start(self) -> None:
        """Start the bridge thread (idempotent)."""
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"vpcd-{self.port}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Pull the card and stop the thread."""
        self._stopping.set()
        self.remove()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def insert(self, card: CardLike) -> None:
        """Put ``card`` into the reader (a card already there is pulled first)."""
        self.remove()
        with self._lock:
            self._card = card
        self._wake.set()

    def remove(self) -> CardLike | None:
        """Pull the card out of the reader; returns it."""
        with self._lock:
            card, self._card = self._card, None
            if self._socket is not None:
                _shutdown(self._socket)
        self._wake.set()
        return card

    def _run(self) -> None:
        while not self._stopping.is_set():
            card = self._card
            if card is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            sock = self._connect()
            if sock is None:
                self._wake.wait(self._retry_s)
                self._wake.clear()
                continue
            self._serve(sock, card)

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2.0)
        except OSError:
            return None  # vpcd not listening (yet, or pcscd restarting): retry
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            if self._card is None or self._stopping.is_set():
                sock.close()
                return None
            self._socket = sock
        return sock

    def _serve(self, sock: socket.socket, card: CardLike) -> None:
        _log.debug("vpcd_card_inserted", port=self.port)
        try:
            while True:
                message = _receive(sock)
                if message is None:
                    break
                answer = self._answer(card, message)
                if answer is not None:
                    sock.sendall(frame(answer))
        except OSError as exc:
            _log.debug("vpcd_socket_closed", port=self.port, error=type(exc).__name__)
        finally:
            with self._lock:
                self._socket = None
            sock.close()
            card.power_off()  # out of the field: volatile state (sessions, SM keys) is lost
            _log.debug("vpcd_card_removed", port=self.port)

    def _answer(self, card: CardLike, message: bytes) -> bytes | None:
        started = time.perf_counter()
        answer = handle_message(card, message)
        if len(message) > 1:
            self.work.apdus += 1
            self.work.busy_s += time.perf_counter() - started
        if self._timing is not None and len(message) > 1 and answer is not None:
            written = int(getattr(card, "last_eeprom_bytes", 0))
            delay = self._timing.cost(len(message), len(answer), written)
            if delay > 0:
                time.sleep(delay)
        return answer


def _receive(sock: socket.socket) -> bytes | None:
    """One vpcd message body, or ``None`` when the reader closed the connection."""
    header = _receive_exact(sock, _HEADER)
    if header is None:
        return None
    return _receive_exact(sock, int.from_bytes(header, "big"))


def _receive_exact(sock: socket.socket, count: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < count:
        chunk = sock.recv(count - len(chunks))
        # Linux: delayed ACK switches itself back on, so QUICKACK is re-armed after every
        # receive; without it (and NODELAY) each APDU waits ~40 ms for vpcd's second write.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed by the peer
        sock.shutdown(socket.SHUT_RDWR)
