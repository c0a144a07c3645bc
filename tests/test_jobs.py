"""The job runner: concurrency across jobs, order, failures, timeouts, shutdown and resume."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgi_lifespan import LifespanManager

from coursegen.app import create_app
from coursegen.domain import DEFAULT_OPTIONS
from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import (
    API_KEY,
    Running,
    counters_hold,
    db_rows,
    job_reaches,
    provider_for,
    woken_until,
)

StartApp = Callable[..., Awaitable[Running]]


async def test_one_semaphore_bounds_lesson_calls_across_jobs(
    start_app: StartApp, fake: FakeAnthropic
) -> None:
    running = await start_app(concurrency=3)
    fake.lesson_delay = 0.15
    first = await running.generate("Knitting", lessons=5)
    second = await running.generate("Bird watching", lessons=5)
    for created in (first, second):
        assert (await running.settle(created["job_id"]))["status"] == "complete"
    assert fake.max_lessons_in_flight == 3
    # Both jobs progressed side by side rather than one after the other.
    knitting = [c.started for c in fake.lesson_calls() if "Knitting" in c.title]
    birds = [c.started for c in fake.lesson_calls() if "Bird" in c.title]
    assert min(birds) < max(knitting)


async def test_lessons_start_in_course_order(start_app: StartApp, fake: FakeAnthropic) -> None:
    running = await start_app(concurrency=2)
    fake.lesson_delay = 0.05
    created = await running.generate(lessons=6)
    await running.settle(created["job_id"])
    started = sorted(fake.lesson_calls(), key=lambda call: call.started)
    assert [call.title.split(":")[0] for call in started] == [f"Lesson {k}" for k in range(1, 7)]


async def test_one_failure_does_not_stop_the_others(running: Running, fake: FakeAnthropic) -> None:
    fake.add_fault(kind="lesson", match="Lesson 1", status=500, times=None)
    created = await running.generate(lessons=4)
    done = await running.settle(created["job_id"])
    assert (done["status"], done["completed_lessons"], done["failed_lessons"]) == ("error", 3, 1)
    course = (await running.services.store.get_course(created["course_id"])).to_json()
    assert [lesson["content_status"] for lesson in course["lessons"]] == [
        "error", "complete", "complete", "complete",
    ]  # fmt: skip
    assert course["lessons"][0]["content_error"].startswith("the model provider failed (500")


async def test_a_lesson_call_that_stalls_fails_with_a_timeout_and_can_be_retried(
    start_app: StartApp, fake: FakeAnthropic
) -> None:
    running = await start_app(lesson_timeout=0.5)
    fake.add_fault(kind="lesson", match="Lesson 2", delay=5)
    created = await running.generate(lessons=2)
    done = await running.settle(created["job_id"])
    assert (done["completed_lessons"], done["failed_lessons"]) == (1, 1)
    course = (await running.services.store.get_course(created["course_id"])).to_json()
    assert "timed out after 0.5 s" in course["lessons"][1]["content_error"]
    await running.http.post(f"/api/lessons/{course['lessons'][1]['id']}/retry")
    assert (await running.settle(created["job_id"]))["status"] == "complete"


async def test_lesson_prompt_carries_the_course_and_its_whole_outline(
    running: Running, fake: FakeAnthropic
) -> None:
    created = await running.generate("Sourdough baking", lessons=3)
    await running.settle(created["job_id"])
    call = fake.lesson_calls("Lesson 2")[0]
    # The course and its outline are in the system prompt (the cached prefix), the lesson
    # itself in the user turn.
    course_part = call.body["system"][-1]["text"]
    assert created["course"]["title"] in course_part
    for lesson in created["course"]["lessons"]:
        assert lesson["title"] in course_part and lesson["description"] in course_part
    assert call.body["messages"][0]["content"].startswith("Lesson 2 of 3:")
    assert call.body["model"] == "claude-test"
    assert call.body["stream"] is True  # streamed to its readers as it is written
    assert "tools" not in call.body


async def test_shutdown_puts_lessons_in_flight_back_and_a_restart_resumes_them(
    fake: FakeAnthropic, settings: Settings
) -> None:
    fake.lesson_delay = 30
    provider = provider_for(settings, fake)
    app = create_app(settings, provider=provider)
    async with LifespanManager(app):
        store = app.state.services.store
        outline = (await provider.generate_outline("Sourdough", 4, DEFAULT_OPTIONS)).outline
        course, _ = await store.create_course("Sourdough", outline)
        app.state.services.runner.kick(course.job.job_id)

        async def all_generating() -> bool | None:
            lessons = (await store.get_course(course.id)).lessons
            return all(lesson.content_status == "generating" for lesson in lessons) or None

        await woken_until(app.state.services, all_generating)
    # The lifespan ended: calls cancelled, lessons back to pending, the job still running.
    assert fake.lessons_in_flight == 0
    statuses = [row[0] for row in await db_rows(settings, "SELECT content_status FROM lessons")]
    assert statuses == ["pending"] * 4
    assert await db_rows(settings, "SELECT status FROM content_generation_jobs") == [("running",)]

    fake.lesson_delay = 0
    fake.reset()
    app = create_app(settings, provider=provider)
    async with LifespanManager(app):
        done = await job_reaches(app.state.services, course.job.job_id)
        assert done["status"] == "complete"
    await provider.aclose()
    assert len(fake.lesson_calls()) == 4
    assert await counters_hold(settings) == []


async def test_a_crash_left_lessons_generating_and_the_next_start_resumes(
    fake: FakeAnthropic, settings: Settings
) -> None:
    provider = provider_for(settings, fake)
    app = create_app(settings, provider=provider)
    async with LifespanManager(app):
        store = app.state.services.store
        outline = (await provider.generate_outline("Sourdough", 3, DEFAULT_OPTIONS)).outline
        course, _ = await store.create_course("Sourdough", outline)
        job_id = course.job.job_id
        # What a kill -9 leaves behind: one lesson complete, one mid-call, one untouched.
        first = await store.claim_next_lesson(job_id)
        assert first is not None
        await store.finish_lesson(job_id, first.id, first.attempt, content="# done")
        assert await store.claim_next_lesson(job_id) is not None
    fake.reset()
    app = create_app(settings, provider=provider)
    async with LifespanManager(app):
        assert (await job_reaches(app.state.services, job_id))["status"] == "complete"
    await provider.aclose()
    assert sorted(c.title.split(":")[0] for c in fake.lesson_calls()) == ["Lesson 2", "Lesson 3"]


async def test_a_stale_result_never_overwrites_a_newer_attempt(running: Running) -> None:
    store = running.services.store
    outline = (await running.provider.generate_outline("Sourdough", 1, DEFAULT_OPTIONS)).outline
    course, _ = await store.create_course("Sourdough", outline)
    job_id = course.job.job_id
    claimed = await store.claim_next_lesson(job_id)
    assert claimed is not None
    await store.cancel_job(job_id)  # the call is superseded while it runs
    assert not await store.finish_lesson(job_id, claimed.id, claimed.attempt, content="late")
    lesson = await store.get_lesson(claimed.id)
    assert lesson is not None and lesson.content_status == "pending"
    await store.retry_job(job_id)
    again = await store.claim_next_lesson(job_id)
    assert again is not None and again.attempt == claimed.attempt + 1
    assert not await store.finish_lesson(job_id, claimed.id, claimed.attempt, content="late")
    assert await store.finish_lesson(job_id, again.id, again.attempt, content="fresh")
    lesson = await store.get_lesson(claimed.id)
    assert lesson is not None and lesson.content == "fresh"


async def test_the_api_key_never_reaches_the_database_or_an_answer(
    running: Running, fake: FakeAnthropic
) -> None:
    fake.add_fault(kind="lesson", status=401)
    created = await running.generate(lessons=2)
    await running.settle(created["job_id"])
    for path in ("/api/courses", f"/api/courses/{created['course_id']}", "/api/health"):
        assert API_KEY not in (await running.http.get(path)).text
    settings = running.services.settings
    for table in ("courses", "lessons", "content_generation_jobs", "events", "idempotency_keys"):
        for row in await db_rows(settings, f"SELECT * FROM {table}"):
            assert API_KEY not in repr(row), table
    if settings.engine == "sqlite":  # every byte of the file, free pages and WAL too
        assert API_KEY.encode() not in settings.db_path.read_bytes()
        wal = settings.db_path.with_name("coursegen.db-wal")
        assert not wal.exists() or API_KEY.encode() not in wal.read_bytes()
