"""A server with an API token: the page asks for it, then works as usual until signed out.

Chromium logs every 401 it receives in the console. Each test allows exactly the 401s it
provokes (the one request that finds the page signed out, a wrong token, a refused
stream) and counts the requests besides, so that a page knocking again and again on a
locked door fails the test rather than hiding among allowed messages.
"""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import TEST_POLL_MS, StartLive, Ui

TOKEN = "correct-horse-battery-staple"
# Fires every timer the page set for the next minute: reconnects, polls, retries.
A_MINUTE_MS = 60_000


def api_requests(ui: Ui, since: int = 0) -> list[str]:
    """The method and path of every /api/ request the page made, from the `since`th request."""
    return [
        f"{r.method} {r.url.split('/api/', 1)[1].split('?', 1)[0]}"
        for r in ui.requests[since:]
        if "/api/" in r.url
    ]


async def open_page(ui: Ui, url: str, *, polling: bool = False) -> None:
    """Load the page on a fake clock that the test may run ahead (see `quiet_for_a_minute`)."""
    config = f"window.coursegenConfig = {{pollInterval: {TEST_POLL_MS}}};"
    if polling:
        config += "delete window.EventSource;"
    await ui.page.clock.install()
    await ui.page.add_init_script(config)
    await ui.page.goto(url)


async def quiet_for_a_minute(ui: Ui) -> None:
    """A minute of the page's timers passes, and it asks the server nothing."""
    before = len(ui.requests)
    await ui.page.clock.run_for(A_MINUTE_MS)
    # A request of our own, after any the timers started: once it is seen, so are they.
    async with ui.page.expect_request("**/favicon.svg"):
        await ui.page.evaluate("fetch('favicon.svg', {cache: 'no-store'})")
    assert api_requests(ui, before) == []


async def expect_signed_out(page: Page) -> None:
    panel = page.get_by_role("region", name="Sign in")
    await expect(panel).to_be_visible()
    await expect(page.get_by_label("API token")).to_be_focused()
    # Nothing of the page is left to use: no form, no tree, no course actions.
    for hidden in ("#generate-form", "#tree", "#main", "#live-status", "#sign-out"):
        await expect(page.locator(hidden)).to_be_hidden()
    await expect(page).to_have_title("Sign in · coursegen")


async def sign_in(page: Page, token: str) -> None:
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def test_the_page_asks_for_the_token_and_then_works_live(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(api_token=TOKEN)
    fake.lesson_delay = 0.2
    page = ui.page
    ui.allow(r"status of 401 .*/api/(health|session)\)$")
    await open_page(ui, live.url)

    # One request found the page signed out; then it waits for the token, asking nothing.
    await expect_signed_out(page)
    assert api_requests(ui) == ["GET health"]
    await quiet_for_a_minute(ui)
    await ui.shot("panel")

    # A wrong token: the server's words next to the field, which is ready to be typed over.
    await sign_in(page, "not-the-token")
    error = page.locator("#signin-error")
    await expect(error).to_have_text("Could not sign in: that is not this server's API token")
    await expect(page.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_label("API token")).to_be_focused()
    await expect(page.locator("#generate-form")).to_be_hidden()
    await ui.shot("error")

    # The right one: the page loads as on a fresh start, and follows the stream.
    await sign_in(page, TOKEN)
    await expect(page.get_by_role("region", name="Sign in")).to_be_hidden()
    await expect(page.locator("#live-status")).to_have_attribute("data-mode", "stream")
    await expect(page.locator("#tree-empty")).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page).to_have_title("coursegen")

    # The course fills in through the stream: the cookie went with the EventSource.
    course_id = await ui.generate("Knots", lessons=3)
    entry = ui.course(course_id)
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(3)
    await expect(page.locator("#notices .notice")).to_contain_text("All 3 lessons ready")
    await expect(page.locator("#live-status")).to_have_attribute("data-mode", "stream")
    assert len(ui.streams()) == 1
    assert api_requests(ui).count("GET courses") == 1  # never polled
    await ui.shot("signed-in")

    # A reload keeps the session: no sign-in, no 401, the course is there.
    before = len(ui.requests)
    await page.reload()
    await expect(page.locator("#live-status")).to_have_attribute("data-mode", "stream")
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(3)
    await expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    await expect(page.get_by_role("region", name="Sign in")).to_be_hidden()
    answers = [await r.response() for r in ui.requests[before:] if "/api/" in r.url]
    assert answers and all(a is not None and a.status != 401 for a in answers)

    await sign_out_and_check(ui, live.url)


