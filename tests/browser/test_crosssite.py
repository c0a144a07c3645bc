"""Real Chromium: pages of another origin try to drive and read the service, and fail.

The service runs on 127.0.0.1; the attacker's pages on 127.0.0.2 (another site to the
browser, as any website you visit is). DNS rebinding is played by a browser whose
resolver maps a foreign name to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser, Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from coursegen.providers.demo import DemoProvider
from tests.browser.conftest import CHROMIUM_ARGS, SCREENSHOTS, StartLive, generate_via_api
from tests.conftest import Live

# Each attack stores what it could observe in window.results, then sets window.done.
ATTACKS = {
    "nocors": """
      const results = {};
      for (const [name, path] of [["generate", "/api/courses/generate"],
                                  ["cancel", `/api/jobs/${JOB}/cancel`],
                                  ["retry", "/api/lessons/1/retry"]]) {
        try {
          const r = await fetch(SERVICE + path, {method: "POST", mode: "no-cors",
            headers: {"Content-Type": "text/plain"},
            body: JSON.stringify({topic: "Planted by another website"})});
          results[name] = "sent, " + r.type;
        } catch (e) { results[name] = "failed: " + e.message; }
      }
      window.results = results;
    """,
    "json": """
      const results = {};
      try {
        const r = await fetch(SERVICE + "/api/courses/generate", {method: "POST",
          headers: {"Content-Type": "application/json"},
          body: JSON.stringify({topic: "Planted by another website"})});
        results.generate = "answered " + r.status;
      } catch (e) { results.generate = "blocked: " + e.message; }
      try {
        const r = await fetch(SERVICE + `/api/courses/${COURSE}`, {method: "DELETE"});
        results.delete = "answered " + r.status;
      } catch (e) { results.delete = "blocked: " + e.message; }
      window.results = results;
    """,
    "read": """
      const results = {};
      try {
        const r = await fetch(SERVICE + "/api/courses");
        results.list = "read: " + (await r.text()).slice(0, 80);
      } catch (e) { results.list = "blocked: " + e.message; }
      try {
        const r = await fetch(SERVICE + `/api/courses/${COURSE}`, {mode: "no-cors"});
        results.opaque = r.type + " " + r.status + " " + (await r.text()).length;
      } catch (e) { results.opaque = "blocked: " + e.message; }
      results.stream = await new Promise((resolve) => {
        const source = new EventSource(SERVICE + "/api/events?last_event_id=0");
        source.onmessage = source.onopen = () => { source.close(); resolve("opened"); };
        source.addEventListener("course", () => { source.close(); resolve("read an event"); });
        source.onerror = () => { source.close(); resolve("blocked"); };
      });
      window.results = results;
    """,
    "navigate": """
      const results = {};
      const frame = document.createElement("iframe");
      frame.src = SERVICE + `/api/courses/${COURSE}`;
      document.body.append(frame);
      await new Promise((resolve) => { frame.onload = resolve; setTimeout(resolve, 3000); });
      try {
        results.frame = "read: " + frame.contentDocument.body.innerText.slice(0, 80);
      } catch (e) { results.frame = "blocked: " + e.message; }
      window.results = results;
    """,
}

# A form whose one field's name and value join into valid JSON, posted as text/plain.
FORM = """<!doctype html><title>form</title>
<iframe name="sink"></iframe>
<form id="f" method="POST" enctype="text/plain" target="sink" action="{service}{path}">
  <input type="hidden" name='{{"topic": "Planted by a form", "x": "' value='"}}'>
</form>
<script>
  document.querySelector("iframe").onload = () => {{ window.done = true; }};
  document.getElementById("f").submit();
