"""Every JSON endpoint, its answers and its errors, in-process over the ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import API_KEY, Running, counters_hold, db_rows
from tests.htmlcheck import executable_parts

JSON = {"Content-Type": "application/json"}
# A job id no job has (fixed, so that test ids agree across xdist workers).
UNKNOWN_JOB = "3f2c6a55-0d8e-4c1b-9a6f-2b7e8d9c0a11"
PROGRESS_KEYS = {
    "job_id", "course_id", "status", "progress", "total_lessons", "completed_lessons",
    "failed_lessons", "error_message", "started_at", "completed_at", "usage",
}  # fmt: skip


async def table_counts(running: Running) -> dict[str, int]:
    settings = running.services.settings
    return {
        table: (await db_rows(settings, f"SELECT count(*) FROM {table}"))[0][0]
        for table in ("courses", "lessons", "content_generation_jobs", "events")
    }


async def test_generate_answers_with_the_course_at_once(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.lesson_delay = 5  # the answer must not wait for any lesson
    response = await running.http.post(
        "/api/courses/generate", json={"topic": "  Sourdough baking  ", "lessons": 4}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True
    course = body["course"]
    assert body["course_id"] == course["id"]
    assert body["job_id"] == course["job"]["job_id"]
    assert "4 lessons" in body["message"]
    assert course["topic"] == "Sourdough baking"
    assert course["title"] == "Sourdough baking: a practical course"
    assert [lesson["position"] for lesson in course["lessons"]] == [1, 2, 3, 4]
    assert all(lesson["content_status"] == "pending" for lesson in course["lessons"])
    assert set(course["lessons"][0]) == {
        "id", "position", "title", "description", "content_status", "content_error", "usage",
        "quiz_status",
    }  # fmt: skip
    assert set(course["job"]) == PROGRESS_KEYS
    assert course["job"]["status"] == "running"
    assert course["job"]["total_lessons"] == 4
    assert len(fake.outline_calls()) == 1


async def test_course_list_is_newest_first_with_counts_and_cursor(running: Running) -> None:
    first = await running.generate("Knitting basics", lessons=2)
    second = await running.generate("Bird watching", lessons=3)
    await running.settle(second["job_id"])
    await running.settle(first["job_id"])
    response = await running.http.get("/api/courses")
    assert response.status_code == 200
    body = response.json()
    assert [c["id"] for c in body["courses"]] == [second["course_id"], first["course_id"]]
    assert [c["lesson_count"] for c in body["courses"]] == [3, 2]
    assert "lessons" not in body["courses"][0]
    assert body["courses"][0]["job"]["status"] == "complete"
    assert body["last_event_id"] == running.services.broker.last_id > 0


async def test_course_and_lesson_reads_follow_the_lessons(running: Running) -> None:
    created = await running.generate(lessons=2)
    await running.settle(created["job_id"])
    course = (await running.http.get(f"/api/courses/{created['course_id']}")).json()
    assert course["job"]["status"] == "complete"
    assert course["job"]["progress"] == 100
    assert [lesson["content_status"] for lesson in course["lessons"]] == ["complete"] * 2
    lesson_id = course["lessons"][1]["id"]
    lesson = (await running.http.get(f"/api/lessons/{lesson_id}")).json()
    assert set(lesson) == {
        "id", "course_id", "job_id", "position", "title", "description", "content",
        "content_html", "content_status", "content_error", "updated_at", "usage", "model",
        "attempts", "duration_ms", "stop_reason", "quiz_status", "quiz", "quiz_error",
    }  # fmt: skip
    # How it was made: one call, by the configured model, that ended normally.
    assert (lesson["model"], lesson["attempts"], lesson["stop_reason"]) == (
        "claude-test", 1, "end_turn",
    )  # fmt: skip
    assert lesson["duration_ms"] >= 0
    assert lesson["usage"]["output_tokens"] > 0 and lesson["usage"]["input_tokens"] > 0
    # An unknown model has no price: its tokens count, its cost is null.
    assert lesson["usage"]["cost_usd"] is None
    assert course["usage"]["cost_usd"] is None
    assert lesson["job_id"] == created["job_id"]
    assert lesson["position"] == 2
    assert lesson["content"].startswith("# Lesson 2")
    assert lesson["content_html"].startswith("<h1>Lesson 2")


async def test_lesson_content_is_null_until_complete(running: Running, fake: FakeAnthropic) -> None:
    fake.lesson_delay = 5
    created = await running.generate(lessons=1)
    lesson_id = created["course"]["lessons"][0]["id"]
    lesson = (await running.http.get(f"/api/lessons/{lesson_id}")).json()
    assert lesson["content_status"] in ("pending", "generating")
    assert lesson["content"] is None
    assert lesson["content_html"] is None


async def test_model_html_is_sanitised_in_the_lesson(running: Running, fake: FakeAnthropic) -> None:
    fake.lesson_text = lambda title: (
        "# Safe\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))\n\n"
        '<img src=x onerror="alert(1)">'
    )
    created = await running.generate(lessons=1)
    await running.settle(created["job_id"])
    lesson_id = created["course"]["lessons"][0]["id"]
    html = (await running.http.get(f"/api/lessons/{lesson_id}")).json()["content_html"]
    assert executable_parts(html) == []
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text


async def test_health_reports_provider_model_and_active_jobs(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.lesson_delay = 5
    await running.generate(lessons=1)
    health = (await running.http.get("/api/health")).json()
    assert health == {
        "status": "ok",
        "provider": "anthropic",
        "model": "claude-test",
        "concurrency": 4,
        "effective_concurrency": 4,
        "rate_limit": {"paused_for_seconds": 0, "remaining": health["rate_limit"]["remaining"]},
        "active_jobs": 1,
        "engine": running.services.settings.engine,
        "node": running.services.node,
    }
    assert running.services.node  # a name, for telling nodes apart in a cluster
    # The rate-limit headers of the provider's last answer.
    assert health["rate_limit"]["remaining"]["requests-remaining"] >= 0


async def test_progress_endpoint_returns_the_progress_object(running: Running) -> None:
    created = await running.generate(lessons=3)
    await running.settle(created["job_id"])
    progress = (await running.http.get(f"/api/jobs/{created['job_id']}/progress")).json()
    assert set(progress) == PROGRESS_KEYS
    assert progress["status"] == "complete"
    assert (progress["completed_lessons"], progress["failed_lessons"]) == (3, 0)
    assert progress["completed_at"] is not None


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b'["Sourdough"]', "JSON object"),
        (b'"Sourdough"', "JSON object"),
        (b"{}", "topic is required"),
        (b'{"topic": 42}', "topic is required"),
        (b'{"topic": "   "}', "3 to 200"),
        (b'{"topic": "ab"}', "3 to 200"),
        (b'{"topic": "' + b"x" * 201 + b'"}', "3 to 200"),
        (b'{"topic": "' + b"x" * 5000 + b'"}', "3 to 200"),
        (b'{"topic": "bad\\u0000topic"}', "control characters"),
        (b'{"topic": "two\\nlines"}', "control characters"),
        (b'{"topic": "spoof\\u202eed title"}', "control characters"),
        (b'{"topic": "Sourdough", "lessons": 0}', "1 to 20"),
        (b'{"topic": "Sourdough", "lessons": 21}', "1 to 20"),
        (b'{"topic": "Sourdough", "lessons": -1}', "1 to 20"),
        (b'{"topic": "Sourdough", "lessons": "5"}', "1 to 20"),
        (b'{"topic": "Sourdough", "lessons": 100}', "1 to 20"),
        (b'{"topic": "Sourdough", "lessons": "x"}', "1 to 20"),
        (b'{"topic": "Sourdough", "lessons": 2.5}', "1 to 20"),
        (b'{"topic": "Sourdough", "lessons": true}', "1 to 20"),
        (b"[" * 100_000 + b"]" * 100_000, "64 KiB"),
        (b'{"topic": "' + b"x" * 1_000_000 + b'"}', "64 KiB"),
    ],
)
async def test_generate_rejects_bad_bodies_and_stores_nothing(
    running: Running, fake: FakeAnthropic, body: bytes, fragment: str
) -> None:
    response = await running.http.post("/api/courses/generate", content=body, headers=JSON)
    assert 400 <= response.status_code < 500
    assert response.status_code == (413 if len(body) > 65536 else 400)
    assert fragment in response.json()["error"]
    assert fake.outline_calls() == []
    assert (await table_counts(running))["courses"] == 0


async def test_deeply_nested_json_is_a_400_not_a_crash(running: Running) -> None:
    response = await running.http.post("/api/courses/generate", content=b"[" * 60_000, headers=JSON)
    assert response.status_code == 400


async def test_body_over_64_kib_is_413_json_with_and_without_length(running: Running) -> None:
    big = b'{"topic": "' + b"x" * 70_000 + b'"}'
    with_length = await running.http.post("/api/courses/generate", content=big, headers=JSON)
    assert with_length.status_code == 413
    assert with_length.json() == {"error": "the body is over 64 KiB"}

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    chunked = await running.http.post("/api/courses/generate", content=chunks(), headers=JSON)
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413
    assert chunked.json() == {"error": "the body is over 64 KiB"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/courses/999"),
        ("GET", "/api/courses/abc"),
        ("GET", "/api/courses/-1"),
        ("GET", "/api/courses/1.5"),
        ("GET", "/api/courses/99999999999999999999999"),
        ("DELETE", "/api/courses/999"),
        ("GET", "/api/lessons/999"),
        ("GET", "/api/lessons/x"),
        ("POST", "/api/lessons/999/retry"),
        ("GET", f"/api/jobs/{UNKNOWN_JOB}/progress"),
        ("GET", "/api/jobs/not-a-uuid/progress"),
        ("POST", f"/api/jobs/{UNKNOWN_JOB}/retry"),
        ("POST", f"/api/jobs/{UNKNOWN_JOB}/cancel"),
        ("GET", f"/api/jobs/{UNKNOWN_JOB}/events"),
        ("GET", "/api/nothing-here"),
    ],
)
async def test_unknown_ids_are_404_json(running: Running, method: str, path: str) -> None:
    response = await running.http.request(method, path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json()["error"], str)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/courses/generate"),
        ("PUT", "/api/courses"),
        ("POST", "/api/courses/1"),
        ("PUT", "/api/lessons/1"),
        ("GET", "/api/lessons/1/retry"),
        ("GET", f"/api/jobs/{UNKNOWN_JOB}/cancel"),
        ("POST", "/api/health"),
    ],
)
async def test_wrong_methods_are_405_json(running: Running, method: str, path: str) -> None:
    response = await running.http.request(method, path)
    assert response.status_code == 405
    assert "not allowed" in response.json()["error"]
    assert response.headers["allow"]


@pytest.mark.parametrize("cursor", ["-1", "abc", "1.5", "99999999999999999999"])
async def test_bad_stream_cursor_is_400(running: Running, cursor: str) -> None:
    created = await running.generate(lessons=1)
    for path in (f"/api/jobs/{created['job_id']}/events", "/api/events"):
        by_header = await running.http.get(path, headers={"Last-Event-ID": cursor})
        assert by_header.status_code == 400
        assert "Last-Event-ID" in by_header.json()["error"]
        by_query = await running.http.get(path, params={"last_event_id": cursor})
        assert by_query.status_code == 400


async def test_server_keeps_serving_after_bad_input(running: Running) -> None:
    """The issue's named cases, one after the other, then a normal generate."""
    bad: list[tuple[str, str, dict[str, object]]] = [
        ("POST", "/api/courses/generate", {"content": b""}),
        ("POST", "/api/courses/generate", {"content": b"\xff\xfe garbage"}),
        ("POST", "/api/courses/generate", {"content": b"[" * 70_000}),
        ("POST", "/api/courses/generate", {"json": []}),
        ("POST", "/api/courses/generate", {"json": {"topic": "     "}}),
        ("POST", "/api/courses/generate", {"json": {"topic": "x" * 5000}}),
        ("POST", "/api/courses/generate", {"json": {"topic": "a\x07b\x1bc"}}),
        ("POST", "/api/courses/generate", {"json": {"topic": "Sourdough", "lessons": 0}}),
        ("POST", "/api/courses/generate", {"json": {"topic": "Sourdough", "lessons": -1}}),
        ("POST", "/api/courses/generate", {"json": {"topic": "Sourdough", "lessons": 100}}),
        ("POST", "/api/courses/generate", {"json": {"topic": "Sourdough", "lessons": "x"}}),
        ("POST", "/api/courses/generate", {"content": b"x" * 1_048_576}),
        ("GET", "/api/courses/abc", {}),
        ("GET", "/api/courses/99999999999999999999999999", {}),
        ("GET", "/api/jobs/not-a-uuid/progress", {}),
        ("GET", "/api/events", {"headers": {"Last-Event-ID": "-5"}}),
        ("GET", "/api/events", {"headers": {"Last-Event-ID": "9" * 40}}),
        ("PATCH", "/api/courses", {}),
        ("PUT", "/api/courses/generate", {}),
    ]
    for method, path, kwargs in bad:
        response = await running.http.request(method, path, **kwargs)  # type: ignore[arg-type]
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
        assert isinstance(response.json()["error"], str)
    created = await running.generate(lessons=1)
    assert (await running.settle(created["job_id"]))["status"] == "complete"


