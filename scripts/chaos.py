"""Chaos trials: kill a real `coursegen serve` at random moments and check nothing is lost.

Each trial starts the server as a child process on a fresh SQLite file, talking to
the fake Messages API that runs in this process, and asks for a course (sometimes
two or three at once) with a random lesson count, concurrency and lesson delay.
The server is then killed (mostly kill -9, sometimes SIGTERM) at a random moment,
once or several times, and restarted on the same database; the last restart runs
the jobs to their end.
Every life of the server uses its own model name, so the fake's log says which
life made each lesson call.

With `--nodes N` (N > 1) each trial is a cluster instead: N servers share one fresh
PostgreSQL database (on the server `--db` names, else on a throwaway server started
from coursegen_dev/pgserver.py), courses are asked of random nodes, and random nodes are
killed (-9) or SIGTERMed and restarted while the others go on writing. SSE clients
follow every job's stream and, after each disconnect (a node died, or the client
dropped the connection on purpose), resume on another node with Last-Event-ID.
Each lesson call is answered with a text of its own, so the text a lesson ends
with names the call, and so the node and attempt, that wrote it.

Run it from the repository root once `make test` has installed the environment
(it runs outside pytest, on the package and its dev dependencies):

    .venv/bin/python scripts/chaos.py --trials 50
    .venv/bin/python scripts/chaos.py --trials 200 --seed 7 --workers 1 --verbose
    .venv/bin/python scripts/chaos.py --nodes 3 --trials 30
    .venv/bin/python scripts/chaos.py --nodes 3 --db postgresql://user@host/postgres

It prints a table of figures and exits with status 1 if any lesson was lost, a
model call was made for a lesson that was not in flight at a kill (one server),
a lesson's result was stored twice or from an attempt that was no longer the
lesson's current one (a cluster), a job's counters disagreed with its lessons, an
integrity check failed, a job got stuck, a SIGTERM exit took over 10 s, a server
started a lesson call after SIGTERM, an SSE client saw a gap or a duplicate across
its reconnects, or a trial could not run. Trials run two at a time by default
(--workers), each worker with a fake of its own; the plans come from the seed, so
a run can be repeated with the seed it prints.

The subprocess helper and the database checks are shared with the test suite:
they live in tests/serverproc.py, which imports nothing from pytest, and this
script imports it from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import random
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from httpx_sse import aconnect_sse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coursegen_dev.fake_anthropic import Call, FakeAnthropic  # noqa: E402
from tests.serverproc import (  # noqa: E402
    Database,
    ServerProcess,
    ServerRun,
    counter_mismatches,
    duplicate_calls,
    event_ids,
    fetch,
    integrity,
    lesson_statuses,
    server_env,
    stored_twice,
)

API_KEY = "sk-ant-chaos-key"
EXIT_LIMIT = 10.0  # seconds a SIGTERM may take before it counts as a slow exit
MOMENTS = ("after-generate", "nth-event", "mid-call")
# A call the server sent just before a signal can reach the fake just after it.
IN_TRANSIT = 0.05
TRIAL_LIMIT = 300.0  # seconds a trial may run before it counts as one that could not run
TERMINAL = frozenset({"complete", "error", "cancelled"})


@dataclass(frozen=True)
class Kill:
    """When and how one life of a server ends."""

    signum: int
    moment: str
    nth: int  # nth-event: the event count; mid-call: the calls answering at once
    jitter: float  # seconds to wait once the moment has come
    node: int = 0  # a cluster: which node
    down: float | None = None  # a cluster: seconds the node stays down before its restart

    def __str__(self) -> str:
        name = "KILL" if self.signum == signal.SIGKILL else "TERM"
        what = f"{name}@{self.moment}:{self.nth}+{self.jitter * 1000:.0f}ms"
        return what if self.down is None else f"n{self.node}:{what}"


@dataclass(frozen=True)
class Plan:
    courses: int  # written at once, sharing the process-wide concurrency
    lessons: int  # per course
    concurrency: int
    delay: float
    kills: tuple[Kill, ...]
    nodes: int = 1
    homes: tuple[int, ...] = ()  # a cluster: the node each course is asked of


@dataclass
class Outcome:
    """What one trial found; a trial is clean when every count of trouble is zero."""

    plan: Plan
    lessons: int = 0
    complete: int = 0
    calls: int = 0
    repeated: int = 0  # calls made again for lessons in flight at a kill: expected
    duplicates: int = 0  # calls beyond those: a bug
    mismatches: int = 0
    integrity_failures: int = 0
    stuck: int = 0
    slow_exits: int = 0
    calls_after_sigterm: int = 0  # spec 7: new work is refused once SIGTERM arrives
    slowest_exit: float = 0.0
    # A cluster:
    stored_twice: int = 0  # a second result stored in one attempt
    stale_results: int = 0  # a result stored from a call that was not the current attempt's
    wasted: int = 0  # calls not stored whose node lived on (a lease lost while alive)
    sse_clients: int = 0
    sse_broken: int = 0  # clients that saw a gap, a duplicate or a disorder
    sse_connections: int = 0
    sse_missing: int = 0
    sse_duplicates: int = 0
    kills_hit: list[str] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.lessons - self.complete

    @property
    def clean(self) -> bool:
        data = (self.lost, self.duplicates, self.mismatches, self.integrity_failures)
        cluster = (self.stored_twice, self.stale_results, self.sse_broken)
        process = (self.stuck, self.slow_exits, self.calls_after_sigterm)
        return not any((*data, *cluster, *process, self.error))


def make_plan(rng: random.Random, nodes: int = 1) -> Plan:
    if nodes > 1:
        return make_cluster_plan(rng, nodes)
    courses = 1 if rng.random() < 0.75 else rng.randint(2, 3)
    lessons = rng.randint(3, 8)
    concurrency = rng.randint(1, 4)
    delay = round(rng.uniform(0.1, 0.6), 2)
    count = 1 if rng.random() < 0.75 else rng.randint(2, 3)
    kills = tuple(make_kill(rng, lessons, concurrency, delay, first=i == 0) for i in range(count))
    return Plan(courses, lessons, concurrency, delay, kills)


def make_kill(
    rng: random.Random, lessons: int, concurrency: int, delay: float, first: bool
) -> Kill:
    signum = signal.SIGKILL if rng.random() < 0.8 else signal.SIGTERM
    moment = rng.choices(MOMENTS, weights=(0.15 if first else 0, 0.45, 0.4))[0]
    # About three events per lesson; at most `concurrency` calls (or lessons) answer at once.
    nth = rng.randint(1, 3 * lessons if moment == "nth-event" else min(concurrency, lessons))
    jitter = 0.0 if moment == "after-generate" else round(rng.uniform(0, delay), 3)
    return Kill(signum, moment, nth, jitter)


def make_cluster_plan(rng: random.Random, nodes: int) -> Plan:
    """Longer jobs than one server's (N nodes write N times as fast), and more kills,
    each of a random node that is restarted after a random time down."""
    courses = 1 if rng.random() < 0.6 else rng.randint(2, 3)
    lessons = rng.randint(6, 14)
    concurrency = rng.randint(1, 3)
    delay = round(rng.uniform(0.3, 0.9), 2)
    kills = []
    for i in range(rng.randint(1, 5)):
        signum = signal.SIGKILL if rng.random() < 0.7 else signal.SIGTERM
        moment = rng.choices(MOMENTS, weights=(0.15 if i == 0 else 0, 0.45, 0.4))[0]
        # Counted from the moment before: later kills come soon after the one before.
        nth = rng.randint(1, lessons if moment == "nth-event" else min(concurrency, 2))
        jitter = 0.0 if moment == "after-generate" else round(rng.uniform(0, delay), 3)
        down = 0.0 if rng.random() < 0.4 else round(rng.uniform(0, 1.5), 2)
        kills.append(Kill(signum, moment, nth, jitter, rng.randrange(nodes), down))
    homes = tuple(rng.randrange(nodes) for _ in range(courses))
    return Plan(courses, lessons, concurrency, delay, tuple(kills), nodes, homes)


# -- one trial ------------------------------------------------------------------------------


@dataclass
class Trial:
    """One database with one or a few courses, and several lives of each server."""

    number: int
    plan: Plan
    fake: FakeAnthropic
    nodes: list[ServerProcess]
    http: httpx.AsyncClient
    outcome: Outcome
    job_ids: list[str] = field(default_factory=list)
    lives: list[int] = field(default_factory=list)  # per node: its current life
    left: list[dict[str, str]] = field(default_factory=list)
    # A cluster: each life's node name (as it marks its claims) to its model name.
    models_of: dict[str, str] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)  # models of lives that chaos ended
    ready: set[int] = field(default_factory=set)  # nodes that are up and answer requests

    def __post_init__(self) -> None:
        self.lives = [0] * len(self.nodes)

    @property
    def server(self) -> ServerProcess:
        return self.nodes[0]

    @property
    def db(self) -> Database:
        return self.server.db

    @property
    def cluster(self) -> bool:
        return len(self.nodes) > 1

    def model(self, life: int, node: int = 0) -> str:
        if self.cluster:
            return f"chaos-{self.number}-n{node}-{life}"
        return f"chaos-{self.number}-{life}"

    def current_model(self, node: int = 0) -> str:
        return self.model(self.lives[node], node)

    def url(self, path: str, node: int = 0) -> str:
        return self.nodes[node].url + path

    def up(self) -> list[int]:
        """The nodes serving now: started, answering, and not being brought down."""
        return sorted(self.ready)

    async def start(self, node: int = 0) -> None:
        self.lives[node] += 1
        server = self.nodes[node]
        server.env["COURSEGEN_MODEL"] = self.current_model(node)
        await server.start()
        self.models_of[server.node] = self.current_model(node)
        self.ready.add(node)

    async def next_up(self, node: int) -> int:
        """`node` if it is up, else the next node that is (waiting for a restart if none is)."""
        while True:
            for n in itertools.chain(range(node, len(self.nodes)), range(node)):
                if n in self.ready:
                    return n
            await asyncio.sleep(0.02)

    async def restart(self, node: int, after: float) -> None:
        await asyncio.sleep(after)
        await self.start(node)

    async def generate(self) -> None:
        for course in range(1, self.plan.courses + 1):
            # The topic is in every lesson title, so titles are unique across the trial.
            body = {"topic": f"Chaos {self.number}.{course}", "lessons": self.plan.lessons}
            home = self.plan.homes[course - 1] if self.plan.homes else 0
            response = await self.http.post(self.url("/api/courses/generate", home), json=body)
            if response.status_code != 201:
                raise RuntimeError(f"generate answered {response.status_code}: {response.text}")
            self.job_ids.append(response.json()["job_id"])

    def answering(self, node: int = 0) -> int:
        """Lesson calls of the node's current life that the fake is answering right now."""
        model = self.current_model(node)
        return sum(
            1
            for call in self.fake.lesson_calls()
            if call.ended is None and call.body.get("model") == model
        )

    async def finished(self) -> bool:
        for job_id in self.job_ids:
            rows = await fetch(
                self.db, "SELECT status FROM content_generation_jobs WHERE id = ?", job_id
            )
            if rows[0]["status"] == "running":
                return False
        return True

    async def reach(self, kill: Kill) -> bool:
        """Wait for the kill's moment; False if the jobs ended first."""
        if kill.moment == "after-generate":
            return True
        if kill.moment == "nth-event":
            return await self._nth_event(kill.nth, kill.node)
        return await self._calls_answering(kill.nth, kill.node)

    async def _nth_event(self, nth: int, node: int) -> bool:
        """Count the events of the first job (with the snapshot) up to the nth."""
        seen = 0
        url = self.url(f"/api/jobs/{self.job_ids[0]}/events", node)
        async with aconnect_sse(self.http, "GET", url) as source:
            async for _ in source.aiter_sse():
                seen += 1
                if seen >= nth:
                    return True
        return False  # the server ended the stream: the job is over

    async def _calls_answering(self, count: int, node: int) -> bool:
        polls = 0
        while self.answering(node) < count:
            polls += 1
            if polls % 20 == 0 and await self.finished():
                return False
            await asyncio.sleep(0.01)
        return True

    async def bring_down(self, kill: Kill) -> None:
        """Signal the server after the jitter, reap it, and check what it left."""
        await asyncio.sleep(kill.jitter)  # a random moment, not a wait for something
        self.ended.add(self.current_model(kill.node))
        self.ready.discard(kill.node)
        if kill.signum == signal.SIGKILL:
            await self.nodes[kill.node].kill()
        else:
            await self.terminate(kill.node)
        self.outcome.kills_hit.append(str(kill))
        self.left.append(await self.statuses())
        await self.check_database()

    async def shut_down(self, node: int = 0) -> None:
        """An orderly stop (SIGTERM) that also counts as a life's end."""
        await self.terminate(node)
        self.left.append(await self.statuses())
        await self.check_database()

    async def statuses(self) -> dict[str, str]:
        """Every lesson of the trial's courses: title to status, read from the database."""
        found: dict[str, str] = {}
        for job_id in self.job_ids:
            found.update(await lesson_statuses(self.db, job_id))
        return found

    async def terminate(self, node: int = 0) -> None:
        """SIGTERM; note a slow exit, and any lesson call the server started after the signal."""
        self.ready.discard(node)
        sent = time.monotonic()
        seconds = await self.nodes[node].terminate(within=EXIT_LIMIT + 20)
        self.outcome.slowest_exit = max(self.outcome.slowest_exit, seconds)
        if seconds > EXIT_LIMIT:
            self.outcome.slow_exits += 1
            self.outcome.notes.append(f"SIGTERM exit took {seconds:.1f} s")
        model = self.current_model(node)
        late = [
            call.title
            for call in self.fake.lesson_calls()
            if call.started > sent + IN_TRANSIT and call.body.get("model") == model
        ]
        self.outcome.calls_after_sigterm += len(late)
        self.outcome.notes.extend(f"call started after SIGTERM: {title}" for title in late)

    async def check_database(self) -> None:
        """Counters and integrity (rows and events agree): on a cluster, while others write."""
        mismatches = await counter_mismatches(self.db)
        verdict = await integrity(self.db)
        self.outcome.mismatches += len(mismatches)
        self.outcome.notes.extend(mismatches)
        if verdict != "ok":
            self.outcome.integrity_failures += 1
            self.outcome.notes.append(f"integrity: {verdict}")

    async def settle(self, within: float) -> list[str]:
        """Follow each job's stream until the server ends it; the jobs' final statuses."""
        try:
            async with asyncio.timeout(within):
                for job_id in self.job_ids:
                    url = self.url(f"/api/jobs/{job_id}/events")
                    async with aconnect_sse(self.http, "GET", url) as source:
                        async for _ in source.aiter_sse():
                            pass
        except TimeoutError:
            pass
        return await self.job_statuses()

    async def job_statuses(self) -> list[str]:
        statuses = []
        for job_id in self.job_ids:
            rows = await fetch(
                self.db, "SELECT status FROM content_generation_jobs WHERE id = ?", job_id
            )
            statuses.append(rows[0]["status"])
        return statuses

    def note_stuck(self, statuses: list[str]) -> None:
        for job_id, status in zip(self.job_ids, statuses, strict=True):
            if status != "complete":
                self.outcome.stuck += 1
                self.outcome.notes.append(f"job {job_id} ended {status!r}, not 'complete'")

    def tally(self) -> None:
        """Count the lessons and calls, with the ledger of every life."""
        runs = [ServerRun(self.lesson_calls(life + 1), left) for life, left in enumerate(self.left)]
        final = self.left[-1]
        self.outcome.lessons = len(final)
        self.outcome.complete = sum(status == "complete" for status in final.values())
        self.outcome.calls = sum(run.calls.total() for run in runs)
        self.outcome.repeated = sum(len(run.in_flight()) for run in runs[:-1])
        duplicates = duplicate_calls(runs)
        self.outcome.duplicates = sum(duplicates.values())
        self.outcome.notes.extend(f"duplicate: {t} x{n}" for t, n in duplicates.items())
        lost = [t for t, status in final.items() if status != "complete"]
        self.outcome.notes.extend(f"lost: {t} ({final[t]})" for t in lost)

    def lesson_calls(self, life: int, node: int = 0) -> Counter[str]:
        model = self.model(life, node)
        return Counter(
            call.title
            for call in self.fake.lesson_calls()
            if isinstance(call.body, dict) and call.body.get("model") == model
        )

    def trial_calls(self) -> list[Call]:
        """Every lesson call of this trial's lives, in the order they reached the fake."""
        prefix = f"chaos-{self.number}-"
        return [
            call
            for call in self.fake.lesson_calls()
            if isinstance(call.body, dict) and str(call.body.get("model")).startswith(prefix)
        ]


