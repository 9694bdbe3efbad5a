"""A card printer on a pseudo-terminal or a TCP port, speaking the same escape protocol.

It wraps ``PrinterMachine`` (mechanics) and ``firmware.answer`` (replies) with the wire,
the mechanical clock, the encoding-station coupling, fault injection, a status file and
one PNG per printed side. Faults can be injected from outside the process through a
control file ``<state_dir>/<name>.control.json`` (see ``write_control``).
"""

from __future__ import annotations

import json
import os
import random
import select
import socket
import threading
import time
import tty
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import structlog

from printers import firmware
from printers.machine import FAST, Event, Printed, PrinterMachine, StationChange, Timing
from printers.panels import Composer
from printers.png import PngWriter
from printers.protocol import CommandDecoder, encode_reply

log = structlog.get_logger()
POLL = 0.05
RECEIVE_TIMEOUT_S = 1.0  # an incomplete command older than this is dropped (data comm timeout)
# A pty hands over at most a few KiB a read; a socket or a slow reader may have much more.
READ_SIZE = 1 << 18
FAULTS = ("feeder_empty", "cover_open", "reject_box_full", "head_hot", "jam", "silent", "garbage")
CLEARABLE = (*FAULTS, "ribbon_out_after")
# Cards whose panels stay in memory (~2.8 MB each): a line prints thousands a shift.
PRINTED_KEPT = 8
# Cards whose face PNGs stay in the state folder: they show a holder's portrait and data.
FACES_KEPT = 8


class EncodingStationPort(Protocol):
    """The chip side: which blank sits at the encoding station (the virtual encoder's reader)."""

    def card_arrived(self, chip_serial: str) -> None: ...  # now at the station

    def card_left(self, chip_serial: str) -> None: ...  # moved away (printed, ejected, rejected)


class NoEncoder:
    """An encoding station with no reader attached."""

    def card_arrived(self, chip_serial: str) -> None:
        """Nothing to tell."""

    def card_left(self, chip_serial: str) -> None:
        """Nothing to tell."""


def blank_serials(printer: str, count: int) -> list[str]:
    """Chip serials of a freshly loaded feeder: ``CHIP-<printer>-<n>``."""
    return [f"CHIP-{printer}-{n:05d}" for n in range(1, count + 1)]


