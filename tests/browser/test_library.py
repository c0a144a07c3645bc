"""The library page with 1,000 courses: one request, compact statuses, search, paging, live."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, Route, expect

from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import SCREENSHOTS, StartLive, Ui, generate_via_api, settle
from tests.conftest import Live

COURSES = 1000
PAGE = 50  # static/js/library.js PAGE_SIZE
TOPICS = [
    "Sourdough baking",
    "Knot tying",
    "Bird watching",
    "Watercolour painting",
    "Beekeeping",
    "Chess openings",
    "Home electrics",
    "Rock climbing",
    "Fermentation",
    "Astronomy for beginners",
]
RARE = "zeppelin"  # in the description of every 97th course only

# Set before the page's scripts run: when the first course row appeared, and when the
# search field last changed.
TIMING = """
window.__timing = { firstRow: null, typed: null };
new MutationObserver((_, observer) => {
  if (document.querySelector("#tree .tree-course")) {
    window.__timing.firstRow = performance.now();
    observer.disconnect();
  }
}).observe(document, { subtree: true, childList: true });
document.addEventListener("input", (event) => {
  if (event.target.id === "course-search") window.__timing.typed = performance.now();
}, true);
"""


# The median time of a render of the whole page (the store's change, then its microtask).
RENDER_TIME = """async () => {
  const store = await import("/js/store.js");
  const times = [];
  for (let i = 0; i < 15; i++) {
    const start = performance.now();
    store.changed();
    await new Promise((done) => setTimeout(done, 0));
    times.push(performance.now() - start);
  }
  return times.sort((a, b) => a - b)[7];
}"""


@dataclass
class Library:
    live: Live
    ids: list[int]  # newest first
    complete: int  # a course whose lessons are all written
    failed: int  # one with two failed lessons
    partial: int  # one cancelled with some written
    rare: list[int]  # those whose description holds RARE, newest first
    lessons: dict[int, int]  # course id -> how many lessons


def seed(path: Path, count: int) -> Library:
    """`count` courses straight into the database: as fast as SQL, not 1,000 generate calls."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with sqlite3.connect(path) as db:
        for n in range(1, count + 1):
            at = (start + timedelta(minutes=n)).isoformat(timespec="milliseconds")
            at = at.replace("+00:00", "Z")
            topic = TOPICS[n % len(TOPICS)]
            description = f"A practical course on {topic.lower()}, number {n}."
            if n % 97 == 0:
                description += f" With a chapter on the {RARE}."
            (course_id,) = db.execute(
                "INSERT INTO courses (topic, title, description, created_at) VALUES (?, ?, ?, ?) "
                "RETURNING id",
                (topic, f"{topic} {n}", description, at),
            ).fetchone()
            total = 4 + n % 5
            # Most are written; every 10th has two failures; every 10th (another) was
            # cancelled with three written.
            kind = {3: "failed", 7: "partial"}.get(n % 10, "complete")
            statuses = ["complete"] * total
            if kind == "failed":
                statuses[-2:] = ["error", "error"]
            elif kind == "partial":
                statuses[3:] = ["pending"] * (total - 3)
            db.executemany(
                "INSERT INTO lessons (course_id, position, title, description, content, "
                "content_status, content_error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        course_id,
                        position,
                        f"Lesson {position} of {topic}",
                        "What it covers.",
                        f"# Lesson {position}\n\nText." if status == "complete" else None,
                        status,
                        "The model refused (400)" if status == "error" else None,
                        at,
                    )
                    for position, status in enumerate(statuses, start=1)
                ],
            )
            job_status = {"failed": "error", "partial": "cancelled"}.get(kind, "complete")
            db.execute(
                "INSERT INTO content_generation_jobs (id, course_id, status, total_lessons, "
                "completed_lessons, failed_lessons, started_at, completed_at, error_message) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(uuid.uuid4()),
                    course_id,
                    job_status,
                    total,
                    statuses.count("complete"),
                    statuses.count("error"),
                    at,
                    at,
                    "2 of {total} lessons failed" if kind == "failed" else None,
                ),
            )
        rows = db.execute(
            "SELECT c.id, c.description, count(l.id), "
            "sum(l.content_status = 'error'), sum(l.content_status = 'pending') "
            "FROM courses c JOIN lessons l ON l.course_id = c.id GROUP BY c.id ORDER BY c.id DESC"
        ).fetchall()
    ids = [row[0] for row in rows]
    newest = rows[:PAGE]
    return Library(
        live=None,  # type: ignore[arg-type]  # set by the fixture
        ids=ids,
        complete=next(r[0] for r in newest if not r[3] and not r[4]),
        failed=next(r[0] for r in newest if r[3]),
        partial=next(r[0] for r in newest if r[4]),
        rare=[row[0] for row in rows if RARE in row[1]],
        lessons={row[0]: row[2] for row in rows},
    )