# -- idempotency and admission ---------------------------------------------------------------


async def test_idempotency_key_returns_the_first_answer_and_starts_nothing(
    running: Running, fake: FakeAnthropic
) -> None:
    headers = {"Idempotency-Key": "order-42"}
    body = {"topic": "Sourdough baking", "lessons": 2}
    first = await running.http.post("/api/courses/generate", json=body, headers=headers)
    second = await running.http.post("/api/courses/generate", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert len(fake.outline_calls()) == 1
    assert (await table_counts(running))["courses"] == 1
    other = await running.http.post(
        "/api/courses/generate", json={"topic": "Something else"}, headers=headers
    )
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["error"]


async def test_concurrent_requests_with_one_key_call_the_model_once(
    running: Running, fake: FakeAnthropic
) -> None:
    import asyncio

    fake.outline_delay = 0.3
    headers = {"Idempotency-Key": "same-key"}
    answers = await asyncio.gather(
        *(
            running.http.post(
                "/api/courses/generate", json={"topic": "Sourdough baking"}, headers=headers
            )
            for _ in range(3)
        )
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["course_id"] for a in answers}) == 1
    assert len(fake.outline_calls()) == 1


async def test_bad_idempotency_key_is_400(running: Running) -> None:
    response = await running.http.post(
        "/api/courses/generate", json={"topic": "Sourdough"}, headers={"Idempotency-Key": ""}
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]


