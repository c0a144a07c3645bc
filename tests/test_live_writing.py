"""Live writing (SPEC section 8): text streams to a lesson's readers, exactly, resumably,
durably, and the lesson a reader opens is written next. Real uvicorn, real SDK, the fake."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import Live, counters_hold, db_rows
from tests.helpers import generate, until

StartLive = Callable[..., Awaitable[Live]]

LONG = (
    "## A lesson written slowly\n\n"
    + "\n\n".join(
        f"Paragraph {i}: naïve café — ünïcödé 🍞 and more words to stream, one by one."
        for i in range(30)
    )
    + "\n\n### Summary\n\n- Done.\n"
)


@dataclass
class Reading:
    """What one connection to a lesson stream rebuilt of the lesson."""

    text: str = ""
    attempt: int = 0
    status: str = ""
    snapshots: int = 0
    chunks: int = 0
    statuses: list[str] = field(default_factory=list)
    grew_while_generating: bool = False


def apply(reading: Reading, event: str, data: dict[str, Any]) -> None:
    """Follow the stream's rules; a broken one fails the test."""
    if event == "snapshot":
        reading.snapshots += 1
        reading.text = data["lesson"]["content"] or ""
        reading.attempt = data["attempt"]
        reading.status = data["lesson"]["content_status"]
    elif event == "text":
        assert data["attempt"] == reading.attempt, "a chunk of another attempt"
        assert data["offset"] == len(reading.text), "a gap or an overlap"
        assert data["end"] == data["offset"] + len(data["text"])
        reading.text += data["text"]
        reading.chunks += 1
        if reading.status == "generating":
            reading.grew_while_generating = True
    elif event == "lesson":
        reading.status = data["content_status"]
        reading.statuses.append(reading.status)


async def read_lesson(
    client: httpx.AsyncClient, lesson_id: int, *, events: int | None = None
) -> Reading:
    """Read the lesson stream until it closes (or for `events` events, then hang up)."""
    reading = Reading()
    seen = 0
    async with aconnect_sse(client, "GET", f"/api/lessons/{lesson_id}/events") as source:
        async for sse in source.aiter_sse():
            apply(reading, sse.event, sse.json())
            seen += 1
            if events is not None and seen >= events:
                break
    return reading


async def status_of(client: httpx.AsyncClient, lesson_id: int) -> str:
    status: str = (await client.get(f"/api/lessons/{lesson_id}")).json()["content_status"]
    return status


