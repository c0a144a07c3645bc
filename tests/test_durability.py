"""Durability: kill -9 and SIGTERM of a real `coursegen serve`, then a restart on its database.

The server runs as a child process (tests/serverproc.py) and talks to the fake
Messages API in the test's own loop. Each life of the server uses its own model
name, so the fake's log tells which life made every lesson call. Kill moments
are picked from the event stream or the fake's own state, never by sleeping.

Every test runs on both engines (the `engine` fixture of conftest.py). They differ
in one way a user can notice: a restarted SQLite server owns its file and puts the
lessons the crash left `generating` back to `pending` at once; a restarted
PostgreSQL node is a new node (a new name), so it takes the dead node's lessons
over only once their leases end (LEASE seconds at most). Either way nothing is
lost, counters stay true and only the calls in flight are made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent, aconnect_sse

from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.helpers import until
from tests.serverproc import (
    Database,
    ServerProcess,
    ServerRun,
    counter_mismatches,
    duplicate_calls,
    event_ids,
    fetch,
    integrity,
    job_row,
    leases,
    lesson_statuses,
    server_env,
    stored_twice,
)

API_KEY = "sk-ant-durability-test-key-0b6e"
TOPIC = "Durable sourdough"
LESSONS = 6
CONCURRENCY = 2
# Long enough that a kill lands mid-call (8 chunks per call), short enough for CI.
LESSON_DELAY = 0.8
# After the kill only the remaining lessons matter: let them run fast.
RESTART_DELAY = 0.2
SETTLE_WITHIN = 30.0
# PostgreSQL: seconds a node's claim holds unless renewed. Short, so that a restarted
# node takes a killed one's lessons over within the test; long enough that a busy
# machine still renews it in time (every LEASE / 3 s).
LEASE = 2

Fire = Callable[[], None]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=API_KEY, lesson_delay=LESSON_DELAY) as server:
        yield server


@dataclass
class Service:
    """A `coursegen serve` child on one database, its lives, and what the fake saw of them."""

    fake: FakeAnthropic
    server: ServerProcess
    http: httpx.AsyncClient
    life: int = 0
    # The statuses of the job's lessons (by title) as each finished life left them.
    left: list[dict[str, str]] = field(default_factory=list)

    @property
    def db(self) -> Database:
        return self.server.db

    @property
    def postgres(self) -> bool:
        return self.server.db_url is not None

    def url(self, path: str) -> str:
        return self.server.url + path

    def model(self, life: int | None = None) -> str:
        return f"durability-life-{life or self.life}"

    async def start(self) -> None:
        self.life += 1
        self.server.env["COURSEGEN_MODEL"] = self.model()
        await self.server.start()

    async def generate(self, lessons: int = LESSONS) -> str:
        response = await self.http.post(
            self.url("/api/courses/generate"), json={"topic": TOPIC, "lessons": lessons}
        )
        assert response.status_code == 201, response.text
        job_id: str = response.json()["job_id"]
        return job_id

    def fire(self, signum: int = signal.SIGKILL) -> Fire:
        return lambda: self.server.send(signum)

    async def kill(self, job_id: str) -> dict[str, str]:
        """SIGKILL (if not sent already), reap, and read the lessons as the crash left them."""
        await self.server.kill()
        return await self.died(job_id)

    async def died(self, job_id: str) -> dict[str, str]:
        statuses = await lesson_statuses(self.db, job_id)
        self.left.append(statuses)
        return statuses

    def calls(self, life: int) -> Counter[str]:
        """Lesson calls per title made by one life of the server."""
        model = self.model(life)
        return Counter(
            call.title
            for call in self.fake.lesson_calls()
            if isinstance(call.body, dict) and call.body.get("model") == model
        )

    def at_the_model(self) -> set[str]:
        """Lessons whose call by the current life the model is answering right now."""
        model = self.model()
        return {
            call.title
            for call in self.fake.lesson_calls()
            if call.ended is None and call.body.get("model") == model
        }

    async def runs(self, job_id: str) -> list[ServerRun]:
        """Every life so far with its calls; the current one ends with the database as it is."""
        left = [*self.left, await lesson_statuses(self.db, job_id)][: self.life]
        return [ServerRun(self.calls(n + 1), statuses) for n, statuses in enumerate(left)]

    async def settle(self, job_id: str) -> dict[str, Any]:
        """Follow the job's stream until the server ends it; the job's progress by then."""
        async with asyncio.timeout(SETTLE_WITHIN):
            async with aconnect_sse(self.http, "GET", self.url(f"/api/jobs/{job_id}/events")) as s:
                async for _ in s.aiter_sse():
                    pass
            progress: dict[str, Any] = (
                await self.http.get(self.url(f"/api/jobs/{job_id}/progress"))
            ).json()
        return progress


@pytest.fixture
async def service(
    fake: FakeAnthropic, settings: Settings, tmp_path: Path
) -> AsyncIterator[Service]:
    """The server on the test's database: a SQLite file, or a fresh PostgreSQL database."""
    env = server_env(
        api_key=API_KEY,
        base_url=fake.base_url,
        model="unset",
        extra={
            "COURSEGEN_CONCURRENCY": str(CONCURRENCY),
            "COURSEGEN_LESSON_TIMEOUT": "60",
            "COURSEGEN_LEASE_SECONDS": str(LEASE),
        },
    )
    db_url = settings.db if settings.engine == "postgresql" else None
    server = ServerProcess(tmp_path / "coursegen.db", env, tmp_path / "server.log", db_url=db_url)
    async with httpx.AsyncClient(timeout=10.0) as http:
        try:
            yield Service(fake, server, http)
        finally:
            await server.stop()