async def library_of(start_live: StartLive, settings: Settings) -> Library:
    live = await start_live()  # the schema first, then the courses under it
    library = await asyncio.to_thread(seed, settings.db_path, COURSES)
    library.live = live
    return library


async def open_library(ui: Ui, library: Library, path: str = "/") -> None:
    await ui.page.add_init_script(TIMING)
    await ui.open(library.live.url, path)
    await expect(ui.page.locator("#tree .tree-course")).to_have_count(PAGE)


def api_calls(ui: Ui) -> list[str]:
    return [r.url.split("/api/", 1)[1] for r in ui.requests if "/api/" in r.url]


async def tree_ids(page: Page) -> list[int]:
    ids: list[int] = await page.eval_on_selector_all(
        "#tree .tree-course", "els => els.map((el) => Number(el.dataset.courseId))"
    )
    return ids


async def test_the_library_opens_with_one_request_and_only_the_open_course_expanded(
    ui: Ui, start_live: StartLive, settings: Settings
) -> None:
    library = await library_of(start_live, settings)
    page = ui.page
    await open_library(ui, library)
    assert await tree_ids(page) == library.ids[:PAGE]
    # Nothing open, nothing expanded: no course's lessons were asked for.
    await expect(page.locator('#tree [aria-expanded="true"]')).to_have_count(0)
    await expect(page.locator("#tree .tree-lesson")).to_have_count(0)
    calls = api_calls(ui)
    assert calls == ["health", f"courses?limit={PAGE}", "events?last_event_id=0"], calls
    paint = await page.evaluate("window.__timing.firstRow")
    print(f"\n1,000 courses: first course row at {paint:.0f} ms, {len(calls)} API requests")

    # Each course says how far it is, in words (and the same words to a screen reader).
    complete = ui.course(library.complete).locator(".tree-summary")
    total = library.lessons[library.complete]
    await expect(complete).to_have_text(f", all {total} lessons ready{total}/{total}")
    await expect(complete).to_have_attribute("data-kind", "complete")
    failed = ui.course(library.failed).locator(".tree-summary")
    await expect(failed).to_have_text(re.compile(r"failed2 errors$"))
    await expect(failed).to_have_attribute("data-kind", "error")
    partial = ui.course(library.partial).locator(".tree-summary")
    total = library.lessons[library.partial]
    await expect(partial).to_have_text(re.compile(rf"3/{total} written$"))
    await ui.shot("library")

    # Opening a course expands it, and only it: its lessons come with one request more.
    await ui.course(library.failed).locator(".tree-course-item").click()
    await expect(page.locator('#tree [aria-expanded="true"]')).to_have_count(1)
    lessons = ui.course(library.failed).locator(".tree-lesson")
    await expect(lessons).to_have_count(library.lessons[library.failed])
    await expect(lessons.locator("visible=true")).to_have_count(library.lessons[library.failed])
    await expect(page.locator(".course-page h1")).to_have_text(re.compile(r"\d+$"))
    assert api_calls(ui)[3:] == [f"courses/{library.failed}"]
    await ui.course(library.complete).locator(".tree-course-item").click()
    await expect(ui.course(library.complete).locator(".tree-lesson")).to_have_count(
        library.lessons[library.complete]
    )
    expanded = page.locator('#tree [aria-expanded="true"]')
    await expect(expanded).to_have_count(1)
    await expect(ui.course(library.failed).locator('[role="group"]')).to_be_hidden()
    await ui.shot("library-open-course")

    # A course beyond the loaded pages, opened by its address: it loads, and shows.
    oldest = library.ids[-1]
    await page.goto(f"{library.live.url}/#/courses/{oldest}")
    await expect(page.locator(".course-page h1")).to_have_text(re.compile(r" 1$"))
    await expect(ui.course(oldest).locator(".tree-course-item")).to_have_attribute(
        "aria-current", "page"
    )