async def test_without_eventsource_it_polls_once_signed_in(
    ui: Ui, start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(api_token=TOKEN)
    fake.lesson_delay = 0.2
    page = ui.page
    ui.allow(r"status of 401 .*/api/health\)$")
    await open_page(ui, live.url, polling=True)
    await expect_signed_out(page)
    assert api_requests(ui) == ["GET health"]
    await quiet_for_a_minute(ui)

    await sign_in(page, TOKEN)
    status = page.locator("#live-status")
    await expect(status).to_have_attribute("data-mode", "polling")
    course_id = await ui.generate("Knots", lessons=3)
    entry = ui.course(course_id)
    await expect(entry.locator('.tree-lesson[data-status="complete"]')).to_have_count(3)
    await expect(page.locator("#notices .notice")).to_contain_text("All 3 lessons ready")
    await expect(status).to_have_attribute("data-mode", "polling")
    assert ui.streams() == []

    await sign_out_and_check(ui, live.url)


async def sign_out_and_check(ui: Ui, url: str) -> None:
    """Sign out: the panel is back, the session is gone, and the page stops asking."""
    page = ui.page
    await page.get_by_role("button", name="Sign out").click()
    await expect_signed_out(page)
    await expect(page.locator("#tree .tree-course")).to_have_count(0)  # forgotten, not hidden
    await expect(page.locator("#notices .notice")).to_have_count(0)
    assert [c["name"] for c in await page.context.cookies()] == []
    # The browser's API calls are refused now (asked outside the page: no console noise).
    answer = await page.request.get(f"{url}/api/courses")
    assert answer.status == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    # No stream left open, no polling: a minute passes without a request.
    await quiet_for_a_minute(ui)


async def test_a_stream_refused_for_want_of_the_token_signs_the_page_out(
    ui: Ui, start_live: StartLive
) -> None:
    live = await start_live(api_token=TOKEN)
    page = ui.page
    await open_page(ui, live.url)
    ui.allow(r"status of 401 .*/api/(health|events)")
    await sign_in(page, TOKEN)
    status = page.locator("#live-status")
    await expect(status).to_have_attribute("data-mode", "stream")

    # The session ends while the stream is open (it expired, or the server's token
    # changed); then the server closes its streams, as when it restarts, and the
    # browser's own reconnect is refused.
    await page.context.clear_cookies()
    before = len(ui.requests)
    live.services.streams_closing.set()

    # A 401, not a flaky network: one refused stream, one request to tell why, and the
    # page asks for the token, with no further reconnect and no polling.
    await expect_signed_out(page)
    assert api_requests(ui, before) == ["GET events", "GET health"]
    await quiet_for_a_minute(ui)


async def test_signing_out_in_one_tab_signs_out_the_others(ui: Ui, start_live: StartLive) -> None:
    live = await start_live(api_token=TOKEN)
    page = ui.page
    ui.allow(r"status of 401 .*/api/health\)$")
    await open_page(ui, live.url)
    await sign_in(page, TOKEN)
    await expect(page.locator("#live-status")).to_have_attribute("data-mode", "stream")

    # Another tab of the same browser: signed in already, by the shared cookie.
    other = await page.context.new_page()
    other.on("console", ui._console)
    other.on("pageerror", ui._page_error)
    await other.goto(live.url)
    await expect(other.locator("#live-status")).to_have_attribute("data-mode", "stream")
    before = len(ui.requests)
    await other.get_by_role("button", name="Sign out").click()
    await expect_signed_out(other)

    # This tab closes its stream and asks for the token at once, without a 401 to tell it.
    await expect_signed_out(page)
    assert api_requests(ui, before) == []
    await other.close()


async def test_without_a_token_there_is_no_sign_in_anywhere(ui: Ui, start_live: StartLive) -> None:
    live = await start_live()
    page = ui.page
    await ui.open(live.url)
    await expect(page.locator("#tree-empty")).to_be_visible()
    await expect(page.locator("#signin")).to_be_hidden()
    await expect(page.locator("#sign-out")).to_be_hidden()
    await expect(page.locator("#generate-form")).to_be_visible()
    # And the server agrees: sign-in is off.
    async with httpx.AsyncClient(base_url=live.url) as client:
        answer = await client.post("/api/session", json={"token": "anything"})
    assert answer.status_code == 404
