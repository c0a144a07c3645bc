"""Cost per watching client: server CPU for 200 SSE watchers vs 200 pollers of the same job load."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.pollers import freshness, start_pollers
from coursegen_dev.bench.scenarios.delivery import job_shape, lesson_stamps, sse_latencies
from coursegen_dev.bench.service import JobWatch, Service
from coursegen_dev.bench.stats import ms, summary

CONCURRENCY = 4
MODES = ("none", "sse", "poll")
METHOD = (
    "three jobs of the same shape on one service: unwatched, watched by SSE clients, and "
    "polled every 2 s; each client first lists the courses to find the newest running one, "
    "then opens its per-job stream or polls its /progress. The window runs from the clients' "
    "arrival to the job's end (pollers: to their answer that shows it ended); cost = (window "
    "CPU - the unwatched job's CPU) / (clients x minutes). 'Once connected' starts the SSE "
    "window when every stream had its snapshot. Per event: CPU after every snapshot, minus "
    "the same for the unwatched job, / frames delivered. Staleness as in `delivery`"
)


async def newest_job(svc: Service) -> str:
    """What a page does first: list the courses and take the newest running one's job."""
    client = svc.client()
    try:
        listing = await client.get_json("/api/courses")
    finally:
        await client.close()
    job: str = next(
        c["job"]["job_id"]
        for c in listing["courses"]
        if c["job"] and c["job"]["status"] == "running"
    )
    return job


async def phase(bench: Bench, svc: Service, watch: JobWatch, mode: str, n: int) -> dict[str, Any]:
    """One job of 20 lessons (4 completions a second) watched by `n` clients in `mode`."""
    lessons, delay = job_shape(bench)
    topic = f"cost {mode}."
    await bench.fake.gate(topic)
    course = await svc.generate(topic, lessons)
    job = course["job_id"]
    # The window opens when the clients arrive. Each finds the newest running course
    # (GET /api/courses on a connection of its own), then opens its per-job stream or
    # polls its /progress every 2 s.
    first, start = svc.stats(), time.monotonic()
    found = await asyncio.gather(*(newest_job(svc) for _ in range(n if mode != "none" else 0)))
    assert all(j == job for j in found), "a client found another course as the newest"
    streams = []
    polling = []
    if mode == "sse":
        streams = await svc.open_streams(f"/api/jobs/{job}/events", n)
    elif mode == "poll":
        polling = start_pollers(svc, job, n, seed=7)
    ready, ready_at = svc.stats(), time.monotonic() - start
    await bench.fake.open(topic, spacing=delay / CONCURRENCY)
    await watch.ended({job}, within=120)
    if streams:
        await asyncio.wait_for(asyncio.gather(*(s.ended for s in streams)), 60)
    polls = await asyncio.gather(*polling)
    last, seconds = svc.stats(), time.monotonic() - start
    frames = sum(len(s.frames) - 1 for s in streams)
    stamps = await lesson_stamps(svc, [lesson["id"] for lesson in course["course"]["lessons"]])
    seen = (
        sse_latencies(streams, stamps, {})[0] if streams else freshness(polls, [*stamps.values()])
    )
    return {
        "staleness_s": summary(seen),
        "ready_after_s": ready_at,
        "mode": mode,
        "clients": n if mode != "none" else 0,
        "window_s": seconds,
        "cpu_s": last.cpu - first.cpu,
        "cpu_after_ready_s": last.cpu - ready.cpu,
        "frames_delivered": frames,
        "polls": sum(len(p) for p in polls),
        "failed_streams": sum(1 for s in streams if s.error),
    }


async def run(bench: Bench) -> Outcome:
    clients = 100 if bench.quick else 200
    async with bench.measure("cost") as out:
        async with bench.service("cost", concurrency=CONCURRENCY, lesson_delay=0) as svc:
            await bench.fake.delays(lesson=job_shape(bench)[1], outline=0)
            watch = await JobWatch(svc).start()
            phases = {m: await phase(bench, svc, watch, m, clients) for m in MODES}
            watch.close()
        base, sse, poll = phases["none"], phases["sse"], phases["poll"]

        def per_client_minute(p: dict[str, Any]) -> float:
            extra = float(p["cpu_s"]) - float(base["cpu_s"])
            return extra / (clients * float(p["window_s"]) / 60)

        sse_cost, poll_cost = per_client_minute(sse), per_client_minute(poll)
        # Once every stream had its snapshot: what a watcher costs for each further minute.
        sse_steady = (sse["cpu_after_ready_s"] - base["cpu_after_ready_s"]) / (
            clients * (sse["window_s"] - sse["ready_after_s"]) / 60
        )
        per_event = (sse["cpu_after_ready_s"] - base["cpu_after_ready_s"]) / sse["frames_delivered"]
        per_poll = (poll["cpu_s"] - base["cpu_s"]) / poll["polls"]
        # Above this many events a second on the watched job, a watcher costs more than a
        # poller: a poller costs per_poll every 2 s, a watcher per_event for each event.
        break_even = per_poll / 2 / per_event
        fresher = poll["staleness_s"]["p50"] / sse["staleness_s"]["p50"]
        out.data = {
            "phases": phases,
            "clients": clients,
            "sse_cpu_per_client_minute_s": sse_cost,
            "poll_cpu_per_client_minute_s": poll_cost,
            "sse_cpu_per_client_minute_after_connect_s": sse_steady,
            "cpu_per_event_per_client_s": per_event,
            "cpu_per_poll_s": per_poll,
            "break_even_events_per_s": break_even,
            "events_per_s": sse["frames_delivered"] / clients / sse["window_s"],
            "fresher_p50_ratio": fresher,
            "method": METHOD,
        }
        ratio = poll_cost / sse_cost if sse_cost > 0 else float("inf")
        out.add(
            f"CPU per client-minute, SSE ({clients} watchers, incl. connect)",
            f"{sse_cost * 1000:.1f} ms",
            "<= polling",
            sse_cost <= poll_cost,
        )
        out.add(
            "  same, SSE once connected (snapshot sent)",
            f"{sse_steady * 1000:.1f} ms",
        )
        out.add(
            f"CPU per client-minute, polling every 2 s ({clients})",
            f"{poll_cost * 1000:.1f} ms ({ratio:.1f}x SSE)",
        )
        out.add(
            "  SSE fresher than polling, p50 (same runs)",
            f"{fresher:.0f}x ({ms(sse['staleness_s']['p50'])} vs {ms(poll['staleness_s']['p50'])})",
            ">= 40x",
            fresher >= 40,
        )
        out.add(
            "  CPU per poll / break-even event rate",
            f"{per_poll * 1000:.2f} ms / {break_even:.1f} events/s "
            f"(this job: {out.data['events_per_s']:.1f}/s)",
        )
        out.add(
            "CPU to deliver one event to one client",
            f"{per_event * 1e6:.1f} us",
            "<= 15 us",
            per_event <= 15e-6,
        )
        if sse["failed_streams"]:
            out.add("  failed streams", str(sse["failed_streams"]), "0", False)
        out.data["cpu_note"] = summary([base["cpu_s"], sse["cpu_s"], poll["cpu_s"]])
    return out
