"""What a new user found by trying it: odd numbers in paths, long log lines, and a 500
that went out without the security headers. Each answers as it should now."""

from __future__ import annotations

import re
import string
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import hypothesis
import pytest
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from coursegen.app import RowIdConvertor, create_app
from coursegen.logs import MAX_TARGET
from coursegen.middleware import SECURITY_HEADERS
from coursegen.settings import Settings
from tests.conftest import Running
from tests.helpers import served_in_thread
from tests.serverproc import ServerProcess, server_env

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CANONICAL = re.compile(RowIdConvertor.regex)
BEYOND_SQLITE = str(2**63)  # 19 digits, one more than SQLite's largest integer

# Texts that are not a row id written the usual way; each must be a 404 on every route.
NOT_IDS = {
    "huge": "9" * 5000,
    "twenty-digits": "1" * 20,
    "minus": "-1",
    "plus": "+1",
    "zero-padded": "007",
    "space-padded": " 7",
    "trailing-space": "7 ",
    "arabic-indic": "\u0661\u0662",
    "fullwidth": "\uff11\uff12",
    "devanagari": "\u096a\u0968",
    "exponent": "1e3",
    "decimal": "1.0",
    "underscore": "1_000",
    "hex": "0x10",
    "empty": "",
}


@pytest.fixture
def engine() -> str:
    return "sqlite"  # paths are matched before any database is asked


def numeric_routes() -> list[tuple[str, frozenset[str]]]:
    """Every API path template with a numeric parameter, and the methods it serves."""
    app = create_app(Settings(db="unused.db"))
    (api,) = [route for route in app.routes if isinstance(route, Mount) and route.path == "/api"]
    found = []
    for route in api.routes:
        assert isinstance(route, Route)
        if any(isinstance(c, RowIdConvertor) for c in route.param_convertors.values()):
            found.append((f"/api{route.path}", frozenset(route.methods or ())))
    return found


ROUTES = numeric_routes()
ROUTE_IDS = [path.replace("/api/", "").replace("/", "-") for path, _ in ROUTES]


def paths_with(template: str, text: str) -> list[str]:
    """The template with `text` as one numeric parameter at a time (the others valid)."""
    paths = []
    for name in re.findall(r"\{(\w+):id\}", template):
        path = template.replace(f"{{{name}:id}}", quote(text, safe=""))
        paths.append(re.sub(r"\{\w+:id\}", "1", path).replace("{format}", "markdown"))
    return paths


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = tmp_path_factory.mktemp("robustness") / "coursegen.db"
    with served_in_thread(create_app(Settings(db=str(db), provider="demo", demo_delay=0.0))) as url:
        yield url


@pytest.fixture(scope="module")
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        yield client


def assert_no_such_page(response: httpx.Response, method: str) -> None:
    where = f"{method} {response.request.url.raw_path[:80]!r}"
    assert response.status_code == 404, f"{where}: {response.status_code} {response.text[:200]}"
    assert response.headers["content-type"] == "application/json", where
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, where
    if method != "HEAD":
        assert response.json() == {"error": "no such page or endpoint"}, where


def test_the_numeric_routes_are_all_found() -> None:
    # Every id and version number in the routes table goes through the convertor.
    assert len(ROUTES) >= 11
    assert all(":int}" not in path for path, _ in ROUTES)
    assert "/api/lessons/{id:id}/versions/{n:id}/restore" in [path for path, _ in ROUTES]


@pytest.mark.parametrize("text", list(NOT_IDS.values()), ids=list(NOT_IDS))
@pytest.mark.parametrize(("template", "methods"), ROUTES, ids=ROUTE_IDS)
def test_a_number_written_oddly_is_no_such_page_on_every_method(
    http: httpx.Client, template: str, methods: frozenset[str], text: str
) -> None:
    for path in paths_with(template, text):
        for method in METHODS:
            assert_no_such_page(http.request(method, path), method)


