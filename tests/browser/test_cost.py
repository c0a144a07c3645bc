"""Cost (SPEC section 11) as a person sees it: what each lesson and course cost, live.

The fake Messages API reports realistic usage, so on a priced model every call costs
something; the page must show the same amounts as the API, formatted, and its tokens.
"""

from __future__ import annotations

import asyncio
import json
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, Response, ViewportSize, expect

from coursegen.providers.demo import DemoProvider
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import StartLive, Ui, lesson_ids, settle
from tests.conftest import Live

PRICED = "claude-sonnet-5-5"
PHONE: ViewportSize = {"width": 390, "height": 844}

# Records, inside the page, every amount the course page's cost line showed, in order.
COST_RECORDER = """() => {
  const seen = (window.__costs = []);
  const look = () => {
    const line = document.querySelector(".course-page .course-cost");
    if (!line || line.hidden) return;
    const text = line.querySelector(".cost-amount").textContent;
    const label = line.querySelector(".cost-label").textContent;
    if (seen.at(-1)?.text !== text || seen.at(-1)?.label !== label) seen.push({ label, text });
  };
  new MutationObserver(look).observe(document.getElementById("main"),
    { subtree: true, childList: true, characterData: true, attributes: true });
}"""


def usd(value: float | None, *, demo: bool = False) -> str:
    """An amount as the page writes it: 4 decimals under a cent, else 2, half up."""
    if value is None:
        return "cost unknown"
    micros = int(Decimal(str(value)) * 1_000_000)
    if micros == 0:
        return "$0.00 (demo)" if demo else "$0.00"
    decimals = 4 if micros < 10_000 else 2
    amount = (Decimal(micros) / 1_000_000).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
    return f"${amount:,.{decimals}f}"


def tokens(usage: dict[str, int]) -> str:
    """'1,834 in (1,200 from cache) · 2,310 out'"""
    read = usage["cache_read_input_tokens"]
    total = usage["input_tokens"] + usage["cache_creation_input_tokens"] + read
    cached = f" ({read:,} from cache)" if read else ""
    return f"{total:,} in{cached} · {usage['output_tokens']:,} out"


def test_usd_formats_like_the_page() -> None:
    assert usd(None) == "cost unknown"
    assert usd(0.0, demo=True) == "$0.00 (demo)"
    assert usd(0.00135) == "$0.0014"  # half up from the server's 6 decimals
    assert usd(0.005953) == "$0.0060"
    assert usd(0.612999) == "$0.61"
    assert usd(1234.5678) == "$1,234.57"


async def settled(live: Live, course_id: int) -> dict[str, Any]:
    """The course once its job has finished (texts and quizzes)."""
    async with asyncio.timeout(20):
        while True:
            course = await get(live, f"/api/courses/{course_id}")
            if course["job"]["status"] != "running":
                return course
            await asyncio.sleep(0.1)


