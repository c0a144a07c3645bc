"""The html export in Chromium: it reads with JavaScript off, loads nothing, and prints to a
PDF with each lesson on pages of its own (read back with poppler's pdftotext).

The page is downloaded from a live server as a person would, saved, and opened from a
file:// URL: the way someone opens a downloaded course.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Dialog, Page, Request, Route, expect

from coursegen.export import html
from coursegen.export.document import ExportCourse, ExportLesson
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import SCREENSHOTS, WIDE, StartLive
from tests.exporthelp import (
    HOSTILE_DESCRIPTION,
    HOSTILE_LESSON,
    HOSTILE_QUIZ,
    HOSTILE_TITLE,
    api_lessons,
    fetch_export,
    make_course,
    make_partial_course,
)


def lesson_text(title: str) -> str:
    """A lesson long enough to run over a printed page, with a link and some code."""
    paragraphs = [f"Knot work for {title} starts with a loop. " * 8 + "\n\n" for _ in range(6)]
    return (
        f"## {title}\n\n"
        f"The unique opening of {title}. Read [the guide](https://example.org/guide).\n\n"
        + "".join(paragraphs)
        + "```\nover, under, through\n```\n\n"
        + f"The closing line of {title}.\n"
    )


@dataclass
class Opened:
    page: Page
    url: str
    # Requests the page tried besides loading itself (Chromium reports one the page's
    # policy refused, too), those that were really sent (and then refused here), and what
    # the page said went wrong.
    tried: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def open_file(context: BrowserContext, path: Path) -> Opened:
    """Open a saved page; every other request is recorded, and refused if it goes out."""
    opened = Opened(await context.new_page(), path.as_uri())

    async def refuse(route: Route) -> None:
        if route.request.url != opened.url:
            opened.sent.append(route.request.url)
            await route.abort()
        else:
            await route.continue_()

    def tried(request: Request) -> None:
        if request.url.split("#")[0] != opened.url:
            opened.tried.append(request.url)

    await context.route("**/*", refuse)
    context.on("request", tried)
    opened.page.on("console", lambda m: opened.problems.append(f"console {m.type}: {m.text}"))
    opened.page.on("pageerror", lambda e: opened.problems.append(f"page error: {e}"))

    async def dialog(shown: Dialog) -> None:
        opened.problems.append(f"dialog: {shown.message}")
        await shown.dismiss()

    opened.page.on("dialog", dialog)
    await opened.page.goto(opened.url)
    return opened


async def pdf_pages(pdf: Path) -> list[str]:
    """The PDF's text, one string per page (pdftotext ends each page with a form feed)."""
    if shutil.which("pdftotext") is None:
        pytest.fail("the export tests need Debian's poppler-utils on PATH (`make poppler`)")
    process = await asyncio.create_subprocess_exec(
        "pdftotext", "-enc", "UTF-8", str(pdf), "-", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    assert process.returncode == 0
    return [" ".join(page.split()) for page in out.decode().split("\f")[:-1]]


async def test_html_export_reads_without_javascript_and_prints_a_page_per_lesson(
    browser: Browser, start_live: StartLive, fake: FakeAnthropic, tmp_path: Path
) -> None:
    live = await start_live()
    fake.lesson_text = lesson_text
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        course = await make_partial_course(http, live.services, fake, lessons=5)
        lessons = await api_lessons(http, course["id"])
        response = await fetch_export(http, course["id"], "html")
    name = re.fullmatch(r'attachment; filename="(.+)"', response.headers["content-disposition"])
    assert name is not None
    saved = tmp_path / name[1]
    saved.write_bytes(response.content)
    written = [(n, lesson) for n, lesson in enumerate(lessons, start=1) if lesson["content"]]
    assert [n for n, _ in written] == [1, 3, 4]

    context = await browser.new_context(java_script_enabled=False, viewport=WIDE)
    try:
        opened = await open_file(context, saved)
        page = opened.page
        await expect(page).to_have_title(course["title"])
        await expect(page.get_by_role("heading", level=1)).to_have_text(course["title"])
        toc = page.get_by_role("navigation", name="Contents")
        await expect(toc.get_by_role("link")).to_have_count(3)
        await expect(toc.get_by_text("not written yet")).to_have_count(2)
        for number, lesson in written:
            await toc.get_by_role("link", name=lesson["title"]).click()
            slug = f"{number:02d}-lesson-{number}-"
            await expect(page).to_have_url(re.compile(rf"#lesson-{slug}"))
            section = page.get_by_role("region", name=lesson["title"], exact=True)
            await expect(section.get_by_role("heading", level=2).first).to_be_in_viewport()
            await expect(
                section.get_by_text(f"The unique opening of {lesson['title']}")
            ).to_be_visible()
        # The quiz shows its choices; each answer stays folded until asked for.
        quiz = page.get_by_role("region", name=written[0][1]["title"], exact=True).locator(".quiz")
        question = written[0][1]["quiz"][0]
        await expect(quiz.get_by_text(question["choices"][0]).first).to_be_visible()
        answer = quiz.locator("details.answer").first
        await expect(answer.get_by_text(question["explanation"])).to_be_hidden()
        await answer.get_by_text("Show the answer").click()
        await expect(answer.get_by_text(question["explanation"])).to_be_visible()
        await page.goto(opened.url)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / "export-html.png", full_page=True)

        pdf = tmp_path / "course.pdf"
        await page.pdf(path=pdf, format="A4")
        assert (opened.tried, opened.sent, opened.problems) == ([], [], [])
    finally:
        await context.close()

    pages = await pdf_pages(pdf)
    # Page 1: the course and its contents, unwritten lessons marked.
    assert pages[0].startswith(course["title"]) and "Contents" in pages[0]
    assert f"{lessons[1]['title']} not written yet" in pages[0]
    assert re.search(r"LESSON \d OF", pages[0]) is None
    starts = [i for i, text in enumerate(pages) if text.startswith("LESSON ")]
    assert [pages[i].split(" OF ")[0] for i in starts] == ["LESSON 1", "LESSON 3", "LESSON 4"]
    assert len(pages) > starts[-1] + 1 and pages[-1].startswith("Answer key")
    bounds = [*starts, next(i for i, text in enumerate(pages) if text.startswith("Answer key"))]
    for (number, lesson), first, end in zip(written, bounds[:-1], bounds[1:], strict=True):
        assert end - first >= 2  # the lesson runs over a page, and the next starts a new one
        assert pages[first].startswith(f"LESSON {number} OF 5 {lesson['title']}")
        text = " ".join(pages[first:end])
        assert f"The unique opening of {lesson['title']}" in text
        assert f"The closing line of {lesson['title']}" in text
        assert "the guide (https://example.org/guide)" in text  # links show where they go
        assert all(q["question"] in text for q in lesson["quiz"])
        assert lesson["quiz"][0]["explanation"] not in text  # answers wait for the key
        # No lesson's text strays onto another's pages.
        others = [other for n, other in written if n != number]
        assert not any(f"The unique opening of {other['title']}" in text for other in others)
    key = " ".join(pages[bounds[-1] :])
    for _, lesson in written:
        assert all(q["explanation"] in key for q in lesson["quiz"])
    everything = " ".join(pages)
    assert "Back to contents" not in everything and "Show the answer" not in everything


