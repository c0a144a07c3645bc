"""Live writing (SPEC section 8): the lesson page shows its text as it is written.

The page follows the lesson on show with its own stream (or by polling), renders the
Markdown so far, keeps a caret at its end and follows it down unless the reader scrolled
up; a queued lesson that a person opens is written next.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import SCREENSHOTS, StartLive, Ui, generate_via_api, lesson_ids
from tests.browser.test_markdown import canonical
from tests.browser.test_safety import ACTIVE_PARTS
from tests.conftest import Live
from tests.helpers import until
from tests.test_security import XSS_PAYLOADS

# The text on screen while the lesson is written (the page's own render of it).
DRAFT_TEXT = "() => document.querySelector('.lesson-draft')?.innerText.length ?? 0"
GREW = "(n) => (document.querySelector('.lesson-draft')?.innerText.length ?? 0) > n"
# The text the lesson page got from its stream, as the page keeps it (the same module
# instance as the page's own: a module is loaded once per address).
DRAFT_STATE = """async () => {
  const { state } = await import("/js/store.js");
  return state.draft && { text: state.draft.text, status: state.draft.status };
}"""
# The server's final HTML as the page shows it: parsed in a lesson-text box like the page's.
SERVER_TEXT = """(html) => {
  const box = document.createElement("div");
  box.className = "lesson-text";
  box.innerHTML = html;
  document.querySelector(".lesson-page").append(box);
  const text = box.innerText;
  box.remove();
  return {text, html: box.innerHTML};
}"""
CLIENT_RENDER = """async (text) => (await import("/js/markdown.js")).renderMarkdown(text)"""
ANIMATION = "(el) => getComputedStyle(el).animationName"
# A section heading of the lesson text in the window, and where it is.
HEADING_IN_VIEW = """(box) => {
  for (const h of document.querySelectorAll(`${box} h2`)) {
    const {top, bottom} = h.getBoundingClientRect();
    if (top >= 0 && bottom <= window.innerHeight) return [h.textContent, top];
  }
  return null;
}"""
HEADING_TOP = """([box, text]) => [...document.querySelectorAll(`${box} h2`)]
  .find((h) => h.textContent === text).getBoundingClientRect().top"""
PWNED = [
    '<img src=x onerror="window.__pwned = 1">',
    "<script>window.__pwned = 2</script>",
    "[click me](javascript:window.__pwned=3)",
    '<a href="javascript:window.__pwned=4">raw link</a>',
]


def long_lesson(title: str, sections: int = 6) -> str:
    """A lesson with every kind of formatting a model writes, long enough to scroll."""
    parts = [f"# {title}\n\nThis lesson is written *while you read it*, word by word.\n"]
    for n in range(1, sections + 1):
        parts.append(
            f"## Part {n}: a closer look\n\n"
            f"Paragraph {n} explains the idea with **strong words**, `inline code` and a "
            "[link](https://example.com/docs). It goes on for a while, so that the text "
            "fills the screen and the reader has something to scroll through.\n\n"
            "- first point, kept short\n- second point, with *emphasis*\n- third point\n\n"
            f"```python\ndef part_{n}(x):\n    return x * {n}\n```\n\n"
            "| Step | What happens |\n|---|---|\n| 1 | mix |\n| 2 | wait |\n\n"
            "> A tip worth remembering, quoted.\n"
        )
    return "\n".join(parts).strip()


async def get_lesson(live: Live, lesson_id: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        response = await client.get(f"/api/lessons/{lesson_id}")
    assert response.status_code == 200, response.text
    lesson: dict[str, Any] = response.json()
    return lesson


async def open_lesson(ui: Ui, lesson_id: int) -> None:
    await ui.lesson(lesson_id).get_by_role("treeitem").click()
    await expect(ui.page.locator(f'.lesson-page[data-lesson-id="{lesson_id}"]')).to_be_visible()


async def watch_growth(
    page: Page,
    times: int,
    *,
    step: int = 1,
    each: Callable[[int], Awaitable[None]] | None = None,
) -> list[int]:
    """The text on screen grows `times` times (by `step` characters or more), while written."""
    lengths = [await page.evaluate(DRAFT_TEXT)]
    for n in range(1, times + 1):
        await page.wait_for_function(GREW, arg=lengths[-1] + step - 1)
        lengths.append(await page.evaluate(DRAFT_TEXT))
        await expect(page.locator(".lesson-page")).to_have_attribute("data-status", "generating")
        if each is not None:
            await each(n)
    return lengths


async def final_draft(page: Page) -> str:
    """The lesson's text as the page put it together, once its own stream or poll saw it end.

    (The all-jobs stream may tell the page first, and its final HTML may come first.)
    """
    async with asyncio.timeout(5):
        while True:
            draft = await page.evaluate(DRAFT_STATE)
            if draft["status"] == "complete":
                text: str = draft["text"]
                return text
            await asyncio.sleep(0.02)


async def shows_final_lesson(ui: Ui, live: Live, lesson_id: int) -> dict[str, Any]:
    """The page shows the finished lesson: the server's HTML, which its own render matches."""
    page = ui.page
    await expect(page.locator(".lesson-page")).to_have_attribute("data-status", "complete")
    body = page.locator(".lesson-body")
    await expect(body).to_be_visible()
    await expect(page.locator(".lesson-draft")).to_be_hidden()
    await expect(page.locator(".caret")).to_have_count(0)
    await expect(page.locator(".lesson-state")).to_be_hidden()
    lesson = await get_lesson(live, lesson_id)
    server = await page.evaluate(SERVER_TEXT, lesson["content_html"])
    assert await body.inner_text() == server["text"]
    assert await body.inner_html() == server["html"]
    # The page's own render of the text (what it showed while writing) is the same markup:
    # the swap to the server's HTML moves nothing.
    client = await page.evaluate(CLIENT_RENDER, lesson["content"])
    assert canonical(client) == canonical(lesson["content_html"])
    return lesson


