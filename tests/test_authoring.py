"""Authoring (SPEC 9): course options, regeneration instructions, versions, hand and
outline edits, and quizzes, as a person using the API would notice them.

Every test runs on both engines (the `engine` fixture of conftest.py) and talks to the
fake Messages API through the real SDK: what a prompt carried is read from the
requests the fake recorded, what was stored from the database itself.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from coursegen.events import TERMINAL_JOB_STATUSES
from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import Call, FakeAnthropic
from tests.conftest import API_KEY, Running, counters_hold, db_rows, woken_until
from tests.helpers import until
from tests.serverproc import ServerProcess, server_env

StartApp = Callable[..., Awaitable[Running]]

# -- helpers ----------------------------------------------------------------------------------


async def get_lesson(running: Running, lesson_id: int) -> dict[str, Any]:
    response = await running.http.get(f"/api/lessons/{lesson_id}")
    assert response.status_code == 200, response.text
    lesson: dict[str, Any] = response.json()
    return lesson


async def get_course(running: Running, course_id: int) -> dict[str, Any]:
    response = await running.http.get(f"/api/courses/{course_id}")
    assert response.status_code == 200, response.text
    course: dict[str, Any] = response.json()
    return course


async def lesson_until(
    running: Running,
    lesson_id: int,
    condition: Callable[[dict[str, Any]], bool],
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Wait, woken by each committed event, until the lesson (as the API gives it) holds."""

    async def check() -> dict[str, Any] | None:
        lesson = await get_lesson(running, lesson_id)
        return lesson if condition(lesson) else None

    return await woken_until(running.services, check, seconds)


