"""The card host: one process holding the virtual chips and a vpcd bridge per encoder.

``python -m applets.virtual.host --data-dir D --readers N --base-port P --chips DIR``
plugs chips from the chip store into readers on request. The cards run in their own process
so the line controller's CPU work (GIL) never stalls a card mid-APDU. Other processes drive
it over a Unix socket (``D/pcsc/host.sock``), one JSON object per line each way:
``{"op": "insert", "reader": 0, "serial": "…"}``, ``{"op": "remove", "reader": 0}``,
``{"op": "status"}``, ``{"op": "work"}`` (APDUs answered and the cards' own processing
time per reader, for benchmarks); answers are ``{"ok": true, …}`` or
``{"ok": false, "error": "…"}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import socketserver
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

import structlog

from applets.errors import CardError
from applets.transport.base import CardLike
from applets.virtual.errors import HostError, VirtualError
from applets.virtual.vpcd import CardWork, TimingModel, VPCDCardBridge

_log = structlog.get_logger()
_TIMEOUT_S = 10.0


class ChipSource(Protocol):
    """What the host needs of ``applets.virtual.store.ChipStore``."""

    def exists(self, serial: str) -> bool:
        """True when the store holds a chip with this serial."""
        ...

    def open(self, serial: str) -> CardLike:
        """The chip with this serial, as a card."""
        ...


class HostClient:
    """Talks to the card host's control socket; every failure raises :class:`HostError`."""

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = Path(socket_path)

    def insert(self, reader_index: int, serial: str) -> None:
        """Put the stored chip ``serial`` into encoder ``reader_index``."""
        self._request({"op": "insert", "reader": reader_index, "serial": serial})

    def remove(self, reader_index: int) -> str | None:
        """Pull the chip out of encoder ``reader_index``; returns its serial (None if empty)."""
        serial = self._request({"op": "remove", "reader": reader_index}).get("serial")
        return str(serial) if serial is not None else None

    def status(self) -> dict[int, str | None]:
        """Which chip serial is in which encoder (None for an empty one)."""
        readers = self._request({"op": "status"})["readers"]
        return {int(index): serial for index, serial in readers.items()}

    def work(self) -> dict[int, CardWork]:
        """Per encoder: APDUs its cards answered and their own processing time, so far."""
        readers = self._request({"op": "work"})["readers"]
        return {int(index): CardWork(int(w["apdus"]), float(w["busy_s"]))
                for index, w in readers.items()}

    def _request(self, request: dict[str, Any]) -> dict[str, Any]:
        op = str(request["op"])
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(_TIMEOUT_S)
                conn.connect(str(self.socket_path))
                conn.sendall(json.dumps(request).encode() + b"\n")
                with conn.makefile("rb") as stream:
                    line = stream.readline()
        except OSError as exc:
            raise HostError(op, f"the card host is not reachable at {self.socket_path} "
                                f"({exc.strerror or exc}); run `cardline line up`") from exc
        try:
            answer = json.loads(line)
        except ValueError as exc:
            raise HostError(op, "the card host sent no valid answer") from exc
        if not isinstance(answer, dict) or not answer.get("ok"):
            error = answer.get("error", "unknown error") if isinstance(answer, dict) else "?"
            raise HostError(op, str(error))
        return answer


