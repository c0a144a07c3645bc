"""The event streams, against a real uvicorn server (an ASGI transport buffers endless bodies)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse

from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import Live, counters_hold, db_rows
from tests.helpers import generate

StartLive = Callable[..., Awaitable[Live]]


async def read_all(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> list[ServerSentEvent]:
    """Every event until the server closes the stream."""
    async with aconnect_sse(client, "GET", path, headers=dict(headers or {})) as source:
        return [event async for event in source.aiter_sse()]


async def logged_events(live: Live, job_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    rows = await db_rows(
        live.services.settings,
        "SELECT id, type, data FROM events WHERE job_id = ? ORDER BY id",
        job_id,
    )
    return [(row[0], row[1], json.loads(row[2])) for row in rows]


async def test_job_stream_sends_snapshot_then_every_lesson_live_then_closes(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.lesson_delay = 0.3
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=3)
        response_headers: dict[str, str] = {}
        async with aconnect_sse(client, "GET", f"/api/jobs/{created['job_id']}/events") as source:
            response_headers = dict(source.response.headers)
            events = [event async for event in source.aiter_sse()]
    assert response_headers["content-type"].startswith("text/event-stream")
    assert response_headers["cache-control"] == "no-cache"
    assert response_headers["x-accel-buffering"] == "no"

    snapshot = events[0]
    assert snapshot.event == "snapshot"
    data = snapshot.json()
    assert data["job"]["job_id"] == created["job_id"]
    assert [lesson["position"] for lesson in data["lessons"]] == [1, 2, 3]
    assert set(data["lessons"][0]) == {
        "id", "position", "title", "content_status", "content_error", "quiz_status",
    }  # fmt: skip

    # After the snapshot: exactly the logged events after its id, in order, each once.
    logged = await logged_events(live, created["job_id"])
    after = [(i, t, d) for i, t, d in logged if i > int(snapshot.id)]
    assert [(int(e.id), e.event, e.json()) for e in events[1:]] == after
    ids = [int(e.id) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    finished = {
        e.json()["lesson_id"]
        for e in events
        if e.event == "lesson" and e.json()["content_status"] == "complete"
    }
    assert finished == {lesson["id"] for lesson in created["course"]["lessons"]}
    assert events[-1].event == "job"
    assert events[-1].json()["status"] == "complete"
    progress = [e.json()["progress"] for e in events if e.event == "progress"]
    assert progress[-1] == 100 and progress == sorted(progress)


async def test_snapshot_of_a_finished_job_closes_at_once(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=2)
        await read_all(client, f"/api/jobs/{created['job_id']}/events")  # runs to the end
        events = await read_all(client, f"/api/jobs/{created['job_id']}/events")
    assert [e.event for e in events] == ["snapshot"]
    assert events[0].json()["job"]["status"] == "complete"
    assert int(events[0].id) == (await logged_events(live, created["job_id"]))[-1][0]


async def test_resume_from_the_middle_gives_exactly_the_missed_events(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(concurrency=1)
    fake.lesson_delay = 0.2
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=4)
        path = f"/api/jobs/{created['job_id']}/events"
        seen: list[ServerSentEvent] = []
        async with aconnect_sse(client, "GET", path) as source:
            async for event in source.aiter_sse():
                seen.append(event)
                if event.event == "progress":  # the first lesson is done: hang up
                    break
        cursor = seen[-1].id
        resumed = await read_all(client, path, headers={"Last-Event-ID": cursor})
        by_query = await read_all(client, f"{path}?last_event_id={cursor}")

    logged = await logged_events(live, created["job_id"])
    missed = [(i, t) for i, t, _ in logged if i > int(cursor)]
    assert [(int(e.id), e.event) for e in resumed] == missed
    assert [(int(e.id), e.event) for e in by_query] == missed
    assert "snapshot" not in [e.event for e in resumed]
    assert resumed[-1].event == "job"
    # What the client saw before plus what it missed is the whole log after the snapshot.
    assert [int(e.id) for e in seen[1:] + resumed] == [
        i for i, _, _ in logged if i > int(seen[0].id)
    ]


async def test_header_cursor_wins_over_the_query(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=2)
        path = f"/api/jobs/{created['job_id']}/events"
        everything = await read_all(client, f"{path}?last_event_id=0")
        newest = everything[-1].id
        # EventSource keeps the URL it started with and sends the newer id in the header.
        events = await read_all(
            client, f"{path}?last_event_id=0", headers={"Last-Event-ID": newest}
        )
    assert events == []


async def test_all_jobs_stream_carries_courses_lessons_and_deletions(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.lesson_delay = 0.2
    got: list[ServerSentEvent] = []
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        start = (await client.get("/api/courses")).json()["last_event_id"]

        async def watch() -> None:
            async with aconnect_sse(client, "GET", f"/api/events?last_event_id={start}") as source:
                async for event in source.aiter_sse():
                    got.append(event)
                    if event.event == "course" and event.json()["action"] == "deleted":
                        return

        watcher = asyncio.create_task(watch())
        first = await generate(client, lessons=2, topic="Knitting")
        second = await generate(client, lessons=2, topic="Bird watching")
        for created in (first, second):
            await read_all(client, f"/api/jobs/{created['job_id']}/events")
        assert (await client.delete(f"/api/courses/{first['course_id']}")).status_code == 204
        await asyncio.wait_for(watcher, 10)

    ids = [int(e.id) for e in got]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    created_events = [e.json() for e in got if e.event == "course"]
    assert created_events == [
        {"course_id": first["course_id"], "action": "created"},
        {"course_id": second["course_id"], "action": "created"},
        {"course_id": first["course_id"], "action": "deleted"},
    ]
    for created in (first, second):
        jobs = [
            e.json()["status"]
            for e in got
            if e.event == "job" and e.json()["job_id"] == created["job_id"]
        ]
        assert jobs[-1] == "complete"
        lessons = {
            e.json()["lesson_id"]
            for e in got
            if e.event == "lesson" and e.json()["content_status"] == "complete"
        }
        assert {lesson["id"] for lesson in created["course"]["lessons"]} <= lessons


async def test_resuming_the_all_jobs_stream_skips_nothing(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=3)
        await read_all(client, f"/api/jobs/{created['job_id']}/events")
        got: list[ServerSentEvent] = []
        async with aconnect_sse(client, "GET", "/api/events?last_event_id=2") as source:
            async for event in source.aiter_sse():
                got.append(event)
                if event.event == "job" and event.json()["status"] == "complete":
                    break
    rows = await db_rows(live.services.settings, "SELECT id FROM events WHERE id > 2 ORDER BY id")
    expected = [row[0] for row in rows]
    assert [int(e.id) for e in got] == expected


async def test_resume_older_than_the_memory_window_reads_the_log(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=3)
        await read_all(client, f"/api/jobs/{created['job_id']}/events")
        live.services.broker.reset(live.services.broker.last_id)  # as after a restart
        events = await read_all(
            client, f"/api/jobs/{created['job_id']}/events", headers={"Last-Event-ID": "0"}
        )
    assert [(int(e.id), e.event) for e in events] == [
        (i, t) for i, t, _ in (await logged_events(live, created["job_id"]))
    ]


async def test_unknown_job_stream_is_plain_404_json(start_live: StartLive) -> None:
    live = await start_live()
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        response = await client.get(
            "/api/jobs/00000000-0000-4000-8000-000000000000/events",
            headers={"Accept": "text/event-stream"},
        )
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "no such job"}


async def test_pings_keep_idle_streams_open_and_carry_no_id(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live(ping_interval=0.2)
    fake.lesson_delay = 30
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=1)
        lines: list[str] = []
        async with client.stream("GET", f"/api/jobs/{created['job_id']}/events") as response:
            async for line in response.aiter_lines():
                lines.append(line)
                if sum(line.startswith(": ping") for line in lines) == 2:
                    break
    pings = [i for i, line in enumerate(lines) if line.startswith(": ping")]
    for index in pings:  # a ping is a lone comment, never part of an event with an id
        assert lines[index - 1] == "" and lines[index + 1 : index + 2] in ([], [""])


async def test_a_disconnected_client_is_dropped_at_once(
    start_live: StartLive, fake: FakeAnthropic
) -> None:
    live = await start_live()
    fake.lesson_delay = 30
    broker = live.services.broker

    async def subscribers_become(n: int) -> None:
        # Only the server sees its side of the socket: poll it, with a deadline.
        async with asyncio.timeout(2):
            while broker.subscribers != n:  # noqa: ASYNC110 - no event marks a socket closing
                await asyncio.sleep(0.01)

    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=1)
        for path in (f"/api/jobs/{created['job_id']}/events", "/api/events"):
            async with aconnect_sse(client, "GET", path):
                await subscribers_become(1)
            await subscribers_become(0)


async def test_counters_hold_at_every_event(start_live: StartLive, fake: FakeAnthropic) -> None:
    """Each event is sent after its commit, so at each one the database must be consistent."""
    live = await start_live(concurrency=2)
    fake.lesson_delay = 0.1
    fake.add_fault(kind="lesson", match="Lesson 3", status=400)
    fake.add_fault(kind="lesson", match="Lesson 5", status=400)
    checked = 0
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as client:
        created = await generate(client, lessons=6)
        job = created["job_id"]
        path = f"/api/jobs/{job}/events"
        async with aconnect_sse(client, "GET", path) as source:
            async for _ in source.aiter_sse():
                assert await counters_hold(live.services.settings) == []
                checked += 1
        lesson_3 = created["course"]["lessons"][2]["id"]
        assert (await client.post(f"/api/lessons/{lesson_3}/retry")).status_code == 202
        assert (await client.post(f"/api/jobs/{job}/retry")).status_code == 202
        fake.lesson_delay = 5
        lesson_1 = created["course"]["lessons"][0]["id"]
        assert (await client.post(f"/api/lessons/{lesson_1}/retry")).status_code == 202
        cursor = (await logged_events(live, job))[-1][0]
        async with aconnect_sse(
            client, "GET", path, headers={"Last-Event-ID": str(cursor)}
        ) as source:
            async for event in source.aiter_sse():
                assert await counters_hold(live.services.settings) == []
                checked += 1
                if event.event == "lesson" and event.json()["content_status"] == "generating":
                    assert (await client.post(f"/api/jobs/{job}/cancel")).status_code == 202
    assert checked > 20
    final = (await logged_events(live, job))[-1]
    assert (final[1], final[2]["status"]) == ("job", "cancelled")
