"""Three `coursegen serve` nodes on one PostgreSQL (SPEC section 13), as real processes.

Any node serves any stream, exactly; a reader of a lesson on any node rebuilds its
text; a node killed mid-job loses nothing once its leases run out; a stopping node
hands its lessons back at once; a frozen node's late result is never stored.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import API_KEY, counters_hold, db_rows
from tests.helpers import until
from tests.serverproc import ServerProcess, server_env
from tests.test_live_writing import LONG, Reading, apply

LEASE = 2  # seconds: short, so that a dead node's lessons move on within the test
SETTLE = 60.0


@pytest.fixture
def engine() -> str:
    return "postgresql"


class Cluster:
    def __init__(self, nodes: list[ServerProcess], settings: Settings) -> None:
        self.nodes = nodes
        self.settings = settings

    def model(self, n: int) -> str:
        return f"cluster-node-{n}"

    def node_of(self, call_body: dict[str, Any]) -> int:
        return int(str(call_body.get("model", "cluster-node--1")).rsplit("-", 1)[1])

    async def generate(self, node: int, lessons: int, quizzes: bool = True) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.nodes[node].url, timeout=20) as http:
            response = await http.post(
                "/api/courses/generate",
                json={"topic": "Clustered sourdough", "lessons": lessons, "quizzes": quizzes},
            )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def name(self, node: int) -> str:
        """The node's name, as it marks the lessons it claims."""
        async with httpx.AsyncClient(base_url=self.nodes[node].url, timeout=10) as http:
            name: str = (await http.get("/api/health")).json()["node"]
        return name

    async def settle(self, node: int, job_id: str) -> dict[str, Any]:
        """Follow the job's stream on `node` until it ends; the job's progress then."""
        url = self.nodes[node].url
        async with httpx.AsyncClient(base_url=url, timeout=SETTLE) as http:
            async with asyncio.timeout(SETTLE):
                async with aconnect_sse(http, "GET", f"/api/jobs/{job_id}/events") as source:
                    async for _ in source.aiter_sse():
                        pass
            progress: dict[str, Any] = (await http.get(f"/api/jobs/{job_id}/progress")).json()
        return progress


StartCluster = Callable[..., Awaitable[Cluster]]


@pytest.fixture
async def start_cluster(
    fake: FakeAnthropic, settings: Settings, tmp_path: Path
) -> AsyncIterator[StartCluster]:
    """Start three nodes on the test's PostgreSQL; `extra` adds to each one's environment."""
    nodes: list[ServerProcess] = []

    async def start(**extra: str) -> Cluster:
        for n in range(3):
            env = server_env(
                api_key=API_KEY,
                base_url=fake.base_url,
                model=f"cluster-node-{n}",
                extra={"COURSEGEN_CONCURRENCY": "2", "COURSEGEN_LEASE_SECONDS": str(LEASE),
                       **extra},
            )  # fmt: skip
            log = tmp_path / f"node-{n}.log"
            nodes.append(ServerProcess(tmp_path / "unused.db", env, log, db_url=settings.db))
        await asyncio.gather(*(node.start() for node in nodes))
        return Cluster(nodes, settings)

    try:
        yield start
    finally:
        await asyncio.gather(*(node.stop() for node in nodes))


@pytest.fixture
async def cluster(start_cluster: StartCluster) -> Cluster:
    return await start_cluster()


def writing(fake: FakeAnthropic, model: str) -> bool:
    """Whether the node with this model has a lesson call at the fake right now."""
    return any(c.body["model"] == model and c.ended is None for c in fake.lesson_calls())


async def read_lesson(node: ServerProcess, lesson_id: int) -> Reading:
    """Follow a lesson's stream on one node until it ends; what the reader rebuilt."""
    reading = Reading()
    async with (
        httpx.AsyncClient(timeout=SETTLE) as http,
        aconnect_sse(http, "GET", f"{node.url}/api/lessons/{lesson_id}/events") as source,
    ):
        async for sse in source.aiter_sse():
            apply(reading, sse.event, sse.json())
    return reading