</script>"""


def _attack_page(script: str, service: str, job: str, course: int) -> str:
    return f"""<!doctype html><title>attacker</title><body><script type="module">
      const SERVICE = {json.dumps(service)}, JOB = {json.dumps(job)}, COURSE = {course};
      try {{ {script} }} catch (e) {{ window.results = {{error: String(e)}}; }}
      window.done = true;
    </script></body>"""


class Attacker:
    """A website on 127.0.0.2, serving the pages above aimed at one service."""

    def __init__(self) -> None:
        self.service = ""
        self.job = ""
        self.course = 0
        self.url = ""

    def app(self) -> Starlette:
        async def attack(request: Request) -> HTMLResponse:
            name = request.path_params["name"]
            return HTMLResponse(_attack_page(ATTACKS[name], self.service, self.job, self.course))

        async def form(request: Request) -> HTMLResponse:
            path = request.query_params["path"]
            return HTMLResponse(FORM.format(service=self.service, path=path))

        return Starlette(routes=[Route("/attack/{name}", attack), Route("/form", form)])


@pytest.fixture
async def attacker() -> AsyncIterator[Attacker]:
    site = Attacker()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.2", 0))
    server = uvicorn.Server(uvicorn.Config(site.app(), log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    site.url = f"http://127.0.0.2:{sock.getsockname()[1]}"
    try:
        yield site
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def victim(start_live: StartLive, attacker: Attacker) -> AsyncIterator[Live]:
    """The service on the demo provider, with one course still being written."""
    live = await start_live(provider=DemoProvider(delay=30.0))
    created = await generate_via_api(live, "Knot tying", 2)
    attacker.service, attacker.job = live.url, created["job_id"]
    attacker.course = created["course_id"]
    yield live


async def _run(page: Page, url: str) -> dict[str, Any]:
    await page.goto(url)
    await page.wait_for_function("window.done === true", timeout=10_000)
    results: dict[str, Any] = await page.evaluate("window.results || {}")
    return results


async def _state(live: Live, job_id: str) -> tuple[list[str], str]:
    courses = (await live.services.store.list_courses()).courses
    progress = await live.services.store.get_progress(job_id)
    assert progress is not None
    return [c.topic for c in courses], progress.status


async def test_attacks_from_another_origin_change_and_read_nothing(
    browser: Browser, victim: Live, attacker: Attacker
) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    try:
        nocors = await _run(page, f"{attacker.url}/attack/nocors")
        # The browser sent them (that is what no-cors is for); the service refused them.
        assert all(v.startswith("sent") for v in nocors.values()), nocors
        cors = await _run(page, f"{attacker.url}/attack/json")
        assert cors["generate"].startswith("blocked"), cors  # its preflight failed
        assert cors["delete"].startswith("blocked"), cors
        for path in ("/api/courses/generate", f"/api/jobs/{attacker.job}/cancel"):
            await page.goto(f"{attacker.url}/form?path={path}")
            await page.wait_for_function("window.done === true", timeout=10_000)
        read = await _run(page, f"{attacker.url}/attack/read")
        assert read["list"].startswith("blocked"), read
        assert read["opaque"].startswith("opaque 0 0"), read  # no status, no body
        assert read["stream"] == "blocked", read
        navigate = await _run(page, f"{attacker.url}/attack/navigate")
        assert navigate["frame"].startswith("blocked"), navigate
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / "crosssite-attacker-page.png")
    finally:
        await context.close()
    topics, status = await _state(victim, attacker.job)
    assert topics == ["Knot tying"]  # nothing planted
    assert status == "running"  # not cancelled
    lesson = await victim.services.store.get_lesson(1)
    assert lesson is not None and lesson.content_status in ("pending", "generating")


async def test_a_rebound_name_gets_nothing(victim: Live, attacker: Attacker) -> None:
    """A site that resolves its own name to 127.0.0.1 is refused by the Host check."""
    port = victim.url.rsplit(":", 1)[1]
    executable = shutil.which("chromium")
    assert executable is not None
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP rebind.example 127.0.0.1"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=args)
        try:
            page = await browser.new_page()
            rebound = f"http://rebind.example:{port}"
            response = await page.goto(f"{rebound}/")
            assert response is not None and response.status == 400
            assert "COURSEGEN_ALLOWED_HOSTS" in await page.inner_text("body")
            # Now same-origin with the service as far as the browser knows: it may read
            # and write freely, and still the service answers nothing but 400.
            found = await page.evaluate(
                """async () => {
                  const list = await fetch("/api/courses");
                  const made = await fetch("/api/courses/generate", {method: "POST",
                    headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({topic: "Planted by rebinding"})});
                  return [list.status, made.status, await list.text()];
                }"""
            )
            assert found[0] == 400 and found[1] == 400
            assert "Knot tying" not in found[2]
        finally:
            await browser.close()
    topics, status = await _state(victim, attacker.job)
    assert topics == ["Knot tying"] and status == "running"
