"""Several nodes on one PostgreSQL database (SPEC section 13): cross-node delivery, takeover
of a killed node's lessons, and a rolling restart that loses and repeats nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coursegen_dev.bench import pg
from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.procs import run_delay
from coursegen_dev.bench.scenarios.delivery import job_shape, lesson_stamps
from coursegen_dev.bench.service import TERMINAL, JobWatch, Service
from coursegen_dev.bench.sse import Frame
from coursegen_dev.bench.stats import ms, summary

if TYPE_CHECKING:
    import asyncpg

CROSS_TARGET = 0.050
TAKEOVER_LEASE = 5.0
TAKEOVER_MARGIN = 2.0
TAKEOVER_LESSONS = 4
A_MODEL, B_MODEL = "bench-node-a", "bench-node-b"
ROLLING_NODES = 3
ROLLING_COURSES = 10
ROLLING_CONCURRENCY = 4
STREAMS_PER_COURSE = 3

METHOD = {
    "crossnode": (
        "node A (concurrency = the course's lessons, so it claims them all at once; on the "
        "clients' CPU) writes one job; node B (the service's CPU) is started once A holds "
        "every lesson, so B writes none, and 100 clients follow the job on B's "
        "/api/jobs/{id}/events. The fake lets A's calls through 4 a second. Latency = the "
        "kernel arrival stamp (SO_TIMESTAMPNS) of each event's frame at each client - the "
        "commit time of the event's transaction as PostgreSQL recorded it "
        "(track_commit_timestamp: pg_xact_commit_timestamp(xmin) of the event row; the "
        "same wall clock). One sample per event (lesson completions and the job's end) and "
        "client. 'From the stamp': against the lesson's updated_at, set by A just before its "
        "transaction, as the single-node delivery figure measures"
    ),
    "takeover": (
        "two nodes, COURSEGEN_LEASE_SECONDS=5; a course of 4 lessons generated on A, its "
        "calls held at the fake (in flight) and reported as they arrive; the bench watches "
        "A's leases in the database every 20 ms and sends kill -9 just after A renews them "
        "(the worst moment: a whole lease left). Measured: each A lesson's new call "
        "arriving at the fake from B - the kill; also - the lease's end as the database "
        "holds it. Then the calls are let through and the job must complete with each "
        "lesson stored once"
    ),
    "rolling": (
        "three nodes (concurrency 4 each, the default 30 s lease), 10 courses posted across "
        "them; 3 clients per course on its /api/jobs/{id}/events and one /api/events client "
        "per node, spread over the nodes. Each node in turn gets SIGTERM (after the others "
        "had ~2 s of work) and is started again once it exited; a client whose stream ends "
        "before its job does reconnects to another node that is up, with Last-Event-ID. "
        "Lost: a lesson or job not complete at the end. Duplicated: a lesson with more than "
        "one `complete` event in the log. A gap: a client's event ids after its snapshot "
        "(job streams) or its first event (/api/events) differ from the log's ids of the "
        "same scope (missing, repeated or out of order)"
    ),
}


def _timestamp(value: Any) -> float:
    return float(value.timestamp())


async def commit_times(dsn: str, job_id: str) -> dict[int, float]:
    """Each of the job's events: when its transaction committed (PostgreSQL's record)."""
    conn = await pg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, pg_xact_commit_timestamp(xmin) AS at FROM events WHERE job_id = $1",
            job_id,
        )
    finally:
        await conn.close()
    return {int(r["id"]): _timestamp(r["at"]) for r in rows if r["at"] is not None}


async def until(check: Callable[[], bool], *, within: float, every: float = 0.02) -> None:
    """Wait until `check()` holds, looking every `every` s (/proc, the database and the
    fake's reports offer nothing to wait on)."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(every)


async def until_async(
    check: Callable[[], Awaitable[bool]], *, within: float, every: float = 0.02
) -> None:
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(every)


async def node_name(svc: Service) -> str:
    name: str = (await svc.api.get_json("/api/health"))["node"]
    return name


# -- 1. cross-node delivery ---------------------------------------------------------------


async def cross_node(bench: Bench) -> Outcome:
    lessons, delay = job_shape(bench)
    clients = 50 if bench.quick else 100
    topic = f"crossnode {clients} clients."
    async with bench.measure("crossnode") as out:
        dsn = await bench.database()
        assert dsn is not None
        await bench.fake.delays(lesson=delay, outline=0)
        await bench.fake.stream(None)
        await bench.fake.gate(topic)
        a_env = bench.env(concurrency=lessons, model=A_MODEL)
        a = await bench.start_node("crossnode-a", a_env, dsn, bench.client_cpus)
        b: Service | None = None
        try:
            watch = await JobWatch(a).start()
            course = await a.generate(topic, lessons)
            job = course["job_id"]
            ids = [lesson["id"] for lesson in course["course"]["lessons"]]
            await watch.lessons_reached(ids, "generating", within=30)
            watch.close()
            b_env = bench.env(concurrency=4, model=B_MODEL)
            b = await bench.start_node("crossnode-b", b_env, dsn, bench.service_cpus)
            started = time.monotonic()
            streams = await b.open_streams(f"/api/jobs/{job}/events", clients)
            connect_s = time.monotonic() - started
            mark = bench.fake.mark()
            before, waited = b.stats(), run_delay(b.pid)
            await bench.fake.open(topic, spacing=delay / 4)
            await asyncio.wait_for(asyncio.gather(*(s.ended for s in streams)), 120)
            after, waited = b.stats(), run_delay(b.pid) - waited
            stamps = await lesson_stamps(a, ids)
            a_name = await node_name(a)
        finally:
            if b is not None:
                await bench.stop_node(b)
            await bench.stop_node(a)
            bench.wait_profilers()
        committed = await commit_times(dsn, job)
        writers = await _writers(dsn, ids)
        call_end = {
            c.position: c.end for c in bench.fake.calls_since(mark, "lesson") if c.topic == topic
        }
        by_commit: list[float] = []
        by_stamp: list[float] = []
        by_call: list[float] = []
        missing = 0
        for stream in streams:
            events = stream.events()
            # What committed before the stream opened is in its snapshot (the first frame).
            snapshot = events[0][1] if events and events[0][2] == "snapshot" else 0
            seen = set()
            for arrival, event_id, kind, data in events:
                if kind == "snapshot":
                    continue
                seen.add(event_id)
                by_commit.append(arrival - committed[event_id])
                if kind == "lesson" and data["content_status"] == "complete":
                    by_stamp.append(arrival - stamps[data["lesson_id"]])
                    if data["position"] in call_end:
                        by_call.append(arrival - call_end[data["position"]])
            missing += len({i for i in committed if i > snapshot} - seen)
        lat = summary(by_commit)
        out.data = {
            "method": METHOD["crossnode"],
            "clients": clients,
            "lessons": lessons,
            "lesson_delay_s": delay,
            "connect_seconds": connect_s,
            "latency_from_commit_s": lat,
            "latency_from_updated_at_s": summary(by_stamp),
            "latency_from_call_end_s": summary(by_call),
            "node_b_cpu_s": after.cpu - before.cpu,
            "node_b_waited_for_cpu_s": waited,
            "lessons_written_by": writers,
            "node_a": a_name,
            "events_missing": missing,
            "kernel_stamped": all(s.stamped for s in streams),
            "stream_errors": sorted({s.error for s in streams if s.error})[:5],
        }
        out.add(
            f"cross-node delivery p99, commit on A -> {clients} clients on B",
            f"{ms(lat['p99'])} (p50 {ms(lat['p50'])}; B waited {ms(waited)} for its CPU)",
            f"<= {CROSS_TARGET * 1000:.0f} ms",
            lat["p99"] <= CROSS_TARGET,
        )
        stamp, call = summary(by_stamp), summary(by_call)
        out.add(
            "  same from A's updated_at stamp / the fake's call end, p50/p99",
            f"{ms(stamp['p50'])}/{ms(stamp['p99'])} / {ms(call['p50'])}/{ms(call['p99'])}",
        )
        others = sum(n for node, n in writers.items() if node != a_name)
        if missing or others:
            out.add(
                "  events missing / lessons written by B", f"{missing} / {others}", "0 / 0", False
            )
    return out


async def _writers(dsn: str, lesson_ids: list[int]) -> dict[str, int]:
    conn = await pg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT node, count(*) AS n FROM lessons WHERE id = ANY($1::bigint[]) GROUP BY node",
            lesson_ids,
        )
    finally:
        await conn.close()
    return {str(r["node"]): int(r["n"]) for r in rows}


