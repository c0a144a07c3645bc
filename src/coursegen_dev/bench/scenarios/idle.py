"""Idle streams held: N streams on one process; RSS per stream; event-loop lag as a job runs."""

from __future__ import annotations

import asyncio
import time

from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.http import HttpClient
from coursegen_dev.bench.service import JobWatch, Service
from coursegen_dev.bench.stats import ms, summary

HELD = "idle held."
SAMPLE_EVERY = 0.050
CONCURRENCY = 5  # one slot stays with the held course, four run the measured job


async def sample_health(client: HttpClient, stop: asyncio.Event) -> list[float]:
    """GET /api/health every 50 ms until `stop`; each sample is its round trip in seconds."""
    loop = asyncio.get_running_loop()
    samples = []
    due = loop.time()
    while not stop.is_set():
        start = time.perf_counter()
        await client.get_json("/api/health")
        samples.append(time.perf_counter() - start)
        due += SAMPLE_EVERY
        await asyncio.sleep(max(0.0, due - loop.time()))
    return samples


async def lag_during_jobs(
    svc: Service, watch: JobWatch, topic: str, lessons: int, courses: int = 1
) -> list[float]:
    """Health round trips sampled while `courses` jobs of `lessons` lessons run."""
    client = svc.client()
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_health(client, stop))
    await asyncio.sleep(0.2)
    jobs = set()
    for index in range(courses):
        jobs.add((await svc.generate(f"{topic} {index}.", lessons))["job_id"])
    await watch.ended(jobs, within=120)
    stop.set()
    samples = await sampler
    await client.close()
    return samples


async def run(bench: Bench) -> Outcome:
    count = 1000 if bench.quick else 5000
    lessons = 8 if bench.quick else 20
    courses = 1 if bench.quick else 2
    async with bench.measure("idle") as out:
        async with bench.service("idle", concurrency=CONCURRENCY, lesson_delay=0.5) as svc:
            watch = await JobWatch(svc).start()
            # A first job loads what the first lesson call imports, outside the samples.
            await lag_during_jobs(svc, watch, "idle warmup", 4)
            await bench.fake.gate(HELD)
            held = await svc.generate(HELD, 1)
            baseline = await lag_during_jobs(svc, watch, "idle baseline", lessons, courses)
            before = svc.stats()
            started = time.monotonic()
            streams = await svc.open_streams(
                f"/api/jobs/{held['job_id']}/events", count, parallel=200
            )
            opening = time.monotonic() - started
            await asyncio.sleep(0.5)
            held_open = svc.stats()
            loaded = await lag_during_jobs(svc, watch, "idle loaded", lessons, courses)
            after_job = svc.stats()
            alive = sum(1 for s in streams if not s.ended.done())
            for stream in streams:
                stream.close()
            watch.close()
        per_stream = (held_open.rss - before.rss) / count
        lag_base, lag_loaded = summary(baseline), summary(loaded)
        out.data = {
            "streams": count,
            "open_seconds": opening,
            "still_open_after_job": alive,
            "rss_per_stream_bytes": per_stream,
            "before": before.as_dict(),
            "streams_open": held_open.as_dict(),
            "after_job": after_job.as_dict(),
            "health_rtt_no_streams_s": lag_base,
            "health_rtt_with_streams_s": lag_loaded,
            "method": "per-job streams on a running course whose only lesson is held at the "
            "fake, so they receive nothing; RSS from /proc/<pid>/status before and 0.5 s after "
            "opening; event-loop lag = round trip of GET /api/health (which includes one "
            "database read) sampled every 50 ms while two other courses' 20 lessons run (4 "
            "lesson calls of 0.5 s in flight): an upper bound of the lag",
        }
        out.add(
            "idle streams held on one process",
            f"{alive} of {count} open",
            f">= {count}",
            alive >= count,
        )
        out.add(
            "RSS per idle stream",
            f"{per_stream / 1024:.1f} KB",
            "<= 32 KB",
            per_stream <= 32 * 1024,
        )
        out.add(
            f"event-loop lag p99, job running, {count} streams",
            f"{ms(lag_loaded['p99'])} (p50 {ms(lag_loaded['p50'])})",
            "<= 50 ms",
            lag_loaded["p99"] <= 0.050,
        )
        out.add(
            "  same without streams (health round trip)",
            f"{ms(lag_base['p99'])} (p50 {ms(lag_base['p50'])})",
        )
        out.add(f"  time to open {count} streams", f"{opening:.1f} s")
    return out
