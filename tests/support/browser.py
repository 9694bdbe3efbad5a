"""Debian's chromium, driven by Playwright (no browser download), and a dashboard served by a
real `cardline serve` process for the tests that look at it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Browser, sync_playwright

from tests.support.crew import passphrase

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# the flags a headless chromium needs here: no sandbox as root, and no calls home (this
# machine has no network beyond the package registries)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "build" / "screenshots"


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless chromium for one test."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def dashboard(config: Path, env: Mapping[str, str] | None = None,
              extra: tuple[str, ...] = (), scheme: str = "http") -> Iterator[str]:
    """`cardline serve` for ``config`` in a process of its own; yields its address."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "personalization", "serve", "--config", str(config),
         "--port", str(port), *extra], env={**(env or os.environ), "CARDLINE_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def logged_in(url: str, name: str, *, lang: str = "en") -> Iterator[httpx.Client]:
    """An HTTP client logged in to the dashboard at ``url`` as ``name`` of the test crew."""
    with httpx.Client(base_url=url, timeout=10) as client:
        form = client.get(f"/login?lang={lang}")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = client.post("/login", data={"csrf": token.group(1), "name": name,
                                             "passphrase": passphrase(name)})
        assert answer.status_code == 303 and answer.headers["location"] == "/line", answer.text
        yield client