# -- 2. takeover after kill -9 --------------------------------------------------------------


async def takeover(bench: Bench) -> Outcome:
    lease = TAKEOVER_LEASE
    topic = "takeover course."
    async with bench.measure("takeover") as out:
        dsn = await bench.database()
        assert dsn is not None
        await bench.fake.delays(lesson=0.5, outline=0)
        await bench.fake.stream(None)
        await bench.fake.gate(topic)
        await bench.fake.report_begins(True)
        extra = {"COURSEGEN_LEASE_SECONDS": f"{lease:g}"}
        a_env = bench.env(concurrency=TAKEOVER_LESSONS, model=A_MODEL, extra=extra)
        b_env = bench.env(concurrency=TAKEOVER_LESSONS, model=B_MODEL, extra=extra)
        a, b = await asyncio.gather(
            bench.start_node("takeover-a", a_env, dsn, bench.any_cpu),
            bench.start_node("takeover-b", b_env, dsn, bench.any_cpu),
        )
        conn = await pg.connect(dsn)
        a_alive = True
        try:
            a_name = await node_name(a)
            watch = await JobWatch(b).start()
            course = await a.generate(topic, TAKEOVER_LESSONS)
            job = course["job_id"]
            ids = [lesson["id"] for lesson in course["course"]["lessons"]]
            await watch.lessons_reached(ids, "generating", within=30)
            query = (
                "SELECT id, position, node, attempt, content_status FROM lessons "
                "WHERE course_id = $1 ORDER BY position"
            )
            rows = await conn.fetch(query, course["course_id"])
            on_a = {int(r["position"]) for r in rows if r["node"] == a_name}
            if not on_a:
                raise RuntimeError("node B claimed every lesson before A did")
            # In flight: A's calls have reached the fake (held at its gate).
            await until(lambda: on_a <= _called_by(bench, topic, A_MODEL), within=10)
            # Kill just after A renews its leases: a whole lease is left, the worst case.
            leases = await _leases(conn, course["course_id"], a_name)
            await until_async(
                lambda: _leases_moved(conn, course["course_id"], a_name, leases), within=lease
            )
            killed = time.time()
            await bench.stop_node(a, kill=True)
            a_alive = False
            ends = await _leases(conn, course["course_id"], a_name)
            left = max(ends.values()) - killed if ends else float("nan")
            await until(lambda: on_a <= _called_by(bench, topic, B_MODEL), within=lease + 15)
            again = {
                p: min(x.at for x in bench.fake.begins
                       if x.topic == topic and x.model == B_MODEL and x.position == p)
                for p in on_a
            }  # fmt: skip
            lease_end = {int(r["position"]): ends.get(int(r["id"]), float("nan")) for r in rows}
            await bench.fake.open(topic)
            await watch.ended({job}, within=30)
            watch.close()
            final = await conn.fetch(query, course["course_id"])
            completions = await _completions(conn, job)
        finally:
            await bench.fake.report_begins(False)
            await conn.close()
            if a_alive:
                await bench.stop_node(a)
            await bench.stop_node(b)
            bench.wait_profilers()
        took = {p: t - killed for p, t in again.items()}
        after_lease = {p: t - lease_end[p] for p, t in again.items()}
        worst = max(took.values())
        stored_twice = sum(1 for n in completions.values() if n > 1)
        not_complete = sum(1 for r in final if r["content_status"] != "complete")
        out.data = {
            "method": METHOD["takeover"],
            "lease_s": lease,
            "lessons": TAKEOVER_LESSONS,
            "in_flight_on_a": sorted(on_a),
            "lease_left_at_kill_s": left,
            "called_again_after_kill_s": {str(p): t for p, t in took.items()},
            "called_again_after_lease_end_s": {str(p): t for p, t in after_lease.items()},
            "attempts": {str(r["position"]): int(r["attempt"]) for r in final},
            "lessons_not_complete": not_complete,
            "lessons_stored_twice": stored_twice,
        }
        out.add(
            f"takeover after kill -9: A's {len(on_a)} lessons called again by B, worst",
            f"{worst:.2f} s (lease {lease:g} s, {left:.2f} s of it left at the kill; "
            f"{max(after_lease.values()) * 1000:.0f} ms after its end)",
            f"<= {lease + TAKEOVER_MARGIN:g} s",
            worst <= lease + TAKEOVER_MARGIN,
        )
        out.add(
            "  then: lessons not complete / stored twice",
            f"{not_complete} / {stored_twice}",
            "0 / 0",
            not_complete == 0 and stored_twice == 0,
        )
    return out


