"""The `scorm12` package's player against a real SCORM 1.2 runtime, in Chromium.

scorm-again (npm, pinned in tests/scorm/package-lock.json; `make test` installs it under
.cache/npm/) plays the LMS: a test page creates `window.API = new Scorm12API(...)` and
opens the extracted SCO in an iframe, as an LMS's player does. A learner reads every
lesson with Next and answers the quizzes; scorm-again's CMI data must then say what an
LMS would record. A second launch, given the first one's CMI data as an LMS gives it
back, resumes where the learner left off. scorm-again's log (every level) is kept, and
any warning or error in it, or any error code left, fails the test, as does any console
message, page error or dialog (the `ui` fixture), or a request outside the test's server.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import zipfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Frame, FrameLocator, expect
from starlette.applications import Starlette
from starlette.staticfiles import StaticFiles

from coursegen.domain import QuizQuestion
from coursegen.export import scorm
from coursegen.export.document import ExportCourse, ExportLesson
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.browser.conftest import Ui
from tests.conftest import Running
from tests.exporthelp import HOSTILE_LESSON, HOSTILE_TITLE
from tests.test_export_scorm import (
    export_scorm,
    full_course,
    made_course,
    quiz,
)

ROOT = Path(__file__).resolve().parents[2]
SCORM_AGAIN = ROOT / ".cache" / "npm" / "node_modules" / "scorm-again"
SCORM_AGAIN_VERSION = "3.4.3"

# The LMS's page: scorm-again as `window.API`, every log message kept, and the SCO in an
# iframe once the test launches it with the CMI data an LMS would hand back.
LMS_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>LMS</title>
<script src="scorm12.js"></script>
<script>
window.scormLog = [];
window.launch = function (cmi) {
  window.API = new Scorm12API({
    logLevel: 1,
    onLogMessage: function (level, message) { window.scormLog.push([level, String(message)]); },
  });
  if (cmi) window.API.loadFromJSON(cmi);
  var frame = document.createElement("iframe");
  frame.id = "sco";
  frame.style.width = "1100px";
  frame.style.height = "800px";
  frame.src = "sco/index.html";
  document.body.appendChild(frame);
};
// What an LMS would keep of the session once the SCO has gone.
window.unload = function () { document.getElementById("sco").src = "about:blank"; };
window.cmiData = function () { return JSON.parse(JSON.stringify(window.API.cmi)); };
</script></head><body></body></html>
"""

# scorm-again's log levels (LogLevelEnum): 1 debug, 2 info, 3 warn, 4 error.
WARN = 3


def test_scorm_again_is_the_pinned_version() -> None:
    installed = json.loads((SCORM_AGAIN / "package.json").read_text())
    locked = json.loads((ROOT / "tests" / "scorm" / "package-lock.json").read_text())
    assert installed["version"] == SCORM_AGAIN_VERSION, "run `make scorm-again`"
    assert locked["packages"]["node_modules/scorm-again"]["version"] == SCORM_AGAIN_VERSION


@asynccontextmanager
async def lms_server(package: bytes, root: Path) -> AsyncIterator[str]:
    """A loopback server of the LMS page, scorm-again and the extracted package under sco/."""
    (root / "sco").mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        archive.extractall(root / "sco")
    (root / "lms.html").write_text(LMS_PAGE)
    (root / "favicon.ico").write_bytes(b"")  # what a browser asks every server for
    (root / "scorm12.js").write_bytes((SCORM_AGAIN / "dist" / "scorm12.js").read_bytes())
    app = Starlette()
    app.mount("/", StaticFiles(directory=root))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def launch(ui: Ui, url: str, cmi: dict[str, Any] | None = None) -> FrameLocator:
    await ui.page.goto(f"{url}/lms.html")
    await ui.page.evaluate("cmi => window.launch(cmi)", cmi)
    sco = ui.page.frame_locator("#sco")
    await expect(sco.locator("html.player")).to_be_attached()
    return sco


async def unload(ui: Ui) -> dict[str, Any]:
    """End the session as an LMS does when the learner leaves; the CMI data it keeps."""
    await ui.page.evaluate("window.unload()")
    await ui.page.wait_for_function("window.API.isTerminated()")
    cmi: dict[str, Any] = await ui.page.evaluate("window.cmiData()")
    return cmi


