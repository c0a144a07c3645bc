"""When the event stream keeps failing, the page polls instead, and says so."""

from __future__ import annotations

import json

from playwright.async_api import Route, expect

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import StartLive, Ui


async def test_a_failing_stream_falls_back_to_polling_and_everything_still_updates(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.lesson_delay = 0.3
    page = ui.page

    async def refuse(route: Route) -> None:
        # What a proxy that cannot stream might answer.
        body = json.dumps({"error": "streaming is not available here"})
        await route.fulfill(status=503, content_type="application/json", body=body)

    await page.route("**/api/events**", refuse)
    # Chromium reports each refused stream in the console; they are this test's premise.
    ui.allow(r"status of 503 .*/api/events")
    await page.add_init_script("window.coursegenConfig = {pollInterval: 300};")
    await page.goto(live.url)
    status = page.locator("#live-status")
    await expect(status).to_have_attribute("data-mode", "polling")
    await expect(status).to_have_text("Live stream unavailable: checking every 0.3 s")
    # A few attempts, then it stopped trying (it tries again only after 30 s).
    attempts = len(ui.streams())
    assert attempts == 3

    course_id = await ui.generate("Knots", lessons=3)
    entry = ui.course(course_id)
    await expect(entry.locator("progress")).to_have_attribute("value", "100")
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(3)
    await expect(page.locator("#notices .notice")).to_contain_text("All 3 lessons ready")
    await ui.shot("polling")
    assert len(ui.streams()) == attempts
