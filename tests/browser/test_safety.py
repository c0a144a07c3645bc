"""Hostile model output and topics are shown as harmless text, and nothing runs."""

from __future__ import annotations

from playwright.async_api import expect

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import StartLive, Ui, lesson_ids

TITLE = '<img src=x onerror="window.__pwned = 1">Knots & <b>bows</b>'
DESCRIPTION = "<script>window.__pwned = 2</script>A course <svg onload=alert(1)>"
LESSON = '<script>window.__pwned = 3</script>Lesson 1: <a href="javascript:alert(1)">ties</a>'
TOPIC = "<img src=y onerror=alert(1)> knots"
CONTENT = """# Ties <script>window.__pwned = 4</script>

<img src=x onerror="window.__pwned = 5">

[click me](javascript:window.__pwned=6)

<a href="javascript:alert(7)">raw link</a>

![picture](javascript:alert(8))

<iframe src="javascript:alert(9)"></iframe>

Plain text after all that.
"""

# Anything that could run: scripts, frames, event handler attributes, javascript: URLs.
# The page's own scripts are the app module and the two vendored Markdown libraries.
ACTIVE_PARTS = """() => {
  const own = ["/js/app.js", "/vendor/markdown-it-14.3.3.min.js", "/vendor/purify-3.5.0.min.js"];
  const found = [];
  for (const el of document.querySelectorAll("*")) {
    const tag = el.tagName;
    if (["IFRAME", "OBJECT", "EMBED"].includes(tag)) found.push(el.outerHTML);
    if (tag === "SCRIPT" && !own.some((path) => el.src === location.origin + path)) {
      found.push(el.outerHTML);
    }
    for (const attr of el.attributes) {
      const value = attr.value.replace(/\\s/g, "").toLowerCase();
      if (attr.name.startsWith("on") || value.startsWith("javascript:")) found.push(el.outerHTML);
    }
  }
  return found;
}"""


async def test_hostile_output_is_shown_as_text_and_never_runs(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.outline = {
        "title": TITLE,
        "description": DESCRIPTION,
        "lessons": [{"title": LESSON, "description": "<b onmouseover=alert(1)>hover</b>"}],
    }
    fake.lesson_text = lambda title: CONTENT
    page = ui.page
    await ui.open(live.url)
    course_id = await ui.generate(TOPIC)
    [lesson_id] = await lesson_ids(live, course_id)

    # Titles and topics are text: the markup shows literally, in the tree and on the page.
    await expect(ui.course(course_id).locator(".tree-course-item .tree-label")).to_have_text(TITLE)
    await expect(page.locator(".course-page h1")).to_have_text(TITLE)
    await expect(page.locator(".course-page .description")).to_have_text(DESCRIPTION)
    await expect(page.locator(".course-page .eyebrow")).to_have_text(f"Course on {TOPIC}")
    await expect(ui.lesson(lesson_id)).to_have_attribute("data-status", "complete")

    await ui.lesson(lesson_id).get_by_role("treeitem").click()
    body = page.locator(".lesson-body")
    await expect(page.locator(".lesson-page h1.page-title")).to_have_text(LESSON)
    await expect(body).to_contain_text("Plain text after all that.")
    # The model's raw HTML is escaped by the server's renderer: harmless, visible text.
    await expect(body.locator("h1")).to_have_text("Ties <script>window.__pwned = 4</script>")
    await expect(body).to_contain_text('<img src=x onerror="window.__pwned = 5">')
    # Its javascript: links are not links at all, only their text.
    await expect(body).to_contain_text("[click me](javascript:window.__pwned=6)")
    await expect(body.locator("a, img, iframe, script")).to_have_count(0)
    await ui.shot("lesson")

    assert await page.evaluate(ACTIVE_PARTS) == []
    assert await page.evaluate("window.__pwned") is None
    # No dialog and no console error either (a CSP refusal would be one): see the fixture.