async def run_trial(
    number: int, plan: Plan, fake: FakeAnthropic, workdir: Path, databases: Databases
) -> Outcome:
    outcome = Outcome(plan)
    fake.lesson_delay = plan.delay
    env = server_env(
        api_key=API_KEY,
        base_url=fake.base_url,
        model="unset",
        extra={
            "COURSEGEN_CONCURRENCY": str(plan.concurrency),
            "COURSEGEN_LEASE_SECONDS": f"{databases.lease:g}",
        },
    )
    directory = workdir / f"trial-{number:03d}"
    directory.mkdir(parents=True)
    async with databases.database(number) as slot:
        lease = databases.lease if slot.url else 0.0  # SQLite: a restart requeues at once
        nodes = [
            ServerProcess(
                directory / "coursegen.db",
                dict(env),
                directory / (f"node-{n}.log" if plan.nodes > 1 else "server.log"),
                db_url=slot.url,
            )
            for n in range(plan.nodes)
        ]
        async with httpx.AsyncClient(timeout=10.0) as http:
            trial = Trial(number, plan, fake, nodes, http, outcome)
            try:
                async with asyncio.timeout(TRIAL_LIMIT):
                    if trial.cluster:
                        await live_through_cluster(trial, lease)
                    else:
                        await live_through(trial, lease)
            except Exception as exc:
                outcome.error = f"{type(exc).__name__}: {exc}"
                frames = traceback.extract_tb(exc.__traceback__)
                where = [f for f in frames if f.filename == __file__][-3:] or frames[-3:]
                outcome.notes.append(
                    f"{outcome.error} at "
                    + " < ".join(f"{frame.name}:{frame.lineno}" for frame in reversed(where))
                )
                outcome.notes.extend(
                    f"--- {node.log_path.name}:\n{node.log_tail(800)}" for node in nodes
                )
            finally:
                await asyncio.gather(*(node.stop() for node in nodes))
        slot.keep = not outcome.clean
    return outcome


