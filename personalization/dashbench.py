"""Dashboard figures for ``cardline bench --section dashboard``: the operator's dashboard
(``cardline serve``, a process of its own as it is deployed) on the journal of a simulated
line while the line runs a batch, with twenty screens' worth of clients on it.

- ``dashboard_idle_p95_ms``: the 95th percentile of ``GET /api/status?batch=bench`` (an
  operator's session cookie, keep-alive) asked by one client alone at a poller's pace (every
  :data:`POLL_PERIOD_S`), the batch created and the line's parts up but nothing running and
  nobody else asking: the same request as under load, with nothing else running.
- ``dashboard_p95_ms``: the same request's 95th percentile while the line runs the batch, 20
  live streams (``/api/stream?batch=bench``) open and 20 pollers each asking every
  :data:`POLL_PERIOD_S`, all from a client process of its own (``python -m
  personalization.dashbench``: asyncio on plain sockets, no third-party client);
  ``dashboard_vs_idle`` is their ratio. ``dashboard_requests``: the answers counted under
  load; ``dashboard_stream_events``: the events (``data:``) the streams received over the run,
  ``dashboard_streams_flowing`` how many streams received any.
- ``dashboard_hot_p95_ms``: the same request asked back to back (the next as soon as the
  answer is in), alone, and ``dashboard_vs_hot``: the load's p95 over it. Shown, not the
  goal's denominator: one client asking back to back keeps the server (and its CPU) busy all
  the time, so it measures the warm path; a request that arrives after a pause — every
  poller's, under load too — also pays for waking the server's threads and, on a virtual
  machine, its idle CPU (about 2–3 ms here, with nothing else running).
- ``dashboard_line_vs_bound``: the line's throughput under that load over ``stations / one
  station's bare cycle``, the cycle measured in the same run before the dashboard starts
  (as ``line_vs_bound``): the dashboard must not slow the line.

The journal is the line's SQLite file. Its one account, an operator with a random
passphrase kept nowhere, logs in through the dashboard's login form as a browser does; the
session cookie reaches the client process on its standard input, never on a command line.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import random
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import yaml

from personalization import linebench
from personalization.benchkit import BenchHSM
from personalization.errors import PersonalizationError
from personalization.journal import open_journal
from personalization.journal.people_port import AccountRow, people
from personalization.people import hash_passphrase
from personalization.profile import DocumentProfile

BATCH = "bench"  # the batch linebench.run_line creates
STREAMS = 20
POLLERS = 20
POLL_PERIOD_S = 0.2  # each poller asks this often (20 of them: 100 requests a second)
IDLE_REQUESTS = 150  # alone at a poller's pace (30 s)
IDLE_WARMUP = 5  # the first answers alone, left out (the server's first look, imports)
HOT_REQUESTS = 200  # back to back, after HOT_WARMUP more
HOT_WARMUP = 20
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
CLIENT_TIMEOUT_S = 60.0
OPERATOR = "bench-operator"  # the one account of the bench line's journal
Figures = dict[str, Any]


class DashBenchError(PersonalizationError):
    """The dashboard benchmark could not run; the message says what and where its log is."""


# -- the measuring client (a process of its own) ---------------------------------------------


@dataclass(slots=True)
class _Tally:
    latencies_ms: list[float] = field(default_factory=list)
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    events: list[int] = field(default_factory=list)  # per stream
    dropped: list[int] = field(default_factory=list)  # streams that ended on their own


def _request(port: int, path: str, cookie: str, accept: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: {accept}\r\n"
            f"Cookie: {cookie}\r\n\r\n").encode("ascii")


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    line = await reader.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _chunk(reader: asyncio.StreamReader) -> bytes:
    """The next chunk of a chunked body; b"" at its end."""
    size = int((await reader.readline()).split(b";")[0], 16)
    data = await reader.readexactly(size + 2)
    return data[:-2]


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    parts = []
    while chunk := await _chunk(reader):
        parts.append(chunk)
    return b"".join(parts)


async def _poller(port: int, batch: str, cookie: str, period: float, requests: int,
                  stop: asyncio.Event, tally: _Tally) -> None:
    """Ask for the status on one keep-alive connection every ``period`` (0: at once), until
    ``stop`` or ``requests`` answers (0: no limit)."""
    request = _request(port, f"/api/status?batch={batch}", cookie, "application/json")
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    if period:
        await asyncio.sleep(random.uniform(0, period))  # noqa: S311 - spreading, not secrets
    tick, done = time.monotonic(), 0
    while not stop.is_set() and (requests == 0 or done < requests):
        try:
            if connection is None:
                connection = await asyncio.open_connection(HOST, port)
            reader, writer = connection
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status, headers = await _head(reader)
            body = await _body(reader, headers)
            elapsed = (time.perf_counter() - started) * 1000
            tally.statuses[str(status)] = tally.statuses.get(str(status), 0) + 1
            if status == 200 and json.loads(body).get("batch") == batch:
                tally.latencies_ms.append(elapsed)
            else:
                tally.failed += 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                connection = None
        except (OSError, asyncio.IncompleteReadError, ValueError):
            tally.failed += 1
            connection = None
        done += 1
        tick = max(tick + period, time.monotonic()) if period else tick
        if period:
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
    if connection is not None:
        connection[1].close()


async def _stream(port: int, batch: str, cookie: str, index: int, opened: asyncio.Queue[bool],
                  tally: _Tally) -> None:
    """Hold one live stream open, counting its events; says on ``opened`` whether it opened,
    and notes it in ``tally.dropped`` when it ends before it is let go."""
    told = False
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(_request(port, f"/api/stream?batch={batch}", cookie,
                                  "text/event-stream"))
            await writer.drain()
            status, _ = await _head(reader)
            told = True
            await opened.put(status == 200)
            pending = b""
            while status == 200 and (chunk := await _chunk(reader)):
                *events, pending = (pending + chunk).split(b"\n\n")
                tally.events[index] += sum(1 for e in events
                                           if e.startswith(b"data:") or b"\ndata:" in e)
        finally:
            writer.close()
    except (OSError, asyncio.IncompleteReadError, ValueError):
        if not told:
            await opened.put(False)
    tally.dropped.append(index)  # not reached when cancelled: held to the end


async def _load(port: int, batch: str, cookie: str, streams: int, pollers: int, period: float,
                requests: int, stop: asyncio.Event) -> _Tally:
    tally = _Tally(events=[0] * streams)
    opened: asyncio.Queue[bool] = asyncio.Queue()
    held = [asyncio.create_task(_stream(port, batch, cookie, i, opened, tally))
            for i in range(streams)]
    ok = [await opened.get() for _ in range(streams)]
    if not all(ok):
        raise DashBenchError(f"{ok.count(False)} of {streams} live streams were refused")
    print("ready", flush=True)
    await asyncio.gather(*(_poller(port, batch, cookie, period, requests, stop, tally)
                           for _ in range(pollers)))
    for task in held:
        task.cancel()
    await asyncio.gather(*held, return_exceptions=True)
    return tally


def client_main(argv: list[str]) -> None:
    """``python -m personalization.dashbench PORT BATCH STREAMS POLLERS PERIOD REQUESTS``:
    the ``Cookie`` header (the session) on the first line of standard input; with REQUESTS 0
    the load runs until standard input closes. Prints ``ready`` once the streams are open,
    then the tally (JSON) at the end."""
    port, batch = int(argv[0]), argv[1]
    streams, pollers, period, requests = int(argv[2]), int(argv[3]), float(argv[4]), int(argv[5])
    cookie = sys.stdin.readline().strip()

    async def main() -> _Tally:
        stop = asyncio.Event()
        if requests == 0:
            loop = asyncio.get_running_loop()

            def watch() -> None:
                sys.stdin.read()  # until the parent closes it
                loop.call_soon_threadsafe(stop.set)
            threading.Thread(target=watch, daemon=True).start()
        return await _load(port, batch, cookie, streams, pollers, period, requests, stop)

    tally = asyncio.run(main())
    print(json.dumps({"latencies_ms": tally.latencies_ms, "failed": tally.failed,
                      "statuses": tally.statuses, "events": tally.events,
                      "dropped": tally.dropped}), flush=True)


# -- the parent: accounts, the server, the line ----------------------------------------------


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _journal_url(root: Path) -> str:
    return f"sqlite:///{root.resolve() / 'journal.db'}"  # the file run_line opens


def _line_yaml(root: Path, hsm: BenchHSM) -> Path:
    """A line.yaml for the dashboard on the bench line's journal. Its one shift starts 12
    hours from now (UTC), so the operator's session cannot end during the run."""
    shift = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
    path = root / "dashboard.yaml"
    path.write_text(yaml.safe_dump({
        "line": "bench", "data_dir": str(root),
        "hsm": {"module": hsm.module, "token": hsm.token, "pin_source": "env"},
        "journal": {"url": _journal_url(root)},
        "people": {"shifts": [shift], "timezone": "UTC"},
    }), encoding="utf-8")
    return path


