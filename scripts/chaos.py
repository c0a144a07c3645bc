"""Chaos trials: kill a real `coursegen serve` at random moments and check nothing is lost.

Each trial starts the server as a child process on a fresh SQLite file, talking to
the fake Messages API that runs in this process, and asks for a course (sometimes
two or three at once) with a random lesson count, concurrency and lesson delay.
The server is then killed (mostly kill -9, sometimes SIGTERM) at a random moment,
once or several times, and restarted on the same database; the last restart runs
the jobs to their end.
Every life of the server uses its own model name, so the fake's log says which
life made each lesson call.

Run it from the repository root once `make test` has installed the environment
(it needs only the package and its dev dependencies, not pytest):

    .venv/bin/python scripts/chaos.py --trials 50
    .venv/bin/python scripts/chaos.py --trials 200 --seed 7 --workers 1 --verbose

It prints a table of figures and exits with status 1 if any lesson was lost, a
model call was made for a lesson that was not in flight at a kill, a job's
counters disagreed with its lessons, an integrity check failed, a job got stuck,
a SIGTERM exit took over 10 s, the server started a lesson call after SIGTERM,
or a trial could not run. Trials run two at a time by default (--workers), each
worker with a fake of its own; the plans come from the seed, so a run can be
repeated with the seed it prints.

The subprocess helper and the database checks are shared with the test suite:
they live in tests/serverproc.py, which imports nothing from pytest, and this
script imports it from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from httpx_sse import aconnect_sse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coursegen.fake_anthropic import FakeAnthropic  # noqa: E402
from tests.serverproc import (  # noqa: E402
    ServerProcess,
    ServerRun,
    counter_mismatches,
    duplicate_calls,
    integrity,
    lesson_statuses,
    server_env,
)

API_KEY = "sk-ant-chaos-key"
EXIT_LIMIT = 10.0  # seconds a SIGTERM may take before it counts as a slow exit
MOMENTS = ("after-generate", "nth-event", "mid-call")
# A call the server sent just before a signal can reach the fake just after it.
IN_TRANSIT = 0.05


@dataclass(frozen=True)
class Kill:
    """When and how one life of the server ends."""

    signum: int
    moment: str
    nth: int  # nth-event: the event count; mid-call: the calls answering at once
    jitter: float  # seconds to wait once the moment has come

    def __str__(self) -> str:
        name = "KILL" if self.signum == signal.SIGKILL else "TERM"
        return f"{name}@{self.moment}:{self.nth}+{self.jitter * 1000:.0f}ms"


@dataclass(frozen=True)
class Plan:
    courses: int  # written at once, sharing the process-wide concurrency
    lessons: int  # per course
    concurrency: int
    delay: float
    kills: tuple[Kill, ...]


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
    kills_hit: list[str] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.lessons - self.complete

    @property
    def clean(self) -> bool:
        data = (self.lost, self.duplicates, self.mismatches, self.integrity_failures)
        process = (self.stuck, self.slow_exits, self.calls_after_sigterm)
        return not any((*data, *process, self.error))


def make_plan(rng: random.Random) -> Plan:
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


# -- one trial ------------------------------------------------------------------------------


@dataclass
class Trial:
    """One database with one or a few courses, and several lives of the server."""

    number: int
    plan: Plan
    fake: FakeAnthropic
    server: ServerProcess
    http: httpx.AsyncClient
    outcome: Outcome
    job_ids: list[str] = field(default_factory=list)
    life: int = 0
    left: list[dict[str, str]] = field(default_factory=list)

    def model(self, life: int) -> str:
        return f"chaos-{self.number}-{life}"

    def url(self, path: str) -> str:
        return self.server.url + path

    async def start(self) -> None:
        self.life += 1
        self.server.env["COURSEGEN_MODEL"] = self.model(self.life)
        await self.server.start()

    async def generate(self) -> None:
        for course in range(1, self.plan.courses + 1):
            # The topic is in every lesson title, so titles are unique across the trial.
            body = {"topic": f"Chaos {self.number}.{course}", "lessons": self.plan.lessons}
            response = await self.http.post(self.url("/api/courses/generate"), json=body)
            if response.status_code != 201:
                raise RuntimeError(f"generate answered {response.status_code}: {response.text}")
            self.job_ids.append(response.json()["job_id"])

    def answering(self) -> int:
        """Lesson calls of the current life that the fake is answering right now."""
        model = self.model(self.life)
        return sum(
            1
            for call in self.fake.lesson_calls()
            if call.ended is None and call.body.get("model") == model
        )

    async def finished(self) -> bool:
        for job_id in self.job_ids:
            response = await self.http.get(self.url(f"/api/jobs/{job_id}/progress"))
            if response.json()["status"] == "running":
                return False
        return True

    async def reach(self, kill: Kill) -> bool:
        """Wait for the kill's moment; False if the job ended first."""
        if kill.moment == "after-generate":
            return True
        if kill.moment == "nth-event":
            return await self._nth_event(kill.nth)
        return await self._calls_answering(kill.nth)

    async def _nth_event(self, nth: int) -> bool:
        """Count the events of the first job (with the snapshot) up to the nth."""
        seen = 0
        url = self.url(f"/api/jobs/{self.job_ids[0]}/events")
        async with aconnect_sse(self.http, "GET", url) as source:
            async for _ in source.aiter_sse():
                seen += 1
                if seen >= nth:
                    return True
        return False  # the server ended the stream: the job is over

    async def _calls_answering(self, count: int) -> bool:
        polls = 0
        while self.answering() < count:
            polls += 1
            if polls % 20 == 0 and await self.finished():
                return False
            await asyncio.sleep(0.01)
        return True

    async def bring_down(self, kill: Kill) -> None:
        """Signal the server after the jitter, reap it, and check what it left."""
        await asyncio.sleep(kill.jitter)  # a random moment, not a wait for something
        if kill.signum == signal.SIGKILL:
            await self.server.kill()
        else:
            await self.terminate()
        self.outcome.kills_hit.append(str(kill))
        self.left.append(self.statuses())
        self.check_database()

    async def shut_down(self) -> None:
        """An orderly stop (SIGTERM) that also counts as a life's end."""
        await self.terminate()
        self.left.append(self.statuses())
        self.check_database()

    def statuses(self) -> dict[str, str]:
        """Every lesson of the trial's courses: title to status, read from the database."""
        found: dict[str, str] = {}
        for job_id in self.job_ids:
            found.update(lesson_statuses(self.server.db_path, job_id))
        return found

    async def terminate(self) -> None:
        """SIGTERM; note a slow exit, and any lesson call the server started after the signal."""
        sent = time.monotonic()
        seconds = await self.server.terminate(within=EXIT_LIMIT + 20)
        self.outcome.slowest_exit = max(self.outcome.slowest_exit, seconds)
        if seconds > EXIT_LIMIT:
            self.outcome.slow_exits += 1
            self.outcome.notes.append(f"SIGTERM exit took {seconds:.1f} s")
        model = self.model(self.life)
        late = [
            call.title
            for call in self.fake.lesson_calls()
            if call.started > sent + IN_TRANSIT and call.body.get("model") == model
        ]
        self.outcome.calls_after_sigterm += len(late)
        self.outcome.notes.extend(f"call started after SIGTERM: {title}" for title in late)

    def check_database(self) -> None:
        mismatches = counter_mismatches(self.server.db_path)
        verdict = integrity(self.server.db_path)
        self.outcome.mismatches += len(mismatches)
        self.outcome.notes.extend(mismatches)
        if verdict != "ok":
            self.outcome.integrity_failures += 1
            self.outcome.notes.append(f"integrity_check: {verdict}")

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
        statuses = []
        for job_id in self.job_ids:
            response = await self.http.get(self.url(f"/api/jobs/{job_id}/progress"))
            statuses.append(response.json()["status"])
        return statuses

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

    def lesson_calls(self, life: int) -> Counter[str]:
        model = self.model(life)
        return Counter(
            call.title
            for call in self.fake.lesson_calls()
            if isinstance(call.body, dict) and call.body.get("model") == model
        )