async def live_through(trial: Trial, lease: float) -> None:
    """Every life of one server: the kills, then a last life that must finish the job.

    On PostgreSQL (`lease` > 0) a restarted server is a new node: it takes over what a
    killed one had claimed once the leases end, not at start.
    """
    plan = trial.plan
    for kill in plan.kills:
        await trial.start()
        if not trial.job_ids:
            await trial.generate()
        if await trial.reach(kill):
            await trial.bring_down(kill)
        else:  # the job ended before the moment came
            trial.outcome.kills_hit.append(f"(missed {kill})")
            await trial.shut_down()
    await trial.start()
    rounds = -(-plan.courses * plan.lessons // plan.concurrency)
    trial.note_stuck(await trial.settle(within=30.0 + 3 * rounds * plan.delay + 2 * lease))
    await trial.shut_down()
    trial.tally()


# -- a cluster ------------------------------------------------------------------------------


@dataclass
class Follower:
    """An SSE client of one job's stream that resumes on another node after each cut."""

    job_id: str
    rng: random.Random
    snapshot: int | None = None  # the id of the first connection's snapshot
    received: list[int] = field(default_factory=list)  # ids after the snapshot, as received
    connections: int = 0
    done: bool = False
    trouble: list[str] = field(default_factory=list)
    # Per connection: the node, the Last-Event-ID sent, and the ids it brought.
    history: list[str] = field(default_factory=list)

    async def follow(self, trial: Trial) -> None:
        cursor: int | None = None
        last: int | None = None
        while not self.done:
            up = trial.up()
            others = [n for n in up if n != last] or up
            if not others:
                await asyncio.sleep(0.05)  # every node is down this instant
                continue
            node = self.rng.choice(others)
            last = node
            # Half the connections are dropped on purpose, after a few events.
            drop_after = self.rng.randint(1, 12) if self.rng.random() < 0.5 else None
            headers = {} if cursor is None else {"Last-Event-ID": str(cursor)}
            url = trial.url(f"/api/jobs/{self.job_id}/events", node)
            got: list[int] = []
            ending = "closed"
            try:
                async with aconnect_sse(trial.http, "GET", url, headers=headers) as source:
                    self.connections += 1
                    seen = 0
                    async for event in source.aiter_sse():
                        if not event.id or (event.event == "message" and not event.data):
                            # httpx-sse turns a comment (the server's ping) into an empty
                            # "message" that repeats the last id; a browser dispatches none.
                            continue
                        if event.event == "snapshot":
                            if cursor is not None:
                                self.trouble.append(f"a snapshot on resuming after {cursor}")
                            self.snapshot = int(event.id)
                            if event.json()["job"]["status"] in TERMINAL:
                                self.done = True
                        else:
                            self.received.append(int(event.id))
                            if event.event == "job" and event.json()["status"] in TERMINAL:
                                self.done = True
                        cursor = int(event.id)
                        got.append(cursor)
                        seen += 1
                        if self.done or (drop_after is not None and seen >= drop_after):
                            break
            except httpx.TransportError as exc:
                # The node died under the stream, or was going down (SSEError on a 503).
                ending = type(exc).__name__
            repeated = sorted(i for i, n in Counter(got).items() if n > 1)
            self.history.append(
                f"n{node}({trial.nodes[node].node}) from {headers.get('Last-Event-ID', '-')}: "
                f"{got[0] if got else '-'}..{got[-1] if got else '-'} ({len(got)}) {ending}"
                + (f" ids {got}" if repeated else "")
            )

    async def verify(self, db: Database) -> tuple[int, int]:
        """(missing ids, duplicate ids) against the job's events in the log."""
        if self.snapshot is None:
            self.trouble.append("never got a snapshot")
            return 0, 0
        logged = await event_ids(db, self.job_id, self.snapshot)
        counts = Counter(self.received)
        duplicates = sum(n - 1 for n in counts.values())
        missing = len(set(logged) - set(counts))
        extra = sorted(set(counts) - set(logged))
        if duplicates:
            twice = sorted(i for i, n in counts.items() if n > 1)
            self.trouble.append(
                f"{duplicates} event(s) received twice: {twice}; connections: "
                + " | ".join(self.history)
            )
        if missing:
            self.trouble.append(f"{missing} event(s) never received")
        if extra:
            self.trouble.append(f"ids that are not among the job's events: {extra}")
        if self.received != sorted(self.received):
            self.trouble.append("events out of order")
        return missing, duplicates


_NUMBERS = itertools.count(1)


def numbered_lesson(title: str) -> str:
    """A lesson text no other call is answered with: the stored text names its call."""
    return (
        f"# {title}\n\n"
        f"This lesson walks through {title} with small, concrete examples. "
        "Read it once, then try each idea yourself before moving on.\n\n"
        "- Start from the simplest working case.\n"
        "- Change one thing at a time and watch what happens.\n\n"
        f"(Written by call {next(_NUMBERS)}.)\n"
    )


async def live_through_cluster(trial: Trial, lease: float) -> None:
    """N nodes on one database: courses asked of random nodes, random nodes killed or
    stopped and restarted, SSE clients resuming across nodes; then every job must end."""
    plan = trial.plan
    await asyncio.gather(*(trial.start(n) for n in range(plan.nodes)))
    await trial.generate()
    seeds = random.Random(trial.number)
    followers = [
        Follower(job, random.Random(seeds.random())) for job in trial.job_ids for _ in "ab"
    ]
    following = [asyncio.create_task(f.follow(trial)) for f in followers]
    restarts: list[asyncio.Task[None]] = []
    try:
        for planned in plan.kills:
            # The node planned, or the next one up if it is down (restarts run meanwhile).
            kill = dataclasses.replace(planned, node=await trial.next_up(planned.node))
            if await trial.reach(kill):
                await trial.bring_down(kill)
                restarts.append(asyncio.create_task(trial.restart(kill.node, kill.down or 0.0)))
            else:  # the jobs ended before the moment came
                trial.outcome.kills_hit.append(f"(missed {kill})")
        await asyncio.gather(*restarts)
        rounds = -(-plan.courses * plan.lessons // (plan.concurrency * plan.nodes))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30.0 + 3 * rounds * plan.delay + 3 * lease):
                await asyncio.gather(*following)
    finally:
        for task in following + restarts:
            task.cancel()
        await asyncio.gather(*following, *restarts, return_exceptions=True)
    trial.note_stuck(await trial.job_statuses())
    await asyncio.gather(*(trial.terminate(n) for n in trial.up()))
    trial.left.append(await trial.statuses())
    await trial.check_database()
    await tally_cluster(trial, followers)


async def tally_cluster(trial: Trial, followers: list[Follower]) -> None:
    outcome = trial.outcome
    final = trial.left[-1]
    outcome.lessons = len(final)
    outcome.complete = sum(status == "complete" for status in final.values())
    outcome.notes.extend(f"lost: {t} ({s})" for t, s in final.items() if s != "complete")
    twice = await stored_twice(trial.db)
    outcome.stored_twice = len(twice)
    outcome.notes.extend(twice)

    calls = trial.trial_calls()
    outcome.calls = len(calls)
    outcome.repeated = len(calls) - len({call.title for call in calls})
    stored = await stored_by(trial, calls)
    for call in calls:
        model = str(call.body.get("model"))
        if stored.get(call.title) is not call and model not in trial.ended:
            outcome.wasted += 1
            outcome.notes.append(f"not stored, though {model} lived on: {call.title}")

    outcome.sse_clients = len(followers)
    for follower in followers:
        missing, duplicates = await follower.verify(trial.db)
        outcome.sse_connections += follower.connections
        outcome.sse_missing += missing
        outcome.sse_duplicates += duplicates
        if follower.trouble or not follower.done:
            outcome.sse_broken += 1
            trouble = follower.trouble or ["never saw the job end"]
            outcome.notes.append(f"SSE client of job {follower.job_id}: {'; '.join(trouble)}")


async def stored_by(trial: Trial, calls: list[Call]) -> dict[str, Call]:
    """The call each complete lesson's text came from; a text stored from a call that
    was not its lesson's current attempt (another node's, or an earlier one) counts."""
    rows: list[dict[str, Any]] = []
    for job_id in trial.job_ids:
        rows += await fetch(
            trial.db,
            "SELECT l.id, l.title, l.content, l.node, l.attempt FROM lessons l "
            "JOIN content_generation_jobs j ON j.course_id = l.course_id "
            "WHERE j.id = ? AND l.content_status = 'complete'",
            job_id,
        )
    found = {}
    for row in rows:
        text = (row["content"] or "").strip()
        makers = [c for c in calls if c.title == row["title"] and c.sent_text.strip() == text]
        if len(makers) != 1:
            trial.outcome.stale_results += 1
            trial.outcome.notes.append(
                f"lesson {row['id']}: its text came from {len(makers)} calls, not one"
            )
            continue
        call = found[row["title"]] = makers[0]
        model = str(call.body.get("model"))
        claimer = trial.models_of.get(row["node"], f"unknown node {row['node']}")
        # The current attempt's call is the last one its claimer made for the lesson.
        latest = [c for c in calls if c.title == row["title"] and c.body.get("model") == claimer]
        if model != claimer or call is not latest[-1]:
            trial.outcome.stale_results += 1
            trial.outcome.notes.append(
                f"lesson {row['id']}: stored the text of a call by {model}, but attempt "
                f"{row['attempt']} was {claimer}'s (its calls: {len(latest)})"
            )
    return found


# -- where the database lives ---------------------------------------------------------------


@dataclass
class Slot:
    """One trial's database: a PostgreSQL URL, or None for a SQLite file of its own."""

    url: str | None
    keep: bool = False  # leave it in place (a failed trial, on a server that stays up)


@dataclass
class Databases:
    """Where each trial's database lives: a SQLite file (no URL), or a fresh database on
    the PostgreSQL server at `url`, created for the trial and dropped after it (one of a
    failed trial is kept, unless the server is this run's own throwaway one)."""

    url: str | None
    lease: float
    tag: str
    own: Any = None  # the coursegen_dev.pgserver.PgServer this run started, if any
    kept: list[str] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def database(self, number: int) -> AsyncIterator[Slot]:
        if self.url is None:
            yield Slot(None)
            return
        name = f"chaos_{self.tag}_{number:03d}"
        await self._admin(f'CREATE DATABASE "{name}"')
        slot = Slot(urlunsplit(urlsplit(self.url)._replace(path=f"/{name}")))
        try:
            yield slot
        finally:
            if slot.keep and self.own is None:
                self.kept.append(str(slot.url))
            else:
                await self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    async def _admin(self, statement: str) -> None:
        import asyncpg  # the PostgreSQL extra

        assert self.url is not None
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()


# -- the report -----------------------------------------------------------------------------


def summarise(outcomes: list[Outcome], wall: float, cluster: bool) -> list[tuple[str, str]]:
    kills = [k for o in outcomes for k in o.kills_hit if not k.startswith("(missed")]
    sigkills = sum("KILL@" in k for k in kills)

    def total(name: str) -> str:
        return str(sum(getattr(o, name) for o in outcomes))

    rows = [
        ("trials", str(len(outcomes))),
        ("trials that could not run", str(sum(o.error is not None for o in outcomes))),
        ("kills", f"{len(kills)} ({sigkills} SIGKILL, {len(kills) - sigkills} SIGTERM)"),
        ("lessons generated", total("complete")),
        ("lessons lost (not complete at the end)", total("lost")),
        ("lesson calls", total("calls")),
    ]
    if cluster:
        rows += [
            ("calls repeated (a node died or stopped mid-call)", total("repeated")),
            ("  of them not stored though their node lived on", total("wasted")),
            ("lessons stored twice in one attempt", total("stored_twice")),
            ("results stored from a superseded attempt", total("stale_results")),
        ]
    else:
        rows += [
            ("calls repeated for lessons in flight at a kill", total("repeated")),
            ("duplicate calls (lessons not in flight)", total("duplicates")),
        ]
    rows += [
        ("counter mismatches", total("mismatches")),
        ("integrity failures", total("integrity_failures")),
        ("stuck jobs", total("stuck")),
        (f"SIGTERM exits over {EXIT_LIMIT:g} s", total("slow_exits")),
        ("lesson calls started after SIGTERM", total("calls_after_sigterm")),
        ("slowest SIGTERM exit", f"{max((o.slowest_exit for o in outcomes), default=0):.2f} s"),
    ]
    if cluster:
        rows += [
            ("SSE clients (connections)", f"{total('sse_clients')} ({total('sse_connections')})"),
            ("SSE clients that saw a gap or a duplicate", total("sse_broken")),
            ("  events missed / received twice", f"{total('sse_missing')} / "
             f"{total('sse_duplicates')}"),
        ]  # fmt: skip
    rows.append(("wall time", f"{wall:.0f} s"))
    return rows


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}" if len(value) < 9 else f"{name:<{width}}  {value}")


def describe(number: int, outcome: Outcome) -> str:
    plan = outcome.plan
    verdict = "ok" if outcome.clean else "FAIL"
    cluster = f"nodes={plan.nodes} " if plan.nodes > 1 else ""
    sse = f" sse={outcome.sse_connections}" if plan.nodes > 1 else ""
    return (
        f"trial {number:3d} {verdict:4}  {cluster}courses={plan.courses} "
        f"lessons={plan.lessons:2d} conc={plan.concurrency} "
        f"delay={plan.delay:.2f}s  {' '.join(outcome.kills_hit)}  "
        f"calls={outcome.calls} repeated={outcome.repeated}{sse}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Random kill-and-restart trials against coursegen serve."
    )
    parser.add_argument("--trials", type=int, default=50, help="how many trials (default 50)")
    parser.add_argument("--seed", type=int, default=None, help="seed for a repeatable run")
    parser.add_argument(
        "--workers", type=int, default=2, help="trials run at once, each on its own fake (2)"
    )
    parser.add_argument(
        "--nodes", type=int, default=1,
        help="servers per trial (default 1); more than one share a PostgreSQL database",
    )  # fmt: skip
    parser.add_argument(
        "--db", default=None, metavar="postgresql://...",
        help="a PostgreSQL server to run on (one database per trial is created through this "
        "URL, and dropped unless the trial failed); with --nodes > 1 and no URL, a throwaway "
        "server is started (coursegen_dev/pgserver.py); with one node and no URL, SQLite files",
    )  # fmt: skip
    parser.add_argument(
        "--lease", type=float, default=2.0,
        help="PostgreSQL: COURSEGEN_LEASE_SECONDS of every node (default 2)",
    )  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="one line per trial")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep databases and logs here (default: temp)"
    )
    args = parser.parse_args(argv)
    if args.nodes < 1:
        parser.error("--nodes must be at least 1")
    if args.db is not None and not args.db.startswith(("postgresql://", "postgres://")):
        parser.error("--db takes a postgresql:// URL")
    return args