async def get(live: Live, path: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def generate(ui: Ui, topic: str, lessons: int) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Generate through the form: the course id, the request's body and the 201 answer."""

    def is_generate(response: Response) -> bool:
        return response.url.endswith("/api/courses/generate")

    page = ui.page
    # By id: once a course is shown, "Lessons" also names its progress.
    await page.locator("#topic").fill(topic)
    await page.locator("#lessons").fill(str(lessons))
    async with page.expect_response(is_generate) as answered:
        await page.get_by_role("button", name="Generate course").click()
    response = await answered.value
    assert response.status == 201
    answer: dict[str, Any] = await response.json()
    course_id: int = answer["course_id"]
    await expect(page).to_have_url(re.compile(rf"#/courses/{course_id}$"))
    sent = json.loads(response.request.post_data or "{}")
    return course_id, sent, answer


async def phone_shot(ui: Ui, state: str) -> None:
    """A screenshot on a phone's screen, then back to the wide one."""
    page: Page = ui.page
    wide = page.viewport_size
    await page.set_viewport_size(PHONE)
    await ui.shot(f"{state}-phone")
    assert wide is not None
    await page.set_viewport_size(wide)


@pytest.mark.parametrize("mode", ["stream", "polling"])
async def test_lessons_and_course_show_what_they_cost_live(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic, mode: str
) -> None:
    live = await start_live(model=PRICED, concurrency=1)
    fake.lesson_delay = 0.5  # long enough to see the running total move, polling too
    page = ui.page
    await ui.open(live.url, polling=mode == "polling")
    await page.evaluate(COST_RECORDER)

    # The estimate is shown as soon as the 201 answer is in, as the API said it.
    course_id, sent, answer = await generate(ui, "Knots", lessons=3)
    assert sent["mode"] == "stream"
    maximum = answer["estimate"]["max_cost_usd"]
    assert maximum > 0
    estimate = page.locator(".course-page .estimate")
    await expect(estimate.locator(".estimate-text")).to_have_text(
        f"At most {usd(maximum)} for its lessons (at their token limits)."
    )
    await ui.shot("writing")

    # The course's running total while it is written, then its total, as the API says.
    entry = ui.course(course_id)
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(3)
    cost = page.locator(".course-page .course-cost")
    course = await get(live, f"/api/courses/{course_id}")
    total = course["usage"]
    assert total["cost_usd"] > 0
    await expect(cost).to_have_text(f"Cost: {usd(total['cost_usd'])} · {tokens(total)}")
    seen = await page.evaluate("window.__costs")
    running = [s["text"] for s in seen if s["label"] == "Spent so far: "]
    assert len(running) >= 2, seen  # it moved while the lessons were written
    assert seen[-1] == {"label": "Cost: ", "text": usd(total["cost_usd"])}
    await expect(entry.locator(".tree-course-item .tree-cost .cost-amount")).to_have_text(
        usd(total["cost_usd"])
    )
    await expect(entry.locator(".tree-course-item")).to_have_attribute(
        "title", re.compile(rf"^Cost: {re.escape(usd(total['cost_usd']))}\n")
    )

    # Each finished lesson: its cost in small type in the tree, and in its hover text.
    for summary in course["lessons"]:
        amount = usd(summary["usage"]["cost_usd"])
        item = ui.lesson(summary["id"]).get_by_role("treeitem")
        await expect(item.locator(".tree-cost .cost-amount")).to_have_text(amount)
        await expect(item.locator(".tree-cost")).to_be_visible()
        await expect(item).to_have_attribute("title", re.compile(rf"^Cost: {re.escape(amount)}\n"))
        name = re.compile(rf"ready\s*, cost {re.escape(amount)}\s*$")  # read out, not only seen
        await expect(item).to_have_accessible_name(name)

    # On the lesson's page: its cost with its tokens, and how it was made.
    first, second = course["lessons"][0]["id"], course["lessons"][1]["id"]
    await ui.lesson(second).get_by_role("treeitem").click()
    lesson = await get(live, f"/api/lessons/{second}")
    assert lesson["usage"]["cache_read_input_tokens"] > 0  # the course's shared prefix
    about = page.locator(".lesson-page .lesson-about")
    await expect(about.locator(".lesson-cost")).to_have_text(
        f"Cost: {usd(lesson['usage']['cost_usd'])} · {tokens(lesson['usage'])}"
    )
    await expect(about.locator(".lesson-cost")).to_contain_text("from cache")
    seconds = f"{lesson['duration_ms'] / 1000:.1f}"
    await expect(about.locator(".lesson-provenance")).to_have_text(
        f"Written by {PRICED} · 1 attempt · {seconds} s · ended: end_turn"
    )
    assert lesson["model"] == PRICED and lesson["attempts"] == 1
    await ui.shot("lesson")
    await phone_shot(ui, "lesson")

    await ui.lesson(first).get_by_role("treeitem").click()
    lesson = await get(live, f"/api/lessons/{first}")
    await expect(page.locator(".lesson-page .lesson-cost .cost-amount")).to_have_text(
        usd(lesson["usage"]["cost_usd"])
    )
    await entry.locator(".tree-course-item").click()
    await expect(cost).to_be_visible()
    await ui.shot("course")
    await phone_shot(ui, "course")


async def test_economy_mode_sends_a_batch_and_says_it_waits_for_it(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(model=PRICED, batch_poll=0.05)
    fake.batch_seconds = 3600.0  # until the test lets it end
    page = ui.page
    await ui.open(live.url)

    # Folded away by default, so the simple path stays simple.
    economy = page.get_by_role("radio", name="Economy (slower, half price)")
    now = page.get_by_role("radio", name="Now (streamed as it is written)")
    await expect(economy).to_be_hidden()
    await page.get_by_text("More options").click()
    await expect(now).to_be_checked()
    await expect(economy).to_have_accessible_description(
        re.compile(r"^Sent as one Message Batch: half the price, but it can take up to 24 hours")
    )
    await economy.check()
    await ui.shot("options")
    await phone_shot(ui, "options")

    course_id, sent, answer = await generate(ui, "Knots", lessons=2)
    assert sent["mode"] == "batch"
    course = await get(live, f"/api/courses/{course_id}")
    assert course["mode"] == "batch"
    # After a generate the form is as new: the next course is written now unless chosen.
    await expect(now).to_be_checked()

    # While the batch runs its lessons are "generating", and the page says what it waits for.
    note = page.locator(".course-page .batch-note")
    entry = ui.course(course_id)
    await expect(entry.locator('.tree-lesson[data-status="generating"]')).to_have_count(2)
    await expect(note).to_be_visible()
    await expect(note).to_contain_text("Waiting for its batch")
    await expect(note).to_contain_text("up to 24 hours")
    await expect(page.locator(".course-page .lesson-row .status-word").first).to_have_text(
        "In the batch…"
    )
    maximum = usd(answer["estimate"]["max_cost_usd"])
    await expect(page.locator(".course-page .estimate-text")).to_have_text(
        f"At most {maximum} for its lessons (at their token limits)."
    )
    await ui.shot("batch-waiting")
    await phone_shot(ui, "batch-waiting")

    first = (await lesson_ids(live, course_id))[0]
    await ui.lesson(first).get_by_role("treeitem").click()
    await expect(page.locator(".lesson-page .lesson-state")).to_contain_text(
        "Waiting for its batch"
    )

    # The batch ends: the lessons appear, the note goes, the cost is at batch prices.
    fake.batch_seconds = 0.0
    await expect(page.locator(".lesson-page .lesson-body h1")).to_be_visible()
    lesson = await get(live, f"/api/lessons/{first}")
    await expect(page.locator(".lesson-page .lesson-cost")).to_have_text(
        f"Cost: {usd(lesson['usage']['cost_usd'])} · {tokens(lesson['usage'])}"
    )
    await expect(page.locator(".lesson-page .lesson-provenance")).to_contain_text(
        f"Written by {PRICED} · 1 attempt"
    )
    await entry.locator(".tree-course-item").click()
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(2)
    await expect(note).to_be_hidden()
    course = await get(live, f"/api/courses/{course_id}")
    await expect(page.locator(".course-page .course-cost .cost-amount")).to_have_text(
        usd(course["usage"]["cost_usd"])
    )
    await ui.shot("batch-done")


async def test_a_model_without_a_price_shows_its_tokens_and_cost_unknown(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()  # claude-test: in no price table
    page = ui.page
    await ui.open(live.url)
    course_id, _, answer = await generate(ui, "Knots", lessons=2)
    assert answer["estimate"]["max_cost_usd"] is None
    await expect(page.locator(".course-page .estimate-text")).to_have_text(
        "Its cost cannot be estimated: the model has no known price."
    )
    entry = ui.course(course_id)
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(2)
    course = await settled(live, course_id)  # its quizzes, written after the texts, too
    assert course["usage"]["cost_usd"] is None
    await expect(page.locator(".course-page .course-cost")).to_have_text(
        f"Cost unknown · {tokens(course['usage'])}"
    )
    await expect(entry.locator(".tree-course-item .tree-cost .cost-amount")).to_have_text(
        "cost unknown"
    )
    first = course["lessons"][0]
    await ui.lesson(first["id"]).get_by_role("treeitem").click()
    await expect(page.locator(".lesson-page .lesson-cost")).to_have_text(
        f"Cost unknown · {tokens(first['usage'])}"
    )
    await expect(page.locator(".lesson-page .lesson-provenance")).to_contain_text(
        "Written by claude-test · 1 attempt"
    )
    await ui.shot("unknown-price")


async def test_the_demo_costs_nothing_and_says_so(ui: Ui, start_live: StartLive) -> None:
    live = await start_live(provider=DemoProvider(delay=0.01))
    page = ui.page
    await ui.open(live.url)
    await expect(page.locator("#demo-banner")).to_be_visible()
    course_id, _, answer = await generate(ui, "Knots", lessons=2)
    assert answer["estimate"]["max_cost_usd"] == 0
    estimate = page.locator(".course-page .estimate")
    await expect(estimate.locator(".estimate-text")).to_have_text(
        "At most $0.00 (demo) for its lessons (at their token limits)."
    )
    entry = ui.course(course_id)
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(2)
    # The quizzes are still adding to the course's tokens until its job ends.
    await settle(live, answer["job_id"])
    course = await get(live, f"/api/courses/{course_id}")
    assert course["usage"]["cost_usd"] == 0 and course["usage"]["output_tokens"] > 0
    await expect(page.locator(".course-page .course-cost")).to_have_text(
        f"Cost: $0.00 (demo) · {tokens(course['usage'])}"
    )
    first = course["lessons"][0]
    await expect(ui.lesson(first["id"]).locator(".tree-cost .cost-amount")).to_have_text(
        "$0.00 (demo)"
    )
    await ui.lesson(first["id"]).get_by_role("treeitem").click()
    await expect(page.locator(".lesson-page .lesson-cost")).to_have_text(
        f"Cost: $0.00 (demo) · {tokens(first['usage'])}"
    )
    await expect(page.locator(".lesson-page .lesson-provenance")).to_contain_text(
        "Written by the offline demo · 1 attempt"
    )
    await ui.shot("demo-lesson")

    # The estimate can be put away, and the next generate's replaces the last one's.
    await entry.locator(".tree-course-item").click()
    await estimate.get_by_role("button", name="Dismiss the estimate").click()
    await expect(estimate).to_be_hidden()
    await expect(page.locator(".course-page .page-title")).to_be_focused()
    second, _, _ = await generate(ui, "Sourdough baking", lessons=1)
    await expect(page.locator(".course-page .estimate")).to_be_visible()
    await entry.locator(".tree-course-item").click()
    await expect(page.locator(f'.course-page[data-course-id="{course_id}"]')).to_be_visible()
    await expect(page.locator(".course-page .estimate")).to_be_hidden()
    assert second != course_id


async def test_a_failed_lesson_shows_what_it_cost_and_a_retry_adds_to_it(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(model=PRICED)
    # Cut off at the output limit, its continuations too (2 by default): the lesson fails.
    fake.add_fault(kind="lesson", match="Lesson 2", stop_reason="max_tokens", times=3)
    page = ui.page
    await ui.open(live.url)
    course_id, _, _ = await generate(ui, "Knots", lessons=2)
    _, failing = await lesson_ids(live, course_id)
    await expect(ui.lesson(failing)).to_have_attribute("data-status", "error")

    # Its calls were paid for: their cost shows, and the hover text says why it failed.
    lesson = await get(live, f"/api/lessons/{failing}")
    assert lesson["stop_reason"] == "max_tokens" and lesson["usage"]["output_tokens"] > 0
    first_cost = usd(lesson["usage"]["cost_usd"])
    item = ui.lesson(failing).get_by_role("treeitem")
    await expect(item.locator(".tree-cost .cost-amount")).to_have_text(first_cost)
    await expect(item).to_have_attribute(
        "title", re.compile(rf"at once[^\n]*\n\nCost: {re.escape(first_cost)}\n")
    )
    await item.click()
    about = page.locator(".lesson-page .lesson-about")
    await expect(about.locator(".lesson-cost .cost-amount")).to_have_text(first_cost)
    await expect(about.locator(".lesson-provenance")).to_have_text(
        re.compile(rf"^Tried with {PRICED} · 1 attempt · \d+\.\d s · ended: max_tokens$")
    )
    await ui.shot("failed")

    # Retried, it is written: its cost is now both calls', and it says so.
    await page.locator(".lesson-state").get_by_role("button", name="Retry").click()
    await expect(page.locator(".lesson-page .lesson-body h1")).to_be_visible()
    await expect(about.locator(".lesson-provenance")).to_contain_text(
        f"Written by {PRICED} · 2 attempts"
    )
    lesson = await get(live, f"/api/lessons/{failing}")
    assert lesson["attempts"] == 2
    await expect(about.locator(".lesson-cost")).to_have_text(
        f"Cost: {usd(lesson['usage']['cost_usd'])} · {tokens(lesson['usage'])}"
    )
    assert usd(lesson["usage"]["cost_usd"]) != first_cost
    await expect(item.locator(".tree-cost .cost-amount")).to_have_text(
        usd(lesson["usage"]["cost_usd"])
    )
