"""The operator's dashboard: a Starlette application on the line's journal.

It reads through the service layer (one journal it holds open, answers cached for half a
second so that many screens cost the journal no more than one) and controls runs through the
run-control interface — the journal's control requests that the running controller obeys —
never by touching a device. Pages: ``/line``, ``/batches/NAME``, ``/qa``, ``/keys``,
``/audit``; live values come over server-sent events (``/api/stream``); ``/api/status`` gives
the same snapshot to a poller. See :mod:`personalization.web.guard` for the session, CSRF and
rate limits.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import structlog
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from common.errors import CardlineError
from personalization.service import batches, people, qa
from personalization.service.dashboard import Watch
from personalization.service.errors import NotFound
from personalization.service.people import Person
from personalization.service.setup import LineSetup
from personalization.web import guard as g
from personalization.web.i18n import DEFAULT, Lang, catalogue, lang_of, word

__all__ = ["CHART_JS", "Dashboard", "create_app"]

_log = structlog.get_logger(__name__)
STATIC = Path(__file__).parent / "static"
CHART_JS = "vendor/chart.js-4.6.1/chart.umd.min.js"
CACHE_S = 0.5  # a snapshot serves every screen for this long
STREAM_PERIOD_S = 1.0  # the live stream looks for changes this often …
STREAM_KEEPALIVE_S = 15.0  # … and says something at least this often
STREAM_RECHECK_S = 30.0  # the session behind a stream is checked again this often
FORM_MAX_BYTES = 16 * 1024
# page → the action a person needs to see it (personalization.people.ACTIONS)
PAGES = {"line": "dashboard.watch", "batch": "dashboard.watch", "qa": "qa.read",
         "keys": "keys.read", "audit": "audit.read"}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # (no-referrer would make form posts Origin: null)
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


class _Forbidden(Exception):  # noqa: N818 - control flow inside a request
    def __init__(self, message: str) -> None:
        super().__init__(message)


class Dashboard:
    """One dashboard server's state: the line, its journal, the guard, the snapshot cache."""

    def __init__(self, setup: LineSetup, guard: g.Guard) -> None:
        self.config, self.guard = setup.config, guard
        self.watch = Watch(setup.config)
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._cache_lock = threading.Lock()
        self.templates = Environment(loader=PackageLoader("personalization.web", "templates"),
                                     autoescape=select_autoescape(default=True),
                                     trim_blocks=True, lstrip_blocks=True)

    # -- the cache ----------------------------------------------------------------------------

    def cached(self, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
        """``make()``'s answer, shared by every caller for :data:`CACHE_S`."""
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and time.monotonic() - hit[0] < CACHE_S:
                return hit[1]
            value = make()
            self._cache[key] = (time.monotonic(), value)
            if len(self._cache) > 256:
                self._cache.pop(next(iter(self._cache)))
            return value

    def forget(self) -> None:
        """Drop every cached answer (after an action, so the next look sees it)."""
        with self._cache_lock:
            self._cache.clear()

    def snapshot(self, batch: str | None, lang: Lang) -> dict[str, Any]:
        """The live values of the line and of ``batch`` (the current one when None)."""
        result: dict[str, Any] = self.cached(("snapshot", batch or "", lang),
                                             lambda: self.watch.snapshot(batch, lang))
        return result

    # -- people -------------------------------------------------------------------------------

    def person(self, request: Request) -> Person | None:
        """Who sent the request, from the session cookie; None when nobody (or ended)."""
        token = request.cookies.get(g.SESSION_COOKIE)
        if not token or len(token) > 128:
            return None
        return self.watch.person(token)

    def require(self, person: Person, page: str) -> None:
        """Refuse (audited) a page the person's roles may not see."""
        action = PAGES[page]
        if not person.may(action):
            try:
                people.permit(self.config, person, action, target=page)
            except people.Refused as exc:
                raise _Forbidden(str(exc)) from exc

    def csrf(self, request: Request) -> str:
        """The CSRF token the page's forms carry."""
        return self.guard.csrf_for(request.cookies.get(g.SESSION_COOKIE, ""))

    # -- rendering ----------------------------------------------------------------------------

    def render(self, request: Request, template: str, lang: Lang, *,
               person: Person | None = None, status: int = 200, csrf: str | None = None,
               **values: Any) -> Response:
        """A page in ``lang`` (the language sticks in a cookie when asked for by ``?lang=``);
        its forms carry ``csrf``, by default the session's token."""
        page = self.templates.get_template(template).render(
            t=lambda key: word(key, lang), lang=lang, other="en" if lang == "vi" else "vi",
            person=person, csrf=self.csrf(request) if csrf is None else csrf,
            chart_js=CHART_JS,
            words=catalogue(lang), path=request.url.path,
            shown=set() if person is None else {p for p, a in PAGES.items() if person.may(a)},
            **values)
        response = HTMLResponse(page, status_code=status)
        return self.finish(request, response, lang)

    def finish(self, request: Request, response: Response, lang: Lang | None = None) -> Response:
        """Security headers, and the language cookie when the request chose one."""
        response.headers.update(SECURITY_HEADERS)
        chosen = lang_of(request.query_params.get("lang"))
        if chosen is not None and chosen == lang:
            response.set_cookie(g.LANG_COOKIE, chosen,
                                **self.guard.cookie_options(365 * 86400))  # type: ignore[arg-type]
        return response


def _lang(request: Request) -> Lang:
    return (lang_of(request.query_params.get("lang")) or lang_of(request.cookies.get(g.LANG_COOKIE))
            or DEFAULT)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


async def _form(request: Request) -> dict[str, str]:
    """The posted URL-encoded form (the only kind the pages send), read up to
    :data:`FORM_MAX_BYTES`; empty when it is larger, of another kind, or not UTF-8."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            return {}
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16,
                          strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return {}
    return dict(pairs)


def create_app(setup: LineSetup, *, secure: bool = False) -> Starlette:
    """The dashboard of the line ``setup`` describes (``secure``: served over TLS)."""
    dash = Dashboard(setup, g.Guard(secure=secure))

    async def page(request: Request, name: str,
                   body: Callable[[Person, Lang], dict[str, Any]], template: str) -> Response:
        lang = _lang(request)
        person = await run_in_threadpool(dash.person, request)
        if person is None:
            return dash.finish(request, RedirectResponse("/login", status_code=303), lang)
        try:
            await run_in_threadpool(dash.require, person, name)
            values = await run_in_threadpool(body, person, lang)
        except _Forbidden as exc:
            return dash.render(request, "message.html", lang, person=person, status=403,
                               box="forbidden", heading="forbidden.title",
                               text="forbidden.text", reason=str(exc))
        except NotFound as exc:
            return dash.render(request, "message.html", lang, person=person, status=404,
                               box="notfound", heading="notfound.title", text=None,
                               reason=str(exc))
        except CardlineError as exc:  # the journal away, the inventory unreadable…
            _log.warning("dashboard.page_failed", page=name, error=exc.__class__.__name__)
            return dash.render(request, "message.html", lang, person=person, status=503,
                               box="unavailable", heading="unavailable.title",
                               text="unavailable.text", reason=str(exc))
        return dash.render(request, template, lang, person=person, page=name, **values)

    async def home(request: Request) -> Response:
        person = await run_in_threadpool(dash.person, request)
        return dash.finish(request, RedirectResponse("/line" if person else "/login",
                                                     status_code=303))

    async def login_page(request: Request, *, error: str | None = None,
                         status: int = 200) -> Response:
        lang = _lang(request)
        token = g.new_login_token()
        response = dash.render(request, "login.html", lang, status=status, csrf=token,
                               error=error)
        response.set_cookie(g.LOGIN_CSRF_COOKIE, token,
                            **dash.guard.cookie_options(3600))  # type: ignore[arg-type]
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return await login_page(request)
        lang = _lang(request)
        form = await _form(request)
        if not g.same_origin(request.headers, request.headers.get("host")) or \
                not dash.guard.csrf_ok(request.cookies.get(g.LOGIN_CSRF_COOKIE),
                                       form.get(g.CSRF_FIELD)):
            return dash.render(request, "message.html", lang, status=403, box="refused",
                               heading="csrf.title", text="csrf.text", reason="")
        client = request.client.host if request.client else "unknown"
        if not dash.guard.login_allowed(client):
            _log.warning("dashboard.login_throttled")
            return await login_page(request, error=word("login.throttled", lang), status=429)
        try:
            person, token, expires = await run_in_threadpool(
                people.open_browser_session, dash.config, form.get("name", "")[:64],
                form.get("passphrase", "")[:1024])
        except people.Refused as exc:
            key = {"locked": "login.locked", "disabled": "login.disabled"}.get(
                exc.code, "login.failed")
            return await login_page(request, error=word(key, lang), status=401)
        except CardlineError as exc:  # the journal away: nobody can be checked now
            _log.warning("dashboard.login_unavailable", error=exc.__class__.__name__)
            return await login_page(request, error=word("unavailable.text", lang), status=503)
        response = RedirectResponse("/line", status_code=303)
        max_age = max(60, int(expires.timestamp() - time.time()))
        response.set_cookie(g.SESSION_COOKIE, token,
                            **dash.guard.cookie_options(max_age))  # type: ignore[arg-type]
        response.delete_cookie(g.LOGIN_CSRF_COOKIE, path="/")
        _log.info("dashboard.login", account=person.name)
        return dash.finish(request, response, lang)

    async def checked_post(
            request: Request) -> tuple[Person | None, dict[str, str], Response | None]:
        """The person behind a state-changing request, with its form; or the refusal."""
        lang = _lang(request)
        person = await run_in_threadpool(dash.person, request)
        form = await _form(request)
        given = request.headers.get(g.CSRF_HEADER) or form.get(g.CSRF_FIELD)
        if person is None:
            return None, form, _answer(request, lang, 401, word("login.title", lang))
        if not g.same_origin(request.headers, request.headers.get("host")) or \
                not dash.guard.csrf_ok(dash.csrf(request), given):
            _log.warning("dashboard.csrf_refused", account=person.name, path=request.url.path)
            return person, form, _answer(request, lang, 403, word("csrf.text", lang))
        return person, form, None

    def _answer(request: Request, lang: Lang, status: int, message: str,
                back: str | None = None) -> Response:
        if _wants_json(request):
            response: Response = JSONResponse({"ok": status < 400, "message": message},
                                              status_code=status)
        elif status < 400:
            response = RedirectResponse(back or "/line", status_code=303)
        else:
            response = dash.render(request, "message.html", lang, status=status, box="refused",
                                   heading="error", text=None, reason=message)
        return dash.finish(request, response)

    async def act(request: Request, action: str, target: str, do: Callable[[Person], str],
                  back: str) -> Response:
        person, _, refused = await checked_post(request)
        if refused is not None or person is None:
            return refused or _answer(request, _lang(request), 401, "")
        lang = _lang(request)
        try:
            await run_in_threadpool(people.permit, dash.config, person, action, target)
            message = await run_in_threadpool(do, person)
        except people.Refused as exc:
            return _answer(request, lang, 403, str(exc))
        except CardlineError as exc:
            return _answer(request, lang, 409, str(exc))
        dash.forget()  # the next look sees what was just done
        return _answer(request, lang, 200, message, back)

    async def logout(request: Request) -> Response:
        person, _, refused = await checked_post(request)
        if refused is not None and person is not None:
            return refused
        token = request.cookies.get(g.SESSION_COOKIE)
        if token:
            await run_in_threadpool(people.end_browser_session, dash.config, token)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(g.SESSION_COOKIE, path="/")
        return dash.finish(request, response)

    # -- pages --------------------------------------------------------------------------------

    def _batch_name(request: Request) -> str | None:
        return request.query_params.get("batch") or request.path_params.get("name")

    async def line_page(request: Request) -> Response:
        def body(person: Person, lang: Lang) -> dict[str, Any]:
            snap = dash.snapshot(_batch_name(request), lang)
            return {"snap": snap, "may_clear": person.may("alarm.clear")}
        return await page(request, "line", body, "line.html")

    async def batch_page(request: Request) -> Response:
        def body(person: Person, lang: Lang) -> dict[str, Any]:
            snap = dash.snapshot(request.path_params["name"], lang)
            return {"snap": snap, "may_control": person.may("batch.control")}
        return await page(request, "batch", body, "batch.html")

    async def batches_page(request: Request) -> Response:
        name = await run_in_threadpool(dash.watch.current_batch)
        return dash.finish(request, RedirectResponse(f"/batches/{name}" if name else "/line",
                                                     status_code=303))

    async def qa_page(request: Request) -> Response:
        def body(person: Person, lang: Lang) -> dict[str, Any]:
            view = dash.watch.qa(_batch_name(request), lang)
            return {"qa": view, "may_signoff": person.may("qa.signoff")}
        return await page(request, "qa", body, "qa.html")

    async def qa_card_page(request: Request) -> Response:
        batch, card = request.path_params["name"], request.path_params["card"]

        def body(person: Person, lang: Lang) -> dict[str, Any]:
            view = dash.watch.qa_card(batch, card, lang)
            if person.may("applications.read"):  # QA investigating one card: audited
                people.permit(dash.config, person, "applications.read",
                              target=f"{batch} card {card}")
            else:
                view["holder"] = None
            return {"card": view, "purged": view["holder"] is None}
        return await page(request, "qa", body, "qa_card.html")

    async def keys_page(request: Request) -> Response:
        def body(person: Person, lang: Lang) -> dict[str, Any]:
            return {"keys": dash.watch.keys()}
        return await page(request, "keys", body, "keys.html")

    async def audit_page(request: Request) -> Response:
        def body(person: Person, lang: Lang) -> dict[str, Any]:
            return {"audit": dash.watch.audit()}
        return await page(request, "audit", body, "audit.html")

    # -- actions ------------------------------------------------------------------------------

    async def control(request: Request) -> Response:
        name = request.path_params["name"]
        action = request.path_params["action"]
        if action not in ("pause", "resume", "stop"):
            return _answer(request, _lang(request), 404, f"no run control {action!r}")

        def do(person: Person) -> str:
            batches.request(dash.config, name, action, person.name)
            return word("control.sent", _lang(request))
        return await act(request, "batch.control", name, do, f"/batches/{name}")

    async def clear_alarm(request: Request) -> Response:
        name, station = request.path_params["name"], request.path_params["station"]

        def do(person: Person) -> str:
            batches.clear_alarm(dash.config, name, station, person.name)
            return word("alarm.clear", _lang(request))
        return await act(request, "alarm.clear", f"{name}/{station}", do, "/line")

    async def signoff(request: Request) -> Response:
        name = request.path_params["name"]

        def do(person: Person) -> str:
            qa.signoff(dash.config, person.name, name)
            return word("qa.signed_off", _lang(request))
        return await act(request, "qa.signoff", name, do, f"/qa?batch={name}")

    # -- the live API -------------------------------------------------------------------------

    async def status_api(request: Request) -> Response:
        def look() -> tuple[int, dict[str, Any]]:  # one trip to the thread pool, not two
            try:
                person = dash.person(request)
                if person is None:
                    return 401, {"error": "log in"}
                if not person.may(PAGES["line"]):
                    return 403, {"error": "forbidden"}
                return 200, dash.snapshot(request.query_params.get("batch"), _lang(request))
            except NotFound as exc:
                return 404, {"error": str(exc)}
            except CardlineError as exc:  # the journal away: the screen says so and retries
                return 503, {"error": str(exc)}
        status, body = await run_in_threadpool(look)
        return dash.finish(request, JSONResponse(body, status_code=status))

    async def stream(request: Request) -> Response:
        person = await run_in_threadpool(dash.person, request)
        if person is None or not person.may(PAGES["line"]):
            return dash.finish(request, JSONResponse({"error": "log in"}, status_code=401))
        batch, lang = request.query_params.get("batch"), _lang(request)

        async def events() -> AsyncIterator[str]:
            last, said, checked = "", time.monotonic(), time.monotonic()
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                now = time.monotonic()
                if now - checked > STREAM_RECHECK_S:
                    checked = now
                    if await run_in_threadpool(dash.person, request) is None:
                        yield "event: ended\ndata: {}\n\n"
                        return
                try:
                    snap = await run_in_threadpool(dash.snapshot, batch, lang)
                    text = json.dumps({k: v for k, v in snap.items() if k != "at"},
                                      ensure_ascii=False)
                except CardlineError as exc:
                    text = json.dumps({"error": str(exc)})
                if text != last or now - said > STREAM_KEEPALIVE_S:
                    last, said = text, now
                    yield f"data: {text}\n\n"
                await asyncio.sleep(STREAM_PERIOD_S)

        response = StreamingResponse(events(), media_type="text/event-stream")
        response.headers["x-accel-buffering"] = "no"  # nginx: pass events on at once
        return dash.finish(request, response)

    routes = [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/line", line_page),
        Route("/batches", batches_page),
        Route("/batches/{name}", batch_page),
        Route("/batches/{name}/control/{action}", control, methods=["POST"]),
        Route("/batches/{name}/alarms/{station}/clear", clear_alarm, methods=["POST"]),
        Route("/batches/{name}/signoff", signoff, methods=["POST"]),
        Route("/qa", qa_page),
        Route("/qa/{name}/cards/{card:int}", qa_card_page),
        Route("/keys", keys_page),
        Route("/audit", audit_page),
        Route("/api/status", status_api),
        Route("/api/stream", stream),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            dash.watch.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = dash
    return app