async def read_stream(
    url: str, headers: dict[str, str] | None = None, opened: asyncio.Event | None = None
) -> list[tuple[int, str]]:
    """Every event of a stream with an id; `opened` is set once the first has come."""
    seen: list[tuple[int, str]] = []
    async with (
        httpx.AsyncClient(timeout=SETTLE) as http,
        aconnect_sse(http, "GET", url, headers=headers or {}) as source,
    ):
        async for event in source.aiter_sse():
            if event.id:
                seen.append((int(event.id), event.event))
            if opened is not None:
                opened.set()
    return seen


async def test_generate_on_one_node_watch_on_another_resume_on_a_third(
    cluster: Cluster, fake: FakeAnthropic
) -> None:
    fake.delta_gap = 0.005
    created = await cluster.generate(0, lessons=4)
    job = created["job_id"]
    watched = await read_stream(f"{cluster.nodes[1].url}/api/jobs/{job}/events")
    ids = [event_id for event_id, _ in watched]
    logged = await db_rows(
        cluster.settings, "SELECT id FROM events WHERE job_id = ? ORDER BY id", job
    )
    assert ids[1:] == [row[0] for row in logged if row[0] > ids[0]]  # after the snapshot
    assert watched[-1][1] == "job"
    # A client that lost its connection to node 1 resumes on node 2 with its cursor.
    middle = ids[len(ids) // 2]
    resumed = await read_stream(
        f"{cluster.nodes[2].url}/api/jobs/{job}/events", {"Last-Event-ID": str(middle)}
    )
    assert resumed == [event for event in watched if event[0] > middle]
    # Every node's all-jobs stream holds the same events in the same order.
    for node in cluster.nodes:
        async with httpx.AsyncClient(timeout=10) as http:
            listed = (await http.get(f"{node.url}/api/courses")).json()
        assert listed["last_event_id"] >= ids[-1]
    assert await counters_hold(cluster.settings) == []


async def test_readers_on_every_node_rebuild_the_exact_text(
    cluster: Cluster, fake: FakeAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG * 2
    fake.delta_gap = 0.006
    created = await cluster.generate(0, lessons=1)
    lesson_id = created["course"]["lessons"][0]["id"]

    readings = await asyncio.gather(*(read_lesson(n, lesson_id) for n in cluster.nodes))
    for reading in readings:
        assert reading.status == "complete"
        assert reading.text == (LONG * 2).rstrip()
    # Readers on the nodes that did not write it saw it grow too, chunk by chunk as it
    # was written (NOTIFY), not in the steps of the once-a-second save.
    assert all(reading.grew_while_generating for reading in readings)
    assert min(reading.chunks for reading in readings) >= 30, [r.chunks for r in readings]


async def test_a_node_killed_mid_job_loses_nothing(cluster: Cluster, fake: FakeAnthropic) -> None:
    fake.delta_gap = 0.03  # ~1.2 s a lesson
    created = await cluster.generate(0, lessons=8)
    job = created["job_id"]

    def in_flight(node: int) -> set[str]:
        model = cluster.model(node)
        return {
            c.title for c in fake.lesson_calls() if c.ended is None and c.body["model"] == model
        }

    await until(lambda: bool(in_flight(0)))
    dead = await cluster.name(0)
    await cluster.nodes[0].kill()
    # What the dead node held: its calls in flight, and any answer it had not yet stored.
    held = await db_rows(
        cluster.settings,
        "SELECT title FROM lessons WHERE content_status = 'generating' AND node = ?",
        dead,
    )
    cut_off = {title for (title,) in held}
    assert cut_off
    progress = await cluster.settle(1, job)
    assert progress["status"] == "complete"
    assert await counters_hold(cluster.settings) == []
    rows = await db_rows(
        cluster.settings,
        "SELECT title, content_status, content FROM lessons WHERE course_id = ?",
        created["course_id"],
    )
    assert {row[1] for row in rows} == {"complete"} and all(row[2] for row in rows)
    # Only the lessons cut off by the kill were called twice, each by another node.
    calls = Counter(c.title for c in fake.lesson_calls())
    assert {title for title, n in calls.items() if n > 1} == cut_off
    assert all(n <= 2 for n in calls.values())


async def test_a_stopping_node_hands_its_lessons_back_at_once(
    cluster: Cluster, fake: FakeAnthropic
) -> None:
    fake.delta_gap = 0.03
    created = await cluster.generate(1, lessons=6)
    job = created["job_id"]
    model = cluster.model(1)
    await until(lambda: writing(fake, model))
    stopping = await cluster.name(1)
    # A stream open on the stopping node closes cleanly, and the node exits quickly.
    url = f"{cluster.nodes[1].url}/api/jobs/{job}/events"
    opened = asyncio.Event()
    reader = asyncio.create_task(read_stream(url, opened=opened))
    await asyncio.wait_for(opened.wait(), 10)  # the stream is open before the node stops
    took = await cluster.nodes[1].terminate(within=10)
    assert took < 5
    # Closed by the server while the job runs on: the client resumes on another node.
    seen = await asyncio.wait_for(reader, 5)
    assert seen and seen[-1][1] != "job"
    kept = await db_rows(
        cluster.settings,
        "SELECT count(*) FROM lessons WHERE content_status = 'generating' AND node = ?",
        stopping,
    )
    assert kept == [(0,)]  # handed back on the way out: nobody waits for its leases
    progress = await cluster.settle(2, job)
    assert progress["status"] == "complete"
    assert await counters_hold(cluster.settings) == []


async def test_a_frozen_node_whose_lease_lapsed_cannot_store_its_late_result(
    cluster: Cluster, fake: FakeAnthropic
) -> None:
    fake.delta_gap = 0.02
    created = await cluster.generate(2, lessons=2)
    job = created["job_id"]
    model = cluster.model(2)
    await until(lambda: writing(fake, model))
    frozen = {c.title for c in fake.lesson_calls() if c.body["model"] == model}
    frozen_node = await cluster.name(2)
    cluster.nodes[2].send(signal.SIGSTOP)
    try:
        progress = await cluster.settle(0, job)  # written by the others after the lease
    finally:
        cluster.nodes[2].send(signal.SIGCONT)
    assert progress["status"] == "complete"
    await asyncio.sleep(LEASE)  # the thawed node finishes or drops what it had
    rows = await db_rows(
        cluster.settings,
        "SELECT title, attempt, node, content_status FROM lessons WHERE course_id = ?",
        created["course_id"],
    )
    for title, attempt, node, status in rows:
        assert status == "complete"
        if title in frozen:  # taken over: a newer attempt by another node is what stands
            assert attempt >= 2 and node != frozen_node
    events = await db_rows(
        cluster.settings, "SELECT data FROM events WHERE job_id = ? AND type = 'lesson'", job
    )
    completions = Counter(
        json.loads(data)["lesson_id"]
        for (data,) in events
        if json.loads(data)["content_status"] == "complete"
    )
    assert set(completions.values()) == {1}  # each lesson stored once, never over itself
    assert await counters_hold(cluster.settings) == []


async def test_the_cluster_limit_bounds_calls_in_flight_across_every_node(
    start_cluster: StartCluster, fake: FakeAnthropic
) -> None:
    cluster = await start_cluster(COURSEGEN_CLUSTER_CONCURRENCY="3")
    fake.delta_gap = 0.01
    # Texts only: the fake counts lesson calls in flight, and quiz calls would share the slots.
    created = [await cluster.generate(n, lessons=4, quizzes=False) for n in range(3)]
    for course in created:
        assert (await cluster.settle(0, course["job_id"]))["status"] == "complete"
    # Three nodes of two slots each could make six calls at once; the cluster made three.
    assert fake.max_lessons_in_flight == 3
    assert len({cluster.node_of(c.body) for c in fake.lesson_calls()}) >= 2
    assert await counters_hold(cluster.settings) == []


async def test_readers_waiting_on_a_queued_lesson_follow_it_on_whichever_node_writes_it(
    start_cluster: StartCluster, fake: FakeAnthropic
) -> None:
    cluster = await start_cluster(COURSEGEN_CLUSTER_CONCURRENCY="1")
    fake.lesson_text = lambda title: LONG
    fake.delta_gap = 0.004
    created = await cluster.generate(0, lessons=3)
    last = created["course"]["lessons"][2]["id"]

    # Connected while it waits its turn; one node writes it, the others follow by NOTIFY.
    readings = await asyncio.gather(*(read_lesson(n, last) for n in cluster.nodes))
    for reading in readings:
        assert reading.statuses[-1] == "complete" and reading.text == LONG.rstrip()
        assert reading.grew_while_generating
