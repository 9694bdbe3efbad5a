"""The dashboard's door over real HTTP (a `cardline serve` process on the shipped line.yaml's
embedded default): session cookies, CSRF on every state-changing request, login rate limits,
pages and API refused without a login, the live stream, TLS, hostile input, both languages."""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from personalization.demoregistry import ensure_demo_registry, verified_batch
from personalization.journal import open_journal
from personalization.profile import load_profile
from personalization.service.setup import LineSetup
from personalization.synth import synthesize
from personalization.web import app as web
from personalization.web.i18n import WORDS, catalogue
from tests.support.browser import dashboard, logged_in
from tests.support.crew import Crew, enrol, passphrase
from tests.support.embedded import embedded_line

STATIC = Path(web.__file__).parent / "static"
TEMPLATES = Path(web.__file__).parent / "templates"


@pytest.fixture(scope="module")
def line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Crew, str]]:
    """The shipped line.yaml in a folder of its own, its crew, an open batch B1 of 2
    applications, and `cardline serve` on it."""
    tmp = tmp_path_factory.mktemp("dashboard")
    config = embedded_line(tmp)
    crew = enrol(config)
    records = tmp / "B1.jsonl"
    synthesize(2, 5, records)
    setup = LineSetup.load(config)
    with open_journal(setup.config.journal.url) as journal:
        verified_batch(journal, "B1", records, ensure_demo_registry(tmp / "registry"),
                       policy=load_profile("cccd").intake_rules(), today=date.today())
    with dashboard(config) as url:
        yield config, crew, url


def _csrf(client: httpx.Client, page: str = "/line") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(page).text)
    assert found is not None
    return found.group(1)


def _controls(config: Path) -> list[str]:
    with open_journal(LineSetup.load(config).config.journal.url) as journal:
        return [e["data"]["action"] for e in journal.events("B1") if e["kind"] == "run.control"]


def test_the_session_cookie_is_strict_and_ends_at_logout(line: tuple[Path, Crew, str]) -> None:
    _, _, url = line
    with logged_in(url, "an") as client:
        cookie = next(h for h in client.cookies.jar if h.name == "cardline_session")
        raw = [v for k, v in client.get("/line").headers.multi_items() if k == "set-cookie"]
        assert not raw  # no cookie rewritten on a page view
        assert client.get("/line").status_code == 200
        token = cookie.value
        assert client.post("/logout", data={"csrf": _csrf(client)}).status_code == 303
    with httpx.Client(base_url=url, cookies={"cardline_session": token}) as replay:
        assert replay.get("/line").headers["location"] == "/login"  # the old cookie is dead
        assert replay.get("/api/status").status_code == 401