async def assert_sound(db: Database) -> None:
    """True counters, a sound database whose events agree with its rows, and no lesson
    whose result was stored twice."""
    assert await counter_mismatches(db) == []
    assert await integrity(db) == "ok"
    assert await stored_twice(db) == []


# -- kill -9 mid-job, at several moments ---------------------------------------------------


async def while_calls_are_in_flight(service: Service, job_id: str, fire: Fire) -> None:
    """Two lessons done, the next two answering at the model."""
    await until(
        lambda: (
            len(service.at_the_model()) == CONCURRENCY
            and sum(service.calls(service.life).values()) == 2 * CONCURRENCY
        )
    )
    fire()


async def between_calls(service: Service, job_id: str, fire: Fire) -> None:
    """The instant the stream says a lesson completed: its slot is just free, the next starting."""
    url = service.url(f"/api/jobs/{job_id}/events")
    async with aconnect_sse(service.http, "GET", url) as source:
        async for event in source.aiter_sse():
            if event.event == "lesson" and event.json()["content_status"] == "complete":
                fire()
                return
    raise AssertionError("the stream ended before any lesson completed")


async def right_after_generate(service: Service, job_id: str, fire: Fire) -> None:
    fire()


@pytest.mark.parametrize(
    "moment",
    [while_calls_are_in_flight, between_calls, right_after_generate],
    ids=lambda m: m.__name__,
)
async def test_kill_9_mid_job_loses_nothing_and_repeats_only_calls_in_flight(
    service: Service,
    fake: FakeAnthropic,
    moment: Callable[[Service, str, Fire], Awaitable[None]],
) -> None:
    await service.start()
    job_id = await service.generate()
    await moment(service, job_id, service.fire(signal.SIGKILL))
    at_kill = await service.kill(job_id)
    assert service.server.exit_codes == [-signal.SIGKILL]
    dead_node = service.server.node

    # The crash left a sound database with true counters, whatever it interrupted.
    await assert_sound(service.db)
    done = {title for title, status in at_kill.items() if status == "complete"}
    in_flight = {title for title, status in at_kill.items() if status == "generating"}
    if service.postgres:
        # The dead node's claims stand until their leases end (renewed every LEASE / 3 s).
        measured = time.monotonic()
        held = await leases(service.db, job_id)
        assert set(held) == in_flight
        assert all(node == dead_node and seconds <= LEASE for node, seconds in held.values())
        lease_ends = {title: measured + seconds for title, (_, seconds) in held.items()}
    assert set(at_kill.values()) <= {"pending", "generating", "complete"}
    if moment is while_calls_are_in_flight:
        # Two calls had answered: a result the kill beat to its commit counts as in
        # flight (a slot frees when the model answers, before the result is stored).
        assert len(done) >= 1 and len(in_flight) >= CONCURRENCY, at_kill
        assert len(done) + len(in_flight) >= 2 + CONCURRENCY, at_kill
    elif moment is between_calls:
        assert done, at_kill
    else:
        assert not done, at_kill

    fake.lesson_delay = RESTART_DELAY
    await service.start()
    progress = await service.settle(job_id)

    statuses = await lesson_statuses(service.db, job_id)
    assert len(statuses) == LESSONS
    assert set(statuses.values()) == {"complete"}, statuses
    job = await job_row(service.db, job_id)
    counters = (job["status"], job["completed_lessons"], job["failed_lessons"])
    assert counters == ("complete", LESSONS, 0)
    assert progress["status"] == "complete" and progress["progress"] == 100
    await assert_sound(service.db)
    if service.postgres:
        # The restarted node (a new name) left the dead node's lessons alone until each
        # lease ended, then wrote them; on SQLite the restart requeued them at once.
        assert service.server.node != dead_node
        taken_over = {
            c.title: c.started
            for c in service.fake.lesson_calls()
            if c.body.get("model") == service.model(2) and c.title in lease_ends
        }
        assert set(taken_over) == in_flight
        late = {
            t: lease_ends[t] - started
            for t, started in taken_over.items()
            if started < lease_ends[t]
        }
        assert late == {}, f"taken over before the lease ended (seconds early): {late}"

    before, after = service.calls(1), service.calls(2)
    # The first life called each lesson at most once, and only those it had claimed.
    assert set(before) >= done and set(before) <= done | in_flight, (before, at_kill)
    assert max(before.values(), default=1) == 1
    # The restart called exactly the lessons not complete at the kill, once each.
    assert after == Counter(title for title in statuses if title not in done)
    # So: total = lessons + lessons in flight whose call had reached the model.
    reached = in_flight & set(before)
    assert before.total() + after.total() == LESSONS + len(reached)
    if moment is while_calls_are_in_flight:
        assert len(reached) >= CONCURRENCY
    assert duplicate_calls(await service.runs(job_id)) == {}
    assert len(fake.outline_calls()) == 1


# -- SIGTERM with a stream open ------------------------------------------------------------


async def read_until_closed(http: httpx.AsyncClient, url: str) -> tuple[list[str], str, float]:
    """Read a stream to its end: the event types, how it ended, and when (monotonic)."""
    types: list[str] = []
    ending = "closed by the server"
    try:
        async with aconnect_sse(http, "GET", url) as source:
            async for event in source.aiter_sse():
                types.append(event.event)
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        ending = f"cut: {type(exc).__name__}"
    return types, ending, time.monotonic()


async def test_sigterm_with_a_stream_open_exits_fast_and_requeues_calls_in_flight(
    service: Service, fake: FakeAnthropic
) -> None:
    fake.lesson_delay = 5.0  # the calls in flight cannot finish during the shutdown
    await service.start()
    job_id = await service.generate()
    reader = asyncio.create_task(
        read_until_closed(service.http, service.url(f"/api/jobs/{job_id}/events"))
    )
    try:
        await until(lambda: len(service.at_the_model()) == CONCURRENCY)
        in_flight = service.at_the_model()
        sent = time.monotonic()
        took = await service.server.terminate(within=10.0)
        types, ending, stream_ended = await asyncio.wait_for(reader, 10.0)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    left = await service.died(job_id)

    assert took < 10.0, f"exit took {took:.1f} s"
    # uvicorn re-raises the signal once it has shut down cleanly, so the parent sees it.
    assert service.server.exit_codes in ([0], [-signal.SIGTERM])
    assert "Application shutdown complete" in service.server.log_tail()
    assert types[0] == "snapshot"
    assert stream_ended - sent < 10.0, ending
    # The calls in flight were cancelled, not waited for, and their lessons went back.
    aborted = {c.title for c in fake.lesson_calls() if c.aborted}
    assert aborted == in_flight
    # Handed back on the way out: on PostgreSQL no node waits for a lease either.
    assert all(left[title] == "pending" for title in in_flight), left
    assert "generating" not in left.values()
    assert (await job_row(service.db, job_id))["status"] == "running"
    await assert_sound(service.db)

    fake.lesson_delay = RESTART_DELAY
    await service.start()
    restarted = time.monotonic()
    assert (await service.settle(job_id))["status"] == "complete"
    assert set((await lesson_statuses(service.db, job_id)).values()) == {"complete"}
    await assert_sound(service.db)
    assert service.calls(2) == Counter(t for t, s in left.items() if s != "complete")
    assert duplicate_calls(await service.runs(job_id)) == {}
    # Nothing waited for a lease: the handed-back lessons were called as the node came up.
    resumed = [
        c.started - restarted
        for c in fake.lesson_calls()
        if c.title in in_flight and c.body.get("model") == service.model(2)
    ]
    assert max(resumed) < LEASE / 2, resumed


