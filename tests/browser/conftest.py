"""Browser fixtures: Debian's chromium, driven by Playwright, against a live server.

Every test gets a fresh browser context whose console, page errors and dialogs are
recorded; any of them fails the test unless the test declared it expected (a 502 it
provoked on purpose, say). Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Request,
    async_playwright,
    expect,
)

from tests.conftest import Live, job_reaches
from tests.helpers import generate


@pytest.fixture
def engine() -> str:
    """The page sees only the API, which every engine serves alike (tests/test_api.py runs both)."""
    return "sqlite"


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
WIDE = {"width": 1280, "height": 860}
# Polling mode in tests: the same code as the 2 s default, on a shorter clock.
TEST_POLL_MS = 300

StartLive = Callable[..., Awaitable[Live]]

# The test's outcome, for the screenshot of a failure (see pytest_runtest_makereport).
_failed = pytest.StashKey[bool]()

expect.set_options(timeout=10_000)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, Any, Any]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_failed] = True
    return report


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        # Never a skip: in CI a missing browser must fail loudly, not pass quietly.
        pytest.fail("the browser tests need Debian's chromium on PATH (`make chromium`)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Ui:
    """One browser page, and what it said that a person would count as broken."""

    page: Page
    name: str
    problems: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect console errors matching `pattern` (a status the test provokes)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [p for p in self.problems if not any(a.search(p) for a in self.allowed)]

    async def open(self, base_url: str, path: str = "/", *, polling: bool = False) -> None:
        """Load the page; `polling` removes EventSource before any of its scripts run."""
        config = f"window.coursegenConfig = {{pollInterval: {TEST_POLL_MS}}};"
        if polling:
            config += "delete window.EventSource;"
        await self.page.add_init_script(config)
        await self.page.goto(base_url + path)
        mode = "polling" if polling else "stream"
        await expect(self.page.locator("#live-status")).to_have_attribute("data-mode", mode)

    async def shot(self, state: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=SCREENSHOTS / f"{self.name}-{state}.png", full_page=True)

    def course(self, course_id: int) -> Locator:
        """The course's entry in the tree."""
        return self.page.locator(f'#tree .tree-course[data-course-id="{course_id}"]')

    def lesson(self, lesson_id: int) -> Locator:
        """The lesson's entry in the tree."""
        return self.page.locator(f'#tree .tree-lesson[data-lesson-id="{lesson_id}"]')

    def streams(self) -> list[str]:
        """Every /api/events connection the page opened."""
        return [r.url for r in self.requests if "/api/events" in r.url]

    async def generate(self, topic: str, lessons: int | None = None) -> int:
        """Generate through the form; returns the new course's id once the page shows it."""
        # The form's own fields: the tree's progress bars are labelled "... lessons done".
        form = self.page.locator("#generate-form")
        await form.get_by_label("Topic").fill(topic)
        await form.get_by_label("Lessons").fill("" if lessons is None else str(lessons))
        await form.get_by_role("button", name="Generate course").click()
        await expect(self.page).to_have_url(re.compile(r"#/courses/\d+$"))
        return int(self.page.url.rsplit("/", 1)[1])

    # -- recorders --------------------------------------------------------------------

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            where = message.location.get("url", "")
            self.problems.append(f"console {message.type}: {message.text} ({where})")

    def _page_error(self, error: Exception) -> None:
        self.problems.append(f"page error: {error}")

    def _request(self, request: Request) -> None:
        self.requests.append(request)

    async def _dialog(self, dialog: Dialog) -> None:
        self.problems.append(f"dialog {dialog.type}: {dialog.message}")
        await dialog.dismiss()


@pytest.fixture
async def ui(
    browser: Browser, start_live: StartLive, request: pytest.FixtureRequest
) -> AsyncIterator[Ui]:
    """A fresh page; the test fails on any console error, page error or dialog.

    It depends on `start_live` so that it closes before the server stops: a server going
    away under an open page is a console error of its own.
    """
    context = await browser.new_context(viewport=WIDE)
    context.set_default_timeout(10_000)
    page = await context.new_page()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name.removeprefix("test_")).strip("-")
    ui = Ui(page, name)
    page.on("console", ui._console)
    page.on("pageerror", ui._page_error)
    page.on("dialog", ui._dialog)
    page.on("request", ui._request)
    try:
        yield ui
        if request.node.stash.get(_failed, False):
            await ui.shot("failure")
    finally:
        await context.close()
    unexpected = ui.unexpected()
    if unexpected:
        pytest.fail("the page reported problems:\n" + "\n".join(unexpected))


# -- server-side helpers ------------------------------------------------------------------


async def generate_via_api(live: Live, topic: str, lessons: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        return await generate(client, lessons, topic)


async def settle(live: Live, job_id: str) -> dict[str, Any]:
    """Wait, woken by each committed event, until the job is in a terminal status."""
    return await job_reaches(live.services, job_id)


async def lesson_ids(live: Live, course_id: int) -> list[int]:
    course = await live.services.store.get_course(course_id)
    assert course is not None
    return [lesson.id for lesson in course.lessons]