def _operator(url: str) -> str:
    """The journal's one account, an operator (the line's file created here: the line opens
    the same one); its passphrase."""
    phrase, now = secrets.token_urlsafe(24), datetime.now(UTC)
    with open_journal(url) as journal:
        people(journal).add_account(
            AccountRow(OPERATOR, ("operator",), hash_passphrase(phrase), False, 0, None, now,
                       "bench", now), actor="bench", first=True)
    return phrase


class _Hidden(HTMLParser):
    """A page's hidden form fields (the login form's CSRF token), sent back as a browser does."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.fields[str(found["name"])] = found.get("value") or ""


def _log_in(port: int, name: str, passphrase: str) -> str:
    """Log in through the dashboard's form; the ``Cookie`` header its answers set."""
    jar = CookieJar()
    browser = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                          urllib.request.HTTPCookieProcessor(jar))
    base = f"http://{HOST}:{port}"
    with browser.open(f"{base}/login", timeout=10) as page:
        form = _Hidden()
        form.feed(page.read().decode("utf-8"))
    sent = urllib.parse.urlencode({**form.fields, "name": name, "passphrase": passphrase})
    with browser.open(f"{base}/login", data=sent.encode("ascii"), timeout=10) as landed:
        if urllib.parse.urlsplit(landed.geturl()).path == "/login":
            raise DashBenchError("the bench operator could not log in to the dashboard")
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in jar)


