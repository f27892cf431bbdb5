"""The dashboard's security headers: the middleware on a tiny app, and the real dashboard in
chromium under exactly that Content-Security-Policy (no violation, still live)."""

from __future__ import annotations

import asyncio
import re
import threading

import httpx
import pytest
from playwright.sync_api import expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from servicescheduler.dashboard.security import CONTENT_SECURITY_POLICY, SECURITY_HEADERS, SecurityHeaders
from servicescheduler.scheduling.registry import TaskRegistry
from servicescheduler.scheduling.triggers import every
from tests.infra.browser import chromium_browser

EXPECTED = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _page(request: Request) -> Response:
    return HTMLResponse("<p>hello</p>")


def _own_policy(request: Request) -> Response:
    return PlainTextResponse("custom", headers={"Content-Security-Policy": "default-src 'self'"})


def _stream(request: Request) -> Response:
    return StreamingResponse(iter([b"a", b"b"]), media_type="text/plain")


def _boom(request: Request) -> Response:
    raise RuntimeError("a bug in a route")


def _app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", _page),
            Route("/own", _own_policy),
            Route("/stream", _stream),
            Route("/boom", _boom),
        ]
    )


def _get(*paths: str) -> list[httpx.Response]:
    async def fetch() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=SecurityHeaders(_app()), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(fetch())


def test_every_response_carries_the_security_headers() -> None:
    assert dict(SECURITY_HEADERS)["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    paths = {"/": 200, "/stream": 200, "/missing": 404, "/boom": 500}
    for (path, status), response in zip(paths.items(), _get(*paths), strict=True):
        assert response.status_code == status
        security = {name: response.headers.get(name) for name in EXPECTED}
        assert security == EXPECTED, path
        # Each header once: a second, looser copy would be combined with it by the browser.
        for name in EXPECTED:
            assert len(response.headers.get_list(name)) == 1, (path, name)
    page, stream = _get("/", "/stream")
    assert (page.text, stream.text) == ("<p>hello</p>", "ab")


def test_a_route_that_sets_its_own_policy_keeps_it() -> None:
    [response] = _get("/own")
    assert response.headers.get_list("content-security-policy") == ["default-src 'self'"]
    assert response.headers["x-frame-options"] == "DENY"


def test_other_scopes_pass_through_untouched() -> None:
    seen: list[tuple[Scope, Send]] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((scope, send))

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    for kind in ("lifespan", "websocket"):
        asyncio.run(SecurityHeaders(inner)({"type": kind}, receive, send))
    assert [(scope["type"], sent is send) for scope, sent in seen] == [("lifespan", True), ("websocket", True)]


# ----------------------------------------------------------------------------- in a browser
@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


# An init script and an exposed function: both work under the page's CSP (no eval).
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  window.reportViolation(event.violatedDirective + " " + (event.blockedURI || "inline") + " " + event.sample);
});
"""
LIVE = re.compile(r"^Live: updated \d\d:\d\d:\d\d UTC$")


def test_the_dashboard_works_under_its_policy_with_no_violation(live_app, make_settings, browser) -> None:
    release = threading.Event()
    registry = TaskRegistry()
    registry.register("quick", lambda: None, trigger=every(1).hours)
    registry.register("blocker", lambda: release.wait(20), trigger=every(1).hours, enabled=False)
    app = live_app(make_settings(), registry)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    violations: list[str] = []
    page.expose_function("reportViolation", lambda text: violations.append(text))
    page.add_init_script(REPORT_VIOLATIONS)

    def with_policy(route) -> None:
        # The lead wires SecurityHeaders onto the dashboard; here the real pages get its headers.
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, **EXPECTED})

    page.route(re.compile(r"^http://127\.0\.0\.1:\d+/(\?.*)?$|/ui/"), with_policy)
    try:
        page.goto(app.base_url + "/")
        expect(page.locator("#live-status")).to_have_text(LIVE)  # htmx polls under the policy
        page.goto(app.base_url + "/ui/tasks/quick")
        expect(page.locator("#live-status")).to_have_text(LIVE)
    finally:
        release.set()
        context.close()
    assert violations == []
    assert [text for text in console_errors if "Content Security Policy" in text or "htmx" in text] == []


HIDDEN_TAB = """
window.__hidden = true;
Object.defineProperty(document, "visibilityState", {
  get: function () { return window.__hidden ? "hidden" : "visible"; }
});
"""


def test_a_hidden_tab_does_not_poll_without_the_eval_filter(live_app, make_settings, browser) -> None:
    registry = TaskRegistry()
    registry.register("quick", lambda: None, trigger=every(1).hours)
    app = live_app(make_settings(), registry)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/ui/panels/" in request.url else None)
    page.add_init_script(HIDDEN_TAB)
    try:
        page.goto(app.base_url + "/")
        # Two polling periods with the tab hidden: the hx-trigger filter used to stop these; now
        # dashboard.js cancels them (the policy forbids the filter's eval).
        page.wait_for_timeout(4_500)
        assert polls == []
        page.evaluate("window.__hidden = false")
        expect(page.locator("#live-status")).to_have_text(LIVE)
        assert polls
    finally:
        context.close()


def test_the_served_dashboard_carries_the_headers_and_the_hosts_pages_keep_theirs(live_app, make_settings) -> None:
    app = live_app(make_settings())
    for path in ("/ui/", "/ui/panels/tasks", "/ui/static/dashboard.js", "/ui/api/tasks"):
        response = app.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert response.headers["x-frame-options"] == "DENY", path
    docs = app.client.get("/docs")  # the host's Swagger UI loads a CDN script: not the dashboard's policy
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers
