"""Status delivery latency: SSE clients and pollers watch one job; when does each see a change."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.pollers import freshness, start_pollers
from coursegen_dev.bench.service import Service
from coursegen_dev.bench.sse import SseStream
from coursegen_dev.bench.stats import ms, summary

CONCURRENCY = 4
METHOD = (
    "each lesson's `updated_at` is stamped by the server inside the transaction that "
    "completes it, just before COMMIT (ms resolution, truncated); SSE latency = kernel "
    "arrival stamp (SO_TIMESTAMPNS) of the `lesson ... complete` frame - that stamp; poll "
    "freshness = arrival of the first /progress answer counting k settled lessons - the "
    "k-th stamp. 'call end' variant: the fake's wall clock when it sent the lesson's last "
    "byte (includes the SDK and the wait for the write lock)."
)


def job_shape(bench: Bench) -> tuple[int, float]:
    """Lessons per watched job and seconds per lesson call (4 in flight: 4 completions/s)."""
    return (8, 0.4) if bench.quick else (20, 1.0)


def stamp(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def lesson_stamps(svc: Service, lesson_ids: list[int]) -> dict[int, float]:
    """The server's `updated_at` of each lesson, as wall-clock seconds."""
    stamps = {}
    for lesson_id in lesson_ids:
        lesson = await svc.api.get_json(f"/api/lessons/{lesson_id}")
        stamps[lesson_id] = stamp(lesson["updated_at"])
    return stamps


def sse_latencies(
    streams: list[SseStream], stamps: dict[int, float], call_end: dict[int, float]
) -> tuple[list[float], list[float], int]:
    """(against the server stamp, against the fake's call end, frames delivered live)."""
    by_stamp, by_call, frames = [], [], 0
    for stream in streams:
        events = stream.events()
        frames += sum(1 for e in events if e[2] != "snapshot")
        for arrival, _, kind, data in events:
            if kind == "lesson" and data["content_status"] == "complete":
                by_stamp.append(arrival - stamps[data["lesson_id"]])
                if data["position"] in call_end:
                    by_call.append(arrival - call_end[data["position"]])
    return by_stamp, by_call, frames


async def phase(bench: Bench, svc: Service, clients: int, pollers: int) -> dict[str, Any]:
    """One job of `lessons` watched by `clients` SSE streams and `pollers` pollers."""
    lessons, delay = job_shape(bench)
    topic = f"delivery {clients} clients."
    await bench.fake.gate(topic)
    course = await svc.generate(topic, lessons)
    job = course["job_id"]
    started = time.monotonic()
    streams = await svc.open_streams(f"/api/jobs/{job}/events", clients)
    connect_s = time.monotonic() - started
    mark = bench.fake.mark()
    polling = start_pollers(svc, job, pollers)
    before = svc.stats()
    await bench.fake.open(topic, spacing=delay / CONCURRENCY)
    await asyncio.wait_for(asyncio.gather(*(s.ended for s in streams)), 120)
    after = svc.stats()
    polls = await asyncio.gather(*polling)
    lesson_ids = [lesson["id"] for lesson in course["course"]["lessons"]]
    stamps = await lesson_stamps(svc, lesson_ids)
    call_end = {
        c.position: c.end for c in bench.fake.calls_since(mark, "lesson") if c.topic == topic
    }
    by_stamp, by_call, frames = sse_latencies(streams, stamps, call_end)
    missing = sum(1 for s in streams if s.error) + (clients * lessons - len(by_stamp))
    fresh = freshness(polls, list(stamps.values()))
    return {
        "clients": clients,
        "pollers": pollers,
        "lessons": lessons,
        "lesson_delay_s": delay,
        "connect_seconds": connect_s,
        "frames_delivered": frames,
        "service_cpu_while_running_s": after.cpu - before.cpu,
        "sse_latency_s": summary(by_stamp),
        "sse_latency_from_call_end_s": summary(by_call),
        "poll_freshness_s": summary(fresh),
        "missing_or_failed": missing,
        "kernel_stamped": all(s.stamped for s in streams),
        "stream_errors": sorted({s.error for s in streams if s.error})[:5],
    }


async def run(bench: Bench) -> Outcome:
    counts = (50, 200) if bench.quick else (100, 300, 1000)
    pollers = 50 if bench.quick else 100
    # The targets, for the fewest and the most clients; between them, for the plot.
    targets = {counts[0]: 0.025, counts[-1]: 0.150}
    async with bench.measure("delivery") as out:
        async with bench.service("delivery", concurrency=CONCURRENCY, lesson_delay=0) as svc:
            await bench.fake.delays(lesson=job_shape(bench)[1], outline=0)
            phases = [await phase(bench, svc, n, pollers) for n in counts]
        low, high = phases[0], phases[-1]
        marginal = (high["service_cpu_while_running_s"] - low["service_cpu_while_running_s"]) / (
            high["frames_delivered"] - low["frames_delivered"]
        )
        out.data = {
            "method": METHOD,
            "phases": phases,
            "marginal_cpu_per_event_per_client_s": marginal,
        }
        for p in phases:
            lat, fresh, n = p["sse_latency_s"], p["poll_freshness_s"], p["clients"]
            target = targets.get(n)
            out.add(
                f"SSE latency p99, {n} clients",
                f"{ms(lat['p99'])} (p50 {ms(lat['p50'])})",
                f"<= {target * 1000:.0f} ms" if target else "",
                lat["p99"] <= target if target else None,
            )
            ratio = fresh["p50"] / lat["p50"]
            out.add(
                f"  polling every 2 s, p50 / SSE p50 ({n} SSE clients)",
                f"{ratio:.0f}x fresher ({ms(fresh['p50'])} vs {ms(lat['p50'])})",
                ">= 40x" if target else "",
                ratio >= 40 if target else None,
            )
            call = p["sse_latency_from_call_end_s"]
            out.add(
                f"  from the fake's call end, p50/p99, {n} clients",
                f"{ms(call['p50'])} / {ms(call['p99'])}",
            )
            if p["missing_or_failed"]:
                out.add(f"  events missing, {n} clients", str(p["missing_or_failed"]), "0", False)
        out.add(
            f"  marginal CPU per event per client ({counts[0]} -> {counts[-1]} clients)",
            f"{marginal * 1e6:.1f} us",
        )
    return out
