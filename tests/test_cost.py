"""Cost (SPEC 11): every token the model bills is counted once, priced, cached and capped.

The real SDK talks to the fake Messages API on loopback, which reports usage the way
Anthropic bills it (`Call.usage` is the last figure it sent for a call). Every total the
service shows is checked against those figures call by call, on both engines; a kill -9
runs a real `coursegen serve` (tests/serverproc.py) and restarts it on its database.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from coursegen.app import create_app
from coursegen.domain import Usage
from coursegen.prices import BUILT_IN, Prices
from coursegen.providers.demo import DemoProvider
from coursegen.services import Services
from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import Call, FakeAnthropic, cache_minimum, prompt_tokens
from tests.conftest import API_KEY, Running, counters_hold, db_rows, job_reaches, provider_for
from tests.helpers import until
from tests.serverproc import ServerProcess, server_env

TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
# A model the built-in table prices, and one it does not (the test settings' default).
PRICED = "claude-sonnet-5-5"
UNPRICED = "claude-test"
TOPIC = "Sourdough baking"
# Generous: a noisy two-core machine running PostgreSQL too.
SETTLE = 30.0


def short_lesson(title: str) -> str:
    return f"## {title}\n\nFeed the starter, wait for it to double, then mix the dough. " * 3


# -- the fake's figures and ours -------------------------------------------------------------


def tokens(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """The token figures of a usage (ours or the fake's), without the price."""
    return {name: int((usage or {}).get(name) or 0) for name in TOKENS}


def summed(calls: Iterable[Call]) -> dict[str, int]:
    """What the fake reported for these calls, added up (each call's last figures)."""
    total = dict.fromkeys(TOKENS, 0)
    for call in calls:
        for name, value in tokens(call.usage).items():
            total[name] += value
    return total


def billed(fake: FakeAnthropic) -> list[Call]:
    """The Messages calls the fake answered (200): the ones it bills."""
    return [c for c in fake.calls if c.kind != "other" and c.status == 200]


def calls_for(fake: FakeAnthropic, title: str) -> list[Call]:
    """Every call (answered or not) made for the lesson with exactly this title: its text
    calls, and its quiz's if it has one."""
    return [c for c in fake.calls if c.kind in ("lesson", "quiz") and c.title == title]


def text_calls(fake: FakeAnthropic, title: str) -> list[Call]:
    """The calls that wrote the text of the lesson with exactly this title."""
    return [c for c in fake.lesson_calls() if c.title == title]


def cost_of(calls: Iterable[Call], model: str, prices: Prices = BUILT_IN) -> float:
    """What the calls cost by the price table, unrounded."""
    total = 0.0
    for call in calls:
        cost = prices.cost(model, Usage(**tokens(call.usage)))
        assert cost is not None, f"{model} has no price"
        total += cost
    return total


async def stored_calls(settings: Settings, course_id: int) -> list[tuple[int, ...]]:
    """The token figures of every row of model_calls of a course, sorted."""
    sql = f"SELECT {', '.join(TOKENS)} FROM model_calls WHERE course_id = ?"
    return sorted(tuple(int(v) for v in row) for row in await db_rows(settings, sql, course_id))


def as_rows(calls: Iterable[Call]) -> list[tuple[int, ...]]:
    return sorted(tuple(tokens(c.usage).values()) for c in calls)


async def lesson_events(settings: Settings, job_id: str) -> list[dict[str, Any]]:
    """The `lesson` events the job logged (what its streams send), in order."""
    rows = await db_rows(
        settings, "SELECT data FROM events WHERE type = 'lesson' AND job_id = ? ORDER BY id", job_id
    )
    return [json.loads(row[0]) for row in rows]


async def get(http: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await http.get(path)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def course_views(
    http: httpx.AsyncClient, course_id: int, job_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The course, its lessons in full, its item in the list and its job's progress."""
    course = await get(http, f"/api/courses/{course_id}")
    lessons = [await get(http, f"/api/lessons/{lesson['id']}") for lesson in course["lessons"]]
    listing = await get(http, "/api/courses")
    (item,) = [c for c in listing["courses"] if c["id"] == course_id]
    progress = await get(http, f"/api/jobs/{job_id}/progress")
    return course, lessons, item, progress


# -- an app of one's own, stopped before the next starts on its database -------------------


@dataclass
class App:
    http: httpx.AsyncClient
    services: Services

    async def generate(self, lessons: int, topic: str = TOPIC) -> dict[str, Any]:
        response = await self.http.post(
            "/api/courses/generate", json={"topic": topic, "lessons": lessons}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def settle(self, job_id: str) -> dict[str, Any]:
        return await job_reaches(self.services, job_id, seconds=SETTLE)


@contextlib.asynccontextmanager
async def serving(settings: Settings, fake: FakeAnthropic | None = None) -> AsyncIterator[App]:
    """The app in-process with its lifespan (talking to `fake`, else to the provider its
    settings choose), shut down, runner and all, on leaving."""
    provider = provider_for(settings, fake) if fake is not None else None
    try:
        app = create_app(settings, provider=provider)
        async with LifespanManager(app, startup_timeout=10, shutdown_timeout=10) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
                yield App(http, app.state.services)
    finally:
        if provider is not None:
            await provider.aclose()


# -- 1. usage totals are the fake's figures, call by call ----------------------------------


async def test_usage_totals_equal_what_the_model_billed_call_by_call(
    fake: FakeAnthropic,
    settings: Settings,
    start_app: Callable[..., Awaitable[Running]],
) -> None:
    fake.lesson_text = short_lesson
    # Lesson 2: the SDK retries a 529 once; the refused attempt is not billed.
    fake.add_fault(kind="lesson", match="Lesson 2:", status=529, headers={"retry-after-ms": "1"})
    # Lesson 3: cut off at max_tokens, then continued: two billed calls.
    fake.add_fault(kind="lesson", match="Lesson 3:", stop_reason="max_tokens")
    running = await start_app(max_retries=1)
    created = await running.generate(TOPIC, lessons=4)
    course_id, job_id = created["course_id"], created["job_id"]
    assert (await running.settle(job_id, SETTLE))["status"] == "complete"
    # Lesson 4 is regenerated: its usage sums both attempts.
    fourth = created["course"]["lessons"][3]
    (first_text,) = text_calls(fake, fourth["title"])
    retried = await running.http.post(f"/api/lessons/{fourth['id']}/retry")
    assert retried.status_code == 202, retried.text
    assert (await running.settle(job_id, SETTLE))["status"] == "complete"

    titles = [lesson["title"] for lesson in created["course"]["lessons"]]
    per_lesson = {title: calls_for(fake, title) for title in titles}
    # The scripted history, as the fake saw it.
    texts = [text_calls(fake, title) for title in titles]
    assert [c.status for c in texts[1]] == [529, 200]
    assert texts[1][0].usage is None  # refused: nothing reported, nothing billed
    assert [c.stop_reason for c in texts[2]] == ["max_tokens", "end_turn"]
    assert [len(calls) for calls in texts] == [1, 2, 2, 2]

    course, lessons, item, progress = await course_views(running.http, course_id, job_id)
    for lesson in lessons:
        assert tokens(lesson["usage"]) == summed(per_lesson[lesson["title"]]), lesson["title"]
        assert lesson["usage"]["output_tokens"] > 0 and lesson["usage"]["input_tokens"] > 0
        assert lesson["usage"]["cost_usd"] is None  # claude-test has no price
    assert [lesson["attempts"] for lesson in lessons] == [1, 1, 1, 2]
    # The course: its outline call and every lesson call; the list and the progress agree.
    (outline,) = fake.outline_calls()
    expected = summed([outline, *(c for calls in per_lesson.values() for c in calls)])
    assert expected == fake.reported_usage()
    assert tokens(course["usage"]) == expected
    assert course["usage"] == item["usage"] == progress["usage"]
    assert [summary["usage"] for summary in course["lessons"]] == [
        lesson["usage"] for lesson in lessons
    ]

    # Nothing counted twice: one row per billed call, with the figures the fake sent last.
    assert await stored_calls(settings, course_id) == as_rows(billed(fake))
    assert len([c for c in billed(fake) if c.kind == "lesson"]) == 1 + 1 + 2 + 2

    # The events that end a call carry the lesson's usage as it stood then: every call
    # made for it up to the text call that ended (a quiz is written after its text).
    events = await lesson_events(settings, job_id)
    ended: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        if event["content_status"] in ("complete", "error"):
            ended.setdefault(event["position"], []).append(event["usage"])
        else:
            assert "usage" not in event, event
    assert {position: len(usages) for position, usages in ended.items()} == {1: 1, 2: 1, 3: 1, 4: 2}
    for position, usages in ended.items():
        calls = per_lesson[titles[position - 1]]
        last_text = texts[position - 1][-1]
        assert tokens(usages[-1]) == summed(calls[: calls.index(last_text) + 1])
        assert usages[-1]["cost_usd"] is None
    calls = per_lesson[titles[3]]
    assert tokens(ended[4][0]) == summed(calls[: calls.index(first_text) + 1])
    # Progress and job events carry the job's usage: the job's last is the course's spend.
    progress_events = await db_rows(
        settings, "SELECT type, data FROM events WHERE type IN ('progress', 'job') "
        "AND job_id = ? ORDER BY id", job_id,
    )  # fmt: skip
    assert all("usage" in json.loads(data) for _, data in progress_events)
    last_job = [json.loads(data) for kind, data in progress_events if kind == "job"][-1]
    assert last_job["status"] == "complete" and last_job["usage"] == course["usage"]


# -- 2. kill -9 mid-stream, restart: the cut-off calls count once, at their start figures ----


async def test_calls_cut_off_by_kill_9_are_counted_once_at_what_they_were_billed(
    fake: FakeAnthropic, settings: Settings, tmp_path: Path
) -> None:
    # Lesson 1 is quick; the others stream for many seconds, so the kill lands mid-call.
    long = "Knead, fold and rest the dough, then shape it gently. " * 12
    quick = "Feed the starter."
    fake.lesson_text = lambda title: quick if title.startswith("Lesson 1:") else long
    fake.delta_gap = 0.1
    env = server_env(
        api_key=API_KEY,
        base_url=fake.base_url,
        model=PRICED,
        extra={"COURSEGEN_CONCURRENCY": "2", "COURSEGEN_LEASE_SECONDS": "2"},
    )
    db_url = settings.db if settings.engine == "postgresql" else None
    server = ServerProcess(tmp_path / "coursegen.db", env, tmp_path / "server.log", db_url=db_url)
    try:
        await server.start()
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:
            response = await http.post("/api/courses/generate", json={"topic": TOPIC, "lessons": 4})
            assert response.status_code == 201, response.text
            course_id, job_id = response.json()["course_id"], response.json()["job_id"]

        def streaming() -> list[Call]:
            return [c for c in fake.lesson_calls() if c.status == 200 and c.ended is None]

        async def mid_stream_and_stored() -> bool:
            """Lesson 1 complete, two calls streaming, every call begun stored"""
            statuses = await db_rows(
                settings, "SELECT position, content_status FROM lessons WHERE course_id = ?",
                course_id,
            )  # fmt: skip
            done = dict(statuses).get(1) == "complete"
            stored = len(await stored_calls(settings, course_id))
            # The draft saver has stored what every call under way was billed at its start.
            return done and len(streaming()) == 2 and stored == len(billed(fake))

        await until(mid_stream_and_stored, SETTLE)
        cut_off = streaming()
        await server.kill()
        assert server.exit_codes == [-signal.SIGKILL]

        async def noticed() -> bool:
            """The fake saw the killed server's streams end"""
            return all(c.ended is not None for c in cut_off)

        await until(noticed, SETTLE)
        # Cut off mid-stream: billed only the figures of their message_start.
        assert all(c.aborted and c.stop_reason is None for c in cut_off)
        assert all(c.usage is not None and c.usage["output_tokens"] == 1 for c in cut_off)

        fake.delta_gap = 0.001
        await server.start()
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as http:

            async def finished() -> bool:
                """The restarted server finished the job"""
                progress = await get(http, f"/api/jobs/{job_id}/progress")
                return bool(progress["status"] != "running")

            await until(finished, SETTLE)
            course, lessons, item, progress = await course_views(http, course_id, job_id)
    finally:
        await server.stop()

    assert progress["status"] == "complete", progress
    # Every call the fake billed is stored once, with the last figures it sent: the cut-off
    # ones with their start figures, their lessons' new calls with their own.
    assert await stored_calls(settings, course_id) == as_rows(billed(fake))
    assert len([c for c in billed(fake) if c.kind == "lesson"]) == 4 + len(cut_off)
    reported = fake.reported_usage()
    assert tokens(course["usage"]) == reported
    assert course["usage"] == item["usage"] == progress["usage"]
    assert course["usage"]["cost_usd"] == round(cost_of(billed(fake), PRICED), 6)
    for lesson in lessons:
        texts = text_calls(fake, lesson["title"])
        assert len(texts) == (2 if any(c in cut_off for c in texts) else 1)
        assert tokens(lesson["usage"]) == summed(calls_for(fake, lesson["title"]))
    assert await counters_hold(settings) == []


# -- 3. prompt caching: one prefix, written once, read by every later lesson ---------------


async def test_lessons_share_one_cached_prefix_that_the_first_call_warms(
    fake: FakeAnthropic, settings: Settings, start_app: Callable[..., Awaitable[Running]]
) -> None:
    fake.lesson_text = short_lesson
    # Each lesson streams long enough for the lessons to overlap at concurrency 4.
    fake.first_token_delay = 0.5
    # Lesson 1's answer (its cache write) starts late: any lesson sent before it had
    # begun would miss the cache and write the prefix again.
    fake.add_fault(kind="lesson", match="Lesson 1:", delay=0.5)
    running = await start_app(model=PRICED)
    assert running.services.settings.concurrency == 4
    created = await running.generate(TOPIC, lessons=10)
    assert (await running.settle(created["job_id"], SETTLE))["status"] == "complete"

    titles = [lesson["title"] for lesson in created["course"]["lessons"]]
    calls = [text_calls(fake, title) for title in titles]
    assert all(len(c) == 1 for c in calls)
    bodies = [c[0].body for c in calls]
    # One prefix, byte for byte: the same system blocks in every lesson request ...
    systems = {json.dumps(body["system"], sort_keys=True) for body in bodies}
    assert len(systems) == 1
    system = bodies[0]["system"]
    # ... with the breakpoint on its last block, and nowhere else.
    assert system[-1]["cache_control"] == {"type": "ephemeral"}
    assert all("cache_control" not in block for block in system[:-1])
    for number, (title, body) in enumerate(zip(titles, bodies, strict=True), start=1):
        (message,) = body["messages"]
        assert message["role"] == "user" and isinstance(message["content"], str)
        # What is particular to a lesson is in the user turn, after the prefix.
        assert message["content"].startswith(f"Lesson {number} of 10: {title}\n")
        assert all(f"Lesson {number} of 10" not in block["text"] for block in system)
    prefix = prompt_tokens(bodies[0])[1]
    assert prefix >= cache_minimum(PRICED)
    assert all(prompt_tokens(body)[1] == prefix for body in bodies)
    # Warmed first: lesson 1 wrote the prefix, all nine others read it ...
    usages = [tokens(c[0].usage) for c in calls]
    assert usages[0]["cache_creation_input_tokens"] == prefix
    assert usages[0]["cache_read_input_tokens"] == 0
    for usage in usages[1:]:
        assert (usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"]) == (
            prefix,
            0,
        )
    # ... although they ran side by side once it had begun.
    assert fake.max_lessons_in_flight >= 2
    # We stored each call as the fake reported it, so the course shows the saving.
    course_id = created["course_id"]
    stored = await db_rows(
        settings,
        "SELECT l.position, m.cache_creation_input_tokens, m.cache_read_input_tokens "
        "FROM model_calls m JOIN lessons l ON l.id = m.lesson_id "
        "WHERE m.course_id = ? AND m.kind = 'lesson' ORDER BY l.position",
        course_id,
    )
    assert [tuple(row) for row in stored] == [(1, prefix, 0)] + [
        (n, 0, prefix) for n in range(2, 11)
    ]
    course = await get(running.http, f"/api/courses/{course_id}")
    for summary in course["lessons"]:
        assert tokens(summary["usage"]) == summed(calls_for(fake, summary["title"]))
    assert tokens(course["usage"]) == fake.reported_usage()
    assert course["usage"]["cost_usd"] == round(cost_of(billed(fake), PRICED), 6)


# -- 4. COURSEGEN_MAX_COURSE_COST ------------------------------------------------------------


def dollars(amount: float) -> str:
    return f"{amount:.6f}".rstrip("0").rstrip(".")


async def test_the_spending_limit_stops_new_calls_and_a_raised_limit_goes_on(
    fake: FakeAnthropic, settings: Settings
) -> None:
    fake.lesson_text = short_lesson
    priced = settings.replace(model=PRICED, concurrency=1)
    # What the calls of such a course cost at the fake's figures, measured on a first one
    # (the same topic, so the same prompts): its outline, the text of its first lesson
    # (which writes the cached prefix) and of its second (which reads it).
    async with serving(priced, fake) as app:
        measured = await app.generate(4)
        assert (await app.settle(measured["job_id"]))["status"] == "complete"
    outline_cost = cost_of(fake.outline_calls(), PRICED)
    titles = [lesson["title"] for lesson in measured["course"]["lessons"]]
    first, second = (cost_of(text_calls(fake, title), PRICED) for title in titles[:2])
    fake.reset()
    fake.clear_cache()
    # Reached by the second lesson, not by the first: the third never starts.
    limit = round(outline_cost + first + second / 2, 6)
    assert outline_cost + first < limit < outline_cost + first + second

    async with serving(priced.replace(max_course_cost=limit), fake) as app:
        created = await app.generate(4)
        job_id, course_id = created["job_id"], created["course_id"]
        progress = await app.settle(job_id)
        course = await get(app.http, f"/api/courses/{course_id}")

    assert progress["status"] == "error"
    message = progress["error_message"]
    assert "COURSEGEN_MAX_COURSE_COST" in message and f"${dollars(limit)}" in message, message
    statuses = [(lesson["content_status"], lesson["content_error"]) for lesson in course["lessons"]]
    assert statuses == [("complete", None)] * 2 + [("error", message)] * 2
    # No call started once the limit was reached: one per lesson written.
    assert [c.title for c in fake.lesson_calls()] == [s["title"] for s in course["lessons"][:2]]
    assert course["usage"]["cost_usd"] >= limit
    assert await counters_hold(settings) == []

    # A raised limit, then retry: the course is finished, calling only the lessons missing.
    async with serving(priced.replace(max_course_cost=limit * 100), fake) as app:
        retried = await app.http.post(f"/api/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        progress = await app.settle(job_id)
        course = await get(app.http, f"/api/courses/{course_id}")
    assert (progress["status"], progress["error_message"]) == ("complete", None)
    assert {lesson["content_status"] for lesson in course["lessons"]} == {"complete"}
    assert [c.title for c in fake.lesson_calls()] == [s["title"] for s in course["lessons"]]
    assert tokens(course["usage"]) == fake.reported_usage()
    assert await counters_hold(settings) == []


# -- 5. prices -------------------------------------------------------------------------------


async def test_a_price_file_sets_the_cost_of_every_token(
    fake: FakeAnthropic,
    start_app: Callable[..., Awaitable[Running]],
    tmp_path: Path,
) -> None:
    # Whole dollars per million tokens: every cost is an exact multiple of $0.000001.
    price = {"input": 3, "output": 15, "cache_write": 4, "cache_read": 1}
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({PRICED: price}))
    fake.lesson_text = short_lesson
    running = await start_app(model=PRICED, prices=prices)
    created = await running.generate(TOPIC, lessons=3)
    course_id, job_id = created["course_id"], created["job_id"]
    assert (await running.settle(job_id, SETTLE))["status"] == "complete"

    def by_hand(usage: Mapping[str, Any]) -> float:
        return (
            usage["input_tokens"] * price["input"]
            + usage["output_tokens"] * price["output"]
            + usage["cache_creation_input_tokens"] * price["cache_write"]
            + usage["cache_read_input_tokens"] * price["cache_read"]
        ) / 1_000_000

    course, lessons, item, progress = await course_views(running.http, course_id, job_id)
    for lesson in lessons:
        usage = lesson["usage"]
        assert usage["cost_usd"] == round(by_hand(usage), 6)
        # Not the built-in price: the file's.
        assert usage["cost_usd"] != round(BUILT_IN.cost(PRICED, Usage(**tokens(usage))) or 0, 6)
    # Lesson 2 and 3 read the cached prefix; lesson 1 wrote it: every kind of token is priced.
    assert lessons[0]["usage"]["cache_creation_input_tokens"] > 0
    assert lessons[1]["usage"]["cache_read_input_tokens"] > 0
    assert course["usage"]["cost_usd"] == round(by_hand(course["usage"]), 6)
    assert course["usage"] == item["usage"] == progress["usage"]
    # The estimate: the most the lessons could cost, a number above what they did.
    estimate = created["estimate"]["max_cost_usd"]
    assert isinstance(estimate, float) and estimate > course["usage"]["cost_usd"]


async def test_an_unknown_model_counts_tokens_with_no_cost(
    fake: FakeAnthropic, running: Running
) -> None:
    fake.lesson_text = short_lesson
    assert running.services.settings.model == UNPRICED
    created = await running.generate(TOPIC, lessons=2)
    assert created["estimate"] == {"max_cost_usd": None}
    course_id, job_id = created["course_id"], created["job_id"]
    assert (await running.settle(job_id, SETTLE))["status"] == "complete"
    course, lessons, item, progress = await course_views(running.http, course_id, job_id)
    for usage in [lesson["usage"] for lesson in lessons] + [course["usage"], item["usage"]]:
        assert usage["cost_usd"] is None
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert tokens(course["usage"]) == fake.reported_usage()
    assert course["usage"] == item["usage"] == progress["usage"]


async def test_demo_courses_show_their_tokens_at_no_cost(settings: Settings) -> None:
    demo = settings.replace(provider="demo", demo_delay=0.0)
    async with serving(demo) as app:
        assert isinstance(app.services.provider, DemoProvider)
        created = await app.generate(3)
        assert created["estimate"] == {"max_cost_usd": 0}
        course_id, job_id = created["course_id"], created["job_id"]
        assert (await app.settle(job_id))["status"] == "complete"
        course, lessons, item, progress = await course_views(app.http, course_id, job_id)
    for usage in [lesson["usage"] for lesson in lessons] + [course["usage"], item["usage"]]:
        assert usage["cost_usd"] == 0
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert [lesson["model"] for lesson in lessons] == ["demo"] * 3
    # The outline counts too.
    outline_tokens = course["usage"]["output_tokens"] - sum(
        lesson["usage"]["output_tokens"] for lesson in lessons
    )
    assert outline_tokens > 0
    assert course["usage"] == item["usage"] == progress["usage"]


async def test_quizzes_share_their_own_cached_prefix(
    fake: FakeAnthropic, start_app: Callable[..., Awaitable[Running]]
) -> None:
    """A course's quiz calls send one byte-identical prefix (the quiz guidelines and the
    course) marked for caching; the first writes it, the others read it."""
    fake.lesson_text = short_lesson
    running = await start_app(model=PRICED)
    created = await running.generate(TOPIC, lessons=4)
    assert (await running.settle(created["job_id"], SETTLE))["status"] == "complete"
    quizzes = sorted(fake.quiz_calls(), key=lambda call: call.started)
    assert len(quizzes) == 4
    systems = [json.dumps(call.body["system"]) for call in quizzes]
    assert len(set(systems)) == 1
    assert "cache_control" in quizzes[0].body["system"][-1]
    assert all(call.title in call.body["messages"][0]["content"] for call in quizzes)
    _, prefix = prompt_tokens(quizzes[0].body)
    assert prefix >= cache_minimum(PRICED)
    reads = [(call.usage or {}).get("cache_read_input_tokens", 0) for call in quizzes]
    assert reads == [0] + [prefix] * 3
    # And the lessons' prefix is not the quizzes': each kind reads its own.
    lesson_system = fake.lesson_calls()[0].body["system"]
    assert json.dumps(lesson_system) != systems[0]
