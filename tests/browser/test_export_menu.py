"""The course page's Export menu: each format downloads as the API serves it."""

from __future__ import annotations

import httpx
from playwright.async_api import expect

from coursegen.providers.demo import DemoProvider
from tests.browser.conftest import StartLive, Ui, generate_via_api, settle

FORMATS = {
    "Markdown (.zip)": "-markdown.zip",
    "Web page (.html)": ".html",
    "SCORM 1.2 (.zip)": "-scorm12.zip",
    "Common Cartridge (.imscc)": ".imscc",
}


async def test_each_format_downloads_the_file_the_api_serves(ui: Ui, start_live: StartLive) -> None:
    live = await start_live(provider=DemoProvider(delay=0.01))
    created = await generate_via_api(live, "Knots", lessons=3)
    await settle(live, created["job_id"])
    course_id = created["course_id"]
    await ui.open(live.url, f"/#/courses/{course_id}")
    page = ui.page

    await page.locator(".export-menu > summary").click()
    panel = page.locator(".export-panel")
    await expect(panel).to_be_visible()
    await expect(panel.locator(".export-waiting")).to_be_hidden()
    await expect(panel.locator(".export-unwritten")).to_be_hidden()
    await ui.shot("open")

    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        for label, suffix in FORMATS.items():
            async with page.expect_download() as info:
                await panel.get_by_role("link", name=label).click()
            download = await info.value
            assert download.suggested_filename.endswith(suffix)
            assert download.suggested_filename.startswith("knots")
            path = await download.path()
            served = await client.get(
                f"/api/courses/{course_id}/export/{download.url.rsplit('/', 1)[1]}"
            )
            assert served.status_code == 200
            assert path.read_bytes() == served.content, label


async def test_a_course_being_written_says_when_it_can_be_exported(
    ui: Ui, start_live: StartLive
) -> None:
    # Slow enough that the course is still being written while the page looks at it.
    live = await start_live(provider=DemoProvider(delay=5), concurrency=1)
    created = await generate_via_api(live, "Knots", lessons=4)
    await ui.open(live.url, f"/#/courses/{created['course_id']}")
    page = ui.page
    await page.locator(".export-menu > summary").click()
    waiting = page.locator(".export-panel .export-waiting")
    await expect(waiting).to_have_text(
        "The course can be exported once it has been written (or its generation is cancelled)."
    )
    await expect(page.locator(".export-formats")).to_be_hidden()
    await ui.shot("running")

    # Cancelled with lessons unwritten: the files can be made, and say what is missing.
    await page.get_by_role("button", name="Cancel generation").click()
    await expect(page.locator(".export-formats")).to_be_visible()
    unwritten = page.locator(".export-unwritten")
    await expect(unwritten).to_contain_text("not written: the files list")
    await ui.shot("cancelled")