def _called_by(bench: Bench, topic: str, model: str) -> set[int]:
    return {x.position for x in bench.fake.begins if x.topic == topic and x.model == model}


async def _leases(conn: asyncpg.Connection, course_id: int, node: str) -> dict[int, float]:
    rows = await conn.fetch(
        "SELECT id, lease_until FROM lessons WHERE course_id = $1 AND node = $2 "
        "AND content_status = 'generating'",
        course_id,
        node,
    )
    return {int(r["id"]): _timestamp(r["lease_until"]) for r in rows}


async def _leases_moved(
    conn: asyncpg.Connection, course_id: int, node: str, before: dict[int, float]
) -> bool:
    return await _leases(conn, course_id, node) != before


async def _no_job_running(conn: asyncpg.Connection) -> bool:
    running = await conn.fetchval(
        "SELECT count(*) FROM content_generation_jobs WHERE status = 'running'"
    )
    return int(running) == 0


async def _completions(conn: asyncpg.Connection, job_id: str | None) -> Counter[int]:
    """How many `complete` lesson events the log holds for each lesson (of a job, or all)."""
    if job_id is None:
        rows = await conn.fetch("SELECT data FROM events WHERE type = 'lesson'")
    else:
        rows = await conn.fetch(
            "SELECT data FROM events WHERE type = 'lesson' AND job_id = $1", job_id
        )
    counts: Counter[int] = Counter()
    for r in rows:
        data = json.loads(r["data"])
        if data["content_status"] == "complete":
            counts[int(data["lesson_id"])] += 1
    return counts