async def test_too_many_running_jobs_is_429(
    start_app: Callable[..., Awaitable[Running]], fake: FakeAnthropic
) -> None:
    running = await start_app(max_active_jobs=2)
    fake.lesson_delay = 5
    await running.generate(lessons=1)
    await running.generate(lessons=1)
    response = await running.http.post("/api/courses/generate", json={"topic": "Third topic"})
    assert response.status_code == 429
    assert "2 courses are being written" in response.json()["error"]
    assert len(fake.outline_calls()) == 2


# -- the model provider failing the outline ---------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "fragment"),
    [
        ({"status": 401}, "rejected the API key (401)"),
        ({"status": 429, "times": None, "headers": {"retry-after-ms": "1"}}, "try again in 1 s"),
        ({"status": 500, "times": None}, "failed (500"),
        ({"status": 529, "times": None}, "overloaded (529"),
        ({"no_tool_call": True}, "without an outline"),
        ({"outline": {"title": "T", "description": "D", "lessons": []}}, "no lessons"),
        ({"outline": {"title": 5, "description": "D", "lessons": [{"title": "a"}]}}, "invalid"),
        ({"outline": "just text"}, "invalid outline"),
    ],
)
async def test_outline_failure_is_502_with_words_and_nothing_stored(
    running: Running, fake: FakeAnthropic, fault: dict[str, Any], fragment: str
) -> None:
    fake.add_fault(kind="outline", **fault)
    response = await running.http.post("/api/courses/generate", json={"topic": "Sourdough"})
    assert response.status_code == 502
    assert fragment in response.json()["error"]
    assert API_KEY not in response.text
    assert (await table_counts(running)) == {
        "courses": 0, "lessons": 0, "content_generation_jobs": 0, "events": 0,
    }  # fmt: skip
    assert fake.lesson_calls() == []


