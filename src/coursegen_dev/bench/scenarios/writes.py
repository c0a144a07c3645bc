"""Write path: lesson status changes per second through the store; 64 fake calls of 20 ms."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from coursegen_dev.bench.fake_control import FakeCall, StreamShape
from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.service import JobWatch, Service

CONCURRENCY = 64
CALL_SECONDS = 0.020
LESSONS_PER_COURSE = 20
# A lesson of the test fake's length (~300 characters) in one delta after the call's time.
WHOLE = StreamShape(chars=320, delta_chars=0, first_token=CALL_SECONDS, gap=0.0)
LOCKED = "database is locked"
# PostgreSQL's ways of refusing a transaction that the service would pass on as an error
# (a deadlock's victim is run again, up to 5 times, and says so in the log: RETRIED).
PG_REFUSALS = ("could not serialize", "SerializationError", "deadlock detected", "DeadlockDetected")
PG_RETRIED = "met a deadlock and runs again"


def refused(svc: Service) -> tuple[int, int]:
    """(transactions the database refused that surfaced as errors, ones run again) in the
    service's log: SQLite's `database is locked`, PostgreSQL's serialization failures and
    deadlocks."""
    if svc.dsn is None:
        return svc.log_count(LOCKED), 0
    return sum(svc.log_count(text) for text in PG_REFUSALS), svc.log_count(PG_RETRIED)


def max_in_flight(calls: list[FakeCall]) -> int:
    """The most lesson calls the fake was answering at one moment."""
    edges = sorted([(c.start, 1) for c in calls] + [(c.end, -1) for c in calls])
    peak = level = 0
    for _, step in edges:
        level += step
        peak = max(peak, level)
    return peak


async def load(bench: Bench, svc: Service, lessons: int, tag: str) -> dict[str, Any]:
    """Generate courses totalling `lessons` lessons (8 POSTs at a time) and wait for them all."""
    watch = await JobWatch(svc).start()
    mark = bench.fake.mark()
    courses = lessons // LESSONS_PER_COURSE
    clients = [svc.client() for _ in range(8)]
    queue = list(range(courses))
    jobs: set[str] = set()
    started = time.time()

    async def poster(client: Any) -> None:
        while queue:
            index = queue.pop()
            course = await svc.generate(f"{tag} {index}.", LESSONS_PER_COURSE, client)
            jobs.add(course["job_id"])
        await client.close()

    await asyncio.gather(*(poster(c) for c in clients))
    await watch.ended(jobs, within=150)
    watch.close()
    changes = [t for t, data in watch.lesson_events if data["job_id"] in jobs]
    completes = [
        t
        for t, d in watch.lesson_events
        if d["job_id"] in jobs and d["content_status"] == "complete"
    ]
    errors = [
        d for _, d in watch.lesson_events if d["job_id"] in jobs and d["content_status"] == "error"
    ]
    window = max(changes) - min(changes)
    calls = [c for c in bench.fake.calls_since(mark, "lesson") if c.topic.startswith(tag)]
    return {
        "lessons": courses * LESSONS_PER_COURSE,
        "courses": courses,
        "status_changes": len(changes),
        "completed": len(completes),
        "errored": len(errors),
        "first_error": errors[0]["content_error"] if errors else None,
        "window_s": window,
        "seconds_from_first_post": max(changes) - started,
        "status_changes_per_s": len(changes) / window,
        "lessons_per_s": len(completes) / window,
        "fake_calls": len(calls),
        "fake_max_in_flight": max_in_flight(calls),
        "fake_call_p50_s": sorted(c.end - c.start for c in calls)[len(calls) // 2],
    }


async def load_whole(bench: Bench, svc: Service, lessons: int) -> dict[str, Any]:
    """The same load with each lesson answered in one text delta, 20 ms after its call
    starts: the service's write path without the SDK's work on a streamed answer."""
    await bench.fake.stream(WHOLE)
    try:
        return await load(bench, svc, lessons, "write whole")
    finally:
        await bench.fake.stream(None)


def figures(
    out: Outcome, result: dict[str, Any], locked: int, svc: Service, whole: dict[str, Any]
) -> None:
    rate = result["status_changes_per_s"]
    out.add(
        "write path: lesson status changes/s",
        f"{rate:.0f}/s ({result['lessons_per_s']:.0f} lessons/s)",
        ">= 500/s",
        rate >= 500,
    )
    out.add(
        "  same, each lesson answered in one delta (no SDK stream work)",
        f"{whole['status_changes_per_s']:.0f}/s; lessons failed {whole['errored']}",
    )
    if svc.dsn is None:
        out.add("  'database is locked' errors", str(locked), "0", locked == 0)
    else:
        out.add(
            "  serialization failures / deadlocks surfacing (run again)",
            f"{locked} ({result.get('deadlocks_run_again', 0)})",
            "0",
            locked == 0,
        )
    out.add(
        "  lessons failed / fake calls in flight at most",
        f"{result['errored']} / {result['fake_max_in_flight']}",
        "0 / 64",
        result["errored"] == 0,
    )


async def run(bench: Bench) -> Outcome:
    lessons = 200 if bench.quick else 1000
    async with bench.measure("write") as out:
        async with bench.service(
            "write", concurrency=CONCURRENCY, lesson_delay=CALL_SECONDS
        ) as svc:
            await load(bench, svc, 40, "write warmup")
            result = await load(bench, svc, lessons, "write")
            whole = await load_whole(bench, svc, lessons)
            locked, result["deadlocks_run_again"] = refused(svc)
        out.data = {**result, "locked_errors": locked, "method": METHOD, "whole": whole}
        figures(out, result, locked, svc, whole)
    return out


METHOD = (
    "courses of 20 lessons posted 8 at a time; concurrency 64, fake lesson calls of 20 ms; "
    "rate = `lesson` events (pending->generating, generating->complete) seen on one "
    "/api/events stream / the time from the first to the last; locked = lines of the "
    "service log containing 'database is locked' (PostgreSQL: a serialization failure or a "
    "deadlock not run again; a failed POST would stop the scenario, a failed lesson counts "
    "under 'lessons failed'). 'One delta': then the same load again, each lesson answered "
    "as one text delta 20 ms after its call starts (as lessons were requested whole before "
    "they were streamed): the store's share without the SDK's per-delta work"
)