class PrinterEmulator:
    """One emulated printer; a context manager that stops its threads and closes its ports."""

    def __init__(
        self,
        name: str,
        *,
        blanks: list[str] | None = None,
        cards: int = 100,
        timing: Timing = FAST,
        station: EncodingStationPort | None = None,
        state_dir: Path | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        faces_kept: int = FACES_KEPT,
    ) -> None:
        self.name = name
        self.faces_kept = faces_kept  # the last cards whose PNGs stay in state_dir
        self.machine = PrinterMachine(
            name, blanks if blanks is not None else blank_serials(name, cards), timing=timing
        )
        self.station = station or NoEncoder()
        self.state_dir = state_dir
        self.rng = rng or random.Random(0)
        self.sleep = sleep
        self.printed: deque[Printed] = deque(maxlen=PRINTED_KEPT)  # the last cards printed
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._fds: list[int] = []
        self._sockets: list[socket.socket] = []
        self._control_id = ""
        self._control_polled = 0.0
        self._status: dict[str, object] | None = None  # as last written to the status file
        self._status_at = 0.0
        self._composer = Composer()
        self._png = PngWriter()

    # -- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> PrinterEmulator:
        self.write_status()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and close every port."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for fd in self._fds:
            os.close(fd)
        for sock in self._sockets:
            sock.close()
        self._threads, self._fds, self._sockets = [], [], []

    def _start(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=f"printer-{self.name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def serve_pty(self) -> str:
        """Serve on a new pseudo-terminal; returns the path the driver opens (``/dev/pts/N``)."""
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/NL translation, no XON/XOFF: bitmaps are binary
        self._fds += [master, slave]
        path = os.ttyname(slave)
        if self.state_dir is not None:
            _write_atomic(self.state_dir / f"{self.name}.pty", path)
        self._start(lambda: self._serve(master, lambda data: _write_fd(master, data), False))
        return path

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve one client at a time on TCP; returns the ``socket://`` URL."""
        listener = socket.create_server((host, port))
        listener.settimeout(POLL)
        self._sockets.append(listener)
        self._start(lambda: self._accept(listener))
        return f"socket://{host}:{listener.getsockname()[1]}"

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                self._poll_control()
                self.write_status()  # no client: a deferred panel count goes out now
                continue
            with conn:
                self._serve(conn.fileno(), conn.sendall, True)

    def _serve(self, fd: int, write: Callable[[bytes], Any], stream: bool) -> None:
        decoder = CommandDecoder()
        last_data = time.monotonic()
        while not self._stop.is_set():
            self._poll_control()
            if not select.select([fd], [], [], POLL)[0]:
                self.write_status()  # idle: a deferred panel count goes out now
                if decoder.pending and time.monotonic() - last_data > RECEIVE_TIMEOUT_S:
                    # A host that died mid-command (half a bitmap sent) must not leave the
                    # printer swallowing the next host's commands as bitmap bytes.
                    log.warning("emulator.receive_timeout", printer=self.name,
                                dropped=decoder.abandon())
                continue
            last_data = time.monotonic()
            try:
                data = os.read(fd, READ_SIZE)
            except OSError:  # the pty has no reader yet, or the peer went away
                data = b""
            if not data:
                if stream:
                    return  # the TCP client closed its end
                self.write_status()  # no host on the pty: a deferred panel count goes out now
                time.sleep(POLL)
                continue
            self.receive(decoder, data, write)

    def receive(self, decoder: CommandDecoder, data: bytes, write: Callable[[bytes], Any]) -> None:
        """Decode bytes from the host and ``write`` the answer to each command they complete."""
        for frame in decoder.feed(data):
            reply = self._answer(frame)
            if reply:
                write(reply)

    def _answer(self, frame: Any) -> bytes:
        with self._lock:
            outcome = firmware.answer(self.machine, frame)
            garbage = self.machine.faults.garbage
        if outcome.delay > 0:
            self.sleep(outcome.delay)
        for event in outcome.events:
            self._event(event)
        self.write_status()
        if outcome.reply is None:
            return b""
        if garbage:
            return bytes(self.rng.randrange(128, 256) for _ in range(self.rng.randrange(3, 20)))
        return encode_reply(outcome.reply)

    def _event(self, event: Event) -> None:
        if isinstance(event, StationChange):
            notify = self.station.card_arrived if event.arrived else self.station.card_left
            notify(event.chip_serial)
            return
        self.printed.append(event)
        if self.state_dir is not None:
            self._save_faces(event, self.state_dir / self.name / "cards")

    def _save_faces(self, event: Printed, folder: Path) -> None:
        """One owner-only PNG per side, then only the last ``faces_kept`` cards' stay."""
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        for side, panels in (("front", event.front), ("back", event.back)):
            path = folder / f"{event.index}-{event.chip_serial}-{side}.png"
            image = self._png.png_bytes(self._composer.compose(list(panels), side), side)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(image)
        faces = sorted(folder.glob("*.png"), key=lambda f: (f.stat().st_mtime_ns, f.name))
        for old in faces[: max(len(faces) - 2 * self.faces_kept, 0)]:
            old.unlink(missing_ok=True)

    # -- faults and operator actions --------------------------------------------------------

    def inject(self, **faults: Any) -> None:
        """Set faults: feeder_empty, cover_open, reject_box_full, head_hot, silent, garbage
        (bool), jam ("error" | "silent"), ribbon_out_after (cards)."""
        with self._lock:
            for key, value in faults.items():
                if key == "ribbon_out_after":
                    self.machine.set_ribbon(int(value))
                elif key in FAULTS:
                    setattr(self.machine.faults, key, value)
                else:
                    raise ValueError(f"unknown fault {key!r}; known: {', '.join(CLEARABLE)}")
        self.write_status()

    def clear(self, *names: str) -> None:
        """Clear faults as an operator would (new ribbon, empty reject box, free the jam…)."""
        with self._lock:
            for key in names:
                if key not in CLEARABLE:
                    raise ValueError(f"unknown fault {key!r}; known: {', '.join(CLEARABLE)}")
                if key == "ribbon_out_after":
                    self.machine.set_ribbon(None)
                elif key == "jam":
                    self.machine.clear_jam()
                else:
                    setattr(self.machine.faults, key, False)
                if key == "reject_box_full":
                    self.machine.empty_reject_box()
        self.write_status()

    def _poll_control(self) -> None:
        """Read the control file, at most once a ``POLL`` (not on every read of a busy line)."""
        now = time.monotonic()
        if self.state_dir is None or now - self._control_polled < POLL:
            return
        self._control_polled = now
        path = self.state_dir / f"{self.name}.control.json"
        try:
            control = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(control, dict) or control.get("id") == self._control_id:
            return
        self._control_id = str(control.get("id"))
        try:
            self.clear(*control.get("clear", []))
            self.inject(**control.get("inject", {}))
        except (TypeError, ValueError) as exc:
            log.warning("emulator.bad_control_file", printer=self.name, error=str(exc))

    # -- what people look at ----------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """Counts, levels, position and faults."""
        with self._lock:
            values = self.machine.snapshot()
            values["faults"] = {k: getattr(self.machine.faults, k) for k in FAULTS}
        values["name"] = self.name
        return values

    def write_status(self) -> None:
        """Write ``<state_dir>/<name>.json`` (if there is a state folder) when it changed.

        A change of the panel count alone waits until ``POLL`` has passed since the last write
        or the line is idle: a fast print job would otherwise rewrite the file for every panel.
        """
        if self.state_dir is None:
            return
        with self._lock:
            values = self.snapshot()
            if values == self._status:
                return
            recent = time.monotonic() - self._status_at < POLL
            if recent and _same_but_panels(values, self._status):
                return
            _write_atomic(self.state_dir / f"{self.name}.json", json.dumps(values))
            self._status, self._status_at = values, time.monotonic()


def _same_but_panels(values: dict[str, object], written: dict[str, object] | None) -> bool:
    """True when the two status readings differ in the panel count only."""
    if written is None:
        return False
    return {**values, "panels_printed": None} == {**written, "panels_printed": None}


def write_control(state_dir: Path, name: str, inject: dict[str, Any], clear: list[str]) -> None:
    """Ask a running emulator (another process) to inject or clear faults."""
    control = {"id": uuid.uuid4().hex, "inject": inject, "clear": clear}
    _write_atomic(state_dir / f"{name}.control.json", json.dumps(control))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
