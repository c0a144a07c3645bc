"""Addresses, the demo banner, the page's headers, keyboard use and screen widths."""

from __future__ import annotations

import re

from playwright.async_api import expect

from coursegen.providers.demo import DemoProvider
from tests.browser.conftest import StartLive, Ui, generate_via_api, lesson_ids, settle


async def two_demo_courses(start_live: StartLive) -> tuple[str, list[dict[str, int]]]:
    """A server on the demo provider with two finished courses, oldest first."""
    live = await start_live(provider=DemoProvider(delay=0.01))
    courses = []
    for topic in ("Knots", "Sourdough baking"):
        created = await generate_via_api(live, topic, lessons=3)
        await settle(live, created["job_id"])
        ids = await lesson_ids(live, created["course_id"])
        courses.append({"id": created["course_id"], "lesson": ids[1]})
    return live.url, courses


async def test_every_course_and_lesson_has_an_address_that_survives_reload_and_back(
    ui: Ui, start_live: StartLive
) -> None:
    url, (older, _) = await two_demo_courses(start_live)
    page = ui.page
    response = await page.goto(url)
    assert response is not None
    headers = response.headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    await expect(page.locator("#live-status")).to_have_attribute("data-mode", "stream")

    # Demo content says so, and the newest course comes first.
    await expect(page.locator("#demo-banner")).to_be_visible()
    await expect(page.locator("#demo-banner")).to_contain_text("Demo mode")
    titles = page.locator("#tree .tree-course-item .tree-label")
    await expect(titles).to_have_text([re.compile("^Sourdough baking"), re.compile("^Knots")])

    await ui.course(older["id"]).locator(".tree-course-item").click()
    await expect(page).to_have_url(f"{url}/#/courses/{older['id']}")
    await page.locator(".lesson-list a").nth(1).click()
    lesson_url = f"{url}/#/courses/{older['id']}/lessons/{older['lesson']}"
    await expect(page).to_have_url(lesson_url)
    heading = page.locator(".lesson-body h2").first
    await expect(heading).to_have_text("The core vocabulary of Knots")
    await expect(page).to_have_title(re.compile("^The core vocabulary of Knots · Knots"))

    await page.reload()
    await expect(page).to_have_url(lesson_url)
    await expect(heading).to_have_text("The core vocabulary of Knots")
    current = ui.lesson(older["lesson"]).get_by_role("treeitem")
    await expect(current).to_have_attribute("aria-current", "page")
    await ui.shot("lesson-after-reload")

    await page.go_back()
    await expect(page).to_have_url(f"{url}/#/courses/{older['id']}")
    await expect(page.locator(".course-page h1")).to_have_text(re.compile("^Knots"))
    await page.go_back()
    await expect(page.locator(".home-page")).to_be_visible()
    await page.go_forward()
    await page.go_forward()
    await expect(heading).to_have_text("The core vocabulary of Knots")

    # Not among the courses listed, it is asked for: the server's 404 says it is not there.
    ui.allow(r"status of 404 .*/api/courses/999\)$")
    await page.goto(f"{url}/#/courses/999")
    await expect(page.locator(".missing-page")).to_contain_text("does not exist")


async def test_the_tree_works_by_keyboard_and_the_page_fits_phone_and_wide_screens(
    ui: Ui, start_live: StartLive
) -> None:
    url, (older, newer) = await two_demo_courses(start_live)
    page = ui.page
    await ui.open(url)
    items = page.locator('#tree [role="treeitem"]')
    # Only an open course shows its lessons: none is open yet.
    await expect(items).to_have_count(2)
    # One stop in the tab order for the whole tree; the arrows do the rest.
    await expect(page.locator('#tree [role="treeitem"][tabindex="0"]')).to_have_count(1)
    # The skip link is the first stop, and it skips without leaving the page.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()
    await expect(page.locator(".home-page")).to_be_visible()
    await page.get_by_label("Lessons").focus()
    await page.keyboard.press("Tab")  # "More options"
    await page.keyboard.press("Tab")  # "Generate course"
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Search courses")).to_be_focused()
    await page.keyboard.press("Tab")
    newest = ui.course(newer["id"]).locator(".tree-course-item")
    await expect(newest).to_be_focused()

    await page.keyboard.press("ArrowRight")  # unfold: its lessons come
    await expect(newest).to_have_attribute("aria-expanded", "true")
    await expect(items).to_have_count(5)
    await page.keyboard.press("ArrowDown")
    await expect(ui.course(newer["id"]).locator(".tree-lesson-item").first).to_be_focused()
    await page.keyboard.press("ArrowLeft")  # from a lesson: up to its course
    await expect(newest).to_be_focused()
    await page.keyboard.press("ArrowLeft")  # on an open course: fold it
    await expect(newest).to_have_attribute("aria-expanded", "false")
    await expect(ui.course(newer["id"]).locator('[role="group"]')).to_be_hidden()
    await page.keyboard.press("ArrowDown")  # folded lessons are skipped
    older_item = ui.course(older["id"]).locator(".tree-course-item")
    await expect(older_item).to_be_focused()
    await page.keyboard.press("ArrowRight")
    await expect(ui.course(older["id"]).locator(".tree-lesson-item")).to_have_count(3)
    await page.keyboard.press("End")
    await expect(ui.course(older["id"]).locator(".tree-lesson-item").last).to_be_focused()
    await page.keyboard.press("Home")
    await expect(newest).to_be_focused()
    await page.keyboard.press("ArrowRight")  # unfold
    await expect(newest).to_have_attribute("aria-expanded", "true")
    await page.keyboard.press("ArrowRight")  # into it
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(
        re.compile(rf"#/courses/{newer['id']}/lessons/{newer['lesson']}$")
    )
    await expect(page.locator(".lesson-body h2").first).to_be_visible()
    await ui.shot("wide-lesson")

    # A phone: one column, the lesson first, nothing wider than the screen.
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(page.locator(".lesson-body h2").first).to_be_in_viewport()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await ui.shot("phone-lesson")
    # The list of courses is a tap away; an in-page anchor leaves the lesson in place.
    await page.get_by_role("link", name="Courses", exact=True).click()
    await expect(page.locator("#tree")).to_be_in_viewport()
    await expect(page.locator(".lesson-page")).to_be_attached()
    await page.goto(f"{url}/#/")
    await expect(page.get_by_label("Topic")).to_be_in_viewport()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    await ui.shot("phone-home")
    await page.emulate_media(color_scheme="dark")
    await ui.shot("phone-home-dark")
