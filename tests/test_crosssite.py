"""Other websites cannot drive or read the service: Host, Origin, content type and CORS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from coursegen.guards import allowed_hosts, host_name
from coursegen.settings import Settings, SettingsError
from tests.conftest import Running


@pytest.fixture
def engine() -> str:
    """The guards stand in front of every engine alike: one is enough."""
    return "sqlite"


StartApp = Callable[..., Awaitable[Running]]

JOB = "05fd2daf-101c-4b6b-b3df-ddbb478e04ba"  # fixed: test ids must agree across xdist workers
# Every route, with the method that reaches its handler, and the page.
ROUTES = [
    ("POST", "/api/courses/generate"),
    ("GET", "/api/courses"),
    ("GET", "/api/courses/1"),
    ("DELETE", "/api/courses/1"),
    ("GET", "/api/lessons/1"),
    ("POST", "/api/lessons/1/retry"),
    ("GET", f"/api/jobs/{JOB}/progress"),
    ("POST", f"/api/jobs/{JOB}/retry"),
    ("POST", f"/api/jobs/{JOB}/cancel"),
    ("GET", f"/api/jobs/{JOB}/events"),
    ("GET", "/api/events"),
    ("GET", "/api/health"),
    ("GET", "/api/openapi.json"),
    ("POST", "/api/session"),
    ("DELETE", "/api/session"),
    ("GET", "/"),
    ("GET", "/index.html"),
    ("GET", "/js/app.js"),
]
WRITES = [(m, p) for m, p in ROUTES if m in ("POST", "DELETE")]
GENERATE = {"topic": "Planted by another website"}
FOREIGN = "http://127.0.0.2:9999"


async def course_count(running: Running) -> int:
    return len((await running.http.get("/api/courses")).json()["courses"])


# -- Host (DNS rebinding) ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("host", ["evil.example:8000", "evil.example", "127.0.0.1.evil.example"])
async def test_a_foreign_host_gets_400_on_every_route(
    running: Running, method: str, path: str, host: str
) -> None:
    response = await running.http.request(
        method, path, headers={"Host": host, "Content-Type": "application/json"},
        content=b'{"topic": "Planted by a rebinding site"}' if method == "POST" else None,
    )  # fmt: skip
    assert response.status_code == 400
    assert "COURSEGEN_ALLOWED_HOSTS" in response.json()["error"]
    assert response.headers["x-content-type-options"] == "nosniff"  # still the usual headers
    assert await course_count(running) == 0


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1", "127.0.0.1:1234", "[::1]", "[::1]:80"]
)
async def test_the_loopback_names_are_served_with_and_without_a_port(
    running: Running, host: str
) -> None:
    assert (await running.http.get("/api/health", headers={"Host": host})).status_code == 200
    assert (await running.http.get("/", headers={"Host": host})).status_code == 200


async def test_a_configured_host_and_wildcard_are_served(start_app: StartApp) -> None:
    running = await start_app(allowed_hosts=("courses.example.org", "*.corp.example"))
    for host in ("courses.example.org", "COURSES.example.org:443", "a.corp.example:8000"):
        assert (await running.http.get("/api/health", headers={"Host": host})).status_code == 200
    for host in ("corp.example", "example.org", "courses.example.org.evil.example"):
        assert (await running.http.get("/api/health", headers={"Host": host})).status_code == 400


def test_the_default_hosts_are_loopback_and_the_bind_host() -> None:
    assert allowed_hosts(Settings()) == ("localhost", "127.0.0.1", "[::1]")
    assert allowed_hosts(Settings(host="192.168.1.5")) == (
        "localhost", "127.0.0.1", "[::1]", "192.168.1.5",
    )  # fmt: skip
    # Listening everywhere names no host: the operator says which names are theirs.
    assert allowed_hosts(Settings(host="0.0.0.0")) == ("localhost", "127.0.0.1", "[::1]")
    assert allowed_hosts(Settings(host="::1"))[-1] == "[::1]"
    assert host_name("[::1]:8000") == "[::1]" and host_name("Example.org:80") == "example.org"


def test_bad_host_and_origin_settings_are_refused_with_a_clear_message() -> None:
    for env, raw in [
        ("COURSEGEN_ALLOWED_HOSTS", "https://courses.example.org"),
        ("COURSEGEN_ALLOWED_HOSTS", "courses.example.org/path"),
        ("COURSEGEN_ALLOWED_ORIGINS", "courses.example.org"),
        ("COURSEGEN_ALLOWED_ORIGINS", "https://courses.example.org/app"),
    ]:
        with pytest.raises(SettingsError, match=env):
            Settings.from_env({env: raw})
    settings = Settings.from_env(
        {"COURSEGEN_ALLOWED_ORIGINS": "https://LMS.example.org:443/, http://x.example:8080"}
    )
    assert settings.allowed_origins == ("https://lms.example.org", "http://x.example:8080")


# -- Origin and Sec-Fetch-Site on writes ----------------------------------------------------


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": FOREIGN},
        {"Origin": "null"},  # sandboxed frames, file: pages
        {"Origin": "http://localhost:9999"},  # same site, another port: another origin
        {"Origin": "https://localhost"},  # another scheme
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_a_write_from_another_website_gets_403(
    running: Running, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await running.http.request(
        method, path, json=GENERATE if method == "POST" else None, headers=headers
    )
    assert response.status_code == 403
    assert "COURSEGEN_ALLOWED_ORIGINS" in response.json()["error"]


async def test_a_foreign_write_changes_nothing(running: Running) -> None:
    created = await running.generate(lessons=2)
    job = created["job_id"]
    course = created["course_id"]
    hostile = {"Origin": FOREIGN, "Sec-Fetch-Site": "cross-site"}
    for method, path in [
        ("POST", "/api/courses/generate"),
        ("POST", f"/api/jobs/{job}/cancel"),
        ("DELETE", f"/api/courses/{course}"),
    ]:
        response = await running.http.request(method, path, json=GENERATE, headers=hostile)
        assert response.status_code == 403
    assert await course_count(running) == 1
    final = await running.settle(job)
    assert final["status"] == "complete"  # not cancelled


async def test_the_own_page_and_clients_without_origin_may_write(running: Running) -> None:
    own = await running.http.post(
        "/api/courses/generate",
        json={"topic": "From the page"},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert own.status_code == 201
    on_a_port = await running.http.post(
        "/api/courses/generate",
        json={"topic": "From the page on a port"},
        headers={"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000"},
    )
    assert on_a_port.status_code == 201
    curl = await running.http.post("/api/courses/generate", json={"topic": "From curl"})
    assert curl.status_code == 201
    assert await course_count(running) == 3


async def test_reads_from_any_origin_carry_no_cors_headers(running: Running) -> None:
    response = await running.http.get("/api/courses", headers={"Origin": FOREIGN})
    assert response.status_code == 200  # the browser keeps it from the page: no CORS
    assert not any(name.startswith("access-control-") for name in response.headers)


async def test_a_preflight_from_another_website_is_refused(running: Running) -> None:
    response = await running.http.options(
        "/api/courses/generate",
        headers={
            "Origin": FOREIGN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 403
    assert not any(name.startswith("access-control-") for name in response.headers)


async def test_an_allowed_origin_gets_cors_and_may_write(start_app: StartApp) -> None:
    lms = "https://lms.example.org"
    running = await start_app(allowed_origins=(lms,))
    preflight = await running.http.options(
        "/api/courses/generate",
        headers={"Origin": lms, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == lms
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "Content-Type" in preflight.headers["access-control-allow-headers"]
    made = await running.http.post(
        "/api/courses/generate",
        json={"topic": "From the LMS"},
        headers={"Origin": lms, "Sec-Fetch-Site": "cross-site"},
    )
    assert made.status_code == 201
    assert made.headers["access-control-allow-origin"] == lms
    read = await running.http.get("/api/courses", headers={"Origin": lms})
    assert read.headers["access-control-allow-origin"] == lms
    assert read.headers["vary"] == "Origin"
    other = await running.http.post("/api/courses/generate", json=GENERATE, headers={
        "Origin": FOREIGN})  # fmt: skip
    assert other.status_code == 403


async def test_the_token_mode_keeps_the_checks(start_app: StartApp) -> None:
    token = "a-long-random-token-for-tests-3b8f"
    running = await start_app(api_token=token)
    bearer = {"Authorization": f"Bearer {token}"}
    foreign = await running.http.post(
        "/api/courses/generate", json=GENERATE, headers={**bearer, "Origin": FOREIGN}
    )
    assert foreign.status_code == 403
    plain = await running.http.post(
        "/api/courses/generate", content=b'{"topic": "x y z"}',
        headers={**bearer, "Content-Type": "text/plain"},
    )  # fmt: skip
    assert plain.status_code == 415
    rebound = await running.http.get("/api/courses", headers={**bearer, "Host": "evil.example"})
    assert rebound.status_code == 400
    signed_in = await running.http.post("/api/session", json={"token": token})
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


# -- JSON only means JSON ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "application/json-seq",
        "text/json",
    ],
)
@pytest.mark.parametrize(
    "path",
    ["/api/courses/generate", "/api/session", "/api/lessons/1/retry", f"/api/jobs/{JOB}/cancel"],
)
async def test_a_body_not_sent_as_json_is_415_and_stores_nothing(
    running: Running, content_type: str, path: str
) -> None:
    response = await running.http.post(
        path,
        content=b'{"topic": "Planted by a form", "token": "x"}',
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert await course_count(running) == 0


async def test_a_body_without_a_content_type_is_415(running: Running) -> None:
    response = await running.http.post(
        "/api/courses/generate", content=b'{"topic": "Sourdough baking"}'
    )
    assert response.status_code == 415
    assert await course_count(running) == 0


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
async def test_json_with_or_without_a_charset_is_accepted(
    running: Running, content_type: str
) -> None:
    response = await running.http.post(
        "/api/courses/generate",
        content=b'{"topic": "Sourdough baking", "lessons": 1}',
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 201


async def test_writes_without_a_body_need_no_content_type(running: Running) -> None:
    created = await running.generate(lessons=1)
    response = await running.http.post(f"/api/jobs/{created['job_id']}/cancel")
    assert response.status_code in (202, 409)  # it may have finished already
    assert (await running.http.delete(f"/api/courses/{created['course_id']}")).status_code == 204


async def test_a_chunked_body_is_not_let_through_unlabelled(running: Running) -> None:
    async def chunks() -> object:
        yield b'{"topic": '
        yield b'"Sourdough baking"}'

    request = running.http.build_request(
        "POST",
        "/api/courses/generate",
        content=chunks(),  # type: ignore[arg-type]
    )
    assert "content-length" not in request.headers
    response = await running.http.send(request)
    assert response.status_code == 415
    assert isinstance(response, httpx.Response)