async def runtime_problems(ui: Ui) -> list[Any]:
    """Warnings and errors scorm-again logged, and the error code it was left with."""
    log = await ui.page.evaluate("window.scormLog")
    problems = [entry for entry in log if entry[0] >= WARN]
    code = await ui.page.evaluate("String(window.API.lastErrorCode)")
    return problems if code == "0" else [*problems, f"lastErrorCode {code}"]


def calls(log: list[list[Any]], name: str) -> list[str]:
    return [message for _, message in log if name in message]


async def answer(quiz_form: Any, choices: list[int]) -> None:
    for number, choice in enumerate(choices):
        await (
            quiz_form.locator("fieldset.question").nth(number).locator("input").nth(choice).check()
        )
    await quiz_form.get_by_role("button", name="Check answers").click()


def same_origin(ui: Ui, url: str) -> list[str]:
    return [r.url for r in ui.requests if not r.url.startswith((url, "about:", "data:"))]


# -- reading the whole course, in scorm-again ----------------------------------------------


@pytest.mark.parametrize(
    ("wrong", "status", "raw"),
    [(1, "passed", "89"), (2, "failed", "78")],
    ids=["one-wrong-passes", "two-wrong-fails"],
)
async def test_reading_every_lesson_and_answering_the_quizzes_reports_the_score(
    ui: Ui,
    running: Running,
    fake: FakeAnthropic,
    tmp_path: Path,
    wrong: int,
    status: str,
    raw: str,
) -> None:
    fake.quiz = quiz((1, 0, 2))
    fake.add_fault(kind="lesson", match="Lesson 4", status=500)
    course = await made_course(running, lessons=4)
    package = await export_scorm(running, course["id"])
    written = [lesson for lesson in course["lessons"] if lesson["content_status"] == "complete"]
    assert len(written) == 3  # 9 questions: 8 right pass at 80%, 7 right do not

    async with lms_server(package, tmp_path) as url:
        sco = await launch(ui, url)
        await expect(sco.locator("#overview")).to_be_visible()
        await expect(sco.locator("#tracking")).to_contain_text("Progress is saved in your LMS")
        # The lesson not written is listed, and has no page.
        await expect(sco.locator("#contents li.not-written")).to_contain_text("not written yet")
        assert await ui.page.evaluate("window.API.cmi.core.lesson_status") == "incomplete"

        right = [1, 0, 2]
        for index, lesson in enumerate(written):
            await sco.locator("section.page.current a.next").click()
            page = sco.locator("section.page.current")
            await expect(page.locator(".page-title")).to_have_text(
                f"Lesson {lesson['position']}: {lesson['title']}"
            )
            await expect(sco.locator("section.page:visible")).to_have_count(1)
            choices = list(right)
            for number in range(wrong if index == 0 else 0):
                choices[number] = (right[number] + 1) % 4
            await answer(page.locator("form.quiz"), choices)
            await expect(page.locator(".quiz-result")).to_have_text(
                f"{3 - (wrong if index == 0 else 0)} of 3 right."
            )
            await expect(page.locator("fieldset.wrong")).to_have_count(wrong if index == 0 else 0)
            # Still incomplete until the last quiz is checked.
            expected = status if index == len(written) - 1 else "incomplete"
            assert await ui.page.evaluate("window.API.cmi.core.lesson_status") == expected
        await expect(sco.locator("section.page.current a.next")).to_have_count(0)
        await expect(sco.locator("#tracking")).to_contain_text(f"Course {status}.")

        core = await ui.page.evaluate("window.cmiData().core")
        assert (core["lesson_status"], core["score"]) == (
            status, {"raw": raw, "min": "0", "max": "100"},
        )  # fmt: skip
        assert core["lesson_location"] == "lesson-03-" + _slug(written[-1])
        cmi = await unload(ui)
        log = await ui.page.evaluate("window.scormLog")
        assert calls(log, "LMSInitialize") and calls(log, "LMSFinish")
        assert await runtime_problems(ui) == []
        assert cmi["core"]["lesson_status"] == status
        assert cmi["core"]["exit"] == ""  # finished: the next launch starts a new attempt
        assert len(cmi["suspend_data"]) <= 4096
        assert same_origin(ui, url) == []