async def test_hostile_course_runs_nothing_and_loads_nothing_with_javascript_on(
    browser: Browser, start_live: StartLive, fake: FakeAnthropic, tmp_path: Path
) -> None:
    live = await start_live()
    fake.outline = {
        "title": HOSTILE_TITLE,
        "description": HOSTILE_DESCRIPTION,
        "lessons": [{"title": HOSTILE_TITLE, "description": HOSTILE_DESCRIPTION}],
    }
    fake.quiz = HOSTILE_QUIZ
    fake.lesson_text = lambda title: HOSTILE_LESSON
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        course = await make_course(http, live.services, lessons=1)
        saved = tmp_path / "hostile.html"
        saved.write_bytes((await fetch_export(http, course["id"], "html")).content)

    context = await browser.new_context(java_script_enabled=True, viewport=WIDE)
    try:
        opened = await open_file(context, saved)
        page = opened.page
        await expect(page).to_have_title(HOSTILE_TITLE)
        section = page.get_by_role("region", name=HOSTILE_TITLE, exact=True)
        await expect(section.get_by_text("A fine link")).to_be_visible()
        await expect(section.get_by_text("<script>alert(1)</script>").first).to_be_visible()
        for summary in await page.get_by_text("Show the answer").all():
            await summary.click()  # an ontoggle would fire now
        await page.pdf(path=tmp_path / "hostile.pdf")
        # Nothing ran (no dialog, no error) and nothing was even tried (no CSP refusal).
        assert (opened.tried, opened.sent, opened.problems) == ([], [], [])
        assert await page.locator("img, iframe, script, svg, link, object, embed").count() == 0
    finally:
        await context.close()


async def test_the_page_policy_refuses_what_a_sanitiser_might_miss(
    browser: Browser, tmp_path: Path
) -> None:
    """A second line: unsanitised HTML in a lesson still cannot run or load anything."""
    unsanitised = (
        "<p>Before.</p><script>alert('script')</script>"
        '<img src="http://127.0.0.1:9/pixel.png" onerror="alert(\'onerror\')">'
        '<link rel="stylesheet" href="http://127.0.0.1:9/x.css">'
        '<iframe src="http://127.0.0.1:9/frame"></iframe>'
        "<style>@import url(http://127.0.0.1:9/y.css);"
        " p { background: url(http://127.0.0.1:9/z.png) }</style>"
        '<object data="http://127.0.0.1:9/o"></object><p>After.</p>'
    )
    lesson = ExportLesson(1, "Raw", "", "raw", unsanitised, (), "01-raw")
    course = ExportCourse(1, "Raw", "raw", "", "beginner", "English", "", (lesson,), "raw")
    saved = tmp_path / "raw.html"
    saved.write_bytes(html.build(course))

    context = await browser.new_context(java_script_enabled=True)
    try:
        opened = await open_file(context, saved)
        await expect(opened.page.get_by_text("After.")).to_be_visible()
        # The page tried to load each of them; the policy stopped every one before it left.
        loads = {f"http://127.0.0.1:9/{name}" for name in ("pixel.png", "x.css", "y.css", "z.png")}
        assert set(opened.tried) == loads  # frames and objects are refused before any request
        assert opened.sent == [], (opened.sent, opened.problems)
        assert not [p for p in opened.problems if "dialog" in p or "page error" in p]
        # What was refused, the browser says so: every load and the script.
        refused = [p for p in opened.problems if "Content Security Policy" in p]
        assert len(refused) >= 4, opened.problems
    finally:
        await context.close()
