"""Authoring (SPEC section 9) as a person does it: course options, regenerating with
instructions, versions, hand edits, outline edits followed live, and quizzes."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from playwright.async_api import Locator, Page, Request, ViewportSize, expect

from coursegen.providers.demo import DemoProvider
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import StartLive, Ui, generate_via_api, lesson_ids, settle
from tests.browser.test_markdown import canonical
from tests.conftest import Live

PHONE: ViewportSize = {"width": 390, "height": 844}
HAND_WRITTEN = "## Knots, edited\n\nA *hand-written* text."
# The demo's lesson titles for a course on Knots, in order.
DEMO_TITLES = [
    "What Knots is and why it matters",
    "The core vocabulary of Knots",
    "First steps with Knots",
]


async def get(live: Live, path: str) -> Any:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def post(live: Live, path: str) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        response = await client.post(path)
    assert response.status_code == 202, response.text


async def demo_course(start_live: StartLive, lessons: int, delay: float = 0.05) -> tuple[Live, int]:
    """A server on the demo provider with one finished course on Knots (quizzes and all)."""
    live = await start_live(provider=DemoProvider(delay=delay))
    created = await generate_via_api(live, "Knots", lessons=lessons)
    await settle(live, created["job_id"])
    return live, created["course_id"]


async def open_lesson(ui: Ui, live: Live, course_id: int, lesson_id: int) -> None:
    await ui.open(live.url, f"/#/courses/{course_id}/lessons/{lesson_id}")
    await expect(ui.page.locator(f'.lesson-page[data-lesson-id="{lesson_id}"]')).to_be_visible()


async def phone_shot(ui: Ui, state: str) -> None:
    """A screenshot on a phone's screen, then back to the wide one."""
    page = ui.page
    wide = page.viewport_size
    assert wide is not None
    await page.set_viewport_size(PHONE)
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await ui.shot(f"{state}-phone")
    await page.set_viewport_size(wide)


def sources(rows: Locator) -> Any:
    return rows.evaluate_all("(rows) => rows.map((row) => row.dataset.source)")


# -- course options -----------------------------------------------------------------------


async def test_course_options_are_sent_shown_and_remembered(ui: Ui, start_live: StartLive) -> None:
    live = await start_live(provider=DemoProvider(delay=0.01))
    page = ui.page
    await ui.open(live.url)
    form = page.locator("#generate-form")

    # Folded away: the simple path is still a topic and a click.
    level = form.get_by_label("Level")
    await expect(level).to_be_hidden()
    await form.get_by_text("More options").click()
    await expect(level).to_have_value("beginner")
    await expect(form.get_by_label("Language")).to_have_value("English")
    await expect(form.get_by_label("Quizzes")).to_be_checked()
    await level.select_option("advanced")
    await form.get_by_label("Language").fill("Deutsch")
    instructions = "For sailors; knots that hold at sea."
    await form.get_by_label("Instructions").fill(instructions)
    await expect(form.locator("#instructions-count")).to_have_text(f"{len(instructions)}/2000")
    await form.get_by_label("Quizzes").uncheck()
    await ui.shot("options")
    await phone_shot(ui, "options")

    await form.get_by_label("Topic").fill("Knots")
    await form.locator("#lessons").fill("2")
    async with page.expect_request(lambda r: r.url.endswith("/api/courses/generate")) as asked:
        await form.get_by_role("button", name="Generate course").click()
    request: Request = await asked.value
    sent = json.loads(request.post_data or "{}")
    assert sent == {
        "topic": "Knots",
        "lessons": 2,
        "mode": "stream",
        "level": "advanced",
        "language": "Deutsch",
        "instructions": instructions,
        "quizzes": False,
    }
    await expect(page).to_have_url(re.compile(r"#/courses/\d+$"))
    course_id = int(page.url.rsplit("/", 1)[1])

    # Shown on the course page, as the API stored them.
    course_page = page.locator(".course-page")
    await expect(course_page.locator(".course-options")).to_have_text(
        "Written for: Advanced · Deutsch · no quizzes"
    )
    await expect(course_page.locator(".course-instructions")).to_have_text(
        f"Instructions: {instructions}"
    )
    course = await get(live, f"/api/courses/{course_id}")
    assert (course["level"], course["language"], course["quizzes"]) == (
        "advanced",
        "Deutsch",
        False,
    )
    assert course["instructions"] == instructions
    await ui.shot("course-options")
    await phone_shot(ui, "course-options")

    # The demo's lesson text says what it was asked for; without quizzes there is none.
    first = course["lessons"][0]["id"]
    await ui.lesson(first).get_by_role("treeitem").click()
    body = page.locator(".lesson-body")
    await expect(body).to_contain_text(
        f"Asked for: advanced level, in Deutsch; course instructions: “{instructions}”."
    )
    await expect(page.locator(".lesson-page .quiz")).to_be_hidden()

    # Remembered: after a reload the form asks the same way, and says so while folded.
    await page.reload()
    await expect(page.locator("#live-status")).to_have_attribute("data-mode", "stream")
    await expect(level).to_be_hidden()
    await expect(form.locator("#options-summary")).to_have_text(
        ": Advanced · Deutsch · no quizzes · with instructions"
    )
    await form.get_by_text("More options").click()
    await expect(level).to_have_value("advanced")
    await expect(form.get_by_label("Language")).to_have_value("Deutsch")
    await expect(form.get_by_label("Instructions")).to_have_value(instructions)
    await expect(form.get_by_label("Quizzes")).not_to_be_checked()

    # A language the server would refuse is refused here, next to the form.
    await form.get_by_label("Language").fill("D")
    await form.get_by_label("Topic").fill("Sourdough")
    await form.get_by_role("button", name="Generate course").click()
    await expect(page.locator("#form-error")).to_have_text(
        "The language needs 2 to 40 characters, e.g. English or pt-BR."
    )
    await expect(form.get_by_label("Language")).to_be_focused()
    await expect(form.get_by_label("Language")).to_have_attribute("aria-invalid", "true")