# -- 3. rolling restart ---------------------------------------------------------------------


@dataclass
class Nodes:
    """The cluster's nodes by slot; a slot is None while its node is stopped."""

    up: list[Service | None]
    names: dict[int, list[str]] = field(default_factory=dict)

    def pick(self, after: int) -> tuple[int, Service] | None:
        """The first node up after slot `after` (round the ring)."""
        count = len(self.up)
        for step in range(1, count + 1):
            slot = (after + step) % count
            node = self.up[slot]
            if node is not None:
                return slot, node
        return None


@dataclass
class Connection:
    slot: int
    opened: float
    ended: float = 0.0
    cursor: int | None = None
    error: str | None = None
    events: int = 0


class Follower:
    """One client of a stream path that reconnects to another node with Last-Event-ID
    whenever its stream ends before it is done (a job stream: the job's end)."""

    def __init__(self, nodes: Nodes, path: str, slot: int, *, job: bool) -> None:
        self.nodes, self.path, self.job = nodes, path, job
        self.slot = slot
        self.received: list[int] = []
        self.snapshot_id: int | None = None
        self.connections: list[Connection] = []
        self.finished = False
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    @property
    def cursor(self) -> int | None:
        if self.received:
            return self.received[-1]
        return self.snapshot_id

    async def _run(self) -> None:
        first = True
        while not self.stop.is_set():
            picked = (self.slot, self.nodes.up[self.slot]) if first else self.nodes.pick(self.slot)
            node = picked[1] if picked else None
            if picked is None or node is None:
                await asyncio.sleep(0.05)
                continue
            first = False
            self.slot = picked[0]
            cursor = self.cursor
            headers = {"Last-Event-ID": str(cursor)} if cursor is not None else None
            conn = Connection(self.slot, time.time(), cursor=cursor)
            self.connections.append(conn)
            stream = node.stream(self.path, self._frame, keep=False, headers=headers)
            try:
                await stream.connect()
                stopping: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
                ended: asyncio.Future[Any] = stream.ended
                await asyncio.wait([ended, stopping], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
            except OSError as exc:
                conn.error = f"connect: {exc}"
            finally:
                stream.close()
            conn.ended = time.time()
            conn.error = conn.error or stream.error
            if self.finished:
                return
            if conn.error:
                await asyncio.sleep(0.05)

    def _frame(self, frame: Frame) -> None:
        event_id, kind, data = frame.parsed()
        self.connections[-1].events += 1
        if kind == "snapshot":
            if self.snapshot_id is None and not self.received:
                self.snapshot_id = event_id
            self.finished = self.finished or data["job"]["status"] in TERMINAL
            return
        self.received.append(event_id)
        if self.job and kind == "job" and data["status"] in TERMINAL:
            self.finished = True

    @property
    def reconnections(self) -> int:
        return len(self.connections) - 1


async def rolling_restart(bench: Bench) -> Outcome:
    lessons, delay = (4, 1.0) if bench.quick else (12, 2.0)
    async with bench.measure("rolling") as out:
        dsn = await bench.database()
        assert dsn is not None
        await bench.fake.delays(lesson=delay, outline=0)
        await bench.fake.stream(None)
        envs = [
            bench.env(concurrency=ROLLING_CONCURRENCY, model=f"bench-node-{i}")
            for i in range(ROLLING_NODES)
        ]
        started = await asyncio.gather(
            *(
                bench.start_node(f"rolling-{i}", envs[i], dsn, bench.any_cpu)
                for i in range(ROLLING_NODES)
            )
        )
        nodes = Nodes(list(started))
        conn = await pg.connect(dsn)
        followers: list[Follower] = []
        restarts: list[dict[str, Any]] = []
        mark = bench.fake.mark()
        try:
            for slot, node in enumerate(started):
                nodes.names[slot] = [await node_name(node)]
            posted = await asyncio.gather(
                *(
                    started[i % ROLLING_NODES].generate(f"rolling {i}.", lessons)
                    for i in range(ROLLING_COURSES)
                )
            )
            jobs = [c["job_id"] for c in posted]
            for index, job in enumerate(jobs):
                for k in range(STREAMS_PER_COURSE):
                    slot = (index + k) % ROLLING_NODES
                    followers.append(Follower(nodes, f"/api/jobs/{job}/events", slot, job=True))
            watchers = [Follower(nodes, "/api/events", i, job=False) for i in range(ROLLING_NODES)]
            began = time.monotonic()
            for slot in range(ROLLING_NODES):
                await asyncio.sleep(2.0 if not bench.quick else 0.7)
                restarts.append(await _restart(bench, nodes, slot, envs[slot], dsn, conn))
            restarted_s = time.monotonic() - began
            await until_async(lambda: _no_job_running(conn), within=120, every=0.1)
            finished_s = time.monotonic() - began
            # A stream that never gets there is reported (unfinished, or a gap), not waited for.
            await asyncio.wait([f.task for f in followers], timeout=30)
            streams_done_s = time.monotonic() - began
            newest = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM events"))
            with contextlib.suppress(TimeoutError):
                await until(lambda: all((w.cursor or 0) >= newest for w in watchers), within=10)
            watchers_done_s = time.monotonic() - began
            for f in [*followers, *watchers]:
                f.stop.set()
            await asyncio.gather(*(f.task for f in [*followers, *watchers]))
            log = [(int(r["id"]), r["job_id"]) for r in await conn.fetch(
                "SELECT id, job_id FROM events ORDER BY id")]  # fmt: skip
            lesson_rows = await conn.fetch(
                "SELECT id, content_status, attempt, length(content) AS chars FROM lessons"
            )
            job_rows = await conn.fetch("SELECT id, status FROM content_generation_jobs")
            completions = await _completions(conn, None)
        finally:
            for f in followers:
                f.stop.set()
            await conn.close()
            for running in nodes.up:
                if running is not None:
                    await bench.stop_node(running)
            bench.wait_profilers()
        calls = Counter((c.topic, c.position) for c in bench.fake.calls_since(mark, "lesson"))
        gaps = [f for f in followers if _gap(f, log, f.path.split("/")[3])]
        gaps += [w for w in watchers if _gap(w, log, None)]
        lost = sum(1 for r in lesson_rows if r["content_status"] != "complete" or not r["chars"])
        lost_jobs = sum(1 for r in job_rows if r["status"] != "complete")
        duplicated = sum(1 for n in completions.values() if n > 1)
        unfinished = sum(1 for f in followers if not f.finished)
        reconnects = sum(f.reconnections for f in [*followers, *watchers])
        held_back = max(r["left_claimed"] for r in restarts)
        exit_worst = max(r["exit_s"] for r in restarts)
        resumed = [
            c.opened - prev.ended
            for f in [*followers, *watchers]
            for prev, c in zip(f.connections, f.connections[1:], strict=False)
        ]
        out.data = {
            "method": METHOD["rolling"],
            "nodes": ROLLING_NODES,
            "courses": ROLLING_COURSES,
            "lessons_per_course": lessons,
            "lesson_delay_s": delay,
            "restarts": restarts,
            "restarts_done_after_s": restarted_s,
            "jobs_done_after_s": finished_s,
            "job_streams_done_after_s": streams_done_s,
            "all_events_streams_done_after_s": watchers_done_s,
            "all_events_cursors": [w.cursor for w in watchers],
            "newest_event": newest,
            "lessons": len(lesson_rows),
            "lessons_lost": lost,
            "jobs_not_complete": lost_jobs,
            "lessons_duplicated": duplicated,
            "lesson_calls_made_again": sum(n - 1 for n in calls.values() if n > 1),
            "attempts": dict(Counter(int(r["attempt"]) for r in lesson_rows)),
            "streams": len(followers) + len(watchers),
            "streams_with_gap": len(gaps),
            "gap_examples": [_describe_gap(f, log) for f in gaps[:3]],
            "job_streams_unfinished": unfinished,
            "reconnections": reconnects,
            "reconnect_after_s": summary(resumed),
            "connection_errors": Counter(
                c.error.split(":")[0] for f in [*followers, *watchers] for c in f.connections
                if c.error
            ),
        }  # fmt: skip
        out.add(
            f"rolling restart of {ROLLING_NODES} nodes, {ROLLING_COURSES} courses: "
            "lessons lost / duplicated",
            f"{lost} / {duplicated} (of {len(lesson_rows)}; jobs not complete {lost_jobs})",
            "0 / 0",
            lost == 0 and duplicated == 0 and lost_jobs == 0,
        )
        out.add(
            "  client streams with a gap (resumed on another node with Last-Event-ID)",
            f"{len(gaps)} of {len(followers) + len(watchers)} ({reconnects} reconnections"
            f"{f'; {unfinished} job streams unfinished' if unfinished else ''})",
            "0",
            not gaps and not unfinished,
        )
        out.add(
            "  lessons left claimed by a node after its SIGTERM exit (exit, worst)",
            f"{held_back} ({exit_worst:.2f} s)",
            "0",
            held_back == 0,
        )
        out.add(
            "  lesson calls made again (handed back mid-call); jobs done after",
            f"{out.data['lesson_calls_made_again']}; {finished_s:.1f} s",
        )
    return out


async def _restart(
    bench: Bench, nodes: Nodes, slot: int, env: dict[str, str], dsn: str, conn: asyncpg.Connection
) -> dict[str, Any]:
    """SIGTERM the node in `slot`, wait for its exit, start it again."""
    node = nodes.up[slot]
    assert node is not None
    name = nodes.names[slot][-1]
    nodes.up[slot] = None  # clients that reconnect now go elsewhere
    claimed = int(
        await conn.fetchval(
            "SELECT count(*) FROM lessons WHERE content_status = 'generating' AND node = $1", name
        )
    )
    stopping = time.monotonic()
    await bench.stop_node(node)
    exit_s = time.monotonic() - stopping
    left = int(
        await conn.fetchval(
            "SELECT count(*) FROM lessons WHERE content_status = 'generating' AND node = $1", name
        )
    )
    fresh = await bench.start_node(f"rolling-{slot}-again", env, dsn, bench.any_cpu)
    nodes.names[slot].append(await node_name(fresh))
    nodes.up[slot] = fresh
    return {
        "slot": slot,
        "claimed_at_sigterm": claimed,
        "exit_s": exit_s,
        "exit_code": node.proc.returncode,
        "left_claimed": left,
        "down_s": time.monotonic() - stopping,
    }


def _scope(log: Sequence[tuple[int, str | None]], job: str | None) -> list[int]:
    return [i for i, j in log if job is None or j == job]


def _expected(f: Follower, log: Sequence[tuple[int, str | None]], job: str | None) -> list[int]:
    ids = _scope(log, job)
    if job is not None:
        start = f.snapshot_id if f.snapshot_id is not None else 0
        return [i for i in ids if i > start]
    if not f.received:
        return []
    return [i for i in ids if i >= f.received[0]]


def _gap(f: Follower, log: Sequence[tuple[int, str | None]], job: str | None) -> bool:
    return f.received != _expected(f, log, job)


def _describe_gap(f: Follower, log: Sequence[tuple[int, str | None]]) -> dict[str, Any]:
    job = f.path.split("/")[3] if f.job else None
    expected = _expected(f, log, job)
    got = Counter(f.received)
    return {
        "path": f.path,
        "missing": sorted(set(expected) - set(got))[:10],
        "repeated": sorted(i for i, n in got.items() if n > 1)[:10],
        "unexpected": sorted(set(got) - set(expected))[:10],
        "connections": [vars(c) for c in f.connections],
    }
