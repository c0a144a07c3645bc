"""The lesson page: it follows its lesson's status live, and Retry heals a failure."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import StartLive, Ui, generate_via_api, lesson_ids

MODES = ["stream", "polling"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_lesson_opened_while_it_is_written_fills_in_without_a_reload(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic, mode: str
) -> None:
    live = await start_live(concurrency=1)
    # The fake reads its delay per chunk (8 per lesson): lesson 1 stays "generating",
    # and lesson 2 queued behind it, until the test lets it finish.
    fake.lesson_delay = 8.0
    created = await generate_via_api(live, "Knots", lessons=2)
    first, second = await lesson_ids(live, created["course_id"])
    page = ui.page
    await ui.open(live.url, polling=mode == "polling")
    # The page stays this one document throughout: a reload would drop the mark.
    await page.evaluate("window.__sameDocument = true")

    await expect(ui.lesson(first)).to_have_attribute("data-status", "generating")
    await ui.lesson(second).get_by_role("treeitem").click()
    lesson_page = page.locator(".lesson-page")
    await expect(lesson_page).to_have_attribute("data-status", "pending")
    await expect(page.locator(".lesson-state")).to_contain_text("Queued")
    await ui.shot("queued")

    await ui.lesson(first).get_by_role("treeitem").click()
    await expect(page).to_have_url(re.compile(rf"#/courses/\d+/lessons/{first}$"))
    await expect(lesson_page).to_have_attribute("data-status", "generating")
    await expect(page.locator(".lesson-state")).to_contain_text("Writing this lesson…")
    await expect(page.locator(".lesson-state .spinner")).to_be_visible()
    await expect(page.locator(".lesson-body")).to_be_hidden()
    await ui.shot("generating")

    fake.lesson_delay = 0.0
    await expect(lesson_page).to_have_attribute("data-status", "complete")
    body = page.locator(".lesson-body")
    await expect(body.locator("h1")).to_have_text("Lesson 1: Knots fundamentals")
    await expect(body).to_contain_text("Start from the simplest working case.")
    await expect(page.locator(".lesson-state")).to_be_hidden()
    await expect(page.get_by_role("button", name="Regenerate this lesson")).to_be_visible()
    assert await page.evaluate("window.__sameDocument") is True
    await ui.shot("complete")

    # Regenerate: the page goes back to the writing state, then shows the new text.
    await expect(ui.lesson(second)).to_have_attribute("data-status", "complete")
    fake.lesson_delay = 8.0
    await page.get_by_role("button", name="Regenerate this lesson").click()
    # It asks for instructions first (optional): none here.
    await page.get_by_role("button", name="Regenerate", exact=True).click()
    await expect(page.locator(".lesson-state")).to_contain_text("Writing this lesson…")
    await expect(body).to_be_hidden()
    fake.lesson_delay = 0.0
    await expect(body.locator("h1")).to_have_text("Lesson 1: Knots fundamentals")
    assert len(fake.lesson_calls("Lesson 1")) == 2
    assert await page.evaluate("window.__sameDocument") is True


@pytest.mark.parametrize("mode", MODES)
async def test_a_failed_lesson_shows_its_error_and_retry_brings_its_content(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic, mode: str
) -> None:
    live = await start_live()
    fake.add_fault(kind="lesson", match="Lesson 2", status=400, times=None)
    page = ui.page
    await ui.open(live.url, polling=mode == "polling")
    course_id = await ui.generate("Knots", lessons=3)
    _, failing, _ = await lesson_ids(live, course_id)

    notice = page.locator("#notices .notice")
    await expect(notice).to_contain_text("Finished with 1 error")
    await expect(notice.get_by_role("button", name="Retry")).to_be_visible()
    await expect(ui.lesson(failing)).to_have_attribute("data-status", "error")
    await expect(ui.course(course_id).locator(".progress-count")).to_have_text("3/3")

    await ui.lesson(failing).get_by_role("treeitem").click()
    state = page.locator(".lesson-state")
    await expect(state).to_contain_text("This lesson could not be written")
    await expect(state).to_contain_text("refused the lesson request (400)")
    await ui.shot("error")

    fake.faults.clear()
    await state.get_by_role("button", name="Retry").click()
    body = page.locator(".lesson-body")
    await expect(body.locator("h1")).to_have_text("Lesson 2: Core ideas of Knots")
    await expect(ui.lesson(failing)).to_have_attribute("data-status", "complete")
    await expect(page.get_by_role("button", name="Regenerate this lesson")).to_be_visible()
    # The retried course finishes again: its notice now says so, and only that.
    await expect(notice).to_have_count(1)
    await expect(notice).to_contain_text("All 3 lessons ready")
    await ui.shot("retried")
    assert len(fake.lesson_calls("Lesson 2")) == 2