async def test_search_narrows_the_tree_as_you_type_and_clearing_restores_it(
    ui: Ui, start_live: StartLive, settings: Settings
) -> None:
    library = await library_of(start_live, settings)
    page = ui.page
    await open_library(ui, library)
    search = page.get_by_label("Search courses")
    found = page.locator("#tree-found")

    await search.press_sequentially(RARE, delay=30)
    await expect(found).to_have_text(f"{len(library.rare)} courses match “{RARE}”")
    assert await tree_ids(page) == library.rare
    searches = [c for c in api_calls(ui) if "q=" in c]
    # Typing waits for a pause: not one request per key (one, unless the machine stalls).
    assert searches[-1] == f"courses?limit={PAGE}&q={RARE}", searches
    assert len(searches) < len(RARE), searches
    await ui.shot("search")

    # Search latency: from the last key (after the 150 ms pause) to the rows on screen.
    latencies = []
    for word in ["Beekeeping", "Knot", "chess openings", "watercolour 99", RARE]:
        await search.fill("")
        await expect(page.locator("#tree .tree-course")).to_have_count(PAGE)
        started = await page.evaluate("performance.now()")
        await search.fill(word)
        await expect(found).to_have_text(re.compile("match|matches"))
        typed, shown = await page.evaluate(
            """() => new Promise((done) => requestAnimationFrame(
                () => done([window.__timing.typed, performance.now()])))"""
        )
        latencies.append(shown - typed - 150)
        assert typed >= started
    print(
        "\nsearch over 1,000 courses, after the 150 ms pause: "
        + ", ".join(f"{ms:.0f} ms" for ms in latencies)
    )

    await search.fill("beekeeping 51")
    await expect(found).to_have_text("1 course matches “beekeeping 51”")
    await search.fill("no such words qqq")
    await expect(found).to_have_text("No course matches “no such words qqq”.")
    await expect(page.locator("#tree .tree-course")).to_have_count(0)
    await expect(page.locator("#tree-empty")).to_be_hidden()
    await ui.shot("search-nothing")

    # Emptied: the library as it was, at once, without asking.
    before = len(ui.requests)
    await search.fill("")
    await expect(page.locator("#tree .tree-course")).to_have_count(PAGE)
    assert await tree_ids(page) == library.ids[:PAGE]
    await expect(found).to_have_text("")
    assert [c for c in api_calls(ui)[before:] if c.startswith("courses")] == []

    # Escape empties it too; the arrow key goes from the field into the results.
    await search.fill(RARE)
    await expect(found).to_have_text(re.compile(RARE))
    await search.press("ArrowDown")
    first = ui.course(library.rare[0]).locator(".tree-course-item")
    await expect(first).to_be_focused()
    await search.focus()
    await search.press("Escape")
    await expect(search).to_have_value("")
    await expect(page.locator("#tree .tree-course")).to_have_count(PAGE)

    # A phone: the search and the words of each course fit, in light and dark.
    await page.set_viewport_size({"width": 390, "height": 844})
    await search.fill("chess")
    await expect(found).to_have_text(re.compile("courses match “chess”"))
    await search.scroll_into_view_if_needed()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=SCREENSHOTS / f"{ui.name}-phone.png")
    await page.emulate_media(color_scheme="dark")
    await page.screenshot(path=SCREENSHOTS / f"{ui.name}-phone-dark.png")


async def test_a_slow_answer_never_replaces_a_newer_search(
    ui: Ui, start_live: StartLive, settings: Settings
) -> None:
    library = await library_of(start_live, settings)
    page = ui.page
    await open_library(ui, library)
    held = asyncio.Event()
    release = asyncio.Event()

    async def slow(route: Route) -> None:
        if "q=Beekeeping" in route.request.url:
            held.set()
            await release.wait()
        await route.continue_()

    await page.route("**/api/courses?*", slow)
    search = page.get_by_label("Search courses")
    await search.fill("Beekeeping")
    await held.wait()
    await search.fill(RARE)
    await expect(page.locator("#tree-found")).to_have_text(re.compile(RARE))
    async with page.expect_response(re.compile("q=Beekeeping")):
        release.set()
    # The old answer came, and went nowhere.
    await page.evaluate("new Promise((done) => setTimeout(done, 50))")
    assert await tree_ids(page) == library.rare
    await expect(page.locator("#tree-found")).to_have_text(re.compile(RARE))