# -- regenerating with instructions -----------------------------------------------------


async def test_regenerate_sends_its_instructions_for_that_version_only(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    created = await generate_via_api(live, "Knots", lessons=2)
    await settle(live, created["job_id"])
    first, _ = await lesson_ids(live, created["course_id"])
    page = ui.page
    await open_lesson(ui, live, created["course_id"], first)
    body = page.locator(".lesson-body")
    await expect(body.locator("h1")).to_have_text("Lesson 1: Knots fundamentals")

    # The button opens a small form; Cancel closes it and nothing is sent.
    button = page.get_by_role("button", name="Regenerate this lesson")
    await button.click()
    await expect(button).to_have_attribute("aria-expanded", "true")
    form = page.locator(".regenerate-form")
    field = form.get_by_label("Instructions for this version")
    await expect(field).to_be_focused()
    await expect(field).to_have_attribute("placeholder", re.compile("more examples"))
    await form.get_by_role("button", name="Cancel").click()
    await expect(form).to_be_hidden()
    await expect(button).to_be_focused()
    assert len(fake.lesson_calls("Lesson 1")) == 1

    await button.click()
    await field.fill("More examples, please")
    await ui.shot("regenerate")
    await form.get_by_role("button", name="Regenerate", exact=True).click()
    await expect(form).to_be_hidden()
    await expect(page.locator(".lesson-said")).to_have_text("Writing it again…")
    # Its job runs again, to the end (the new text's quiz included), and says so.
    await expect(page.locator("#notices .notice")).to_contain_text("All 2 lessons ready")
    await expect(page.locator(".lesson-page")).to_have_attribute("data-status", "complete")
    await expect(body.locator("h1")).to_have_text("Lesson 1: Knots fundamentals")

    # The model was asked for it in that call only.
    calls = fake.lesson_calls("Lesson 1")
    assert len(calls) == 2
    asked = "Instructions for this version of the lesson: More examples, please"
    assert asked in json.dumps(calls[1].body, ensure_ascii=False)
    assert asked not in json.dumps(calls[0].body, ensure_ascii=False)
    versions = await get(live, f"/api/lessons/{first}/versions")
    assert [v["instructions"] for v in versions["versions"]] == ["More examples, please", None]


# -- versions -----------------------------------------------------------------------------


async def test_versions_show_generate_edit_regenerate_restore_and_restore_works(
    ui: Ui, start_live: StartLive
) -> None:
    live, course_id = await demo_course(start_live, lessons=1)
    [lesson_id] = await lesson_ids(live, course_id)
    page = ui.page
    await open_lesson(ui, live, course_id, lesson_id)
    body = page.locator(".lesson-body")
    await expect(body).to_contain_text("Asked for: beginner level, in English.")

    # Edited by hand.
    await page.get_by_role("button", name="Edit lesson").click()
    editor = page.locator(".editor")
    text = editor.get_by_label("Text (Markdown)")
    await expect(text).to_have_value(re.compile(f"^## {DEMO_TITLES[0]}"))
    await text.fill(HAND_WRITTEN)
    await editor.get_by_role("button", name="Save changes").click()
    await expect(editor).to_be_hidden()
    await expect(body.locator("h2")).to_have_text("Knots, edited")

    # Written again, shorter.
    await page.get_by_role("button", name="Regenerate this lesson").click()
    await page.locator(".regenerate-form").get_by_label("Instructions").fill("shorter")
    await page.get_by_role("button", name="Regenerate", exact=True).click()
    await expect(body).to_contain_text("for this version: “shorter”")

    # The versions, newest first: how each came about, with which instructions.
    await page.get_by_role("button", name="Versions").click()
    panel = page.locator(".versions")
    await expect(panel.get_by_role("heading", name="Versions")).to_be_focused()
    rows = panel.locator(".version-row")
    await expect(rows).to_have_count(3)
    assert await sources(rows) == ["generated", "edited", "generated"]
    await expect(rows.nth(0)).to_contain_text("Version 3 Generated (the current text)")
    await expect(rows.nth(0).locator(".version-instructions")).to_have_text("Asked for: “shorter”")
    await expect(rows.nth(1)).to_contain_text("Version 2 Edited by hand")
    await expect(rows.nth(1).locator(".version-length")).to_have_text(
        f" · {len(HAND_WRITTEN)} characters"
    )
    await expect(rows.nth(1).locator(".version-instructions")).to_be_hidden()
    await expect(rows.nth(2)).to_contain_text("Version 1 Generated")

    # Any version can be read, rendered; the current one cannot be restored.
    await rows.nth(0).get_by_role("button", name="Version 3").click()
    view = panel.locator(".version-view")
    await expect(view.get_by_role("heading", name="Version 3")).to_be_focused()
    await expect(view.get_by_role("button", name="Restore this version")).to_be_disabled()
    await expect(view.locator(".version-note")).to_have_text("This is the lesson's text now.")
    await rows.nth(1).get_by_role("button", name="Version 2").click()
    await expect(view.get_by_role("heading", name="Version 2")).to_be_visible()
    await expect(view.locator(".version-text h2")).to_have_text("Knots, edited")
    await expect(view.locator(".version-text em")).to_have_text("hand-written")
    await expect(rows.nth(1)).to_have_attribute("aria-current", "true")
    await ui.shot("versions")
    await phone_shot(ui, "versions")

    # Restored: the lesson's text again, as a new version.
    await view.get_by_role("button", name="Restore this version").click()
    await expect(body.locator("h2")).to_have_text("Knots, edited")
    await expect(rows).to_have_count(4)
    assert await sources(rows) == ["restored", "generated", "edited", "generated"]
    await expect(panel.locator(".versions-status")).to_have_text(
        "Version 2 is the lesson's text again, as version 4."
    )
    await expect(view).to_be_hidden()
    answer = await get(live, f"/api/lessons/{lesson_id}/versions")
    assert [v["source"] for v in answer["versions"]] == [
        "restored",
        "generated",
        "edited",
        "generated",
    ]
    lesson = await get(live, f"/api/lessons/{lesson_id}")
    assert lesson["content"] == HAND_WRITTEN


# -- hand edits ---------------------------------------------------------------------------

EDITED = """# Knots at sea

The **bowline** makes a *fixed* loop: see [the guide](https://example.com/knots).

- cleat hitch
- reef knot

```text
over, under, through
```

| Knot | Use |
|---|---|
| bowline | loop |

<script>window.__pwned = 1</script> [x](javascript:window.__pwned=2)
"""


async def test_the_editor_previews_markdown_as_the_lesson_shows_it_and_saves(
    ui: Ui, start_live: StartLive
) -> None:
    live, course_id = await demo_course(start_live, lessons=1)
    [lesson_id] = await lesson_ids(live, course_id)
    page = ui.page
    await open_lesson(ui, live, course_id, lesson_id)
    await expect(page.locator(".lesson-body")).to_be_visible()

    edit = page.get_by_role("button", name="Edit lesson")
    await edit.click()
    await expect(edit).to_have_attribute("aria-expanded", "true")
    editor = page.locator(".editor")
    await expect(editor.get_by_label("Title")).to_be_focused()
    await expect(editor.get_by_label("Title")).to_have_value(DEMO_TITLES[0])
    # While editing, the text shown is the editor's.
    await expect(page.locator(".lesson-body")).to_be_hidden()
    await editor.get_by_label("Title").fill("Knots for sailors")
    await editor.get_by_label("Description").fill("Bowline, cleat hitch and reef knot.")
    await editor.get_by_label("Text (Markdown)").fill(EDITED)

    # The preview follows, rendered and sanitised like model output.
    preview = editor.locator(".editor-preview")
    await expect(preview.locator("h1")).to_have_text("Knots at sea")
    await expect(preview.locator("strong")).to_have_text("bowline")
    await expect(preview.locator("li")).to_have_count(2)
    await expect(preview.locator("pre code")).to_contain_text("over, under, through")
    await expect(preview.locator("td").first).to_have_text("bowline")
    await expect(preview).to_contain_text("<script>window.__pwned = 1</script>")
    await expect(preview.locator("a")).to_have_count(1)
    await expect(preview.locator("a")).to_have_attribute("rel", "noopener noreferrer nofollow")
    await ui.shot("editor")

    # On a phone the text and its preview are tabs, worked with the arrow keys too.
    await page.set_viewport_size(PHONE)
    write, show = editor.get_by_role("tab", name="Write"), editor.get_by_role("tab", name="Preview")
    await expect(write).to_have_attribute("aria-selected", "true")
    await expect(editor.get_by_label("Text (Markdown)")).to_be_visible()
    await expect(preview).to_be_hidden()
    await write.focus()
    await page.keyboard.press("ArrowRight")
    await expect(show).to_be_focused()
    await expect(show).to_have_attribute("aria-selected", "true")
    await expect(preview).to_be_visible()
    await expect(editor.get_by_role("tabpanel")).to_contain_text("Knots at sea")
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    await ui.shot("editor-phone")
    await page.keyboard.press("ArrowLeft")
    await page.set_viewport_size({"width": 1280, "height": 860})
    await expect(preview).to_be_visible()
    await expect(editor.get_by_role("tab", name="Write")).to_be_hidden()
    preview_html = await preview.inner_html()

    await editor.get_by_role("button", name="Save changes").click()
    await expect(editor).to_be_hidden()
    await expect(page.locator(".lesson-said")).to_have_text("Saved your changes.")
    lesson_page = page.locator(".lesson-page")
    await expect(lesson_page.locator("h1.page-title")).to_have_text("Knots for sailors")
    await expect(lesson_page.locator("header .description")).to_have_text(
        "Bowline, cleat hitch and reef knot."
    )
    await expect(ui.lesson(lesson_id).locator(".tree-label")).to_have_text("1. Knots for sailors")
    body = page.locator(".lesson-body")
    await expect(body.locator("h1")).to_have_text("Knots at sea")
    # The server's HTML of the saved text is the markup the preview showed.
    assert canonical(await body.inner_html()) == canonical(preview_html)
    lesson = await get(live, f"/api/lessons/{lesson_id}")
    assert lesson["content"] == EDITED.strip()
    assert lesson["title"] == "Knots for sailors"
    assert await page.evaluate("window.__pwned") is None
    await ui.shot("edited")


async def test_editing_the_text_of_a_lesson_being_written_is_refused_and_says_why(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(concurrency=1)
    # The fake reads its delay per chunk: the lesson stays "generating" until let go.
    fake.lesson_delay = 8.0
    created = await generate_via_api(live, "Knots", lessons=1)
    [lesson_id] = await lesson_ids(live, created["course_id"])
    page = ui.page
    await open_lesson(ui, live, created["course_id"], lesson_id)
    lesson_page = page.locator(".lesson-page")
    await expect(lesson_page).to_have_attribute("data-status", "generating")

    # Its text is locked, and the editor says why; its title is not.
    await page.get_by_role("button", name="Edit lesson").click()
    editor = page.locator(".editor")
    text = editor.get_by_label("Text (Markdown)")
    await expect(editor.get_by_label("Title")).to_be_focused()
    await expect(text).not_to_be_editable()
    locked = editor.locator(".editor-locked")
    await expect(locked).to_have_text(
        re.compile("^The text cannot be edited while the lesson is being written")
    )
    await expect(text).to_have_accessible_description(re.compile("cannot be edited"))
    await ui.shot("locked")
    await editor.get_by_label("Title").fill("Knots, retitled while written")
    await editor.get_by_role("button", name="Save changes").click()
    await expect(lesson_page.locator("h1.page-title")).to_have_text("Knots, retitled while written")
    fake.lesson_delay = 0.0
    await expect(lesson_page).to_have_attribute("data-status", "complete")

    # Typed into while complete, then written again elsewhere: the server refuses the
    # text, and its reason is shown.
    await page.get_by_role("button", name="Edit lesson").click()
    await expect(text).to_be_editable()
    await text.fill("# My own text")
    fake.lesson_delay = 8.0
    await post(live, f"/api/lessons/{lesson_id}/retry")
    await expect(locked).to_be_visible()
    await expect(text).not_to_be_editable()
    await expect(text).to_have_value("# My own text")  # kept, to copy elsewhere
    ui.allow(r"status of 409 .*/api/lessons/\d+")
    await editor.get_by_role("button", name="Save changes").click()
    await expect(editor.get_by_role("alert")).to_have_text(
        re.compile(
            r"^Could not save: the lesson is (pending|generating): its text can be edited "
            r"once it has been written"
        )
    )
    await expect(editor).to_be_visible()
    fake.lesson_delay = 0.0
    await expect(lesson_page).to_have_attribute("data-status", "complete")
    # Written meanwhile: the editor unlocks.
    await expect(locked).to_be_hidden()
    await expect(text).to_be_editable()


# -- outline edits, followed live by another page --------------------------------------


async def second_page(ui: Ui, url: str, path: str) -> Ui:
    """Another tab on the same server, whose problems fail the test like the first's."""
    other = Ui(await ui.page.context.new_page(), f"{ui.name}-other", problems=ui.problems)
    other.page.on("console", other._console)
    other.page.on("pageerror", other._page_error)
    other.page.on("dialog", other._dialog)
    await other.open(url, path)
    return other


async def titles_are(page: Page, titles: list[str]) -> None:
    """The course page's lessons, and the tree's, in this order."""
    await expect(page.locator(".course-page .lesson-link")).to_have_text(titles)
    numbered = [f"{n}. {title}" for n, title in enumerate(titles, start=1)]
    await expect(page.locator("#tree .tree-lesson .tree-label")).to_have_text(numbered)


async def test_outline_edits_change_the_tree_and_another_page_follows_them_live(
    ui: Ui, start_live: StartLive
) -> None:
    live, course_id = await demo_course(start_live, lessons=3)
    page = ui.page
    await ui.open(live.url, f"/#/courses/{course_id}")
    other = await second_page(ui, live.url, f"/#/courses/{course_id}")
    await titles_are(page, DEMO_TITLES)
    await titles_are(other.page, DEMO_TITLES)

    # Reading first: the tools show once asked for.
    toggle = page.get_by_role("button", name="Edit outline")
    rows = page.locator(".course-page .lesson-row")
    await expect(rows.first.get_by_role("button", name=re.compile("^Rename"))).to_be_hidden()
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-pressed", "true")

    # Add a lesson after the first.
    await page.get_by_role("button", name="Add a lesson").click()
    form = page.locator(".add-lesson")
    await expect(form.get_by_label("Title")).to_be_focused()
    await form.get_by_label("Title").fill("Knots at sea")
    await form.get_by_label("Description").fill("Bowline and cleat hitch.")
    await form.get_by_label("Place").select_option(label=f"After 1. {DEMO_TITLES[0]}")
    await ui.shot("outline-add")
    await form.get_by_role("button", name="Add lesson").click()
    added = [DEMO_TITLES[0], "Knots at sea", *DEMO_TITLES[1:]]
    await titles_are(page, added)
    await expect(page.locator(".outline-status")).to_have_text(
        "Added “Knots at sea” as lesson 2: it is being written."
    )
    await titles_are(other.page, added)
    new_row = other.page.locator(".course-page .lesson-row").nth(1)
    await expect(new_row.locator(".lesson-description")).to_have_text("Bowline and cleat hitch.")
    await expect(new_row).to_have_attribute("data-status", "complete")  # written like the rest
    course = await get(live, f"/api/courses/{course_id}")
    new_id = course["lessons"][1]["id"]
    await expect(other.lesson(new_id)).to_have_attribute("data-status", "complete")

    # Move it down: the focus stays on its button.
    row = page.locator(f'.course-page .lesson-row[data-lesson-id="{new_id}"]')
    down = row.get_by_role("button", name="Down “Knots at sea”")
    await down.click()
    moved = [DEMO_TITLES[0], DEMO_TITLES[1], "Knots at sea", DEMO_TITLES[2]]
    await titles_are(page, moved)
    await expect(down).to_be_focused()
    await titles_are(other.page, moved)
    # To the end: Down is no more, Up takes the focus.
    await page.keyboard.press("Enter")
    last = [*DEMO_TITLES, "Knots at sea"]
    await titles_are(page, last)
    await expect(down).to_be_disabled()
    await expect(row.get_by_role("button", name="Up “Knots at sea”")).to_be_focused()
    await titles_are(other.page, last)

    # Rename it.
    await row.get_by_role("button", name="Rename “Knots at sea”").click()
    rename = row.locator(".row-form")
    await expect(rename.get_by_label("Title")).to_be_focused()
    await rename.get_by_label("Title").fill("Knots on a boat")
    await rename.get_by_role("button", name="Save").click()
    renamed = [*DEMO_TITLES, "Knots on a boat"]
    await titles_are(page, renamed)
    await titles_are(other.page, renamed)
    await ui.shot("outline-edit")
    await phone_shot(ui, "outline-edit")

    # Remove it, asked once more; "Keep it" keeps it.
    remove = row.get_by_role("button", name=re.compile("^Remove “Knots on a boat”"))
    await remove.click()
    confirm = row.get_by_role("group", name="Confirm removal")
    await expect(confirm).to_contain_text("Remove “Knots on a boat”?")
    await expect(confirm.get_by_role("button", name="Remove lesson")).to_be_focused()
    await confirm.get_by_role("button", name="Keep it").click()
    await expect(confirm).to_be_hidden()
    await expect(remove).to_be_focused()
    await remove.click()
    await confirm.get_by_role("button", name="Remove lesson").click()
    await titles_are(page, DEMO_TITLES)
    await titles_are(other.page, DEMO_TITLES)
    await expect(other.lesson(new_id)).to_have_count(0)
    course = await get(live, f"/api/courses/{course_id}")
    assert [(x["position"], x["title"]) for x in course["lessons"]] == list(
        enumerate(DEMO_TITLES, start=1)
    )


# -- quizzes ------------------------------------------------------------------------------


async def test_a_quiz_is_answered_with_the_keyboard_alone_and_checked(
    ui: Ui, start_live: StartLive
) -> None:
    live, course_id = await demo_course(start_live, lessons=1)
    [lesson_id] = await lesson_ids(live, course_id)
    page = ui.page
    await open_lesson(ui, live, course_id, lesson_id)
    quiz = page.get_by_role("region", name="Quiz")
    questions = quiz.get_by_role("group")
    await expect(questions).to_have_count(4)
    await expect(questions.nth(0)).to_have_accessible_name(
        re.compile(r"^Question 1 of 4\s*What should come first when you apply Knots\?$")
    )

    # From the page's heading, Tab reaches the first question; arrows pick within one.
    await page.locator(".lesson-page h1.page-title").focus()
    await page.keyboard.press("Tab")
    first = questions.nth(0).get_by_role("radio")
    await expect(first.nth(0)).to_be_focused()
    # Checking with a question unanswered says which, and goes there.
    await page.keyboard.press("Space")  # 1: "Be clear about the goal", right
    await page.keyboard.press("Tab")
    await page.keyboard.press("ArrowDown")  # 2: the second choice, right
    await expect(questions.nth(1).get_by_role("radio").nth(1)).to_be_checked()
    for _ in range(3):  # past question 3 and 4, to Check
        await page.keyboard.press("Tab")
    check = quiz.get_by_role("button", name="Check")
    await expect(check).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(quiz.get_by_role("alert")).to_have_text(
        "Answer questions 3 and 4 too, then check."
    )
    third = questions.nth(2).get_by_role("radio")
    await expect(third.nth(0)).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("ArrowDown")  # 3: the third choice, right
    await expect(third.nth(2)).to_be_checked()
    await page.keyboard.press("Tab")
    await page.keyboard.press("Space")  # 4: the first choice, wrong (it is the fourth)
    await page.keyboard.press("Tab")
    await expect(check).to_be_focused()
    await page.keyboard.press("Enter")

    # Each answer marked, with its explanation, and the score, announced.
    score = quiz.get_by_role("status")
    await expect(score).to_have_text("3 of 4 right Wrong: question 4.")
    await expect(score.locator(".quiz-score-count")).to_have_text("3 of 4 right")
    await expect(score).to_have_attribute("aria-live", "polite")
    results = await questions.evaluate_all("(qs) => qs.map((q) => q.dataset.result)")
    assert results == ["right", "right", "right", "wrong"]
    await expect(questions.nth(0).locator(".quiz-feedback")).to_have_text(
        "✓ Right. The lesson starts every piece of work from the goal: it decides everything else."
    )
    await expect(questions.nth(3).locator(".quiz-feedback")).to_contain_text(
        "✗ Not quite: the answer is “Covers the problem Knots solves and where it is used.”."
    )
    await expect(questions.nth(3)).to_have_accessible_description(
        re.compile("That is what the outline says this lesson teaches.")
    )
    await expect(
        questions.nth(3).get_by_role("radio", name=re.compile("your answer, wrong"))
    ).to_be_checked()
    await expect(
        questions.nth(3).get_by_role("radio", name=re.compile("the right answer"))
    ).to_have_count(1)
    again = quiz.get_by_role("button", name="Try again")
    await expect(again).to_be_focused()
    await ui.shot("quiz-checked")
    await phone_shot(ui, "quiz-checked")

    # Try again: back to the start, answers cleared.
    await page.keyboard.press("Enter")
    await expect(first.nth(0)).to_be_focused()
    await expect(quiz.get_by_role("radio", checked=True)).to_have_count(0)
    await expect(score).to_have_text("")
    await expect(check).to_be_visible()
    # The focus ring is drawn around the whole answer.
    outline = await first.nth(0).evaluate(
        "(el) => getComputedStyle(el.closest('label')).outlineStyle"
    )
    assert outline == "solid"


async def test_a_quiz_is_said_to_be_written_then_a_failed_one_can_be_retried(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    # The first quiz call takes a while, then fails.
    fake.add_fault(kind="quiz", status=400, delay=3.0)
    created = await generate_via_api(live, "Knots", lessons=1)
    [lesson_id] = await lesson_ids(live, created["course_id"])
    page = ui.page
    await open_lesson(ui, live, created["course_id"], lesson_id)
    quiz = page.locator(".lesson-page .quiz")
    await expect(quiz.get_by_text("Quiz being written…")).to_be_visible()
    await expect(page.locator(".lesson-body h1")).to_have_text("Lesson 1: Knots fundamentals")
    await ui.shot("quiz-writing")

    failed = quiz.locator(".quiz-failed")
    await expect(failed).to_be_visible()
    await expect(failed).to_contain_text("The quiz could not be written:")
    await expect(quiz.get_by_text("Quiz being written…")).to_be_hidden()
    lesson = await get(live, f"/api/lessons/{lesson_id}")
    assert lesson["quiz_status"] == "error"
    await expect(failed).to_contain_text(lesson["quiz_error"])
    await ui.shot("quiz-failed")
    await quiz.get_by_role("button", name="Retry quiz").click()
    await expect(quiz.get_by_role("group").first).to_be_visible()
    await expect(failed).to_be_hidden()
    lesson = await get(live, f"/api/lessons/{lesson_id}")
    assert lesson["quiz_status"] == "complete"
    await expect(quiz.get_by_role("group")).to_have_count(len(lesson["quiz"]))
    assert len(fake.quiz_calls()) == 2