async def test_outline_stall_past_the_timeout_is_502(
    start_app: Callable[..., Awaitable[Running]], fake: FakeAnthropic
) -> None:
    running = await start_app(lesson_timeout=0.5)
    fake.add_fault(kind="outline", delay=3)
    response = await running.http.post("/api/courses/generate", json={"topic": "Sourdough"})
    assert response.status_code == 502
    assert "timed out after 0.5 s" in response.json()["error"]
    assert (await table_counts(running))["courses"] == 0


async def test_requested_lesson_count_drops_extra_lessons(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.outline = {
        "title": "Sourdough",
        "description": "Bread.",
        "lessons": [{"title": f"L{i}", "description": "d"} for i in range(1, 9)],
    }
    created = await running.generate(lessons=3)
    assert [lesson["title"] for lesson in created["course"]["lessons"]] == ["L1", "L2", "L3"]
    fake.outline = {
        "title": "Sourdough",
        "description": "Bread.",
        "lessons": fake.outline["lessons"][:2],
    }
    fewer = await running.generate(lessons=5)
    assert len(fewer["course"]["lessons"]) == 2


# -- retry, cancel, delete ---------------------------------------------------------------


async def test_failed_lesson_retry_heals_it_and_counters_follow(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.add_fault(kind="lesson", match="Lesson 2", status=400)
    created = await running.generate(lessons=3)
    done = await running.settle(created["job_id"])
    assert done["status"] == "error"
    assert (done["completed_lessons"], done["failed_lessons"]) == (2, 1)
    assert done["error_message"] == "1 of 3 lessons failed"
    failed = created["course"]["lessons"][1]
    lesson = (await running.http.get(f"/api/lessons/{failed['id']}")).json()
    assert lesson["content_status"] == "error"
    assert "refused the lesson request (400)" in lesson["content_error"]

    response = await running.http.post(f"/api/lessons/{failed['id']}/retry")
    assert response.status_code == 202
    assert response.json() == {
        "lesson_id": failed["id"], "job_id": created["job_id"], "content_status": "pending",
    }  # fmt: skip
    healed = await running.settle(created["job_id"])
    assert healed["status"] == "complete"
    assert (healed["completed_lessons"], healed["failed_lessons"]) == (3, 0)
    assert healed["error_message"] is None
    assert await counters_hold(running.services.settings) == []
    assert len(fake.lesson_calls("Lesson 2")) == 2
    assert len(fake.lesson_calls("Lesson 1")) == 1


async def test_retry_is_409_while_a_lesson_is_pending_or_generating(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.lesson_delay = 5
    created = await running.generate(lessons=1)
    lesson_id = created["course"]["lessons"][0]["id"]
    response = await running.http.post(f"/api/lessons/{lesson_id}/retry")
    assert response.status_code == 409
    assert "retried once it has finished" in response.json()["error"]


async def test_double_retry_starts_one_run(running: Running, fake: FakeAnthropic) -> None:
    import asyncio

    fake.add_fault(kind="lesson", status=400)
    created = await running.generate(lessons=1)
    await running.settle(created["job_id"])
    lesson_id = created["course"]["lessons"][0]["id"]
    fake.lesson_delay = 0.2
    first, second = await asyncio.gather(
        running.http.post(f"/api/lessons/{lesson_id}/retry"),
        running.http.post(f"/api/lessons/{lesson_id}/retry"),
    )
    assert sorted([first.status_code, second.status_code]) == [202, 409]
    await running.settle(created["job_id"])
    assert len(fake.lesson_calls()) == 2  # the failed call and one retry


async def test_regenerate_a_complete_lesson(running: Running, fake: FakeAnthropic) -> None:
    created = await running.generate(lessons=2)
    await running.settle(created["job_id"])
    lesson_id = created["course"]["lessons"][0]["id"]
    fake.lesson_text = lambda title: f"# Rewritten {title}"
    assert (await running.http.post(f"/api/lessons/{lesson_id}/retry")).status_code == 202
    done = await running.settle(created["job_id"])
    assert (done["status"], done["completed_lessons"]) == ("complete", 2)
    lesson = (await running.http.get(f"/api/lessons/{lesson_id}")).json()
    assert lesson["content"].startswith("# Rewritten")


async def test_job_retry_requeues_every_failed_lesson(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.add_fault(kind="lesson", status=400, times=2)
    created = await running.generate(lessons=4)
    done = await running.settle(created["job_id"])
    assert done["failed_lessons"] == 2
    response = await running.http.post(f"/api/jobs/{created['job_id']}/retry")
    assert response.status_code == 202
    assert response.json() == {"job_id": created["job_id"], "retried": 2}
    healed = await running.settle(created["job_id"])
    assert (healed["status"], healed["completed_lessons"], healed["failed_lessons"]) == (
        "complete", 4, 0,
    )  # fmt: skip
    again = await running.http.post(f"/api/jobs/{created['job_id']}/retry")
    assert again.status_code == 409


async def test_cancel_stops_calls_and_puts_lessons_back_to_pending(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.lesson_delay = 30
    created = await running.generate(lessons=6)
    job_id = created["job_id"]
    await running.wait_for_lessons(
        lambda ls: sum(lesson["content_status"] == "generating" for lesson in ls) == 4,
        created["course_id"],
    )
    async with asyncio.timeout(10):  # the four calls have reached the model
        while True:
            if fake.lessons_in_flight == 4:
                break
            await asyncio.sleep(0.01)
    response = await running.http.post(f"/api/jobs/{job_id}/cancel")
    assert response.status_code == 202
    progress = response.json()
    assert set(progress) == PROGRESS_KEYS
    assert progress["status"] == "cancelled"
    course = (await running.http.get(f"/api/courses/{created['course_id']}")).json()
    assert [lesson["content_status"] for lesson in course["lessons"]] == ["pending"] * 6
    assert fake.lessons_in_flight == 0
    calls = len(fake.lesson_calls())
    assert calls == 4
    assert (await running.http.post(f"/api/jobs/{job_id}/cancel")).status_code == 409
    # Resuming a cancelled job queues its unfinished lessons again.
    fake.lesson_delay = 0
    resumed = await running.http.post(f"/api/jobs/{job_id}/retry")
    assert resumed.json()["retried"] == 6
    assert (await running.settle(job_id))["status"] == "complete"
    assert await counters_hold(running.services.settings) == []


async def test_delete_cancels_then_removes_everything(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.lesson_delay = 30
    created = await running.generate(lessons=3)
    lesson_id = created["course"]["lessons"][0]["id"]
    await running.wait_for_lessons(
        lambda ls: ls[0]["content_status"] == "generating", created["course_id"]
    )
    response = await running.http.delete(f"/api/courses/{created['course_id']}")
    assert response.status_code == 204
    assert response.content == b""
    assert fake.lessons_in_flight == 0
    for path in (
        f"/api/courses/{created['course_id']}",
        f"/api/lessons/{lesson_id}",
        f"/api/jobs/{created['job_id']}/progress",
        f"/api/jobs/{created['job_id']}/events",
    ):
        assert (await running.http.get(path)).status_code == 404, path
    counts = await table_counts(running)
    assert counts == {"courses": 0, "lessons": 0, "content_generation_jobs": 0, "events": 1}
    assert (await running.http.delete(f"/api/courses/{created['course_id']}")).status_code == 404


# -- the page --------------------------------------------------------------------------------


async def test_root_serves_the_page_with_security_headers(running: Running) -> None:
    response = await running.http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_a_lesson_belongs_to_its_own_course_s_job_when_there_are_several(
    running: Running,
) -> None:
    """Retrying course A's lesson after course B was made reopens A's job, not B's."""
    first = await running.generate("Knitting basics", lessons=1)
    second = await running.generate("Bird watching", lessons=1)
    await running.settle(first["job_id"])
    await running.settle(second["job_id"])
    lesson_id = first["course"]["lessons"][0]["id"]
    assert (await running.http.get(f"/api/lessons/{lesson_id}")).json()["job_id"] == first["job_id"]
    retried = await running.http.post(f"/api/lessons/{lesson_id}/retry")
    assert retried.status_code == 202 and retried.json()["job_id"] == first["job_id"]
    assert (await running.settle(first["job_id"]))["status"] == "complete"
    other = (await running.http.get(f"/api/jobs/{second['job_id']}/progress")).json()
    assert (other["status"], other["completed_lessons"]) == ("complete", 1)
    assert (await running.http.get(f"/api/lessons/{lesson_id}")).json()["attempts"] == 2