async def job_log(settings: Settings, job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The job's events as the database logged them: (id, type, data), in id order."""
    rows = await db_rows(
        settings, "SELECT id, type, data FROM events WHERE job_id = ? ORDER BY id", job_id
    )
    return [(int(id), str(type), json.loads(data)) for id, type, data in rows]


def quiz_statuses(log: list[tuple[int, str, dict[str, Any]]], lesson_id: int) -> list[str]:
    return [d["quiz_status"] for _, t, d in log if t == "quiz" and d["lesson_id"] == lesson_id]


def changes(log: list[tuple[int, str, dict[str, Any]]]) -> list[tuple[int, str]]:
    return [(d["lesson_id"], d["change"]) for _, t, d in log if t == "lesson" and "change" in d]


def assert_valid_quiz(quiz: Any) -> None:
    """What SPEC 9 promises of a stored quiz: 3..5 questions, 2..6 choices, one answer."""
    assert isinstance(quiz, list) and 3 <= len(quiz) <= 5, quiz
    for question in quiz:
        assert set(question) == {"question", "choices", "answer", "explanation"}
        assert isinstance(question["question"], str) and question["question"].strip()
        choices = question["choices"]
        assert 2 <= len(choices) <= 6 and all(isinstance(c, str) and c.strip() for c in choices)
        answer = question["answer"]
        assert isinstance(answer, int) and not isinstance(answer, bool)
        assert 0 <= answer < len(choices)
        assert isinstance(question["explanation"], str) and question["explanation"].strip()


def body_text(call: Call) -> str:
    """Everything a request carried, as one text to search."""
    return json.dumps(call.body, ensure_ascii=False)


def course_block(call: Call) -> str:
    """The course part of a lesson or quiz call's system prompt (the cached prefix)."""
    text: str = call.body["system"][-1]["text"]
    return text


def user_turn(call: Call) -> str:
    text: str = call.body["messages"][0]["content"]
    return text


def outline_listing(call: Call) -> str:
    """The numbered outline a lesson or quiz call's system prompt shows."""
    return course_block(call).split("The whole outline:\n", 1)[1].rstrip("\n")


def without_usage(data: Any) -> Any:
    """A JSON answer less what its calls have spent (the draft saver stores that as it goes)."""
    if isinstance(data, dict):
        return {key: without_usage(value) for key, value in data.items() if key != "usage"}
    if isinstance(data, list):
        return [without_usage(value) for value in data]
    return data


def quiz_input(count: int = 3, **change: Any) -> dict[str, Any]:
    """A quiz tool input of `count` questions; `change` alters the first question."""
    questions = [
        {
            "question": f"Question {n} about the starter?",
            "choices": ["Flour and water", "Only yeast", "Sugar"],
            "answer": n % 3,
            "explanation": f"Explanation {n}: a starter is flour and water, fermented.",
        }
        for n in range(1, count + 1)
    ]
    questions[0].update(change)
    questions[0] = {k: v for k, v in questions[0].items() if v is not None}
    return {"questions": questions}


# -- prompts ----------------------------------------------------------------------------------

OPTIONS = {
    "level": "advanced",
    "language": "Deutsch",
    "instructions": "Für Bäcker im Nachtdienst; Beispiele aus der Backstube, keine Anekdoten.",
}


async def test_course_options_reach_the_outline_every_lesson_and_every_quiz(
    running: Running, fake: FakeAnthropic
) -> None:
    created = await running.generate(topic="Sauerteig", lessons=3, **OPTIONS)
    wanted = {**OPTIONS, "quizzes": True}
    assert {key: created["course"][key] for key in wanted} == wanted
    done = await running.settle(created["job_id"])
    assert done["status"] == "complete"
    course = await get_course(running, created["course_id"])
    assert {key: course[key] for key in wanted} == wanted
    listed = (await running.http.get("/api/courses")).json()["courses"]
    assert {key: listed[0][key] for key in wanted} == wanted

    said = [
        "Audience level: advanced learners",
        "Language: write everything in Deutsch",
        f"Instructions from the course author: {OPTIONS['instructions']}",
    ]
    [outline] = fake.outline_calls()
    assert all(line in user_turn(outline) for line in said), user_turn(outline)
    lessons, quizzes = fake.lesson_calls(), fake.quiz_calls()
    assert len(lessons) == 3 and len(quizzes) == 3
    for call in lessons + quizzes:
        # In the course block of the cached prefix: the same bytes for every call.
        assert all(line in course_block(call) for line in said), (call.kind, course_block(call))
    assert len({course_block(call) for call in lessons}) == 1


async def test_bad_course_options_are_refused_and_store_nothing(
    running: Running, fake: FakeAnthropic, settings: Settings
) -> None:
    refused = [
        ({"level": "expert"}, "level"),
        ({"level": 3}, "level"),
        ({"language": "x"}, "language must be 2 to 40 characters"),
        ({"language": "x" * 41}, "language must be 2 to 40 characters"),
        ({"language": 7}, "language must be text"),
        ({"instructions": "a" * 2001}, "instructions must be at most 2000 characters"),
        ({"instructions": ["more"]}, "instructions must be text"),
        ({"quizzes": "yes"}, "quizzes must be true or false"),
        ({"quizzes": 1}, "quizzes must be true or false"),
    ]
    for options, why in refused:
        response = await running.http.post(
            "/api/courses/generate", json={"topic": "Sourdough baking", "lessons": 2, **options}
        )
        assert response.status_code == 400, (options, response.text)
        assert why in response.json()["error"], (options, response.json())
    assert fake.outline_calls() == []
    for table in ("courses", "lessons", "content_generation_jobs", "events"):
        assert await db_rows(settings, f"SELECT count(*) FROM {table}") == [(0,)], table
    # At the limits they are taken.
    edge = {"language": "pt", "instructions": "b" * 2000, "quizzes": False}
    created = await running.generate(lessons=1, level="intermediate", **edge)
    assert {key: created["course"][key] for key in edge} == edge


async def test_regeneration_instructions_reach_that_regeneration_only(
    running: Running, fake: FakeAnthropic
) -> None:
    created = await running.generate(lessons=3, instructions="Keep it friendly.")
    await running.settle(created["job_id"])
    first, second, third = created["course"]["lessons"]
    asked = "more examples, with rye flour"

    response = await running.http.post(
        f"/api/lessons/{second['id']}/retry", json={"instructions": asked}
    )
    assert response.status_code == 202, response.text
    await running.settle(created["job_id"])
    response = await running.http.post(f"/api/lessons/{second['id']}/retry")  # no body
    assert response.status_code == 202, response.text
    assert (await running.settle(created["job_id"]))["status"] == "complete"

    original, regenerated, again = fake.lesson_calls(second["title"])
    line = f"Instructions for this version of the lesson: {asked}"
    assert line in user_turn(regenerated)
    # Particular to that call: in its user turn, not in the course's cached prefix.
    assert asked not in course_block(regenerated)
    assert course_block(regenerated) == course_block(original)
    assert "Keep it friendly." in course_block(regenerated)
    for call in (original, again, *fake.lesson_calls(first["title"])):
        assert "Instructions for this version" not in body_text(call)
        assert asked not in body_text(call)
    for call in fake.lesson_calls(third["title"]) + fake.quiz_calls():
        assert asked not in body_text(call)
    assert len(fake.lesson_calls()) == 5


# -- versions ---------------------------------------------------------------------------------


async def test_versions_keep_every_text_and_restore_makes_a_new_one(
    running: Running, fake: FakeAnthropic
) -> None:
    written = iter(range(1, 100))
    fake.lesson_text = lambda title: f"## {title}\n\nDraft {next(written)} of this lesson.\n"
    created = await running.generate(lessons=2)
    await running.settle(created["job_id"])
    lesson_id, other_id = (lesson["id"] for lesson in created["course"]["lessons"])
    generated = (await get_lesson(running, lesson_id))["content"]
    title = created["course"]["lessons"][0]["title"]
    assert generated == fake.lesson_calls(title)[0].sent_text.rstrip()

    mine = "## My own words\n\nA starter is flour and water, fermented.\n"
    edited = await running.http.patch(f"/api/lessons/{lesson_id}", json={"content": mine})
    assert edited.status_code == 200 and edited.json()["content"] == mine.strip()
    await running.settle(created["job_id"])  # the new text's quiz
    retried = await running.http.post(
        f"/api/lessons/{lesson_id}/retry", json={"instructions": "shorter"}
    )
    assert retried.status_code == 202
    await running.settle(created["job_id"])
    regenerated = (await get_lesson(running, lesson_id))["content"]
    assert regenerated not in (generated, mine.strip())
    restored = await running.http.post(f"/api/lessons/{lesson_id}/versions/1/restore")
    assert restored.status_code == 200, restored.text
    assert restored.json()["content"] == generated
    assert restored.json()["content_status"] == "complete"
    await running.settle(created["job_id"])

    listing = (await running.http.get(f"/api/lessons/{lesson_id}/versions")).json()["versions"]
    texts = {4: generated, 3: regenerated, 2: mine.strip(), 1: generated}
    assert [(v["version"], v["source"], v["instructions"], v["length"]) for v in listing] == [
        (4, "restored", None, len(generated)),
        (3, "generated", "shorter", len(regenerated)),
        (2, "edited", None, len(mine.strip())),
        (1, "generated", None, len(generated)),
    ]
    for number, text in texts.items():
        response = await running.http.get(f"/api/lessons/{lesson_id}/versions/{number}")
        assert response.status_code == 200
        version = response.json()
        assert (version["version"], version["content"]) == (number, text)
        assert "<h2" in version["content_html"]
    assert (await get_lesson(running, lesson_id))["content"] == generated

    # A version of another lesson, or one that does not exist: 404, and nothing restored.
    other = (await running.http.get(f"/api/lessons/{other_id}/versions")).json()["versions"]
    assert [v["version"] for v in other] == [1]
    for path in (
        f"/api/lessons/{other_id}/versions/2",
        f"/api/lessons/{lesson_id}/versions/5",
        f"/api/lessons/{lesson_id}/versions/0",
        "/api/lessons/999999/versions/1",
    ):
        assert (await running.http.get(path)).status_code == 404, path
        assert (await running.http.post(f"{path}/restore")).status_code == 404, path
    assert (await running.http.get("/api/lessons/999999/versions")).status_code == 404
    after = (await running.http.get(f"/api/lessons/{lesson_id}/versions")).json()["versions"]
    assert after == listing


# -- hand edits -------------------------------------------------------------------------------


async def test_hand_edits_change_the_lesson_and_answer_with_it(
    running: Running, settings: Settings
) -> None:
    created = await running.generate(lessons=3, quizzes=False)
    await running.settle(created["job_id"])
    first, second, third = (lesson["id"] for lesson in created["course"]["lessons"])

    async def patch(lesson_id: int, **edit: Any) -> dict[str, Any]:
        response = await running.http.patch(f"/api/lessons/{lesson_id}", json=edit)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        assert answer == await get_lesson(running, lesson_id)
        return answer

    assert (await patch(first, title="Feeding the starter"))["title"] == "Feeding the starter"
    described = await patch(first, description="How often, and with what flour.")
    assert described["description"] == "How often, and with what flour."
    text = "## Feeding\n\nFeed it **twice** a day.\n"
    written = await patch(first, content=text)
    assert written["content"] == text.strip() and written["content_status"] == "complete"
    assert "<strong>twice</strong>" in written["content_html"]
    moved = await patch(first, position=3)
    assert moved["position"] == 3 and moved["title"] == "Feeding the starter"
    course = await get_course(running, created["course_id"])
    assert [(lesson["id"], lesson["position"]) for lesson in course["lessons"]] == [
        (second, 1), (third, 2), (first, 3),
    ]  # fmt: skip
    both = await patch(second, title="Shaping", position=2)
    assert (both["title"], both["position"]) == ("Shaping", 2)
    course = await get_course(running, created["course_id"])
    assert [lesson["id"] for lesson in course["lessons"]] == [third, second, first]

    log = await job_log(settings, created["job_id"])
    assert changes(log) == [
        (first, "edited"), (first, "edited"), (first, "edited"),
        (second, "moved"), (third, "moved"), (first, "moved"),
        (second, "edited"), (third, "moved"), (second, "moved"),
    ]  # fmt: skip
    assert (await running.settle(created["job_id"]))["completed_lessons"] == 3
    assert await counters_hold(settings) == []


async def test_a_position_past_the_end_puts_the_lesson_last(
    running: Running, settings: Settings
) -> None:
    """How many lessons there are is the server's to know (another page may have removed
    one): a move or an addition past the end goes to the end, as the schema allows."""
    created = await running.generate(lessons=3, quizzes=False)
    await running.settle(created["job_id"])
    course_id = created["course_id"]
    first, second, third = (lesson["id"] for lesson in created["course"]["lessons"])

    moved = await running.http.patch(f"/api/lessons/{first}", json={"position": 4})
    assert moved.status_code == 200, moved.text
    assert moved.json()["position"] == 3
    both = await running.http.patch(
        f"/api/lessons/{second}", json={"title": "Shaping", "position": 2**63}
    )
    assert both.status_code == 200, both.text
    assert (both.json()["title"], both.json()["position"]) == ("Shaping", 3)
    stays = await running.http.patch(f"/api/lessons/{second}", json={"position": 9})
    assert (stays.status_code, stays.json()["position"]) == (200, 3)
    added = await running.http.post(
        f"/api/courses/{course_id}/lessons", json={"title": "Baking", "position": 9}
    )
    assert added.status_code == 201, added.text
    assert (added.json()["position"], added.json()["title"]) == (4, "Baking")
    fourth = added.json()["id"]

    order = [(third, 1), (first, 2), (second, 3), (fourth, 4)]
    course = await get_course(running, course_id)
    assert [(lesson["id"], lesson["position"]) for lesson in course["lessons"]] == order
    stored = "SELECT id, position FROM lessons WHERE course_id = ? ORDER BY position"
    assert await db_rows(settings, stored, course_id) == order
    log = await job_log(settings, created["job_id"])
    assert changes(log) == [
        (second, "moved"), (third, "moved"), (first, "moved"),
        (second, "edited"), (third, "moved"), (first, "moved"), (second, "moved"),
        (fourth, "added"),
    ]  # fmt: skip
    assert (await running.settle(created["job_id"]))["completed_lessons"] == 4
    assert await counters_hold(settings) == []


async def test_refused_edits_say_why_and_change_nothing(
    start_app: StartApp, fake: FakeAnthropic, settings: Settings
) -> None:
    running = await start_app(concurrency=1)
    fake.first_token_delay = 30  # lesson 1 stays generating, the others pending
    created = await running.generate(lessons=3)
    course_id = created["course_id"]
    first, second, third = (lesson["id"] for lesson in created["course"]["lessons"])
    await lesson_until(running, first, lambda lesson: lesson["content_status"] == "generating")
    before = await get_course(running, course_id)
    before_rows = await db_rows(
        settings,
        "SELECT id, position, title, description, content, content_status, quiz_status "
        "FROM lessons ORDER BY id",
    )

    refused: list[tuple[int, dict[str, Any], int, str]] = [
        (first, {"content": "Mine"}, 409, "the lesson is generating: its text can be edited"),
        (second, {"content": "Mine", "title": "New"}, 409, "the lesson is pending"),
        (second, {"content": ""}, 400, "content must not be empty"),
        (second, {"content": " \n "}, 400, "content must not be empty"),
        (second, {"content": 5}, 400, "content must be text"),
        (second, {"colour": "red"}, 400, "unknown field(s): colour"),
        (second, {"title": "New", "colour": "red"}, 400, "unknown field(s): colour"),
        (second, {}, 400, "send at least one of"),
        (second, {"title": ""}, 400, "title must be 1 to 300 characters"),
        (second, {"position": 0}, 400, "position must be a whole number from 1"),
        (second, {"position": -2}, 400, "position must be a whole number from 1"),
        (second, {"position": "2"}, 400, "position must be a whole number from 1"),
        (second, {"position": 1.5}, 400, "position must be a whole number from 1"),
        (second, {"position": True}, 400, "position must be a whole number from 1"),
        (second, {"title": "New", "position": None}, 400, "position must not be null"),
    ]
    for lesson_id, edit, status, why in refused:
        response = await running.http.patch(f"/api/lessons/{lesson_id}", json=edit)
        assert response.status_code == status, (edit, response.text)
        assert why in response.json()["error"], (edit, response.json())
    # The 409s say what to do instead.
    response = await running.http.patch(f"/api/lessons/{third}", json={"content": "Mine"})
    assert "once it has been written" in response.json()["error"]
    missing = await running.http.patch("/api/lessons/999999", json={"title": "New"})
    assert missing.status_code == 404

    assert without_usage(await get_course(running, course_id)) == without_usage(before)
    assert (
        await db_rows(
            settings,
            "SELECT id, position, title, description, content, content_status, quiz_status "
            "FROM lessons ORDER BY id",
        )
        == before_rows
    )
    assert await db_rows(settings, "SELECT count(*) FROM lesson_versions") == [(0,)]
    assert changes(await job_log(settings, created["job_id"])) == []


async def test_a_content_edit_makes_a_failed_lesson_complete_and_the_counters_follow(
    running: Running, fake: FakeAnthropic, settings: Settings
) -> None:
    fake.add_fault(kind="lesson", match="Lesson 2", status=500)
    created = await running.generate(lessons=3)
    failed = await running.settle(created["job_id"])
    assert (failed["status"], failed["completed_lessons"], failed["failed_lessons"]) == (
        "error", 2, 1,
    )  # fmt: skip
    lesson_id = created["course"]["lessons"][1]["id"]
    assert (await get_lesson(running, lesson_id))["content_status"] == "error"

    text = "## Shaping, by hand\n\nFold, rest, fold.\n"
    response = await running.http.patch(f"/api/lessons/{lesson_id}", json={"content": text})
    assert response.status_code == 200, response.text
    lesson = response.json()
    assert (lesson["content_status"], lesson["content_error"]) == ("complete", None)
    assert lesson["content"] == text.strip()
    # The counters follow in the edit's own commit; its new text gets its quiz.
    progress = (await running.http.get(f"/api/jobs/{created['job_id']}/progress")).json()
    assert (progress["completed_lessons"], progress["failed_lessons"]) == (3, 0)
    assert await counters_hold(settings) == []
    done = await running.settle(created["job_id"])
    assert (done["status"], done["completed_lessons"], done["failed_lessons"]) == (
        "complete", 3, 0,
    )  # fmt: skip
    assert done["error_message"] is None
    lesson = await get_lesson(running, lesson_id)
    assert lesson["quiz_status"] == "complete"
    assert text.strip() in user_turn(fake.quiz_calls(lesson["title"])[-1])
    assert await counters_hold(settings) == []


async def test_a_content_edit_of_the_only_failed_lesson_ends_a_course_without_quizzes(
    running: Running, fake: FakeAnthropic, settings: Settings
) -> None:
    fake.add_fault(kind="lesson", match="Lesson 1", status=500)
    created = await running.generate(lessons=2, quizzes=False)
    assert (await running.settle(created["job_id"]))["status"] == "error"
    lesson_id = created["course"]["lessons"][0]["id"]
    response = await running.http.patch(f"/api/lessons/{lesson_id}", json={"content": "Mine."})
    assert response.status_code == 200, response.text
    # Nothing is left to write: the job is complete at once, not running for ever.
    done = await running.settle(created["job_id"])
    assert (done["status"], done["completed_lessons"], done["failed_lessons"]) == (
        "complete", 2, 0,
    )  # fmt: skip
    assert done["error_message"] is None
    assert await counters_hold(settings) == []


# -- quizzes ----------------------------------------------------------------------------------


async def test_each_lesson_gets_its_quiz_after_its_text_and_the_job_waits_for_them(
    running: Running, fake: FakeAnthropic, settings: Settings
) -> None:
    fake.quiz_delay = 1.0  # the texts are written long before their quizzes
    fake.quiz = quiz_input(4)
    created = await running.generate(lessons=3)
    job_id = created["job_id"]
    ids = [lesson["id"] for lesson in created["course"]["lessons"]]

    async def texts_written() -> dict[str, Any] | None:
        course = await get_course(running, created["course_id"])
        done = all(lesson["content_status"] == "complete" for lesson in course["lessons"])
        return course if done else None

    course = await woken_until(running.services, texts_written)
    # Every text is written, its quiz not yet: the job is not finished.
    assert course["job"]["status"] == "running"
    assert course["job"]["completed_lessons"] == 3 and course["job"]["progress"] == 100
    assert {lesson["quiz_status"] for lesson in course["lessons"]} <= {"pending", "generating"}
    quizzing = await lesson_until(
        running, ids[0], lambda found: found["quiz_status"] == "generating"
    )
    response = await running.http.post(f"/api/lessons/{quizzing['id']}/quiz/retry")
    assert response.status_code == 409
    assert response.json()["error"] == "the quiz is generating already"

    done = await running.settle(job_id)
    assert (done["status"], done["completed_lessons"], done["failed_lessons"]) == (
        "complete", 3, 0,
    )  # fmt: skip
    for lesson_id in ids:
        lesson = await get_lesson(running, lesson_id)
        assert (lesson["quiz_status"], lesson["quiz_error"]) == ("complete", None)
        assert_valid_quiz(lesson["quiz"])
        assert lesson["quiz"] == fake.quiz["questions"]
        # One quiz call per lesson, given that lesson's whole text.
        [call] = fake.quiz_calls(lesson["title"])
        assert lesson["content"] in user_turn(call)
        assert call.body["tool_choice"] == {"type": "tool", "name": "record_lesson_quiz"}
    assert len(fake.quiz_calls()) == 3

    log = await job_log(settings, job_id)
    position = {event_id: index for index, (event_id, _, _) in enumerate(log)}
    for lesson_id in ids:
        assert quiz_statuses(log, lesson_id) == ["pending", "generating", "complete"]
        # The quiz is queued with the text's completion and claimed only after it.
        complete = next(
            i for i, t, d in log
            if t == "lesson" and d["lesson_id"] == lesson_id and d["content_status"] == "complete"
        )  # fmt: skip
        claimed = next(
            i for i, t, d in log
            if t == "quiz" and d["lesson_id"] == lesson_id and d["quiz_status"] == "generating"
        )  # fmt: skip
        assert position[complete] < position[claimed]
    # The job ended with its last quiz, not with its last text.
    ended = next(i for i, t, d in log if t == "job" and d["status"] == "complete")
    last_quiz = max(i for i, t, d in log if t == "quiz" and d["quiz_status"] == "complete")
    last_text = max(i for i, t, d in log if t == "lesson" and d["content_status"] == "complete")
    assert last_text < last_quiz < ended
    assert await counters_hold(settings) == []


async def test_an_invalid_quiz_is_an_error_of_the_quiz_only_and_can_be_retried(
    running: Running, fake: FakeAnthropic, settings: Settings
) -> None:
    invalid = {
        "Lesson 1": ({"quiz": quiz_input(2)}, "2 questions, not 3 to 5"),
        "Lesson 2": ({"quiz": quiz_input(answer=3)}, "question 1's answer is not one of"),
        "Lesson 3": ({"quiz": quiz_input(explanation=None)}, "explanation is not a non-empty"),
        "Lesson 4": ({"no_tool_call": True}, "answered without a quiz (no tool call)"),
        "Lesson 5": ({"quiz": quiz_input(choices=["Only one"], answer=0)}, "needs 2 to 6 choices"),
    }
    for title, (fault, _) in invalid.items():
        fake.add_fault(kind="quiz", match=title, **fault)
    created = await running.generate(lessons=6)
    done = await running.settle(created["job_id"])
    # A failed quiz never fails its lesson: the texts are all there, the job complete.
    assert (done["status"], done["completed_lessons"], done["failed_lessons"]) == (
        "complete", 6, 0,
    )  # fmt: skip
    assert done["error_message"] is None
    lessons = [await get_lesson(running, lesson["id"]) for lesson in created["course"]["lessons"]]
    for lesson in lessons[:5]:
        _, why = invalid[lesson["title"].split(":")[0]]
        assert (lesson["content_status"], lesson["quiz_status"]) == ("complete", "error")
        assert lesson["content"] and lesson["content_error"] is None
        assert lesson["quiz"] is None
        assert why in lesson["quiz_error"] and "retry the quiz" in lesson["quiz_error"], lesson
    assert lessons[5]["quiz_status"] == "complete"
    log = await job_log(settings, created["job_id"])
    assert quiz_statuses(log, lessons[0]["id"]) == ["pending", "generating", "error"]
    errors = [d for _, t, d in log if t == "quiz" and d["quiz_status"] == "error"]
    assert {d["quiz_error"] for d in errors} == {lesson["quiz_error"] for lesson in lessons[:5]}
    assert await counters_hold(settings) == []

    # Written again (the faults are spent): the job runs until the quiz is in.
    response = await running.http.post(f"/api/lessons/{lessons[0]['id']}/quiz/retry")
    assert response.status_code == 202, response.text
    assert response.json() == {
        "lesson_id": lessons[0]["id"], "job_id": created["job_id"], "quiz_status": "pending",
    }  # fmt: skip
    done = await running.settle(created["job_id"])
    assert (done["status"], done["completed_lessons"], done["failed_lessons"]) == (
        "complete", 6, 0,
    )  # fmt: skip
    lesson = await get_lesson(running, lessons[0]["id"])
    assert (lesson["quiz_status"], lesson["quiz_error"]) == ("complete", None)
    assert_valid_quiz(lesson["quiz"])
    assert lesson["content"] == lessons[0]["content"]  # the text was not touched
    log = await job_log(settings, created["job_id"])
    assert quiz_statuses(log, lessons[0]["id"]) == [
        "pending", "generating", "error", "pending", "generating", "complete",
    ]  # fmt: skip
    assert len(fake.quiz_calls(lessons[0]["title"])) == 2
    assert await counters_hold(settings) == []


async def test_a_quiz_retry_is_refused_while_it_waits_or_without_quizzes(
    start_app: StartApp, fake: FakeAnthropic
) -> None:
    running = await start_app(concurrency=1)
    fake.add_fault(kind="lesson", match="Lesson 2", delay=30)  # holds the only slot
    created = await running.generate(lessons=3)
    first, second, third = (lesson["id"] for lesson in created["course"]["lessons"])
    await lesson_until(running, second, lambda lesson: lesson["content_status"] == "generating")
    # Texts come before quizzes: lesson 1's quiz waits behind lessons 2 and 3. (Lesson 1's
    # slot is free once its call ends, so lesson 2 may start before lesson 1 is stored.)
    await lesson_until(running, first, lambda lesson: lesson["quiz_status"] == "pending")
    assert (await get_lesson(running, second))["content_status"] == "generating"
    for lesson_id, why in (
        (first, "the quiz is pending already"),
        (second, "once the lesson's text is complete"),
        (third, "once the lesson's text is complete"),
    ):
        response = await running.http.post(f"/api/lessons/{lesson_id}/quiz/retry")
        assert response.status_code == 409, response.text
        assert why in response.json()["error"]
    assert (await running.http.post("/api/lessons/999999/quiz/retry")).status_code == 404
    await running.http.post(f"/api/jobs/{created['job_id']}/cancel")

    without = await running.generate(lessons=2, quizzes=False)
    await running.settle(without["job_id"])
    lesson_id = without["course"]["lessons"][0]["id"]
    response = await running.http.post(f"/api/lessons/{lesson_id}/quiz/retry")
    assert response.status_code == 409
    assert response.json()["error"] == "this course has no quizzes"


async def test_a_course_without_quizzes_makes_no_quiz_calls(
    running: Running, fake: FakeAnthropic, settings: Settings
) -> None:
    created = await running.generate(lessons=3, quizzes=False)
    assert created["course"]["quizzes"] is False
    done = await running.settle(created["job_id"])
    assert (done["status"], done["completed_lessons"]) == ("complete", 3)
    assert fake.quiz_calls() == [] and len(fake.lesson_calls()) == 3
    for summary in created["course"]["lessons"]:
        lesson = await get_lesson(running, summary["id"])
        assert (lesson["quiz_status"], lesson["quiz"], lesson["quiz_error"]) == ("none", None, None)
    assert [t for _, t, _ in await job_log(settings, created["job_id"]) if t == "quiz"] == []


async def test_quiz_calls_take_slots_of_the_same_throttle(
    start_app: StartApp, fake: FakeAnthropic
) -> None:
    running = await start_app(concurrency=2)
    fake.lesson_delay = 0.05
    fake.quiz_delay = 0.1
    # Lesson 2's text holds one slot while the other slot writes the other texts, then
    # their quizzes: texts and quizzes share the two slots.
    fake.add_fault(kind="lesson", match="Lesson 2", delay=1.5)
    created = await running.generate(lessons=5)
    held = fake.lesson_calls
    await until(
        lambda: (
            bool(held("Lesson 2"))
            and held("Lesson 2")[0].ended is None
            and any(quiz.ended is None for quiz in fake.quiz_calls())
        )
    )
    assert fake.in_flight <= 2
    assert (await running.settle(created["job_id"], seconds=20))["status"] == "complete"
    assert len(fake.quiz_calls()) == 5 and len(fake.lesson_calls()) == 5
    assert fake.max_in_flight == 2  # texts and quizzes together, never more than two


# -- outline edits under load -----------------------------------------------------------------

# (seed, edits): one long run and two shorter ones, each in its own random order.
LOAD_RUNS = ((1, 200), (2, 60), (3, 60))
LOAD_LESSONS = 12


def read_stream(body: str) -> list[tuple[int, str, dict[str, Any]]]:
    """The (id, type, data) of each event of an SSE body (snapshot and pings left out)."""
    events = []
    for frame in body.split("\r\n\r\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "id" in fields and fields.get("event") != "snapshot":
            events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


@dataclass
class Replay:
    """A course's lessons as its job's events tell them, event by event.

    A lesson event carries the lesson's position and status (and, for an author's
    change, its title); the descriptions come from the course and from the edits.
    """

    descriptions: dict[int, str]
    lessons: dict[int, dict[str, Any]] = field(default_factory=dict)

    def apply(self, data: dict[str, Any]) -> None:
        lesson_id = data["lesson_id"]
        if data.get("change") == "removed":
            del self.lessons[lesson_id]
            return
        lesson = self.lessons.setdefault(lesson_id, {"title": data.get("title")})
        lesson.update(position=data["position"], status=data["content_status"])
        if "title" in data:
            lesson["title"] = data["title"]

    def positions_hold(self) -> bool:
        positions = sorted(lesson["position"] for lesson in self.lessons.values())
        return positions == list(range(1, len(self.lessons) + 1))

    def counters(self) -> tuple[int, int, int]:
        statuses = [lesson["status"] for lesson in self.lessons.values()]
        return len(statuses), statuses.count("complete"), statuses.count("error")

    def listing(self) -> str:
        """The outline as a lesson prompt shows it."""
        ordered = sorted(self.lessons.items(), key=lambda item: item[1]["position"])
        return "\n".join(
            f"{number}. {lesson['title']}: {self.descriptions[lesson_id]}"
            for number, (lesson_id, lesson) in enumerate(ordered, start=1)
        )


@dataclass
class LoadRun:
    """What one run of random edits did, for the checks once its job has ended."""

    course_id: int
    job_id: str
    replay: Replay
    titles: dict[str, int]  # every title a lesson had -> its id
    made: list[tuple[int, str]] = field(default_factory=list)  # (lesson id, change)
    added: set[int] = field(default_factory=set)
    removed: set[int] = field(default_factory=set)
    cut_off: list[Call] = field(default_factory=list)  # in flight when their lesson went


async def edit_under_load(
    running: Running, fake: FakeAnthropic, settings: Settings, seed: int, count: int
) -> LoadRun:
    """Apply `count` random outline edits while the course's job writes it."""
    rng = random.Random(seed)
    created = await running.generate(topic=f"Bread under load {seed}", lessons=LOAD_LESSONS)
    lessons = created["course"]["lessons"]
    run = LoadRun(
        created["course_id"],
        created["job_id"],
        Replay({lesson["id"]: lesson["description"] for lesson in lessons}),
        {lesson["title"]: lesson["id"] for lesson in lessons},
    )
    for lesson in lessons:  # as the course was created: no lesson event says so
        run.replay.lessons[lesson["id"]] = {
            "title": lesson["title"], "position": lesson["position"], "status": "pending",
        }  # fmt: skip

    async def course_now() -> list[int]:
        rows = await db_rows(
            settings,
            "SELECT id, position FROM lessons WHERE course_id = ? ORDER BY position",
            run.course_id,
        )
        assert [position for _, position in rows] == list(range(1, len(rows) + 1)), rows
        return [lesson_id for lesson_id, _ in rows]

    def in_flight(lesson_id: int) -> list[Call]:
        names = {title for title, owner in run.titles.items() if owner == lesson_id}
        return [
            call for call in fake.calls
            if call.kind in ("lesson", "quiz") and call.ended is None and call.title in names
        ]  # fmt: skip

    ids = await course_now()
    for step in range(count):
        n = len(ids)
        kind = rng.choice(("add", "remove", "move", "rename"))
        kind = "add" if n <= 4 else "remove" if n >= 20 else kind
        lesson_id = rng.choice(ids)
        if kind == "add":
            at = rng.randint(1, n + 1)
            title, description = f"Added {seed}.{step}", f"What part {seed}.{step} adds."
            response = await running.http.post(
                f"/api/courses/{run.course_id}/lessons",
                json={"title": title, "description": description, "position": at},
            )
            assert response.status_code == 201, response.text
            added = response.json()
            assert (added["position"], added["title"]) == (at, title)
            # New and pending, unless the job's driver claimed it before the answer was read.
            assert added["content_status"] in ("pending", "generating"), added
            lesson_id = added["id"]
            run.titles[title] = lesson_id
            run.replay.descriptions[lesson_id] = description
            run.added.add(lesson_id)
            run.made.append((lesson_id, "added"))
        elif kind == "remove":
            # Half the time one being written, to cut its call off.
            busy = [i for i in ids if in_flight(i)]
            if busy and rng.random() < 0.5:
                lesson_id = rng.choice(busy)
            calls = in_flight(lesson_id)
            response = await running.http.delete(f"/api/lessons/{lesson_id}")
            assert response.status_code == 204, response.text
            run.cut_off += calls
            run.removed.add(lesson_id)
            run.made.append((lesson_id, "removed"))
        elif kind == "move":
            old = ids.index(lesson_id) + 1
            new = rng.choice([p for p in range(1, n + 1) if p != old])
            response = await running.http.patch(f"/api/lessons/{lesson_id}", json={"position": new})
            assert response.status_code == 200, response.text
            assert response.json()["position"] == new
            run.made.append((lesson_id, "moved"))
        else:
            title = f"Renamed {seed}.{step}"
            response = await running.http.patch(f"/api/lessons/{lesson_id}", json={"title": title})
            assert response.status_code == 200, response.text
            assert response.json()["title"] == title
            run.titles[title] = lesson_id
            run.made.append((lesson_id, "edited"))
        ids = await course_now()
        assert len(ids) == n + {"add": 1, "remove": -1}.get(kind, 0)
    return run


async def check_load_run(
    running: Running, fake: FakeAnthropic, settings: Settings, run: LoadRun
) -> int:
    """Every check on a run whose job has ended; how many cut-off calls the fake saw end."""
    done = await running.settle(run.job_id, seconds=60)
    rows = await db_rows(
        settings,
        "SELECT id, position, content_status, quiz_status, quiz FROM lessons "
        "WHERE course_id = ? ORDER BY position",
        run.course_id,
    )
    assert [row[1] for row in rows] == list(range(1, len(rows) + 1))
    assert all(row[2:4] == ("complete", "complete") and row[4] for row in rows), rows
    assert (done["status"], done["total_lessons"], done["completed_lessons"]) == (
        "complete", len(rows), len(rows),
    )  # fmt: skip
    assert done["failed_lessons"] == 0
    assert await counters_hold(settings) == []

    # What a page reconnecting from the start reads is the log itself.
    response = await running.http.get(f"/api/jobs/{run.job_id}/events?last_event_id=0")
    log = await job_log(settings, run.job_id)
    assert read_stream(response.text) == log

    # Every change reached the stream as a lesson event naming it, in the order made.
    streamed = iter(changes(log))
    for made in run.made:
        assert made in streamed, f"{made} is not in the stream (in order)"

    # Replay the log. A transaction's events are consecutive in it (SQLite has one
    # writer; PostgreSQL inserts them under an advisory lock, so ids follow commits),
    # but the log does not mark where one ends. Two moments are known to be between
    # transactions: a `progress` or `job` event, which refresh_job emits last in every
    # transaction that changes counters or status, and the end of a run of `moved`
    # events, which every transaction that shifts lessons emits after its other
    # lesson events. The full invariant is checked at the first, positions at both.
    replay = run.replay
    outlines: list[str] = []  # the outline after each event
    claimed: dict[tuple[int, str], int] = {}  # (lesson id, text or quiz) -> index
    ended: dict[tuple[int, str], int] = {}
    checked = 0
    for index, (event_id, kind, data) in enumerate(log):
        if kind == "lesson":
            lesson_id = data["lesson_id"]
            replay.apply(data)
            if data["content_status"] == "generating" and "change" not in data:
                assert (lesson_id, "text") not in claimed, f"lesson {lesson_id} claimed twice"
                claimed[lesson_id, "text"] = index
            if data.get("change") == "removed" or data["content_status"] in ("complete", "error"):
                ended.setdefault((lesson_id, "text"), index)
            if data.get("change") == "removed":
                ended.setdefault((lesson_id, "quiz"), index)
            following = log[index + 1] if index + 1 < len(log) else None
            if data.get("change") == "moved" and (
                following is None or following[2].get("change") != "moved"
            ):
                assert replay.positions_hold(), (event_id, replay.lessons)
        elif kind == "quiz":
            key = (data["lesson_id"], "quiz")
            if data["quiz_status"] == "generating":
                claimed[key] = index
            elif data["quiz_status"] in ("complete", "error") and key in claimed:
                ended.setdefault(key, index)
        elif kind in ("progress", "job"):
            counters = (data["total_lessons"], data["completed_lessons"], data["failed_lessons"])
            assert counters == replay.counters(), (event_id, data, replay.lessons)
            assert replay.positions_hold(), (event_id, replay.lessons)
            checked += 1
        outlines.append(replay.listing())
    assert checked >= len(rows)
    assert {i: lesson["position"] for i, lesson in replay.lessons.items()} == {
        row[0]: row[1] for row in rows
    }

    # Each call read the outline after its claim and before its result (or its lesson's
    # removal): what it was shown is the outline at one of those moments.
    seen_added = seen_renamed = 0
    renames = [
        (index, data["lesson_id"], data["title"])
        for index, (_, kind, data) in enumerate(log)
        if kind == "lesson" and data.get("change") == "edited"
    ]
    removed_at = {
        data["lesson_id"]: index
        for index, (_, kind, data) in enumerate(log)
        if kind == "lesson" and data.get("change") == "removed"
    }
    mine = [c for c in fake.calls if c.kind in ("lesson", "quiz") and c.title in run.titles]
    for call in mine:
        lesson_id = run.titles[call.title]
        key = (lesson_id, "text" if call.kind == "lesson" else "quiz")
        start, end = claimed[key], ended.get(key, len(log))
        shown = outline_listing(call)
        assert shown in outlines[start:end], (call.kind, call.title, shown)
        if call.kind != "lesson":
            continue
        if lesson_id in run.added:  # its own title, where the prompt says it stands
            number = int(user_turn(call).split(" of ", 1)[0].removeprefix("Lesson "))
            entry = f"{number}. {call.title}: {run.replay.descriptions[lesson_id]}"
            assert entry in shown.splitlines()
            seen_added += 1
        for at, renamed, title in renames:
            # Renamed before the claim, and still so (not renamed again, nor removed)
            # until the result: every outline the call could have read shows the title.
            later = [i for i, other, _ in renames if other == renamed and i > at]
            until_index = min([*later, removed_at.get(renamed, len(log))])
            if at < start and until_index > end:
                assert f". {title}: " in shown, (title, shown)
                seen_renamed += 1
    assert len([c for c in mine if c.kind == "lesson"]) >= LOAD_LESSONS
    if run.added - run.removed:
        assert seen_added >= 1
    assert seen_renamed >= 1

    # A removed lesson's calls in flight were cut off (the fake saw the client hang up,
    # unless the answer was whole before the removal), none is left open, and no result
    # of theirs was stored: no event of the lesson after its removal, no row, no version.
    await until(lambda: all(call.ended is not None for call in run.cut_off))
    assert set(removed_at) == run.removed
    for lesson_id, index in removed_at.items():
        after = [event for event in log[index + 1 :] if event[2].get("lesson_id") == lesson_id]
        assert after == [], (lesson_id, after)
    left = await db_rows(
        settings, "SELECT id FROM lessons UNION SELECT lesson_id FROM lesson_versions"
    )
    assert not run.removed & {row[0] for row in left}
    return sum(call.aborted for call in run.cut_off)


async def test_outline_edits_under_load_keep_positions_counters_and_prompts_true(
    start_app: StartApp, fake: FakeAnthropic, settings: Settings
) -> None:
    running = await start_app(concurrency=3)
    fake.lesson_delay = 0.2
    aborted = 0
    for seed, count in LOAD_RUNS:
        run = await edit_under_load(running, fake, settings, seed, count)
        aborted += await check_load_run(running, fake, settings, run)
    assert aborted >= 1  # some removal did cut a call off at the model


async def test_removing_a_lesson_cuts_off_its_calls_and_stores_nothing_of_them(
    start_app: StartApp, fake: FakeAnthropic, settings: Settings
) -> None:
    running = await start_app(concurrency=2)
    fake.add_fault(kind="lesson", match="Lesson 2", delay=30)
    fake.add_fault(kind="quiz", match="Lesson 1", delay=30)
    created = await running.generate(lessons=3)
    first, second, third = (lesson["id"] for lesson in created["course"]["lessons"])

    def at_the_model(calls: list[Call]) -> bool:
        return len(calls) == 1 and calls[0].ended is None

    # Lesson 2's text and lesson 1's quiz are being answered, and hold both slots.
    await until(
        lambda: (
            at_the_model(fake.lesson_calls("Lesson 2"))
            and at_the_model(fake.quiz_calls("Lesson 1"))
        )
    )
    for lesson_id in (second, first):
        response = await running.http.delete(f"/api/lessons/{lesson_id}")
        assert response.status_code == 204, response.text
    text_call, quiz_call = fake.lesson_calls("Lesson 2")[0], fake.quiz_calls("Lesson 1")[0]
    await until(lambda: text_call.ended is not None and quiz_call.ended is not None)
    assert text_call.aborted and quiz_call.aborted

    done = await running.settle(created["job_id"])
    assert (done["status"], done["total_lessons"], done["completed_lessons"]) == ("complete", 1, 1)
    course = await get_course(running, created["course_id"])
    assert [(lesson["id"], lesson["position"]) for lesson in course["lessons"]] == [(third, 1)]
    assert (await get_lesson(running, third))["quiz_status"] == "complete"
    assert (await running.http.get(f"/api/lessons/{second}")).status_code == 404
    assert await db_rows(settings, "SELECT DISTINCT lesson_id FROM lesson_versions") == [(third,)]
    log = await job_log(settings, created["job_id"])
    for lesson_id in (first, second):
        mentions = [d for _, t, d in log if t in ("lesson", "quiz") and d["lesson_id"] == lesson_id]
        assert mentions[-1].get("change") == "removed", mentions
    assert await counters_hold(settings) == []


# -- resume after a crash ---------------------------------------------------------------------


async def test_a_restart_after_kill_9_writes_the_quizzes_in_flight(
    fake: FakeAnthropic, settings: Settings, tmp_path: Path
) -> None:
    env = server_env(
        api_key=API_KEY,
        base_url=fake.base_url,
        model="claude-test",
        # PostgreSQL: longer than a restart takes, so the new node finds the dead one's
        # quizzes still claimed and must take them over once the leases end.
        extra={"COURSEGEN_CONCURRENCY": "3", "COURSEGEN_LEASE_SECONDS": "4"},
    )
    postgres = settings.engine == "postgresql"
    server = ServerProcess(
        tmp_path / "coursegen.db", env, tmp_path / "server.log",
        db_url=settings.db if postgres else None,
    )  # fmt: skip
    # Lesson 1's quiz is written (it warms the quiz prefix; the others start once it
    # has answered), lessons 2 and 3's are at the model when the server dies.
    for held in ("Lesson 2", "Lesson 3"):
        fake.add_fault(kind="quiz", match=held, delay=30)
    quizzes = "SELECT position, content_status, quiz_status FROM lessons ORDER BY position"
    try:
        await server.start()
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.post(
                f"{server.url}/api/courses/generate", json={"topic": "Rye bread", "lessons": 3}
            )
            assert response.status_code == 201, response.text
            job_id = response.json()["job_id"]
            crash_moment = [(1, "complete", "complete"), (2, "complete", "generating"),
                            (3, "complete", "generating")]  # fmt: skip
            async with asyncio.timeout(20):
                while True:
                    at_the_model = sum(call.ended is None for call in fake.quiz_calls())
                    if at_the_model == 2 and await db_rows(settings, quizzes) == crash_moment:
                        break
                    await asyncio.sleep(0.02)
            await server.kill()
            assert server.exit_codes == [-signal.SIGKILL]
            assert await db_rows(settings, quizzes) == crash_moment
            cut = [call for call in fake.quiz_calls() if call.ended is None or call.aborted]
            await until(lambda: all(call.aborted for call in cut))
            assert len(cut) == 2

            await server.start()
            async with asyncio.timeout(30):
                while True:
                    progress = (await http.get(f"{server.url}/api/jobs/{job_id}/progress")).json()
                    if progress["status"] in TERMINAL_JOB_STATUSES:
                        break
                    await asyncio.sleep(0.05)
            assert (progress["status"], progress["completed_lessons"]) == ("complete", 3)
            course = (await http.get(f"{server.url}/api/courses/{progress['course_id']}")).json()
            for summary in course["lessons"]:
                lesson = (await http.get(f"{server.url}/api/lessons/{summary['id']}")).json()
                assert (lesson["content_status"], lesson["quiz_status"]) == ("complete", "complete")
                assert_valid_quiz(lesson["quiz"])
    finally:
        await server.stop()
    assert await db_rows(settings, quizzes) == [(n, "complete", "complete") for n in (1, 2, 3)]
    # Each quiz cut off was written again, once; nothing finished was written twice.
    assert [len(fake.quiz_calls(f"Lesson {n}:")) for n in (1, 2, 3)] == [1, 2, 2]
    assert len(fake.lesson_calls()) == 3
    log = await job_log(settings, job_id)
    first, *others = (summary["id"] for summary in course["lessons"])
    assert quiz_statuses(log, first) == ["pending", "generating", "complete"]
    for lesson_id in others:
        # SQLite hands the dead process's claims back at start (pending); PostgreSQL
        # takes them over once their leases end.
        again = ["generating"] if postgres else ["pending", "generating"]
        assert quiz_statuses(log, lesson_id) == ["pending", "generating", *again, "complete"]
    assert await counters_hold(settings) == []
