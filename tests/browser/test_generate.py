"""Generating a course: the tree, the progress and the finished notice, live."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import StartLive, Ui, generate_via_api

MODES = ["stream", "polling"]

# Records, inside the page, when the generate button was clicked, when each course's
# lessons first appeared in the tree, and every value its progress bar showed.
RECORDER = """() => {
  const seen = (window.__seen = { clicked: null, lessons: {}, progress: {} });
  document.getElementById("generate-button").addEventListener(
    "click", () => { seen.clicked ??= performance.now(); }, true);
  const look = () => {
    for (const course of document.querySelectorAll("#tree .tree-course")) {
      const id = course.dataset.courseId;
      const count = course.querySelectorAll(".tree-lesson").length;
      if (count && !(id in seen.lessons)) seen.lessons[id] = { count, at: performance.now() };
      const bar = course.querySelector("progress");
      const values = (seen.progress[id] ??= []);
      if (!bar.parentElement.hidden && values.at(-1) !== bar.value) values.push(bar.value);
    }
  };
  new MutationObserver(look).observe(document.getElementById("tree"),
    { subtree: true, childList: true, attributes: true });
}"""


@pytest.mark.parametrize("mode", MODES)
async def test_generate_shows_the_course_at_once_and_its_progress_to_the_end(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic, mode: str
) -> None:
    live = await start_live(concurrency=1)
    fake.outline_delay = 0.3  # long enough to see the button at work
    fake.lesson_delay = 0.4
    page = ui.page
    await ui.open(live.url, polling=mode == "polling")
    await page.evaluate(RECORDER)
    await ui.shot("empty")

    await page.get_by_label("Topic").fill("Sourdough baking")
    await page.get_by_label("Lessons").fill("4")
    button = page.locator("#generate-button")
    await button.click()
    await expect(button).to_be_disabled()
    await expect(button).to_have_text(re.compile("Writing the outline"))
    await expect(page).to_have_url(re.compile(r"#/courses/\d+$"))
    course_id = int(page.url.rsplit("/", 1)[1])

    # In the tree within 1 s of the click, with all its lessons, without a reload.
    appeared = await page.evaluate(f"window.__seen.lessons['{course_id}']")
    clicked = await page.evaluate("window.__seen.clicked")
    assert appeared["count"] == 4
    assert appeared["at"] - clicked < 1000
    await expect(button).to_be_enabled()
    await expect(page.locator("#form-status")).to_have_text(
        re.compile("4 lessons are being written")
    )
    await ui.shot("writing")

    # The bar runs to 100%, the counts say so, and a notice says the course is ready.
    entry = ui.course(course_id)
    await expect(entry.locator("progress")).to_have_attribute("value", "100")
    await expect(entry.locator(".progress-count")).to_have_text("4/4")
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(4)
    await expect(page.locator(".progress-text")).to_have_text("4 of 4 lessons done (4 ready)")
    notice = page.locator("#notices .notice")
    await expect(notice).to_have_count(1)
    await expect(notice).to_contain_text("All 4 lessons ready")
    await ui.shot("finished")

    values = await page.evaluate(f"window.__seen.progress['{course_id}']")
    assert values == sorted(values), values  # it only moved forward
    assert values[0] == 0 and values[-1] == 100
    assert any(0 < value < 100 for value in values), values  # and was seen moving

    # One course, one entry; one stream for the whole page, or none at all when polling.
    await expect(page.locator("#tree .tree-course")).to_have_count(1)
    if mode == "stream":
        assert len(ui.streams()) == 1
    else:
        assert ui.streams() == []
        await expect(page.locator("#live-status")).to_contain_text("Live stream unavailable")


@pytest.mark.parametrize("mode", MODES)
async def test_courses_made_and_deleted_elsewhere_come_and_go_live(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic, mode: str
) -> None:
    live = await start_live()
    fake.lesson_delay = 0.2
    page = ui.page
    await ui.open(live.url, polling=mode == "polling")
    await page.evaluate("window.__sameDocument = true")
    await expect(page.locator("#tree-empty")).to_be_visible()

    # Another tab, or a script, generates a course: it appears here, lessons and all.
    created = await generate_via_api(live, "Knots", lessons=2)
    entry = ui.course(created["course_id"])
    await expect(entry.locator(".tree-lesson")).to_have_count(2)
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(2)
    await expect(page.locator("#tree-empty")).to_be_hidden()

    # And deleted elsewhere, it goes, also from the page that showed it.
    await entry.locator(".tree-course-item").click()
    await expect(page.locator(".course-page")).to_be_visible()
    await live.services.runner.delete_course(created["course_id"])
    await expect(entry).to_have_count(0)
    await expect(page.locator(".missing-page")).to_be_visible()
    assert await page.evaluate("window.__sameDocument") is True
