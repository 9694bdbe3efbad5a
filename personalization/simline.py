"""The simulated line's printers: one emulated printer per station, each with a feeder of
blank virtual chips, whose encoding station plugs the chip in front of it into that station's
virtual PC/SC encoder (through the card host of the encoder bank).

It runs as its own process (``python -m personalization.simline``), started by
``cardline line up`` and the demo, so the machines outlive a controller that crashes or is
killed — as real printers do. Each printer serves a pseudo-terminal whose path it writes to
``<data_dir>/printers/<station>.pty`` (what ``port: auto`` in line.yaml reads).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import structlog

from applets.virtual.host import HostClient
from applets.virtual.store import ChipStore
from personalization.errors import PersonalizationError
from printers.emulator import PrinterEmulator
from printers.machine import FAST, REALISTIC

_log = structlog.get_logger(__name__)
START_TIMEOUT_S = 20.0


class SimLineError(PersonalizationError):
    """The simulated printers could not be started or stopped."""


class ChipArrival:
    """A printer's encoding station seen by the card host: the card the printer moved to the
    station is the chip the PC/SC reader sees."""

    def __init__(self, client: HostClient, reader_index: int) -> None:
        self._client, self._index = client, reader_index

    def card_arrived(self, chip_serial: str) -> None:
        """Plug the chip into the reader."""
        self._client.insert(self._index, chip_serial)

    def card_left(self, chip_serial: str) -> None:
        """Take it out (the card host persists the chip first)."""
        self._client.remove(self._index)


def parse_station(text: str, position: int) -> tuple[str, int]:
    """``NAME=INDEX`` (the printer of station NAME feeds encoder INDEX), or ``NAME`` alone
    (encoder number ``position``)."""
    name, _, index = text.partition("=")
    return name, int(index) if index else position


def serve(state_dir: Path, stations: list[str], host_socket: Path, chips: Path, timing: str,
          blanks: int) -> None:
    """Run one printer per station (``NAME=ENCODER_INDEX``) until SIGTERM/SIGINT."""
    store = ChipStore(chips)
    client = HostClient(host_socket)
    model = REALISTIC if timing == "realistic" else FAST
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with contextlib.ExitStack() as stack:
        for position, text in enumerate(stations):
            name, index = parse_station(text, position)
            feeder = store.create_blanks(blanks, f"{name}-{store.store_id}-")
            emulator = stack.enter_context(PrinterEmulator(
                name, blanks=feeder, timing=model, station=ChipArrival(client, index),
                state_dir=state_dir))
            emulator.serve_pty()
        _log.info("simline.ready", printers=len(stations))
        while not stop.wait(0.2):
            pass


class PrinterLine:
    """Starts and stops the simulated printers' process for a data folder."""

    def __init__(self, data_dir: Path, stations: dict[str, int], host_socket: Path,
                 chips: Path, timing: str = "fast", blanks: int = 200) -> None:
        """``stations``: each station's name and the index of the encoder it feeds."""
        self.state_dir = data_dir / "printers"
        self.stations, self.host_socket, self.chips = stations, host_socket, chips
        self.timing, self.blanks = timing, blanks
        self._pid_path = self.state_dir / "simline.pid"

    def __enter__(self) -> PrinterLine:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def port(self, station: str) -> str:
        """The pseudo-terminal of a station's printer."""
        return (self.state_dir / f"{station}.pty").read_text(encoding="utf-8").strip()

    def running(self) -> bool:
        """True when our printers' process is alive."""
        return self._pid() is not None

    def up(self) -> None:
        """Start the printers (restarting ours) and return when every pty is announced."""
        self.down()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in self.stations:
            (self.state_dir / f"{name}.pty").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "personalization.simline", "--state-dir",
                str(self.state_dir), "--host-socket", str(self.host_socket), "--chips",
                str(self.chips), "--timing", self.timing, "--blanks", str(self.blanks),
                *(f"{name}={index}" for name, index in self.stations.items())]
        with (self.state_dir / "simline.log").open("ab") as log:
            child = subprocess.Popen(  # noqa: S603 - argv built from our own settings
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        self._pid_path.write_text(f"{child.pid}\n", encoding="utf-8")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.poll() is not None:
                self._pid_path.unlink(missing_ok=True)
                raise SimLineError(f"the simulated printers exited ({child.returncode}); see "
                                   f"{self.state_dir / 'simline.log'}")
            if all((self.state_dir / f"{n}.pty").exists() for n in self.stations):
                return
            time.sleep(0.05)
        self.down()
        raise SimLineError(f"the simulated printers did not start within {START_TIMEOUT_S:g} s")

    def down(self) -> None:
        """Stop our printers' process, if running (idempotent)."""
        pid = self._pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._pid_path.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        try:
            pid = int(self._pid_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and "personalization.simline" in _cmdline(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # a zombie child of ours still answers kill(0); its state says it is gone
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            os.waitpid(pid, os.WNOHANG)
            return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m personalization.simline",
                                     description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--host-socket", type=Path, required=True)
    parser.add_argument("--chips", type=Path, required=True)
    parser.add_argument("--timing", choices=("fast", "realistic"), default="fast")
    parser.add_argument("--blanks", type=int, default=200)
    parser.add_argument("stations", nargs="+")
    args = parser.parse_args(argv)
    serve(args.state_dir, args.stations, args.host_socket, args.chips, args.timing, args.blanks)


if __name__ == "__main__":
    main()
