"""``cardline serve``: the operator's dashboard in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from personalization.cli.common import ConfigOption, console, fail, line_setup
from personalization.web.serve import TLS, serve, url_of

HostOption = Annotated[str, typer.Option(
    "--host", help="address to listen on (loopback by default; put a TLS proxy in front, or "
                   "give --tls-cert/--tls-key, before opening it to the floor's network)")]
PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port")]


def serve_command(
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    tls_cert: Annotated[Path | None, typer.Option(
        "--tls-cert", help="serve HTTPS with this certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        "--tls-key", help="the certificate's private key (PEM, owner-only)")] = None,
    behind_tls: Annotated[bool, typer.Option(
        "--behind-tls", help="a TLS proxy on this machine forwards to us: mark cookies "
                             "Secure and trust its X-Forwarded-* headers")] = False,
    config: ConfigOption = Path("line.yaml"),
) -> None:
    """Serve the live line dashboard: stations, batches, QA, keys and audit, for the accounts
    of `cardline users`; runs until Ctrl-C."""
    if (tls_cert is None) != (tls_key is None):
        fail("give both --tls-cert and --tls-key, or neither")
    tls = TLS(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    setup = line_setup(config)
    console.print(f"dashboard: {url_of(host, port, tls)} (journal {setup.config.journal.url}); "
                  "Ctrl-C stops it", highlight=False, markup=False, soft_wrap=True)
    serve(setup, host, port, tls=tls, behind_tls=behind_tls)
