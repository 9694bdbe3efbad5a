"""The virtual encoder bank: a private pcscd with N vpcd readers, and the card host behind them.

Facts this harness rests on (reference/test-stack.md, re-checked here): ``pcscd -f -c DIR``
reads reader configs from DIR; only one pcscd runs per machine (``/run/pcscd/pcscd.comm``);
each vpcd reader needs its own copy of the driver file; a vpcd reader has two slots, on
ports P and P+1, named "<FRIENDLYNAME> 00 00" and "<FRIENDLYNAME> 00 01".
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import structlog

from applets.transport.pcsc import ReaderError, list_readers
from applets.virtual.errors import BankError, HostError
from applets.virtual.host import HostClient

_log = structlog.get_logger()
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
SYSTEM_PCSCD_PID = Path("/run/pcscd/pcscd.pid")
SYSTEM_PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
_START_TIMEOUT_S = 10.0


def reader_name(index: int, slot: int = 0) -> str:
    """The PC/SC name of slot ``slot`` of virtual encoder ``index`` (verified with pyscard)."""
    return f"Encoder {index} 00 {slot:02d}"


class EncoderBank:
    """pcscd + N virtual encoders + the card host, started and stopped as one (idempotent)."""

    def __init__(
        self,
        data_dir: Path,
        readers: int,
        base_port: int,
        *,
        chips_dir: Path | None = None,
        timing: str = "fast",
        driver: Path = VPCD_DRIVER,
        pcscd: str = "pcscd",
        with_host: bool = True,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.readers = readers
        self.base_port = base_port
        self.chips_dir = chips_dir if chips_dir is not None else self.data_dir / "chips"
        self.timing = timing
        self.driver = driver
        self.pcscd = pcscd
        self.with_host = with_host
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def pcsc_dir(self) -> Path:
        """Where the bank keeps its reader configs, driver copies, pid files and logs."""
        return self.data_dir / "pcsc"

    @property
    def host_socket(self) -> Path:
        """The card host's control socket."""
        return self.pcsc_dir / "host.sock"

    def port(self, index: int) -> int:
        """The vpcd port of slot 0 of encoder ``index`` (slot 1 is the next port)."""
        return self.base_port + 2 * index

    def reader_name(self, index: int) -> str:
        """The PC/SC name of encoder ``index`` (its slot 0, where the card host plugs chips)."""
        return reader_name(index)

    def client(self) -> HostClient:
        """A client of the card host's control socket."""
        return HostClient(self.host_socket)

    def __enter__(self) -> EncoderBank:
        self.up()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.down()

    def up(self) -> None:
        """Start pcscd and the card host (reusing ours when they match); return when ready."""
        pcscd = self._running("pcscd")
        if pcscd is not None and self._state().get("pcscd") != self._pcscd_config():
            self._stop("pcscd")
            pcscd = None
        if pcscd is None:
            self._stop("host")  # its bridges point at the old readers
            self._start_pcscd()
        if self.with_host:
            host = self._running("host")
            if host is not None and self._state().get("host") != self._host_config():
                self._stop("host")
                host = None
            if host is None:
                self._start_host()

    def down(self) -> None:
        """Stop the card host and pcscd, if this bank started them (idempotent)."""
        self._stop("host")
        self._stop("pcscd")

    def running(self) -> bool:
        """True when our pcscd runs (and our card host, when the bank has one)."""
        pcscd = self._running("pcscd") is not None
        return pcscd and (not self.with_host or self._running("host") is not None)

    # -- pcscd ---------------------------------------------------------------------------

    def _pcscd_config(self) -> dict[str, object]:
        return {"readers": self.readers, "base_port": self.base_port, "driver": str(self.driver)}

    def _host_config(self) -> dict[str, object]:
        return {**self._pcscd_config(), "chips": str(self.chips_dir), "timing": self.timing}

    def _start_pcscd(self) -> None:
        executable = self._check_tools()
        self._check_ports()
        self._check_foreign_pcscd()
        config_dir = self._write_config()
        self._spawn("pcscd", [executable, "-f", "-c", str(config_dir)])
        self._save_state("pcscd", self._pcscd_config())
        self._wait_for_readers()

    def _check_tools(self) -> str:
        executable = shutil.which(self.pcscd)
        if executable is None:
            raise BankError(
                f"pcscd not found ({self.pcscd}); install the Debian package pcscd"
            )
        if not self.driver.is_file():
            raise BankError(
                f"vpcd reader driver {self.driver} not found; "
                "install the Debian package vsmartcard-vpcd"
            )
        return executable

    def _check_ports(self) -> None:
        low, high = ephemeral_ports()
        ours = range(self.base_port, self.port(self.readers))
        clash = low <= ours[-1] and ours[0] <= high if ours else False
        if clash:
            # Any outgoing connection on this machine may be given one of these ports.
            _log.warning("encoder_bank_ports_ephemeral", first=ours[0], last=ours[-1],
                         ephemeral=f"{low}-{high}")
        for index in range(self.readers):
            for port in (self.port(index), self.port(index) + 1):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        probe.bind(("0.0.0.0", port))  # noqa: S104 - vpcd binds all interfaces
                    except OSError as exc:
                        hint = (f"; it lies in this machine's ephemeral range {low}-{high}, "
                                "where outgoing connections take their ports: choose a "
                                f"simulation.base_port below {low}") if low <= port <= high else ""
                        raise BankError(
                            f"port {port} (encoder {index}) is taken ({exc.strerror}); "
                            f"choose another simulation.base_port or stop what holds it{hint}"
                        ) from exc

    def _check_foreign_pcscd(self) -> None:
        pid = _read_pid(SYSTEM_PCSCD_PID)
        alive = pid is not None and _cmdline(pid) != ""
        if alive or _socket_answers(SYSTEM_PCSCD_SOCKET):
            who = f"pid {pid}" if alive else "socket activation"
            raise BankError(
                f"another pcscd ({who}, not started by this bank) holds {SYSTEM_PCSCD_SOCKET}; "
                "stop it first (systemctl stop pcscd.socket pcscd, or `cardline line down` "
                "for the bank that started it) — only one pcscd can run per machine"
            )

    def _write_config(self) -> Path:
        config_dir = self.pcsc_dir / "reader.conf.d"
        drivers = self.pcsc_dir / "drivers"
        shutil.rmtree(config_dir, ignore_errors=True)
        config_dir.mkdir(parents=True)
        drivers.mkdir(parents=True, exist_ok=True)
        for index in range(self.readers):
            # One driver copy per reader: with a shared LIBPATH pcscd reuses the loaded
            # driver and the cards never show as inserted (test-stack.md).
            library = drivers / f"libifdvpcd-{index}.so"
            shutil.copyfile(self.driver, library)
            port = self.port(index)
            (config_dir / f"encoder-{index}").write_text(
                f'FRIENDLYNAME "Encoder {index}"\nDEVICENAME /dev/null:{port}\n'
                f"LIBPATH {library}\nCHANNELID {port}\n",
                encoding="utf-8",
            )
        return config_dir

    def _wait_for_readers(self) -> None:
        wanted = {self.reader_name(i) for i in range(self.readers)}
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive("pcscd")
            with contextlib.suppress(ReaderError):
                if wanted <= set(list_readers()):
                    _log.info("encoder_bank_pcscd_ready", readers=self.readers)
                    return
            time.sleep(0.05)
        raise BankError(f"pcscd did not list {sorted(wanted)} within {_START_TIMEOUT_S:g} s; "
                        f"see {self._log_path('pcscd')}")

    # -- card host -----------------------------------------------------------------------

    def _start_host(self) -> None:
        self.chips_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "applets.virtual.host",
            "--data-dir", str(self.data_dir), "--readers", str(self.readers),
            "--base-port", str(self.base_port), "--chips", str(self.chips_dir),
            "--timing", self.timing,
        ]
        self._spawn("host", argv)
        self._save_state("host", self._host_config())
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive("host")
            with contextlib.suppress(HostError):
                self.client().status()
                return
            time.sleep(0.05)
        raise BankError(f"the card host did not answer within {_START_TIMEOUT_S:g} s; "
                        f"see {self._log_path('host')}")

    # -- processes -----------------------------------------------------------------------

    def _spawn(self, role: str, argv: list[str]) -> None:
        self.pcsc_dir.mkdir(parents=True, exist_ok=True)
        with self._log_path(role).open("ab") as log:
            child = subprocess.Popen(  # noqa: S603 - argv built from our own settings
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=_project_root(),
            )
        self._children[role] = child
        self._pid_path(role).write_text(f"{child.pid}\n", encoding="utf-8")
        _log.info("encoder_bank_started", role=role, pid=child.pid)

    def _check_alive(self, role: str) -> None:
        child = self._children.get(role)
        if child is not None and child.poll() is not None:
            tail = self._log_path(role).read_text(encoding="utf-8", errors="replace")[-600:]
            raise BankError(f"{role} exited with status {child.returncode}: {tail.strip()}")

    def _running(self, role: str) -> int | None:
        """The pid of our live ``role`` process, or None (a stale pid file is ignored)."""
        pid = _read_pid(self._pid_path(role))
        if pid is None:
            return None
        marker = str(self.pcsc_dir / "reader.conf.d") if role == "pcscd" else str(self.data_dir)
        cmdline = _cmdline(pid)
        wanted = "pcscd" if role == "pcscd" else "applets.virtual.host"
        return pid if wanted in cmdline and marker in cmdline else None

    def _stop(self, role: str) -> None:
        pid = self._running(role)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            self._wait_gone(role, pid)
            _log.info("encoder_bank_stopped", role=role, pid=pid)
        self._pid_path(role).unlink(missing_ok=True)
        self._children.pop(role, None)

    def _wait_gone(self, role: str, pid: int) -> None:
        child = self._children.get(role)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if child is not None and child.poll() is not None:
                return
            if child is None and _cmdline(pid) == "":
                return
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if child is not None:
            child.wait(5.0)

    def _pid_path(self, role: str) -> Path:
        return self.pcsc_dir / f"{role}.pid"

    def _log_path(self, role: str) -> Path:
        return self.pcsc_dir / f"{role}.log"

    def _state(self) -> dict[str, object]:
        with contextlib.suppress(OSError, ValueError):
            state = json.loads((self.pcsc_dir / "bank.json").read_text(encoding="utf-8"))
            if isinstance(state, dict):
                return state
        return {}

    def _save_state(self, role: str, config: dict[str, object]) -> None:
        state = {**self._state(), role: config}
        (self.pcsc_dir / "bank.json").write_text(json.dumps(state, indent=1), encoding="utf-8")


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections (Linux's default when unread)."""
    try:
        with _EPHEMERAL_RANGE.open("rb") as source:
            low, high = (int(part) for part in source.read(64).split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text(encoding="utf-8").strip("\0 \n"))  # pcscd ends it with NUL
    return None


def _cmdline(pid: int) -> str:
    """The command line of a live process ('' when gone or a zombie)."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _project_root() -> Path:
    """The folder holding the ``applets`` package, so ``python -m applets…`` resolves."""
    return Path(__file__).resolve().parent.parent.parent