async def scroll_tree_to_end(page: Page) -> None:
    await page.locator("#tree-more").scroll_into_view_if_needed()


async def test_scrolling_loads_every_course_once(
    ui: Ui, start_live: StartLive, settings: Settings
) -> None:
    library = await library_of(start_live, settings)
    page = ui.page
    await open_library(ui, library)
    rows = page.locator("#tree .tree-course")
    shown = PAGE
    while shown < COURSES:
        await page.locator("#tree .tree-course").last.scroll_into_view_if_needed()
        await expect(rows).not_to_have_count(shown)
        shown = await rows.count()
        if shown == 2 * PAGE:
            await ui.shot("scrolled")
    await expect(page.locator("#tree-more")).to_be_hidden()
    assert await tree_ids(page) == library.ids  # every course, once, newest first
    pages = [c for c in api_calls(ui) if c.startswith("courses?")]
    assert len(pages) == COURSES // PAGE, pages
    # What each change costs with every course in the tree: one render, measured.
    render_ms = await page.evaluate(RENDER_TIME)
    print(f"\na render of the page with {COURSES} courses in the tree: {render_ms:.1f} ms")

    # Searching pages too: a search's own pages, then back to the whole library, as paged.
    search = page.get_by_label("Search courses")
    await search.fill("Knot")
    await expect(rows).to_have_count(PAGE)
    await page.locator("#tree .tree-course").last.scroll_into_view_if_needed()
    await expect(rows).to_have_count(2 * PAGE)
    await search.fill("")
    await expect(rows).to_have_count(COURSES)


async def test_courses_made_meanwhile_appear_at_the_top_and_others_change_live(
    ui: Ui, start_live: StartLive, settings: Settings, fake: FakeAnthropic
) -> None:
    library = await library_of(start_live, settings)
    live = library.live
    page = ui.page
    await open_library(ui, library)

    created = await generate_via_api(live, "Knots at sea", lessons=2)
    await settle(live, created["job_id"])
    newest = ui.course(created["course_id"])
    await expect(page.locator("#tree .tree-course").first).to_have_attribute(
        "data-course-id", str(created["course_id"])
    )
    await expect(newest.locator(".tree-course-item .tree-label")).to_have_text(
        re.compile("^Knots at sea")
    )

    # A search shows a new course that matches it, and only such a one.
    search = page.get_by_label("Search courses")
    await search.fill(RARE)
    await expect(page.locator("#tree-found")).to_have_text(re.compile(RARE))
    other = await generate_via_api(live, "Bread without yeast", lessons=1)
    matching = await generate_via_api(live, f"The {RARE} age", lessons=1)
    top = page.locator("#tree .tree-course").first
    await expect(top).to_have_attribute("data-course-id", str(matching["course_id"]))
    assert await tree_ids(page) == [matching["course_id"], *library.rare]
    await ui.shot("search-live")
    await search.fill("")
    await expect(top).to_have_attribute("data-course-id", str(matching["course_id"]))
    ids = await tree_ids(page)
    assert ids[:3] == [matching["course_id"], other["course_id"], created["course_id"]]
    assert len(ids) == len(set(ids)) == PAGE + 3
    # Made in this tab, through the form: at the top too, and open.
    await page.locator("#topic").fill("Bees in winter")
    await page.locator("#lessons").fill("1")
    await page.get_by_role("button", name="Generate course").click()
    await expect(page).to_have_url(re.compile(r"#/courses/\d+$"))
    own = int(page.url.rsplit("/", 1)[1])
    await expect(top).to_have_attribute("data-course-id", str(own))
    await expect(page.locator('#tree [aria-expanded="true"]').first).to_have_attribute(
        "data-item", f"c{own}"
    )
    await page.goto(f"{live.url}/#/")
    ids = await tree_ids(page)
    assert ids[:2] == [own, matching["course_id"]]
    assert len(ids) == len(set(ids)) == PAGE + 4

    # Events for courses the page has not loaded change nothing on it, and break nothing.
    oldest, older = library.ids[-1], library.ids[-2]
    await call(live, "DELETE", f"/api/lessons/{await lesson_of(live, oldest, 'complete')}")
    await live.services.runner.delete_course(older)
    # A folded course's words follow its lessons, live from the stream.
    failed = ui.course(library.failed).locator(".tree-summary")
    await expect(failed).to_have_text(re.compile("2 errors$"))
    await call(live, "DELETE", f"/api/lessons/{await lesson_of(live, library.failed, 'error')}")
    await expect(failed).to_have_text(re.compile("1 error$"))
    await expect(ui.course(library.failed).locator('[aria-expanded="true"]')).to_have_count(0)
    assert await tree_ids(page) == ids
    # Deleted elsewhere, a course in the tree goes from it.
    await live.services.runner.delete_course(library.ids[0])
    await expect(ui.course(library.ids[0])).to_have_count(0)
    assert await tree_ids(page) == [i for i in ids if i != library.ids[0]]
    await ui.shot("live")