class CardHost:
    """The bridges and the chips in them; :meth:`handle` answers one control request."""

    def __init__(
        self, readers: int, base_port: int, store: ChipSource, timing: TimingModel | None
    ) -> None:
        self.store = store
        self.bridges = [
            VPCDCardBridge("127.0.0.1", base_port + 2 * i, timing=timing) for i in range(readers)
        ]
        self.serials: list[str | None] = [None] * readers
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start every bridge thread (all readers empty)."""
        for bridge in self.bridges:
            bridge.start()

    def stop(self) -> None:
        """Pull every chip and stop the bridges."""
        for index in range(len(self.bridges)):
            self._remove(index)
        for bridge in self.bridges:
            bridge.stop()

    def handle(self, request: object) -> dict[str, Any]:
        """One control request in, one answer out (errors become ``ok: false``)."""
        try:
            if not isinstance(request, dict):
                raise VirtualError("a request is a JSON object")
            return {"ok": True, **self._dispatch(request)}
        except CardError as exc:  # our own refusals and the chip store's (ChipStoreError)
            return {"ok": False, "error": str(exc)}

    def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"readers": {str(i): s for i, s in enumerate(self.serials)}}
        if op == "work":
            return {"readers": {str(i): {"apdus": b.work.apdus, "busy_s": b.work.busy_s}
                                for i, b in enumerate(self.bridges)}}
        index = self._reader(request.get("reader"))
        if op == "remove":
            with self._lock:
                return {"serial": self._remove(index)}
        if op == "insert":
            self._insert(index, request.get("serial"))
            return {}
        raise VirtualError(f"unknown op {op!r}; use insert, remove, status or work")

    def _reader(self, value: object) -> int:
        if not isinstance(value, int) or not 0 <= value < len(self.bridges):
            raise VirtualError(f"no encoder {value!r}; this bank has 0..{len(self.bridges) - 1}")
        return value

    def _insert(self, index: int, serial: object) -> None:
        if not isinstance(serial, str) or not self.store.exists(serial):
            raise VirtualError(f"no chip {serial!r} in the chip store")
        with self._lock:
            if serial in self.serials:
                where = self.serials.index(serial)
                raise VirtualError(f"chip {serial} is already in encoder {where}")
            if self.serials[index] is not None:
                held = self.serials[index]
                raise VirtualError(f"encoder {index} holds chip {held}; remove it first")
            self.bridges[index].insert(self.store.open(serial))
            self.serials[index] = serial
        _log.info("chip_inserted", reader=index)

    def _remove(self, index: int) -> str | None:
        serial, self.serials[index] = self.serials[index], None
        card = self.bridges[index].remove()
        flush = getattr(card, "flush", None)
        if callable(flush):
            flush()  # persisted before the remover hears back (chips open with deferred writes)
        if serial is not None:
            _log.info("chip_removed", reader=index)
        return serial


class _Handler(socketserver.StreamRequestHandler):
    """One control connection: a JSON request per line, a JSON answer per line."""

    server: _ControlServer

    def handle(self) -> None:
        for line in self.rfile:
            try:
                request = json.loads(line)
            except ValueError:
                request = None
            answer = self.server.host.handle(request)
            self.wfile.write(json.dumps(answer).encode() + b"\n")


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, host: CardHost) -> None:
        self.host = host
        super().__init__(str(path), _Handler)


def _timing(name: str) -> TimingModel | None:
    if name == "fast":
        return None
    from applets.virtual.timing import REALISTIC

    return REALISTIC


class _DeferredChips:
    """The chip store, opening chips that persist at power-off, reset and removal: the
    timing model stands for EEPROM writes, so the file need not be rewritten per APDU."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def exists(self, serial: str) -> bool:
        """As the store."""
        return bool(self._store.exists(serial))

    def open(self, serial: str) -> CardLike:
        """The chip, with deferred writes."""
        card: CardLike = self._store.open(serial, write_through=False)
        return card


def serve(data_dir: Path, readers: int, base_port: int, chips: Path, timing: str) -> None:
    """Run the host until SIGTERM/SIGINT: bridges up, control socket served."""
    from applets.virtual.store import ChipStore

    host = CardHost(readers, base_port, _DeferredChips(ChipStore(chips)), _timing(timing))
    path = data_dir / "pcsc" / "host.sock"
    path.unlink(missing_ok=True)
    host.start()
    with _ControlServer(path, host) as server:
        def stop(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=server.shutdown, daemon=True).start()

        # This module is a process entry point (python -m), so it owns its signals.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        _log.info("card_host_ready", readers=readers)
        server.serve_forever(poll_interval=0.2)
    host.stop()
    path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m applets.virtual.host", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--readers", type=int, required=True)
    parser.add_argument("--base-port", type=int, required=True)
    parser.add_argument("--chips", type=Path, required=True)
    parser.add_argument("--timing", choices=("fast", "realistic"), default="fast")
    args = parser.parse_args(argv)
    serve(args.data_dir, args.readers, args.base_port, args.chips, args.timing)


if __name__ == "__main__":
    main()