# A request whose body is announced but never sent: once the server has asked for it
# (100 Continue), uvicorn's shutdown waits for it for its whole graceful timeout (3 s).
HELD_REQUEST = (
    b"POST /api/courses/generate HTTP/1.1\r\nHost: localhost\r\n"
    b"Content-Type: application/json\r\nContent-Length: 40\r\nExpect: 100-continue\r\n\r\n"
)


async def test_sigterm_starts_no_new_lesson_call_while_the_server_drains(
    service: Service, fake: FakeAnthropic
) -> None:
    """Spec 7: on SIGTERM new work is refused; a call started then is only thrown away."""
    fake.lesson_delay = 2.0  # the first two calls end inside the 3 s drain
    await service.start()
    job_id = await service.generate()
    await until(lambda: len(service.at_the_model()) == CONCURRENCY)
    reader, writer = await asyncio.open_connection("127.0.0.1", service.server.port)
    try:
        writer.write(HELD_REQUEST)
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 100")
        sent = time.monotonic()
        took = await service.server.terminate(within=10.0)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    left = await service.died(job_id)

    assert took < 10.0
    assert "generating" not in left.values()
    await assert_sound(service.db)
    late = sorted(c.title for c in fake.lesson_calls() if c.started > sent)
    assert late == [], f"{len(late)} lesson call(s) started after SIGTERM, then aborted"


# -- stream resume across a restart --------------------------------------------------------


def frame_ids(events: list[ServerSentEvent]) -> list[int]:
    return [int(event.id) for event in events]


