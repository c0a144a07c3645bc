"""Course actions (cancel, resume, retry, delete) and the form's own errors."""

from __future__ import annotations

import re

from playwright.async_api import expect

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import StartLive, Ui, lesson_ids


async def test_cancel_resume_retry_and_delete_a_course(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(concurrency=1)
    fake.lesson_delay = 8.0  # lesson 1 stays in the writing until released
    page = ui.page
    await ui.open(live.url)
    course_id = await ui.generate("Knots", lessons=3)
    first, _, third = await lesson_ids(live, course_id)
    await expect(ui.lesson(first)).to_have_attribute("data-status", "generating")

    await page.get_by_role("button", name="Cancel generation").click()
    status = page.locator(".job-status")
    await expect(status).to_have_attribute("data-status", "cancelled")
    await expect(ui.lesson(first)).to_have_attribute("data-status", "pending")
    await expect(page.get_by_role("button", name="Cancel generation")).to_be_hidden()
    await ui.shot("cancelled")

    fake.lesson_delay = 0.0
    fake.add_fault(kind="lesson", match="Lesson 3", status=400, times=None)
    await page.get_by_role("button", name="Resume generation").click()
    await expect(status).to_have_attribute("data-status", "error")
    await expect(ui.lesson(third)).to_have_attribute("data-status", "error")
    await expect(page.locator(".lesson-row[data-status='error']")).to_contain_text("(400)")

    fake.faults.clear()
    await page.get_by_role("button", name="Retry the failed lesson").click()
    await expect(status).to_have_attribute("data-status", "complete")
    await expect(page.locator("#tree .tree-lesson[data-status='complete']")).to_have_count(3)

    # Delete asks first, in the page; "Keep it" keeps it.
    await page.get_by_role("button", name="Delete course…").click()
    confirm = page.get_by_role("group", name="Confirm deletion")
    await expect(confirm).to_contain_text("Delete “Knots: a practical course”")
    await expect(confirm.get_by_role("button", name="Delete")).to_be_focused()
    await ui.shot("confirm-delete")
    await confirm.get_by_role("button", name="Keep it").click()
    await expect(confirm).to_be_hidden()
    await expect(ui.course(course_id)).to_have_count(1)

    await page.get_by_role("button", name="Delete course…").click()
    await confirm.get_by_role("button", name="Delete").click()
    await expect(ui.course(course_id)).to_have_count(0)
    await expect(page).to_have_url(re.compile(r"#/$"))
    await expect(page.locator("#notices")).to_contain_text("Deleted “Knots: a practical course”")
    await expect(page.locator("#tree-empty")).to_be_visible()
    assert await live.services.store.get_course(course_id) is None


async def test_form_errors_show_next_to_the_form_in_words(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(max_active_jobs=1)
    fake.lesson_delay = 8.0  # the first course keeps running: a second one is refused
    page = ui.page
    await ui.open(live.url)
    topic, lessons = page.get_by_label("Topic"), page.get_by_label("Lessons")
    error = page.locator("#form-error")
    generate = page.get_by_role("button", name="Generate course")
    await expect(page.locator("#topic-hint")).to_contain_text("3 to 200 characters")
    await expect(topic).to_have_attribute("maxlength", "200")

    # Checked in the page first, with the server's limits, before any request.
    await topic.fill("  ab ")
    await expect(page.locator("#topic-count")).to_have_text("2/200")
    await generate.click()
    await expect(error).to_have_text("The topic needs at least 3 characters.")
    await expect(topic).to_have_attribute("aria-invalid", "true")
    await expect(topic).to_be_focused()
    await topic.fill("Knots")
    await lessons.fill("25")
    await generate.click()
    await expect(error).to_contain_text("from 1 to 20")
    await expect(lessons).to_be_focused()
    assert not [r for r in ui.requests if r.method == "POST"]
    await ui.shot("invalid")

    await lessons.fill("2")
    await generate.click()
    await expect(page).to_have_url(re.compile(r"#/courses/\d+$"))
    await expect(error).to_be_hidden()

    # The server's refusals: 429 (too many running) and 502 (the model failed).
    ui.allow(r"status of 429 .*/api/courses/generate")
    await topic.fill("Bread")
    await generate.click()
    await expect(error).to_contain_text("Could not start the course: 1 courses are being written")
    await expect(generate).to_be_enabled()
    await ui.shot("429")

    await page.get_by_role("button", name="Cancel generation").click()
    await expect(page.locator(".job-status")).to_have_attribute("data-status", "cancelled")
    ui.allow(r"status of 502 .*/api/courses/generate")
    fake.add_fault(kind="outline", status=400)
    await generate.click()
    await expect(error).to_contain_text("refused the outline request (400)")
    await expect(topic).to_have_value("Bread")  # nothing typed is lost
    await expect(page.locator("#tree .tree-course")).to_have_count(1)
