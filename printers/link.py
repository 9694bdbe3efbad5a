"""The serial link to a printer: the only module that imports pyserial.

Works on a device path (``/dev/ttyUSB0``), a pseudo-terminal (``/dev/pts/N``) or a
``socket://host:port`` URL. Every read has a deadline; silence becomes ``PrinterOffline``.
"""

from __future__ import annotations

import errno
import time
from types import TracebackType

import serial

from printers.errors import GarbledReply, PrinterOffline
from printers.protocol import CR, MAX_REPLY

DEFAULT_TIMEOUT = 5.0
# pyserial's write() re-copies what is left after every partial os.write (a pty takes ~4-8 KiB
# at a time), which is quadratic in the frame: a 411 KB Db panel is handed over in slices.
WRITE_CHUNK = 1 << 16


class SerialLink:
    """A byte pipe to one printer, opened as a context manager."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT, baudrate: int = 115200):
        self.url = url
        self.timeout = timeout
        self.baudrate = baudrate
        self.bytes_sent = 0
        self._port: serial.SerialBase | None = None

    def __enter__(self) -> SerialLink:
        try:
            # exclusive: an advisory lock on the port, so a second program (a test card
            # while a line runs) is refused instead of interleaving its commands
            self._port = serial.serial_for_url(
                self.url, baudrate=self.baudrate, timeout=0.05, write_timeout=self.timeout,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            if isinstance(exc, serial.SerialException) and exc.errno in (errno.EAGAIN,
                                                                         errno.EWOULDBLOCK):
                raise PrinterOffline(self.url, "another program holds the printer port (a "
                                     "running line?); wait for it or stop it") from exc
            raise PrinterOffline(self.url, f"cannot open the printer port: {exc}") from exc
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._port is not None:
            self._port.close()
            self._port = None

    def _open_port(self) -> serial.SerialBase:
        if self._port is None:
            raise PrinterOffline(self.url, "the link is not open")
        return self._port

    def discard_input(self) -> None:
        """Drop whatever the printer sent unasked (late or garbled replies)."""
        port = self._open_port()
        try:
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise PrinterOffline(self.url, f"read failed: {exc}") from exc

    def write(self, data: bytes) -> None:
        """Send bytes; a stalled line is ``PrinterOffline``."""
        port = self._open_port()
        view = memoryview(data)
        try:
            for start in range(0, len(view), WRITE_CHUNK):
                port.write(view[start : start + WRITE_CHUNK])
            port.flush()
        except (serial.SerialException, OSError) as exc:
            raise PrinterOffline(self.url, f"write failed: {exc}") from exc
        self.bytes_sent += len(data)

    def read_reply(self, timeout: float | None = None) -> bytes:
        """Read one CR-ended reply within ``timeout`` seconds."""
        port = self._open_port()
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        reply = bytearray()
        while time.monotonic() < deadline:
            try:
                chunk = port.read_until(bytes([CR]), MAX_REPLY + 1 - len(reply))
            except (serial.SerialException, OSError) as exc:
                raise PrinterOffline(self.url, f"read failed: {exc}") from exc
            reply += chunk
            if reply.endswith(bytes([CR])):
                return bytes(reply)
            if len(reply) > MAX_REPLY:
                raise GarbledReply(self.url, "reply longer than any protocol reply", bytes(reply))
        if reply:
            raise GarbledReply(self.url, "reply not ended by CR before the deadline", bytes(reply))
        raise PrinterOffline(self.url, "no answer before the deadline")