async def test_a_reader_sees_the_text_grow_and_ends_with_exactly_the_lesson(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    fake.delta_gap = 0.005
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        created = await generate(client, lessons=1)
        lesson_id = created["course"]["lessons"][0]["id"]
        reading = await read_lesson(client, lesson_id)
        final = (await client.get(f"/api/lessons/{lesson_id}")).json()
        job = (await client.get(f"/api/jobs/{created['job_id']}/events?last_event_id=0")).text
    assert reading.status == "complete" and reading.statuses[-1] == "complete"
    assert reading.grew_while_generating and reading.chunks > 5
    assert reading.text == final["content"] == LONG.rstrip()
    assert fake.lesson_calls()[0].sent_text.rstrip() == LONG.rstrip()
    # The job stream carries statuses, never text.
    assert "event: text" not in job and "Paragraph 3" not in job


async def test_a_continued_lesson_reads_as_one_text(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    fake.delta_gap = 0.002
    fake.add_fault(kind="lesson", stop_reason="max_tokens", cut=0.35, times=2)
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        created = await generate(client, lessons=1)
        reading = await read_lesson(client, created["course"]["lessons"][0]["id"])
    assert [c.stop_reason for c in fake.lesson_calls()] == ["max_tokens", "max_tokens", "end_turn"]
    assert reading.status == "complete" and reading.text == LONG.rstrip()


async def test_a_lesson_cut_off_too_often_fails_keeping_its_text_and_a_refusal_says_so(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    fake.add_fault(kind="lesson", match="Lesson 1", stop_reason="max_tokens", cut=0.2, times=None)
    fake.add_fault(kind="lesson", match="Lesson 2", stop_reason="refusal", cut=0.2, times=None)
    live = await start_live(max_continuations=1)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        created = await generate(client, lessons=2)
        first, second = (lesson["id"] for lesson in created["course"]["lessons"])
        cut = await read_lesson(client, first)
        refused = await read_lesson(client, second)
        cut_lesson = (await client.get(f"/api/lessons/{first}")).json()
        refused_lesson = (await client.get(f"/api/lessons/{second}")).json()
    assert len(fake.lesson_calls("Lesson 1")) == 2  # COURSEGEN_MAX_CONTINUATIONS=1
    assert cut.status == "error" and cut_lesson["content_status"] == "error"
    assert "longer than the model may write at once" in cut_lesson["content_error"]
    assert cut_lesson["content"] == cut.text and LONG.startswith(cut.text) and cut.text
    assert refused.status == "error"
    assert "the model declined" in refused_lesson["content_error"]


async def test_a_hundred_reconnects_each_rebuild_the_exact_text(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    text = LONG * 3
    fake.lesson_text = lambda title: text
    fake.delta_gap = 0.004
    live = await start_live()
    rng = random.Random(7)
    rebuilt: list[Reading] = []
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        created = await generate(client, lessons=1)
        lesson_id = created["course"]["lessons"][0]["id"]
        # Each connection reads a random number of events, then hangs up: 100 times.
        for _ in range(100):
            rebuilt.append(await read_lesson(client, lesson_id, events=rng.randint(1, 6)))
        final = await read_lesson(client, lesson_id)
        stored = (await client.get(f"/api/lessons/{lesson_id}")).json()["content"]
    assert stored == text.rstrip() == final.text
    cut_short = [r for r in rebuilt if r.status != "complete"]
    assert len(cut_short) > 50  # most reconnects landed while the lesson was being written
    for reading in rebuilt:
        # Whatever it saw is the start of the final text (or all of it).
        assert stored.startswith(reading.text)
        if reading.status == "complete":
            assert reading.text == stored


async def test_the_text_so_far_is_shown_on_reload_and_stored_once_a_second(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG * 4
    fake.delta_gap = 0.01
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        created = await generate(client, lessons=1)
        lesson_id = created["course"]["lessons"][0]["id"]

        async def partial() -> bool:
            lesson = (await client.get(f"/api/lessons/{lesson_id}")).json()
            return lesson["content_status"] == "generating" and len(lesson["content"] or "") > 200

        await until(partial)
        lesson = (await client.get(f"/api/lessons/{lesson_id}")).json()
        assert (LONG * 4).startswith(lesson["content"])
        assert "<h2>" in lesson["content_html"]  # rendered, as the final text will be

        saved: list[str] = []
        for _ in range(30):  # 3 s: the database gets the text once a second
            rows = await db_rows(
                live.services.settings, "SELECT content FROM lessons WHERE id = ?", lesson_id
            )
            saved.append(rows[0][0] or "")
            await asyncio.sleep(0.1)
        assert await status_of(client, lesson_id) == "generating"
    versions = sorted(set(saved), key=len)
    assert 2 <= len(versions) <= 5  # ~1 s apart, not one per delta
    assert all((LONG * 4).startswith(v) for v in versions)


async def test_the_lesson_a_reader_opens_is_written_next(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    fake.delta_gap = 0.02
    live = await start_live(concurrency=1)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        created = await generate(client, lessons=6)
        ids = [lesson["id"] for lesson in created["course"]["lessons"]]
        await until(lambda: _at_the_model(fake, "Lesson 1"))
        answer = await client.post(f"/api/lessons/{ids[5]}/prioritize")
        assert answer.status_code == 202
        assert answer.json() == {"lesson_id": ids[5], "content_status": "pending"}
        reading = await read_lesson(client, ids[5])
    order = [call.title.split(":")[0] for call in fake.lesson_calls()]
    assert order[:2] == ["Lesson 1", "Lesson 6"]
    assert reading.text and reading.status == "complete"


async def test_a_prioritised_lesson_of_another_job_goes_first(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    fake.delta_gap = 0.02
    live = await start_live(concurrency=1)
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        first = await generate(client, lessons=3, topic="Bread")
        second = await generate(client, lessons=3, topic="Cheese")
        await until(lambda: _at_the_model(fake, "Lesson 1"))
        wanted = second["course"]["lessons"][2]["id"]
        assert (await client.post(f"/api/lessons/{wanted}/prioritize")).status_code == 202
        await until(lambda: _settled(client, first["job_id"], second["job_id"]), 60)
    prompts = [call.body["messages"][0]["content"] for call in fake.lesson_calls()]
    second_call = prompts[1]
    assert "Cheese" in second_call and "Lesson 3 of 3" in second_call
    assert await counters_hold(live.services.settings) == []


async def test_prioritize_answers_for_lessons_that_are_not_pending(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        created = await generate(client, lessons=1)
        lesson_id = created["course"]["lessons"][0]["id"]
        await read_lesson(client, lesson_id)
        done = await client.post(f"/api/lessons/{lesson_id}/prioritize")
        assert (done.status_code, done.json()) == (
            200, {"lesson_id": lesson_id, "content_status": "complete"},
        )  # fmt: skip
        assert (await client.post("/api/lessons/999999/prioritize")).status_code == 404
        bad = await client.get(f"/api/lessons/{lesson_id}/events?last_event_id=x")
        assert bad.status_code == 400
        missing = await client.get("/api/lessons/999999/events")
        assert missing.status_code == 404 and missing.json()["error"] == "no such lesson"


async def test_a_regenerated_lesson_starts_over_from_a_new_attempt(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    second_text = "## Written again\n\n" + "Different words entirely. " * 200
    texts = iter([LONG, second_text])
    fake.lesson_text = lambda title: next(texts)
    fake.delta_gap = 0.004
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        created = await generate(client, lessons=1)
        lesson_id = created["course"]["lessons"][0]["id"]
        before = await read_lesson(client, lesson_id)
        assert (await client.post(f"/api/lessons/{lesson_id}/retry")).status_code == 202
        after = await read_lesson(client, lesson_id)
    assert before.text == LONG.rstrip()
    assert after.attempt == before.attempt + 1
    assert after.text == second_text.rstrip()


async def test_a_reader_across_cancel_and_retry_never_gets_the_old_attempts_chunks(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    fake.delta_gap = 0.01
    live = await start_live()
    reading = Reading()
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        created = await generate(client, lessons=1)
        lesson_id = created["course"]["lessons"][0]["id"]

        async def watch() -> None:
            async with aconnect_sse(client, "GET", f"/api/lessons/{lesson_id}/events") as s:
                async for sse in s.aiter_sse():
                    apply(reading, sse.event, sse.json())  # asserts: one attempt at a time

        watcher = asyncio.create_task(watch())
        await until(lambda: _true(reading.chunks > 3))
        first_attempt = reading.attempt
        cancelled = await client.post(f"/api/jobs/{created['job_id']}/cancel")
        assert cancelled.status_code == 202
        await until(lambda: _true(reading.status == "pending"))
        assert (await client.post(f"/api/jobs/{created['job_id']}/retry")).status_code == 202
        await asyncio.wait_for(watcher, 20)
    assert reading.snapshots >= 2 and reading.attempt == first_attempt + 1
    assert reading.status == "complete" and reading.text == LONG.rstrip()


async def test_a_reader_waiting_on_a_pending_lesson_gets_a_new_snapshot_when_it_starts(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    fake.delta_gap = 0.003
    fake.lesson_text = lambda title: LONG
    live = await start_live(concurrency=1)
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        created = await generate(client, lessons=2)
        second = created["course"]["lessons"][1]["id"]
        reading = await read_lesson(client, second)
    assert reading.snapshots == 2  # pending, then the attempt that wrote it
    assert reading.statuses[-1] == "complete"
    assert reading.text == LONG.rstrip()


async def _true(value: bool) -> bool:
    return value


async def _at_the_model(fake: FakeAnthropic, title: str) -> bool:
    return any(c.ended is None for c in fake.lesson_calls(title))


async def _settled(client: httpx.AsyncClient, *jobs: str) -> bool:
    for job in jobs:
        progress = (await client.get(f"/api/jobs/{job}/progress")).json()
        if progress["status"] == "running":
            return False
    return True