async def run(args: argparse.Namespace, workdir: Path) -> int:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    # The same trials whatever the timing.
    plans = [make_plan(rng, args.nodes) for _ in range(args.trials)]
    databases = Databases(args.db, args.lease, tag=f"{seed}_{time.strftime('%H%M%S')}")
    if args.db is None and args.nodes > 1:
        from coursegen_dev.pgserver import PgServer

        databases.own = await asyncio.to_thread(PgServer.start)
        databases.url = databases.own.dsn
    where = "SQLite" if databases.url is None else databases.url
    if databases.own is not None:
        where = "a throwaway PostgreSQL"
    print(
        f"chaos: {args.trials} trials, {args.nodes} node(s) each on {where}, seed {seed}, "
        f"{args.workers} at a time, work in {workdir}",
        flush=True,
    )
    outcomes: dict[int, Outcome] = {}
    queue = iter(enumerate(plans, start=1))  # shared by the workers: each trial runs once
    started = time.monotonic()
    try:
        await asyncio.gather(
            *(work(queue, workdir, outcomes, args.verbose, databases) for _ in range(args.workers))
        )
    finally:
        if databases.own is not None:
            await asyncio.to_thread(databases.own.stop)
    ordered = [outcomes[number] for number in sorted(outcomes)]
    print_table(summarise(ordered, time.monotonic() - started, args.nodes > 1))
    failed = sum(not o.clean for o in ordered)
    print(f"\n{'FAILED' if failed else 'OK'}: {failed} of {len(ordered)} trials had trouble")
    for url in databases.kept:
        print(f"kept the database of a failed trial: {url}")
    again = f"--trials {args.trials} --seed {seed}"
    if args.nodes > 1:
        again += f" --nodes {args.nodes}"
    print(f"(again: scripts/chaos.py {again})")
    return 1 if failed else 0


async def work(
    queue: Iterator[tuple[int, Plan]],
    workdir: Path,
    outcomes: dict[int, Outcome],
    verbose: bool,
    databases: Databases,
) -> None:
    """Run trials from the queue one after another, each worker with a fake of its own.

    (The fake's lesson delay is one knob for every call it answers.)
    """
    async with FakeAnthropic(api_key=API_KEY) as fake:
        for number, plan in queue:
            # A cluster's stored texts must name the call that wrote them.
            fake.lesson_text = numbered_lesson if plan.nodes > 1 else None
            outcome = outcomes[number] = await run_trial(number, plan, fake, workdir, databases)
            if verbose or not outcome.clean:
                print(describe(number, outcome), flush=True)
            for note in outcome.notes if not outcome.clean else ():
                print(f"    {note}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run(args, args.workdir))
    with tempfile.TemporaryDirectory(prefix="coursegen-chaos-") as workdir:
        return asyncio.run(run(args, Path(workdir)))


if __name__ == "__main__":
    sys.exit(main())