async def run_trial(number: int, plan: Plan, fake: FakeAnthropic, workdir: Path) -> Outcome:
    outcome = Outcome(plan)
    fake.lesson_delay = plan.delay
    env = server_env(
        api_key=API_KEY,
        base_url=fake.base_url,
        model="unset",
        extra={"COURSEGEN_CONCURRENCY": str(plan.concurrency)},
    )
    directory = workdir / f"trial-{number:03d}"
    directory.mkdir(parents=True)
    server = ServerProcess(directory / "coursegen.db", env, directory / "server.log")
    async with httpx.AsyncClient(timeout=10.0) as http:
        trial = Trial(number, plan, fake, server, http, outcome)
        try:
            await live_through(trial)
        except Exception as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            outcome.notes.append(server.log_tail(1500))
        finally:
            await server.stop()
    return outcome


async def live_through(trial: Trial) -> None:
    """Every life of the trial: the kills, then a last life that must finish the job."""
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
    for job_id, status in zip(
        trial.job_ids, await trial.settle(within=30.0 + 3 * rounds * plan.delay), strict=True
    ):
        if status != "complete":
            trial.outcome.stuck += 1
            trial.outcome.notes.append(f"job {job_id} ended {status!r}, not 'complete'")
    await trial.shut_down()
    trial.tally()


# -- the report -----------------------------------------------------------------------------


def summarise(outcomes: list[Outcome], wall: float) -> list[tuple[str, str]]:
    kills = [k for o in outcomes for k in o.kills_hit if not k.startswith("(missed")]
    sigkills = sum(k.startswith("KILL") for k in kills)
    return [
        ("trials", str(len(outcomes))),
        ("trials that could not run", str(sum(o.error is not None for o in outcomes))),
        ("kills", f"{len(kills)} ({sigkills} SIGKILL, {len(kills) - sigkills} SIGTERM)"),
        ("lessons generated", str(sum(o.complete for o in outcomes))),
        ("lessons lost (not complete at the end)", str(sum(o.lost for o in outcomes))),
        ("lesson calls", str(sum(o.calls for o in outcomes))),
        ("calls repeated for lessons in flight at a kill", str(sum(o.repeated for o in outcomes))),
        ("duplicate calls (lessons not in flight)", str(sum(o.duplicates for o in outcomes))),
        ("counter mismatches", str(sum(o.mismatches for o in outcomes))),
        ("integrity failures", str(sum(o.integrity_failures for o in outcomes))),
        ("stuck jobs", str(sum(o.stuck for o in outcomes))),
        (f"SIGTERM exits over {EXIT_LIMIT:g} s", str(sum(o.slow_exits for o in outcomes))),
        ("lesson calls started after SIGTERM", str(sum(o.calls_after_sigterm for o in outcomes))),
        ("slowest SIGTERM exit", f"{max((o.slowest_exit for o in outcomes), default=0):.2f} s"),
        ("wall time", f"{wall:.0f} s"),
    ]


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value:>8}" if len(value) < 9 else f"{name:<{width}}  {value}")


def describe(number: int, outcome: Outcome) -> str:
    plan = outcome.plan
    verdict = "ok" if outcome.clean else "FAIL"
    return (
        f"trial {number:3d} {verdict:4}  courses={plan.courses} lessons={plan.lessons:2d} "
        f"conc={plan.concurrency} "
        f"delay={plan.delay:.2f}s  {' '.join(outcome.kills_hit)}  "
        f"calls={outcome.calls} repeated={outcome.repeated}"
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
    parser.add_argument("--verbose", action="store_true", help="one line per trial")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep databases and logs here (default: temp)"
    )
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, workdir: Path) -> int:
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    plans = [make_plan(rng) for _ in range(args.trials)]  # the same trials whatever the timing
    print(
        f"chaos: {args.trials} trials, seed {seed}, {args.workers} at a time, work in {workdir}",
        flush=True,
    )
    outcomes: dict[int, Outcome] = {}
    queue = iter(enumerate(plans, start=1))  # shared by the workers: each trial runs once
    started = time.monotonic()
    await asyncio.gather(
        *(work(queue, workdir, outcomes, args.verbose) for _ in range(args.workers))
    )
    ordered = [outcomes[number] for number in sorted(outcomes)]
    print_table(summarise(ordered, time.monotonic() - started))
    failed = sum(not o.clean for o in ordered)
    print(f"\n{'FAILED' if failed else 'OK'}: {failed} of {len(ordered)} trials had trouble")
    print(f"(again: scripts/chaos.py --trials {args.trials} --seed {seed})")
    return 1 if failed else 0


async def work(
    queue: Iterator[tuple[int, Plan]], workdir: Path, outcomes: dict[int, Outcome], verbose: bool
) -> None:
    """Run trials from the queue one after another, each worker with a fake of its own.

    (The fake's lesson delay is one knob for every call it answers.)
    """
    async with FakeAnthropic(api_key=API_KEY) as fake:
        for number, plan in queue:
            outcome = outcomes[number] = await run_trial(number, plan, fake, workdir)
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