async def call(live: Live, method: str, path: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        response = await client.request(method, path)
    assert response.is_success, response.text
    return response.json() if response.content else None


async def lesson_of(live: Live, course_id: int, status: str) -> int:
    """The first lesson of the course in this status."""
    course = await call(live, "GET", f"/api/courses/{course_id}")
    assert course is not None
    return next(int(x["id"]) for x in course["lessons"] if x["content_status"] == status)


async def test_without_a_stream_the_newest_page_is_polled_and_the_tree_still_follows(
    ui: Ui, start_live: StartLive, settings: Settings
) -> None:
    library = await library_of(start_live, settings)
    live = library.live
    page = ui.page
    await page.add_init_script(TIMING)
    await ui.open(live.url, polling=True)
    rows = page.locator("#tree .tree-course")
    await expect(rows).to_have_count(PAGE)
    # Each poll is the newest page again, never one request per course.
    assert {c for c in api_calls(ui) if c != "health"} == {f"courses?limit={PAGE}"}

    created = await generate_via_api(live, "Knots at sea", lessons=2)
    await settle(live, created["job_id"])
    await expect(rows.first).to_have_attribute("data-course-id", str(created["course_id"]))
    await expect(ui.course(created["course_id"]).locator(".progress-count")).to_have_text("2/2")
    # A folded course's words follow its job's counters, from the polled page.
    failed = ui.course(library.failed).locator(".tree-summary")
    await call(live, "DELETE", f"/api/lessons/{await lesson_of(live, library.failed, 'error')}")
    await expect(failed).to_have_text(re.compile("1 error$"))
    # Deleted elsewhere: gone from the tree at the next poll.
    await live.services.runner.delete_course(library.ids[1])
    await expect(ui.course(library.ids[1])).to_have_count(0)
    # The polled page reaches one course further down now; each is in the tree once.
    ids = await tree_ids(page)
    assert ids == [created["course_id"], library.ids[0], *library.ids[2 : PAGE + 1]]
    await ui.shot("polling")


async def test_of_the_courses_being_written_at_load_only_the_newest_is_expanded(
    ui: Ui, start_live: StartLive, settings: Settings, fake: FakeAnthropic
) -> None:
    library = await library_of(start_live, settings)
    live = library.live
    fake.lesson_delay = 20.0  # they stay in the writing until the test ends
    made = [await generate_via_api(live, f"Slow topic {n}", lessons=2) for n in range(3)]
    page = ui.page
    await open_library(ui, library)
    newest, *older = [m["course_id"] for m in reversed(made)]
    # The newest shows its lessons being written; the others their progress, folded (an
    # economy course may be written for hours: not one request each at every load).
    await expect(page.locator('#tree [aria-expanded="true"]')).to_have_count(1)
    await expect(ui.course(newest).locator(".tree-lesson")).to_have_count(2)
    for course_id in older:
        entry = ui.course(course_id)
        await expect(entry.locator(".tree-progress")).to_be_visible()
        await expect(entry.locator(".tree-course-item")).to_have_attribute("aria-expanded", "false")
    # Four requests: the newest's lessons, besides the health, the list and the stream.
    calls = api_calls(ui)
    assert sorted(c for c in calls if not c.startswith("events?")) == sorted(
        ["health", f"courses?limit={PAGE}", f"courses/{newest}"]
    ), calls
    assert len(calls) == 4, calls
    await ui.shot("writing-at-load")
    fake.lesson_delay = 0.0
