"""The embedded default HSM: a SoftHSM2 token under the data folder, for tests and the demo.

A factory line points ``hsm.module`` at a certified HSM instead; nothing here runs then.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog

from hsm.errors import HSMUnavailable
from hsm.pkcs11 import release_module

SOFTHSM_MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)
# 24 random bytes: a 32-character URL-safe PIN (SoftHSM accepts 4 to 255 characters).
QUORUM_PIN_BYTES = 24
_log = structlog.get_logger()


def softhsm_module() -> Path:
    """The installed ``libsofthsm2.so``, or a clear error naming the Debian package."""
    for candidate in SOFTHSM_MODULE_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise HSMUnavailable("libsofthsm2.so", "SoftHSM2 is not installed; run `make setup` "
                         "(Debian package softhsm2)")


def softhsm_util() -> str:
    """The path of ``softhsm2-util``, or a clear error naming the Debian package."""
    found = shutil.which("softhsm2-util")
    if found is None:
        raise HSMUnavailable("softhsm2-util", "not on PATH; install the Debian package softhsm2")
    return found


def config_text(token_dir: Path) -> str:
    """The ``softhsm2.conf`` of a private token directory."""
    return (
        f"directories.tokendir = {token_dir}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
    )


def _write_secret(path: Path, value: str) -> None:
    # O_EXCL with mode 0600 at creation: the PIN file is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


def _read_or_create_pin(path: Path) -> str:
    if not path.exists():
        _write_secret(path, secrets.token_hex(16))
    return path.read_text(encoding="utf-8").split("\n")[0].strip()


def token_exists(conf: Path, token_label: str) -> bool:
    """Whether SoftHSM (configured by ``conf``) already holds a token labelled ``token_label``."""
    result = _run([softhsm_util(), "--show-slots"], conf)
    return any(
        line.strip().startswith("Label:") and line.split(":", 1)[1].strip() == token_label
        for line in result.stdout.splitlines()
    )


def _run(argv: list[str], conf: Path, *,
         stdin: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    try:
        return subprocess.run(  # noqa: S603 -- fixed tool path from shutil.which, no shell
            argv, env=env, stdin=stdin, capture_output=True, text=True, check=True, timeout=60
        )
    except subprocess.CalledProcessError as exc:
        # argv carries PINs: report the tool's own message only, never the command line.
        reason = (exc.stderr or exc.stdout or "").strip().splitlines()[-1:] or ["failed"]
        raise HSMUnavailable("softhsm2-util", reason[0]) from None


def embedded_pin_file(data_dir: Path) -> Path:
    """The owner-only file holding the embedded token's user PIN."""
    return data_dir / "softhsm" / "user.pin"


def read_embedded_pin(data_dir: Path) -> str:
    """The embedded token's user PIN (``ensure_embedded_token`` wrote it)."""
    return embedded_pin_file(data_dir).read_text(encoding="utf-8").split("\n")[0].strip()


def _embedded_conf(data_dir: Path) -> Path:
    base = data_dir / "softhsm"
    token_dir = base / "tokens"
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = base / "softhsm2.conf"
    if not conf.exists():
        conf.write_text(config_text(token_dir), encoding="utf-8")
    return conf


def ensure_embedded_token(data_dir: Path, token_label: str) -> Path:
    """Create (once) the embedded SoftHSM token; returns the ``softhsm2.conf`` path. Idempotent."""
    base = data_dir / "softhsm"
    conf = _embedded_conf(data_dir)
    softhsm_module()
    user_pin = _read_or_create_pin(embedded_pin_file(data_dir))
    so_pin = _read_or_create_pin(base / "so.pin")
    if token_exists(conf, token_label):
        return conf
    # softhsm2-util takes PINs only on argv (visible in /proc to this user while it runs); it is
    # the embedded test/demo default only. A production HSM is initialised by its own tools.
    _run([softhsm_util(), "--init-token", "--free", "--label", token_label,
          "--so-pin", so_pin, "--pin", user_pin], conf)
    _log.info("hsm.softhsm.token_created", token=token_label)
    return conf


def ensure_quorum_token(data_dir: Path, token_label: str) -> tuple[Path, str | None]:
    """Create (once) a second token, in the embedded configuration, whose PIN nobody keeps.

    Returns ``(conf, pin)`` when it created the token: the caller splits ``pin`` among the
    officers and forgets it. Returns ``(conf, None)`` when the token already existed. The user
    PIN and a random SO PIN reach softhsm2-util through a private pseudo-terminal, never argv, a
    file or a log; the SO PIN is forgotten at once, so nobody can re-initialise the token or
    reset its user PIN through PKCS#11.
    """
    conf = _embedded_conf(data_dir)
    softhsm_module()
    if token_exists(conf, token_label):
        return conf, None
    pin = secrets.token_urlsafe(QUORUM_PIN_BYTES)
    _init_token_through_terminal(conf, token_label, secrets.token_urlsafe(QUORUM_PIN_BYTES), pin)
    _log.info("hsm.softhsm.quorum_token_created", token=token_label)
    return conf, pin


def _init_token_through_terminal(conf: Path, token_label: str, so_pin: str, pin: str) -> None:
    # softhsm2-util asks its terminal for each PIN missing from argv, twice (entry and
    # confirmation). The answers wait in the terminal's input queue before the tool starts.
    controller, terminal = os.openpty()
    try:
        os.write(controller, f"{so_pin}\n{so_pin}\n{pin}\n{pin}\n".encode("ascii"))
        _run([softhsm_util(), "--init-token", "--free", "--label", token_label], conf,
             stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


@dataclass(frozen=True, slots=True)
class SoftHSMToken:
    """Where a SoftHSM token is and how to log in to it."""

    module: str
    label: str
    pin: str
    data_dir: Path
    conf: Path


@contextmanager
def throwaway_token(data_dir: Path, token_label: str) -> Iterator[SoftHSMToken]:
    """A private SoftHSM token under ``data_dir``, the process's SoftHSM configuration while open.

    For tests and benchmarks, which must never touch a line's real keys or counts. SoftHSM reads
    ``SOFTHSM2_CONF`` when the module is initialised, so the module is released on entry and on
    exit; the previous ``SOFTHSM2_CONF`` is restored afterwards.
    """
    conf = ensure_embedded_token(data_dir, token_label)
    module = str(softhsm_module())
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        release_module(module)
        yield SoftHSMToken(module, token_label, read_embedded_pin(data_dir), data_dir, conf)
    finally:
        release_module(module)
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous
