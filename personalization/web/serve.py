"""Running the dashboard: in the foreground (``cardline serve``) or on a thread beside other
work (``cardline demo --serve``, the benchmark), under uvicorn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from personalization.service.errors import ServiceError
from personalization.service.setup import LineSetup
from personalization.web.app import create_app

__all__ = ["TLS", "serve", "serving", "url_of"]

START_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class TLS:
    """A certificate and key for serving over HTTPS directly (cookies then get ``Secure``)."""

    certificate: Path
    key: Path


def url_of(host: str, port: int, tls: TLS | None = None) -> str:
    """The address people type."""
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{shown}:{port}/"


def _server(setup: LineSetup, host: str, port: int, tls: TLS | None,
            behind_tls: bool) -> uvicorn.Server:
    app = create_app(setup, secure=tls is not None or behind_tls)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            proxy_headers=behind_tls, server_header=False,
                            ssl_certfile=str(tls.certificate) if tls else None,
                            ssl_keyfile=str(tls.key) if tls else None,
                            timeout_graceful_shutdown=2)
    return uvicorn.Server(config)


def serve(setup: LineSetup, host: str = "127.0.0.1", port: int = 8080, *,
          tls: TLS | None = None, behind_tls: bool = False) -> None:
    """Serve the dashboard until interrupted (Ctrl-C or SIGTERM)."""
    _server(setup, host, port, tls, behind_tls).run()


@contextmanager
def serving(setup: LineSetup, host: str = "127.0.0.1", port: int = 8080) -> Iterator[str]:
    """The dashboard on a thread of this process while the block runs; yields its address."""
    server = _server(setup, host, port, None, False)
    thread = threading.Thread(target=server.run, name="dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServiceError(f"the dashboard did not start on {host}:{port} (is the port "
                               "taken? choose another with --port)")
        time.sleep(0.05)
    try:
        yield url_of(host, port)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