async def test_a_second_launch_resumes_at_the_page_and_with_the_answers_given(
    ui: Ui, running: Running, fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.quiz = quiz((1, 0, 2))
    course = await made_course(running, lessons=3)
    package = await export_scorm(running, course["id"])
    first, second, _ = course["lessons"]

    async with lms_server(package, tmp_path) as url:
        sco = await launch(ui, url, {"student_data": {"mastery_score": "80"}})
        await sco.get_by_role("link", name=f"1. {first['title']}").click()
        await answer(sco.locator("section.page.current form.quiz"), [1, 1, 2])  # one wrong
        await sco.locator("section.page.current a.next").click()
        await expect(sco.locator("section.page.current .page-title")).to_contain_text(
            second["title"]
        )
        cmi = await unload(ui)
        assert await runtime_problems(ui) == []
        assert cmi["core"]["lesson_status"] == "incomplete"
        assert cmi["core"]["exit"] == "suspend"
        assert cmi["core"]["lesson_location"] == "lesson-02-" + _slug(second)
        assert cmi["core"]["score"]["raw"] == "22"  # 2 of 9 questions right so far
        suspend = cmi["suspend_data"]
        assert suspend and len(suspend) <= 4096

        # The LMS hands the same data back on the next launch, the entry now a resume.
        cmi["core"]["entry"] = "resume"
        await ui.page.goto("about:blank")
        sco = await launch(ui, url, cmi)
        current = sco.locator("section.page.current")
        await expect(current.locator(".page-title")).to_contain_text(second["title"])
        first_quiz = sco.locator(f"section#lesson-01-{_slug(first)} form.quiz")
        await expect(first_quiz.locator("fieldset.right")).to_have_count(2)
        await expect(first_quiz.locator("fieldset.wrong")).to_have_count(1)
        await expect(first_quiz.locator("input:checked")).to_have_count(3)
        await expect(first_quiz.locator("button[type=submit]")).to_be_disabled()
        await expect(sco.locator("#contents li.read")).to_have_count(2)
        # Going on from there finishes the course with the answers of both sessions.
        await answer(current.locator("form.quiz"), [1, 0, 2])
        await current.locator("a.next").click()
        await answer(sco.locator("section.page.current form.quiz"), [1, 0, 2])
        cmi = await unload(ui)
        assert await runtime_problems(ui) == []
        assert (cmi["core"]["lesson_status"], cmi["core"]["score"]["raw"]) == ("passed", "89")
        assert same_origin(ui, url) == []


async def test_answers_beyond_the_suspend_data_limit_are_dropped_whole_quizzes_at_a_time(
    ui: Ui, running: Running, tmp_path: Path
) -> None:
    # 900 lessons of 5 questions: 4,500 answers cannot all fit in 4,096 characters.
    question = QuizQuestion("Which?", ("A", "B", "C"), 2, "C.")
    lessons = tuple(
        ExportLesson(
            number,
            f"Part {number}",
            "",
            "Text.",
            "<p>Text.</p>",
            (question,) * 5,
            f"{number:03d}-p",
        )
        for number in range(1, 901)
    )
    course = ExportCourse(1, "Long", "Long", "", "beginner", "English", "", lessons, "long")
    async with lms_server(scorm.build(course), tmp_path) as url:
        sco = await launch(ui, url)
        await expect(sco.locator("form.quiz")).to_have_count(900)
        # Every quiz answered at once (right), as if the learner had gone through them all.
        frame = _frame(ui)
        await frame.evaluate(
            """() => {
              for (const form of document.querySelectorAll("form.quiz")) {
                for (const q of form.querySelectorAll("fieldset")) {
                  q.querySelectorAll("input")[2].checked = true;
                }
                form.requestSubmit();
              }
            }"""
        )
        await expect(sco.locator("#tracking")).to_contain_text("Quizzes checked: 900 of 900")
        cmi = await unload(ui)
        assert await runtime_problems(ui) == []
        suspend: str = cmi["suspend_data"]
        assert 4000 < len(suspend) <= 4096
        saved_quizzes = len(suspend.split("~")[3]) // 5
        assert 700 < saved_quizzes < 900 and len(suspend.split("~")[3]) % 5 == 0

        await ui.page.goto("about:blank")
        sco = await launch(ui, url, cmi)
        await expect(sco.locator("form.quiz.checked")).to_have_count(saved_quizzes)
        # The quizzes kept are the first ones, each whole.
        checked = re.compile(r"\bchecked\b")
        await expect(sco.locator("form.quiz").nth(saved_quizzes - 1)).to_have_class(checked)
        await expect(sco.locator("form.quiz").nth(saved_quizzes)).not_to_have_class(checked)
        assert await runtime_problems(ui) == []


def _frame(ui: Ui) -> Frame:
    [frame] = [frame for frame in ui.page.frames if "/sco/index.html" in frame.url]
    return frame


# -- without an LMS, and with hostile content --------------------------------------------------


async def test_without_an_lms_the_course_reads_and_navigates_from_a_file_and_over_http(
    ui: Ui, running: Running, fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.quiz = quiz((1, 0, 2))
    course = await made_course(running, lessons=2)
    package = await export_scorm(running, course["id"])
    first, second = course["lessons"]
    async with lms_server(package, tmp_path / "served") as url:
        for address in (f"{url}/sco/index.html", (tmp_path / "served/sco/index.html").as_uri()):
            await ui.page.goto(address)
            page = ui.page
            await expect(page.locator("#tracking")).to_contain_text("No LMS found")
            await expect(page.locator("#overview")).to_be_visible()
            await page.locator("section.page.current a.next").click()
            await expect(page.locator("section.page.current .page-title")).to_contain_text(
                first["title"]
            )
            await answer(page.locator("section.page.current form.quiz"), [1, 0, 0])
            await expect(page.locator("section.page.current .quiz-result")).to_have_text(
                "2 of 3 right."
            )
            await page.get_by_role("link", name=f"2. {second['title']}").click()
            await expect(page.locator("section.page.current .page-title")).to_contain_text(
                second["title"]
            )
            await page.locator("section.page.current a.previous").click()
            await expect(page.locator("section.page.current .page-title")).to_contain_text(
                first["title"]
            )
        # Nothing asked of anyone but the test's server and the package's own files.
        assert [u for u in same_origin(ui, url) if not u.startswith(tmp_path.as_uri())] == []


async def test_without_script_every_lesson_shows(
    browser: Any, running: Running, fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.quiz = quiz((1, 0, 2))
    course = await made_course(running, lessons=2)
    package = await export_scorm(running, course["id"])
    async with lms_server(package, tmp_path) as url:
        context = await browser.new_context(java_script_enabled=False)
        try:
            page = await context.new_page()
            await page.goto(f"{url}/sco/index.html")
            await expect(page.locator("section.page")).to_have_count(3)
            for section in await page.locator("section.page").all():
                await expect(section).to_be_visible()
            await expect(page.locator("details.answer").first).to_be_visible()
        finally:
            await context.close()


async def test_hostile_lesson_content_runs_and_loads_nothing_in_the_lms(
    ui: Ui, running: Running, fake: FakeAnthropic, tmp_path: Path
) -> None:
    fake.quiz = quiz((0, 1, 2), text="<script>alert('quiz')</script>")
    course = await made_course(running, lessons=2)
    first = course["lessons"][0]
    response = await running.http.patch(
        f"/api/lessons/{first['id']}", json={"content": HOSTILE_LESSON, "title": HOSTILE_TITLE}
    )
    assert response.status_code == 200, response.text
    course = await full_course(running, course["id"])
    await running.settle(course["job"]["job_id"])
    package = await export_scorm(running, course["id"])
    async with lms_server(package, tmp_path) as url:
        sco = await launch(ui, url)
        await sco.locator("section.page.current a.next").click()
        page = sco.locator("section.page.current")
        await expect(page.locator(".page-title")).to_contain_text(HOSTILE_TITLE)
        await expect(page.locator(".content")).to_contain_text("<script>alert(1)</script>")
        await answer(page.locator("form.quiz"), [0, 1, 2])
        # The page's only script is the player; model output never became a script, a
        # frame or an image, and nothing but the test's own server was asked for anything.
        frame = _frame(ui)
        assert await frame.evaluate("[...document.scripts].map(s => s.src)") == [
            f"{url}/sco/player.js"
        ]
        assert await frame.evaluate("document.querySelectorAll('img, iframe, svg').length") == 0
        await unload(ui)
        assert await runtime_problems(ui) == []
    assert same_origin(ui, url) == []
    assert not [p for p in ui.problems if "dialog" in p]


def _slug(lesson: dict[str, Any]) -> str:
    return re.sub(r"[^a-z0-9]+", "-", lesson["title"].lower()).strip("-")[:60].rstrip("-")