def test_login_sets_http_only_same_site_strict_and_no_secure_on_plain_http(
        line: tuple[Path, Crew, str]) -> None:
    _, _, url = line
    with httpx.Client(base_url=url) as client:
        form = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        answer = client.post("/login", data={"csrf": token.group(1), "name": "an",
                                             "passphrase": passphrase("an")})
    session = next(v for k, v in answer.headers.multi_items()
                   if k == "set-cookie" and v.startswith("cardline_session="))
    flags = {part.strip().lower() for part in session.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags and "secure" not in flags
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_every_state_changing_request_needs_the_csrf_token(line: tuple[Path, Crew, str]) -> None:
    config, _, url = line
    before = _controls(config)
    with logged_in(url, "an") as client:
        token = _csrf(client)
        forged = token[:-1] + ("1" if token[-1] == "0" else "0")  # one hex digit changed
        pause = "/batches/B1/control/pause"
        refused = [client.post(pause, headers={"Accept": "application/json"}),
                   client.post(pause, data={"csrf": "0" * 64}),
                   client.post(pause, headers={"X-CSRF-Token": forged}),
                   client.post(pause, data={"csrf": token},
                               headers={"Origin": "http://evil.example"})]
        assert [a.status_code for a in refused] == [403] * 4
        assert _controls(config) == before  # none of them reached the journal
        done = client.post(pause, headers={"X-CSRF-Token": token, "Accept": "application/json"})
        assert done.status_code == 200 and done.json()["ok"], done.text
        assert _controls(config) == [*before, "pause"]
        resumed = client.post("/batches/B1/control/resume", data={"csrf": token})
        assert resumed.status_code == 303
        assert _controls(config)[-1] == "resume"
        # a known token for an action the role may not do: refused by role, audited
        with logged_in(url, "aud") as auditor:
            denied = auditor.post(pause, headers={"X-CSRF-Token": _csrf(auditor),
                                                  "Accept": "application/json"})
            assert denied.status_code == 403 and "may not pause" in denied.json()["message"]
        # the login form has its own token (double submit): a post without it is refused
        with httpx.Client(base_url=url) as stranger:
            unasked = stranger.post("/login", data={"name": "an", "passphrase": passphrase("an")})
            assert unasked.status_code == 403 and "cardline_session" not in unasked.cookies


def test_logins_are_rate_limited_per_address(tmp_path: Path) -> None:
    config = embedded_line(tmp_path)
    enrol(config)
    with dashboard(config) as url, httpx.Client(base_url=url) as client:
        statuses = []
        for attempt in range(11):  # unknown names: no account gets locked on the way
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
            assert token is not None
            statuses.append(client.post("/login", data={
                "csrf": token.group(1), "name": f"nobody{attempt}",
                "passphrase": "not a passphrase of anyone"}).status_code)
        assert statuses == [401] * 10 + [429]
        # even the right passphrase waits out the window
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        late = client.post("/login", data={"csrf": token.group(1), "name": "an",
                                           "passphrase": passphrase("an")})
        assert late.status_code == 429 and "cardline_session" not in late.cookies


def test_nothing_is_served_without_alogged_in(line: tuple[Path, Crew, str]) -> None:
    _, _, url = line
    with httpx.Client(base_url=url) as client:
        for page in ("/", "/line", "/batches/B1", "/qa", "/keys", "/audit"):
            answer = client.get(page)
            assert answer.status_code == 303 and answer.headers["location"] == "/login", page
        assert client.get("/api/status").status_code == 401
        assert client.get("/api/stream").status_code == 401
        assert client.post("/batches/B1/control/stop").status_code in (401, 403)
    with httpx.Client(base_url=url, cookies={"cardline_session": "x" * 5000}) as hostile:
        answer = hostile.get("/line")  # an absurd cookie is nobody's
        assert answer.status_code == 303 and answer.headers["location"] == "/login"


def test_the_live_stream_and_the_status_api_carry_the_batch(line: tuple[Path, Crew, str]) -> None:
    _, _, url = line
    with logged_in(url, "an") as client:
        status = client.get("/api/status?batch=B1").json()
        assert status["batch"] == "B1" and status["progress"]["applications"]["total"] == 2
        assert client.get("/api/status?batch=NOPE").status_code == 404
        with client.stream("GET", "/api/stream?batch=B1") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            data = next(line_ for line_ in stream.iter_lines() if line_.startswith("data: "))
        snapshot = json.loads(data.removeprefix("data: "))
        assert snapshot["batch"] == "B1" and snapshot["progress"]["state"] == "open"
        assert "full_name" not in data and "personal_id" not in data


def test_a_form_too_large_or_not_a_form_is_refused(line: tuple[Path, Crew, str]) -> None:
    _, _, url = line
    with logged_in(url, "an") as client:
        token = _csrf(client)
        big = client.post("/batches/B1/control/pause",
                          content=f"csrf={token}&x={'a' * 20_000}",
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert big.status_code == 403
        as_json = client.post("/batches/B1/control/pause", json={"csrf": token})
        assert as_json.status_code == 403


def test_over_tls_the_cookie_is_secure(tmp_path: Path) -> None:
    config = embedded_line(tmp_path)
    enrol(config)
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    trusted = ssl.create_default_context(cafile=str(cert))
    with dashboard(config, extra=("--tls-cert", str(cert), "--tls-key", str(key)),
                   scheme="https") as url, httpx.Client(base_url=url, verify=trusted) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
        assert token is not None
        answer = client.post("/login", data={"csrf": token.group(1), "name": "an",
                                             "passphrase": passphrase("an")})
    session = next(v for k, v in answer.headers.multi_items()
                   if k == "set-cookie" and v.startswith("cardline_session="))
    assert "secure" in {part.strip().lower() for part in session.split(";")}


def test_every_word_has_both_languages_and_every_page_uses_known_words() -> None:
    for key, texts in WORDS.items():
        assert texts["en"].strip() and texts["vi"].strip(), key
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r't\("([a-z_.]+)"\)', template.read_text(encoding="utf-8")))
    script = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    used |= set(re.findall(r'w\("([a-z_.]+)"\)', script))
    server = Path(web.__file__).read_text(encoding="utf-8")  # headings and messages it picks
    used |= {k for pair in re.findall(r'(?:heading|text)="([a-z_.]+)"|word\("([a-z_.]+)"',
                                      server) for k in pair if k}
    assert {"unavailable.title", "control.sent"} <= used  # the scan reads the server too
    assert used and used <= set(WORDS), sorted(used - set(WORDS))
    for lang in ("en", "vi"):  # the keys a page builds from values: every value has a word
        words = catalogue(lang)  # type: ignore[arg-type]
        for state in ("idle", "busy", "paused", "alarm", "off"):
            assert f"state.{state}" in words
        for feeder in ("ok", "near_empty", "empty"):
            assert f"feeder.{feeder}" in words
        for state in ("importing", "open", "closed"):
            assert f"batch.state.{state}" in words


def test_the_vendored_chart_library_is_the_pinned_file(line: tuple[Path, Crew, str]) -> None:
    _, _, url = line
    notes = (STATIC / "vendor" / "chart.js-4.6.1" / "VENDORED.txt").read_text(encoding="utf-8")
    pinned = re.search(r"SHA-256:\s+([0-9a-f]{64})", notes)
    assert pinned is not None
    served = httpx.get(f"{url}/static/{web.CHART_JS}")
    assert served.status_code == 200
    assert hashlib.sha256(served.content).hexdigest() == pinned.group(1)
    assert (STATIC / "vendor" / "chart.js-4.6.1" / "LICENSE.md").exists()