@pytest.mark.parametrize(("template", "methods"), ROUTES, ids=ROUTE_IDS)
def test_a_well_written_number_reaches_the_endpoint(
    http: httpx.Client, template: str, methods: frozenset[str]
) -> None:
    # The control: the same routes with ids written the usual way are matched, so the
    # 404s above come from the paths' form, not from routes that match nothing.
    for number in ("123456", "0", BEYOND_SQLITE):
        for path in paths_with(template, number):
            for method in methods - {"HEAD"}:
                response = http.request(method, path, json={} if method != "GET" else None)
                assert response.status_code in (400, 404), (method, path, response.text)
                assert response.json()["error"] != "no such page or endpoint", (method, path)
            for method in set(METHODS) - methods - {"HEAD"}:
                assert http.request(method, path).status_code == 405, (method, path)


def odd_numbers() -> st.SearchStrategy[str]:
    """Texts near a number: digits of any script and length, signs, padding, exponents."""
    digits = st.text(st.characters(categories=["Nd"]), min_size=1, max_size=40)
    ascii_digits = st.text(st.sampled_from(string.digits), min_size=1, max_size=6000)
    around = st.sampled_from(["", "-", "+", "0", " ", "\t", "%", ".", "e", "_", "x", "\u0660"])
    near = st.builds(lambda a, d, b: a + d + b, around, digits | ascii_digits, around)
    return (near | st.text(max_size=50)).filter(
        lambda t: not CANONICAL.fullmatch(t) and "/" not in t and t not in (".", "..")
    )


@hypothesis.given(
    text=odd_numbers(),
    route=st.sampled_from(ROUTES),
    method=st.sampled_from(METHODS),
)
@hypothesis.settings(
    max_examples=300,
    deadline=None,
    database=None,
)
def test_any_text_near_a_number_is_no_such_page(
    http: httpx.Client, text: str, route: tuple[str, frozenset[str]], method: str
) -> None:
    for path in paths_with(route[0], text):
        assert_no_such_page(http.request(method, path), method)


async def test_an_unexpected_error_is_a_json_500_with_the_security_headers(
    start_app: Callable[..., Awaitable[Running]], caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-ant-api03-secret-in-an-exception"

    async def broken(request: Request) -> Response:
        raise RuntimeError(f"the database said no; key {secret}")

    running = await start_app()
    # A route of the test's own, ahead of the page's catch-all mount.
    running.app.router.routes.insert(0, Route("/api/broken", broken, methods=["GET", "POST"]))
    for method in ("GET", "POST"):
        response = await running.http.request(method, "/api/broken")
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/json"
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value, name
        assert response.json() == {"error": "internal error; the server log has the details"}
    logged = [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
    assert [r.getMessage() for r in logged] == [
        "unexpected error on GET /api/broken",
        "unexpected error on POST /api/broken",
    ]
    assert secret in str(logged[0].exc_info[1])


async def test_the_log_cuts_a_long_request_target(tmp_path: Path) -> None:
    env = server_env(api_key="unused", base_url="http://127.0.0.1:9", model="unused")
    env["COURSEGEN_PROVIDER"] = "demo"
    server = ServerProcess(tmp_path / "coursegen.db", env, tmp_path / "server.log")
    huge = "1" * 5000
    try:
        await server.start()
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get(f"/api/courses/{huge}")).status_code == 404
            assert (await http.get(f"/{huge}", params={"q": huge})).status_code == 404
            assert (await http.get("/api/health", params={"from": "test"})).status_code == 200
        await server.terminate()
    finally:
        await server.stop()
    log = server.log_path.read_text()
    lines = log.splitlines()
    assert max(len(line) for line in lines) < MAX_TARGET + 200, max(lines, key=len)[:300]
    cut = f'"GET /api/courses/{huge[: MAX_TARGET - len("/api/courses/")]}… HTTP/1.1" 404'
    assert sum(cut in line for line in lines) == 1, log[-2000:]
    assert sum(f'"GET /{huge[: MAX_TARGET - 1]}… HTTP/1.1" 404' in line for line in lines) == 1
    # A target of usual length is logged whole.
    assert sum('"GET /api/health?from=test HTTP/1.1" 200' in line for line in lines) == 1
    assert "Traceback" not in log