async def test_a_lesson_being_written_grows_on_screen_as_formatted_text(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.delta_gap = 0.02
    fake.lesson_text = long_lesson
    page = ui.page
    await ui.open(live.url)
    created = await generate_via_api(live, "Knots", lessons=1)
    [lesson_id] = await lesson_ids(live, created["course_id"])
    await open_lesson(ui, lesson_id)
    draft = page.locator(".lesson-draft")

    async def look(n: int) -> None:
        # Formatted as it grows: the heading is a heading, not "# ...".
        await expect(draft.locator("h1")).to_have_text("Lesson 1: Knots fundamentals")
        await expect(draft.locator(".caret")).to_be_visible()
        await expect(page.locator(".lesson-state")).to_contain_text("Writing this lesson…")
        await ui.shot(f"live-{n}")

    lengths = await watch_growth(page, 3, step=150, each=look)
    assert lengths == sorted(set(lengths)), lengths
    # Lists, code and tables appear rendered while the text is still being written.
    await expect(draft.locator("ul li").first).to_be_visible()
    await expect(draft.locator("pre code").first).to_be_visible()
    await expect(page.locator(".lesson-page")).to_have_attribute("data-status", "generating")
    await ui.shot("live-4")

    fake.delta_gap = 0.0  # the rest at once
    lesson = await shows_final_lesson(ui, live, lesson_id)
    assert lesson["content"] == long_lesson("Lesson 1: Knots fundamentals")
    # Snapshot plus chunks, as the page put them together, are the lesson exactly.
    assert await final_draft(page) == lesson["content"]
    await ui.shot("live-final")
    streams = [r.url for r in ui.requests if f"/api/lessons/{lesson_id}/events" in r.url]
    assert len(streams) == 1, streams


async def test_hostile_markdown_arriving_in_chunks_never_runs(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.delta_gap = 0.01
    text = "\n\n".join([*PWNED, *XSS_PAYLOADS, "Plain text after all that."])
    fake.lesson_text = lambda title: text
    page = ui.page
    await ui.open(live.url)
    created = await generate_via_api(live, "Knots", lessons=1)
    [lesson_id] = await lesson_ids(live, created["course_id"])
    await open_lesson(ui, lesson_id)
    draft = page.locator(".lesson-draft")

    async def inert(n: int) -> None:
        assert await page.evaluate(ACTIVE_PARTS) == []
        assert await page.evaluate("window.__pwned") is None
        await expect(draft.locator("script, iframe, object, embed, img, svg, style")).to_have_count(
            0
        )

    # Every few renders, each cut off somewhere else in the middle of a payload.
    await watch_growth(page, 5, step=60, each=inert)
    await ui.shot("hostile-writing")

    await shows_final_lesson(ui, live, lesson_id)
    body = page.locator(".lesson-body")
    await expect(body).to_contain_text("Plain text after all that.")
    await expect(body).to_contain_text('<img src=x onerror="window.__pwned = 1">')
    assert await page.evaluate(ACTIVE_PARTS) == []
    assert await page.evaluate("window.__pwned") is None
    # No dialog (alert) and no console error (a CSP refusal would be one): see the fixture.


async def test_a_queued_lesson_that_is_opened_is_written_next(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(concurrency=1)
    fake.lesson_delay = 20.0  # lesson 1 is written slowly, until the test lets it finish
    created = await generate_via_api(live, "Knots", lessons=4)
    first, _, _, last = await lesson_ids(live, created["course_id"])
    page = ui.page
    await ui.open(live.url)
    await expect(ui.lesson(first)).to_have_attribute("data-status", "generating")

    await open_lesson(ui, last)
    state = page.locator(".lesson-state")
    await expect(state).to_contain_text("Starting next…")
    await expect(state).not_to_contain_text("as soon as a writer is free")
    await expect(page.locator(".lesson-page")).to_have_attribute("data-status", "pending")
    await ui.shot("starting-next")

    fake.lesson_delay = 0.0
    await expect(page.locator(".lesson-page")).to_have_attribute("data-status", "complete")
    await expect(page.locator(".lesson-body h1")).to_have_text("Lesson 4: Common pitfalls in Knots")
    order = [call.title.split(":")[0] for call in fake.lesson_calls()]
    assert order[:2] == ["Lesson 1", "Lesson 4"], order
    prioritized = [r.url for r in ui.requests if r.url.endswith("/prioritize")]
    assert prioritized == [f"{live.url}/api/lessons/{last}/prioritize"]


async def test_the_page_follows_one_lesson_at_a_time_and_lets_go_of_it(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(concurrency=2)
    fake.lesson_delay = 20.0
    created = await generate_via_api(live, "Knots", lessons=2)
    first, second = await lesson_ids(live, created["course_id"])
    drafts = live.services.drafts

    def readers(lesson_id: int) -> int:
        draft = drafts.get(lesson_id)
        return 0 if draft is None else len(draft.readers)

    page = ui.page
    await ui.open(live.url)
    await expect(ui.lesson(second)).to_have_attribute("data-status", "generating")
    await open_lesson(ui, first)
    await until(lambda: (readers(first), readers(second)) == (1, 0))
    await open_lesson(ui, second)
    await until(lambda: (readers(first), readers(second)) == (0, 1))
    await ui.course(created["course_id"]).locator(".tree-course-item").click()
    await expect(page.locator(".course-page")).to_be_visible()
    await until(lambda: (readers(first), readers(second)) == (0, 0))
    fake.lesson_delay = 0.0


async def test_the_caret_marks_the_end_while_writing_and_a_reader_who_scrolled_up_stays(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.delta_gap = 0.03
    fake.lesson_text = lambda title: long_lesson(title, sections=14)
    page = ui.page
    await ui.open(live.url)
    created = await generate_via_api(live, "Knots", lessons=1)
    [lesson_id] = await lesson_ids(live, created["course_id"])
    await open_lesson(ui, lesson_id)
    caret = page.locator(".lesson-draft .caret")
    await expect(caret).to_be_visible()
    # It blinks, unless the reader asked for less motion.
    assert await caret.evaluate(ANIMATION) == "caret-blink"
    await page.emulate_media(reduced_motion="reduce")
    assert await caret.evaluate(ANIMATION) == "none"
    await page.emulate_media(reduced_motion="no-preference")
    fake.delta_gap = 0.003  # fast, until the text is a few screens long

    # At the end of the text, the reader is taken along as it grows.
    height = await page.evaluate("window.innerHeight")
    await page.wait_for_function(
        "(h) => document.querySelector('.lesson-draft').offsetHeight > 2 * h", arg=height
    )
    fake.delta_gap = 0.03
    await watch_growth(page, 2, step=40)
    assert await page.evaluate("window.scrollY") > height
    await expect(caret).to_be_in_viewport()
    await expect(page.locator(".lesson-state")).to_be_in_viewport()
    await window_shot(ui, "following")

    # Scrolled up: the page grows below the reader, who stays where they are.
    await page.mouse.move(600, 400)
    await page.mouse.wheel(0, -700)
    where = await settled_scroll(page)
    await expect(caret).not_to_be_in_viewport()
    heading, top = await page.evaluate(HEADING_IN_VIEW, ".lesson-draft")
    await watch_growth(page, 3, step=40)
    assert await scroll_y(page) == where
    assert await page.evaluate(HEADING_TOP, [".lesson-draft", heading]) == top
    await window_shot(ui, "scrolled-up")

    # The finished lesson replaces the growing text without moving a line of it.
    fake.delta_gap = 0.0
    await shows_final_lesson(ui, live, lesson_id)
    assert await scroll_y(page) == where
    assert await page.evaluate(HEADING_TOP, [".lesson-body", heading]) == top
    await window_shot(ui, "scrolled-up-complete")


async def window_shot(ui: Ui, state: str) -> None:
    """What the reader sees in the window (a full-page shot would not show the scrolling)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await ui.page.screenshot(path=SCREENSHOTS / f"{ui.name}-{state}.png")


async def scroll_y(page: Page) -> float:
    y: float = await page.evaluate("window.scrollY")
    return y


async def settled_scroll(page: Page) -> float:
    """The scroll position once a (smooth) scroll has come to rest."""
    async with asyncio.timeout(5):
        before = await scroll_y(page)
        while True:
            await asyncio.sleep(0.1)
            now = await scroll_y(page)
            if now == before:
                return now
            before = now


async def test_polling_shows_the_text_growing_too(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.delta_gap = 0.02
    fake.lesson_text = long_lesson
    page = ui.page
    await ui.open(live.url, polling=True)
    created = await generate_via_api(live, "Knots", lessons=1)
    [lesson_id] = await lesson_ids(live, created["course_id"])
    await open_lesson(ui, lesson_id)

    async def look(n: int) -> None:
        await expect(page.locator(".lesson-draft .caret")).to_be_visible()
        await ui.shot(f"polling-{n}")

    await watch_growth(page, 3, each=look)
    fake.delta_gap = 0.0
    lesson = await shows_final_lesson(ui, live, lesson_id)
    assert await final_draft(page) == lesson["content"]
    assert not [r.url for r in ui.requests if "/events" in r.url]
    assert [r for r in ui.requests if r.url.endswith(f"/api/lessons/{lesson_id}")]


@pytest.mark.parametrize("mode", ["stream", "polling"])
async def test_after_retry_a_failed_lesson_is_followed_again(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic, mode: str
) -> None:
    live = await start_live()
    fake.add_fault(kind="lesson", status=400, times=None)
    page = ui.page
    await ui.open(live.url, polling=mode == "polling")
    created = await generate_via_api(live, "Knots", lessons=1)
    [lesson_id] = await lesson_ids(live, created["course_id"])
    await expect(ui.lesson(lesson_id)).to_have_attribute("data-status", "error")
    await open_lesson(ui, lesson_id)
    state = page.locator(".lesson-state")
    await expect(state).to_contain_text("This lesson could not be written")
    assert await page.evaluate(DRAFT_STATE) is None  # a failed lesson is not followed

    fake.faults.clear()
    fake.delta_gap = 0.02
    fake.lesson_text = long_lesson
    await state.get_by_role("button", name="Retry").click()
    await expect(page.locator(".lesson-draft .caret")).to_be_visible()
    await watch_growth(page, 2, step=100)
    fake.delta_gap = 0.0
    await shows_final_lesson(ui, live, lesson_id)


async def test_a_cancelled_lesson_loses_its_text_and_a_resumed_one_is_written_anew(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.delta_gap = 0.03
    fake.lesson_text = long_lesson
    page = ui.page
    await ui.open(live.url)
    created = await generate_via_api(live, "Knots", lessons=1)
    [lesson_id] = await lesson_ids(live, created["course_id"])
    await open_lesson(ui, lesson_id)
    await watch_growth(page, 1, step=50)

    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        response = await client.post(f"/api/jobs/{created['job_id']}/cancel")
        assert response.status_code == 202, response.text
        await expect(page.locator(".lesson-page")).to_have_attribute("data-status", "pending")
        await expect(page.locator(".lesson-draft")).to_be_hidden()
        await expect(page.locator(".lesson-state")).to_contain_text("Queued")

        response = await client.post(f"/api/jobs/{created['job_id']}/retry")
        assert response.status_code == 202, response.text
    # A new attempt: its own snapshot, and the text grows from the start again.
    await expect(page.locator(".lesson-draft .caret")).to_be_visible()
    await watch_growth(page, 2, step=50)
    fake.delta_gap = 0.0
    lesson = await shows_final_lesson(ui, live, lesson_id)
    assert await final_draft(page) == lesson["content"]