def half_done(event: ServerSentEvent, job_id: str) -> bool:
    if event.event != "progress":
        return False
    data = event.json()
    return bool(data["job_id"] == job_id and data["completed_lessons"] >= LESSONS // 2)


def ends(event: ServerSentEvent, job_id: str) -> bool:
    if event.event != "job":
        return False
    data = json.loads(event.data)
    return bool(data["job_id"] == job_id and data["status"] == "complete")


async def read_first_half(
    service: Service, source: EventSource, job_id: str, signum: int
) -> list[ServerSentEvent]:
    """Read until half the lessons are done, then bring the server down under the stream.

    After a SIGKILL nothing more can come; after a SIGTERM the stream is read until
    the server closes it, as a browser would.
    """
    got: list[ServerSentEvent] = []
    sent = False
    try:
        async for event in source.aiter_sse():
            got.append(event)
            if half_done(event, job_id) and not sent:
                service.server.send(signum)
                sent = True
                if signum == signal.SIGKILL:
                    break
    except (httpx.RemoteProtocolError, httpx.ReadError):
        pass
    return got


@pytest.mark.parametrize(
    ("stream", "signum"),
    [("job", signal.SIGKILL), ("all", signal.SIGTERM)],
    ids=["job-stream-sigkill", "all-events-sigterm"],
)
async def test_stream_resumes_across_a_restart_with_every_later_event_once(
    service: Service, fake: FakeAnthropic, stream: str, signum: int
) -> None:
    fake.lesson_delay = 0.6
    await service.start()
    # Connection 1, from the start of the job to its middle, when the server goes down.
    if stream == "job":
        job_id = await service.generate()
        async with aconnect_sse(
            service.http, "GET", service.url(f"/api/jobs/{job_id}/events")
        ) as source:
            first = await read_first_half(service, source, job_id, signum)
        assert first[0].event == "snapshot"
        start = int(first.pop(0).id)
    else:
        start = (await service.http.get(service.url("/api/courses"))).json()["last_event_id"]
        async with aconnect_sse(service.http, "GET", service.url("/api/events")) as source:
            job_id = await service.generate()
            first = await read_first_half(service, source, job_id, signum)
    await service.server.wait(within=10.0)
    await service.died(job_id)
    await assert_sound(service.db)
    cursor = int(first[-1].id)
    scope = job_id if stream == "job" else None
    logged = await event_ids(service.db, scope, start)
    assert frame_ids(first) == [i for i in logged if i <= cursor]
    missed = await event_ids(service.db, scope, cursor)  # written after the client's last event

    fake.lesson_delay = RESTART_DELAY
    await service.start()
    # Connection 2, resumed from the last id the client had, on the restarted server.
    url = service.url(f"/api/jobs/{job_id}/events" if stream == "job" else "/api/events")
    second: list[ServerSentEvent] = []
    async with asyncio.timeout(SETTLE_WITHIN):
        async with aconnect_sse(
            service.http, "GET", url, headers={"Last-Event-ID": str(cursor)}
        ) as source:
            async for event in source.aiter_sse():
                second.append(event)
                if stream == "all" and ends(event, job_id):
                    break  # the all-jobs stream never ends by itself
    assert second and ends(second[-1], job_id)

    ids = frame_ids(second)
    assert ids == sorted(set(ids)), "out of order or repeated"
    assert ids[0] > cursor
    assert ids[: len(missed)] == missed
    # Every event logged after the cursor, and nothing else, each once, in order.
    assert ids == await event_ids(service.db, scope, cursor)
    assert set((await lesson_statuses(service.db, job_id)).values()) == {"complete"}
    await assert_sound(service.db)
    assert duplicate_calls(await service.runs(job_id)) == {}


# -- a finished job stays finished -----------------------------------------------------------


async def test_restart_on_a_complete_job_calls_the_model_not_at_all(
    service: Service, fake: FakeAnthropic
) -> None:
    fake.lesson_delay = 0.05
    await service.start()
    job_id = await service.generate(lessons=3)
    assert (await service.settle(job_id))["status"] == "complete"
    await service.kill(job_id)  # a crash after the end: no shutdown code ran
    logged = await event_ids(service.db)
    calls = len(fake.calls)

    await service.start()
    health = (await service.http.get(service.url("/api/health"))).json()
    assert health["active_jobs"] == 0
    # Its stream is the snapshot alone: the server ends it at once.
    async with aconnect_sse(
        service.http, "GET", service.url(f"/api/jobs/{job_id}/events")
    ) as source:
        events = [event async for event in source.aiter_sse()]
    assert [event.event for event in events] == ["snapshot"]
    assert events[0].json()["job"]["status"] == "complete"
    await service.server.terminate()

    assert len(fake.calls) == calls, [c.title for c in fake.calls[calls:]]
    assert service.calls(2) == Counter()
    assert await event_ids(service.db) == logged
    await assert_sound(service.db)


async def test_the_text_so_far_survives_kill_9_and_is_replaced_not_merged_after(
    service: Service, fake: FakeAnthropic
) -> None:
    """Spec 8: the partial text is stored (a reload after a crash shows it); the restarted
    process writes the lesson again from the start, replacing it."""
    first = "## First life\n\n" + "Words of the first attempt. " * 300
    second = "## Second life\n\n" + "Words of the attempt after the restart. " * 100
    fake.lesson_text = lambda title: first if service.life == 1 else second
    fake.lesson_delay = 0.0
    fake.delta_gap = 0.01
    await service.start()
    job_id = await service.generate(lessons=1)

    async def stored() -> str:
        rows = await fetch(service.db, "SELECT content FROM lessons WHERE id = 1")
        return str(rows[0]["content"] or "")

    async def saved() -> bool:
        return len(await stored()) >= 400  # a save or two after the first words

    await until(saved)
    shown = (await service.http.get(service.url("/api/lessons/1"))).json()
    assert shown["content_status"] == "generating" and first.startswith(shown["content"])
    await service.kill(job_id)
    partial = await stored()
    assert 400 <= len(partial) < len(first.rstrip()) and first.startswith(partial)

    fake.delta_gap = 0.001
    await service.start()
    assert (await service.settle(job_id))["status"] == "complete"
    final = (await service.http.get(service.url("/api/lessons/1"))).json()
    assert final["content"] == second.rstrip()  # the new attempt's text alone
    assert "first attempt" not in final["content"]
    await assert_sound(service.db)