@contextmanager
def _dashboard(config: Path, log: Path) -> Iterator[int]:
    """``cardline serve`` on a free port of the loopback while the block runs; its port."""
    port = _free_port()
    with log.open("wb") as sink:
        server = subprocess.Popen(  # noqa: S603 - our own CLI
            [sys.executable, "-m", "personalization", "serve", "--config", str(config),
             "--host", HOST, "--port", str(port)],
            stdout=sink, stderr=sink, stdin=subprocess.DEVNULL)
    try:
        _wait_answering(server, port, log)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_answering(server: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise DashBenchError(f"the dashboard exited ({server.returncode}); see {log}")
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/login")
            if connection.getresponse().status == 200:
                connection.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise DashBenchError(f"the dashboard did not answer within {START_TIMEOUT_S:g} s; see {log}")


def _client(port: int, *, streams: int, pollers: int, period: float,
            requests: int) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "personalization.dashbench", str(port), BATCH, str(streams),
         str(pollers), str(period), str(requests)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _tally(child: subprocess.Popen[str], stdin: str | None, timeout: float) -> dict[str, Any]:
    """The client's tally once it is done (``stdin`` given, then closed)."""
    try:
        out, _ = child.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise DashBenchError(f"the dashboard's client hung ({timeout:g} s)") from None
    if child.returncode != 0 or not out.strip():
        raise DashBenchError(f"the dashboard's client failed (exit {child.returncode})")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _alone(port: int, cookie: str, period: float, requests: int,
           warmup: int) -> dict[str, Any]:
    """One client alone asking ``requests`` times every ``period`` (0: back to back), after
    ``warmup`` answers left out."""
    child = _client(port, streams=0, pollers=1, period=period, requests=warmup + requests)
    tally = _tally(child, cookie + "\n", CLIENT_TIMEOUT_S + (warmup + requests) * period)
    tally["latencies_ms"] = tally["latencies_ms"][warmup:]
    return tally


@contextmanager
def _loaded(port: int, cookie: str, into: dict[str, Any]) -> Iterator[None]:
    """The streams and pollers on the dashboard while the block runs; their tally ``into``."""
    child = _client(port, streams=STREAMS, pollers=POLLERS, period=POLL_PERIOD_S, requests=0)
    assert child.stdin is not None and child.stdout is not None  # noqa: S101 - asked for pipes
    try:
        child.stdin.write(cookie + "\n")
        child.stdin.flush()
        if child.stdout.readline().strip() != "ready":
            raise DashBenchError("the dashboard's client did not open its streams")
        yield
    finally:
        tally = _tally(child, None, CLIENT_TIMEOUT_S)  # closing its stdin stops it
    into.update(tally)


def measure(root: Path, profile: DocumentProfile, hsm: BenchHSM, *, stations: int, cards: int,
            timing: str, base_port: int) -> Figures:
    """Run a batch of ``cards`` on ``stations`` simulated stations with the dashboard served
    on its journal and loaded meanwhile; the section's figures."""
    root.mkdir(parents=True, exist_ok=True)
    config = _line_yaml(root, hsm)
    phrase = _operator(_journal_url(root))
    hot: dict[str, Any] = {}
    idle: dict[str, Any] = {}
    load: dict[str, Any] = {}

    @contextmanager
    def during() -> Iterator[None]:
        # started once the line's parts are up: the free port cannot be one of theirs
        with _dashboard(config, root / "dashboard.log") as port:
            cookie = _log_in(port, OPERATOR, phrase)
            hot.update(_alone(port, cookie, 0.0, HOT_REQUESTS, HOT_WARMUP))
            idle.update(_alone(port, cookie, POLL_PERIOD_S, IDLE_REQUESTS, IDLE_WARMUP))
            with _loaded(port, cookie, load):
                yield

    run = linebench.run_line(root, profile, hsm, stations=stations, cards=cards, timing=timing,
                             base_port=base_port, bare_cycles=1, during=during)
    assert run.cycle_s is not None  # asked for  # noqa: S101
    under, alone, warm = load["latencies_ms"], idle["latencies_ms"], hot["latencies_ms"]
    if not under or not alone or not warm:
        raise DashBenchError(f"the status API gave no answer to measure ({load['statuses']})")
    p95, idle_p95, hot_p95 = _p95(under), _p95(alone), _p95(warm)
    throughput = run.cards / run.seconds
    return {
        "dashboard_idle_p95_ms": round(idle_p95, 2),
        "dashboard_p95_ms": round(p95, 2),
        "dashboard_vs_idle": round(p95 / idle_p95, 3),
        "dashboard_idle_p50_ms": round(statistics.median(alone), 2),
        "dashboard_p50_ms": round(statistics.median(under), 2),
        "dashboard_hot_p95_ms": round(hot_p95, 2),
        "dashboard_vs_hot": round(p95 / hot_p95, 3),
        "dashboard_requests": len(under),
        "dashboard_failed_requests": load["failed"] + idle["failed"] + hot["failed"],
        "dashboard_stream_events": sum(load["events"]),
        "dashboard_streams_flowing": sum(1 for i, n in enumerate(load["events"])
                                         if n > 0 and i not in load["dropped"]),
        "dashboard_line_cards": run.cards,
        "dashboard_station_cycle_s": round(run.cycle_s, 3),
        "dashboard_line_vs_bound": round(throughput / (stations / run.cycle_s), 3),
    }


if __name__ == "__main__":
    client_main(sys.argv[1:])
