"""What courses cost in tokens and dollars: the cached lesson prefix, batch mode, and a
rate-limited load (SPEC section 11), from the fake's own accounting."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
import time
from typing import Any

from coursegen.domain import Usage
from coursegen.prices import BUILT_IN
from coursegen_dev.bench.fake_control import FakeUsage, StreamShape
from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.http import HttpClient, HttpError
from coursegen_dev.bench.service import JobWatch, Service
from coursegen_dev.bench.stats import summary

# A model the built-in price table knows, whose minimum cacheable prefix (1,024 tokens)
# the lesson prefix passes at the fake's ~4 characters a token.
MODEL = "claude-sonnet-5-5"
LESSONS = 10
TOPIC = "spend: Rust ownership and borrowing"
# Lessons of about the length the writing guidelines ask for (~1,300 words, ~2,000
# output tokens at the fake's count), streamed in 40 deltas in about 0.3 s.
SHAPE = StreamShape(chars=8000, delta_chars=200, first_token=0.1, gap=0.005)
BATCH_POLL = 0.1  # COURSEGEN_BATCH_POLL, seconds
BATCH_SECONDS = 0.5  # the fake ends a Message Batch this long after it was created
RPM = 30
BUCKET_REFILL = 60 / RPM  # seconds per request once the bucket is empty
LOAD_CONCURRENCY = 8
HEALTH_EVERY = 0.1
TOKENS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
METHOD = {
    "caching": "one course of 10 lessons in streaming mode on a fresh prompt cache; from the "
    "usage the fake reported for each of its calls (outline and lessons), input billed at "
    "full price = sum(input_tokens); without caching the same requests would have billed "
    "sum(input_tokens + cache_creation_input_tokens + cache_read_input_tokens) at full "
    "price. The service's `usage` of the course (GET /api/courses/{id}) must equal the "
    "fake's sums, and its cost_usd the fake's usage priced by the built-in table",
    "batch": "the same topic and lesson count again with mode=batch, on a fresh prompt "
    f"cache (COURSEGEN_BATCH_POLL={BATCH_POLL}, the fake ends a batch after "
    f"{BATCH_SECONDS} s); ratio of the lessons' cost (the sum of the course's lessons' "
    "usage.cost_usd), batch / streaming. The outline is one synchronous call either way",
    "rate_limited": f"a fresh service (concurrency {LOAD_CONCURRENCY}) and a fresh request "
    f"bucket at {RPM} requests per minute; all courses generated at once; elapsed = the "
    "arrival of the last lesson's `complete` event on /api/events - just before the first "
    "POST. The bucket holds 30 requests and refills one every 2 s, so N admitted requests "
    "(outline + lesson calls, not the refused ones) cannot all have started before "
    "(N - 30) x 2 s; the minimum adds one lesson call (the fake's p50) for the last one "
    f"to finish. /api/health is read every {HEALTH_EVERY} s for effective_concurrency",
}


def _sums(calls: list[FakeUsage]) -> dict[str, int]:
    return {name: sum(c.usage.get(name, 0) for c in calls) for name in TOKENS}


def _cost(calls: list[FakeUsage]) -> float:
    """The fake's usage priced by the service's built-in table (batch calls at batch price)."""
    total = 0.0
    for call in calls:
        cost = BUILT_IN.cost(call.model, Usage(**call.usage), batch=call.batch)
        if cost is None:
            raise RuntimeError(f"spend: model {call.model!r} has no built-in price")
        total += cost
    return total


def _differences(service: dict[str, Any], calls: list[FakeUsage]) -> list[str]:
    """Where the service's usage of a course differs from the fake's accounting."""
    fake = _sums(calls)
    wrong = [
        f"{name} {service[name]} vs fake {fake[name]}"
        for name in TOKENS
        if service[name] != fake[name]
    ]
    cost = _cost(calls)
    # The service rounds cost_usd to 6 decimals.
    if service["cost_usd"] is None or abs(service["cost_usd"] - cost) > 1e-6 * (len(calls) + 1):
        wrong.append(f"cost_usd {service['cost_usd']} vs fake {cost:.6f}")
    return wrong


async def _course(
    bench: Bench, svc: Service, watch: JobWatch, topic: str, mode: str
) -> dict[str, Any]:
    """One course on a fresh prompt cache: the service's usage and the fake's calls."""
    await bench.fake.clear_cache()
    mark = await bench.fake.ledger_mark()
    answer = await svc.api.post_json(
        "/api/courses/generate", {"topic": topic, "lessons": LESSONS, "mode": mode}
    )
    await watch.ended({answer["job_id"]}, within=120)
    course = await svc.api.get_json(f"/api/courses/{answer['course']['id']}")
    calls = [c for c in (await bench.fake.ledger(mark)).calls if c.topic == topic]
    lessons = [c for c in calls if c.kind == "lesson"]
    lesson_cost = sum(lesson["usage"]["cost_usd"] or 0.0 for lesson in course["lessons"])
    return {
        "mode": mode,
        "usage": course["usage"],
        "lesson_cost_usd": lesson_cost,
        "estimate": answer["estimate"],
        "statuses": [lesson["content_status"] for lesson in course["lessons"]],
        "fake_calls": len(calls),
        "fake_usage": _sums(calls),
        "fake_lesson_usage": _sums(lessons),
        "fake_cost_usd": _cost(calls),
        "fake_lesson_cost_usd": _cost(lessons),
        "mismatches": _differences(course["usage"], calls),
        "_calls": calls,
    }


async def _generate(client: HttpClient, topic: str, retries: list[float]) -> dict[str, Any]:
    """POST generate; an outline call refused by the rate limit (502) is asked again."""
    while True:
        answer = await client.request(
            "POST", "/api/courses/generate", {"topic": topic, "lessons": LESSONS}
        )
        if answer.status == 201:
            body: dict[str, Any] = answer.json()
            return body
        if answer.status == 502 and b"rate limit" in answer.body:
            retries.append(time.time())
            await asyncio.sleep(BUCKET_REFILL)
            continue
        raise HttpError(f"generate {topic!r}: {answer.status} {answer.body[:200]!r}")


async def _sample_health(svc: Service, seen: list[tuple[float, int]], stop: asyncio.Event) -> None:
    """effective_concurrency every HEALTH_EVERY s; `seen` keeps each change (time, value)."""
    client = svc.client()
    try:
        while not stop.is_set():
            health = await client.get_json("/api/health")
            value = int(health["effective_concurrency"])
            if not seen or seen[-1][1] != value:
                seen.append((time.time(), value))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEALTH_EVERY)
    finally:
        await client.close()


async def _rate_limited(bench: Bench, courses: int) -> dict[str, Any]:
    async with bench.service(
        "spend-ratelimit",
        concurrency=LOAD_CONCURRENCY,
        lesson_delay=0,
        stream=SHAPE,
        model=MODEL,
    ) as svc:
        watch = await JobWatch(svc).start()
        seen: list[tuple[float, int]] = []
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_health(svc, seen, stop))
        clients = [svc.client() for _ in range(courses)]
        retries: list[float] = []
        try:
            await bench.fake.limits(requests_per_minute=RPM)  # a full bucket, from now
            mark, calls_mark = await bench.fake.ledger_mark(), bench.fake.mark()
            start = time.time()
            answers = await asyncio.gather(
                *(
                    _generate(client, f"spend limited course {i}", retries)
                    for i, client in enumerate(clients)
                )
            )
            await watch.ended({a["job_id"] for a in answers}, within=300)
            ids = [lesson["id"] for a in answers for lesson in a["course"]["lessons"]]
            done = [watch.lesson_at.get((i, "complete")) for i in ids]
            stored = [await svc.api.get_json(f"/api/courses/{a['course']['id']}") for a in answers]
            ledger = await bench.fake.ledger(mark)
        finally:
            stop.set()
            await sampler
            watch.close()
            for client in clients:
                await client.close()
            await bench.fake.limits(requests_per_minute=None)
    lessons = [lesson for course in stored for lesson in course["lessons"]]
    failed = sum(1 for lesson in lessons if lesson["content_status"] != "complete")
    ended = max(t for t in done if t is not None) if any(done) else float("nan")
    admitted = ledger.requests - ledger.rate_limited
    ok_lessons = [c for c in bench.fake.calls_since(calls_mark, "lesson") if c.status == 200]
    lesson_call = summary([c.end - c.start for c in ok_lessons]).get("p50", 0.0)
    minimum = max(0, admitted - RPM) * BUCKET_REFILL + lesson_call
    mismatches = []
    for answer, course in zip(answers, stored, strict=True):
        topic = answer["course"]["topic"]
        own = [c for c in ledger.calls if c.topic == topic and c.status == 200]
        mismatches += [f"{topic}: {m}" for m in _differences(course["usage"], own)]
    return {
        "courses": courses,
        "lessons": len(lessons),
        "lessons_failed": failed,
        "lessons_without_complete_event": sum(1 for t in done if t is None),
        "elapsed_s": ended - start,
        "requests_admitted": admitted,
        "outline_calls_admitted": sum(
            1 for c in ledger.calls if c.kind == "outline" and c.status == 200
        ),
        "lesson_calls_admitted": sum(
            1 for c in ledger.calls if c.kind == "lesson" and c.status == 200
        ),
        "rate_limited_429": ledger.rate_limited,
        "generate_retries": len(retries),
        "lesson_call_p50_s": lesson_call,
        "minimum_s": minimum,
        "ratio": (ended - start) / minimum if minimum > 0 else float("nan"),
        "effective_concurrency_changes": [(t - start, v) for t, v in seen],
        "lowest_effective_concurrency": min((v for _, v in seen), default=LOAD_CONCURRENCY),
        "mismatches": mismatches,
    }


def _tokens(usage: dict[str, Any]) -> str:
    return (
        f"in {usage['input_tokens']:,} / out {usage['output_tokens']:,} / cache write "
        f"{usage['cache_creation_input_tokens']:,} / read {usage['cache_read_input_tokens']:,}"
    )


def _loudly(what: str, mismatches: list[str]) -> None:
    for mismatch in mismatches:
        print(f"[bench] spend: MISMATCH, {what}: {mismatch}", file=sys.stderr, flush=True)


async def run(bench: Bench) -> Outcome:
    courses = 3 if bench.quick else 4
    async with bench.measure("spend") as out:
        async with bench.service(
            "spend",
            concurrency=4,
            lesson_delay=0,
            stream=SHAPE,
            model=MODEL,
            extra={"COURSEGEN_BATCH_POLL": str(BATCH_POLL)},
        ) as svc:
            await bench.fake.limits(requests_per_minute=None, batch_seconds=BATCH_SECONDS)
            watch = await JobWatch(svc).start()
            try:
                stream = await _course(bench, svc, watch, TOPIC, "stream")
                batch = await _course(bench, svc, watch, TOPIC, "batch")
            finally:
                watch.close()
                await bench.fake.limits(requests_per_minute=None)
        limited = await _rate_limited(bench, courses)

        calls: list[FakeUsage] = stream.pop("_calls")
        batch.pop("_calls")
        full = sum(c.usage["input_tokens"] for c in calls)
        uncached = sum(c.usage[name] for c in calls for name in TOKENS if name != "output_tokens")
        caching = full / uncached
        price = BUILT_IN[MODEL]
        paid = sum(
            c.usage["input_tokens"] * price.input
            + c.usage["cache_creation_input_tokens"] * price.cache_write
            + c.usage["cache_read_input_tokens"] * price.cache_read
            for c in calls
        )
        input_cost = paid / (uncached * price.input)
        lessons_ratio = batch["lesson_cost_usd"] / stream["lesson_cost_usd"]
        course_ratio = batch["usage"]["cost_usd"] / stream["usage"]["cost_usd"]
        out.data = {
            "model": MODEL,
            "lessons_per_course": LESSONS,
            "stream_shape": dataclasses.asdict(SHAPE),
            "stream_course": stream,
            "batch_course": batch,
            "full_price_input_tokens": full,
            "input_tokens_without_caching": uncached,
            "caching_ratio": caching,
            "input_cost_ratio": input_cost,
            "batch_over_stream_lessons": lessons_ratio,
            "batch_over_stream_course": course_ratio,
            "rate_limited": limited,
            "method": METHOD,
        }
        out.add(
            f"input billed at full price, {LESSONS}-lesson course, caching vs none",
            f"{caching:.3f}x ({full:,} of {uncached:,} tokens)",
            "<= 0.35x",
            caching <= 0.35,
        )
        out.add(
            f"  input cost, caching vs none (writes {price.cache_write / price.input:g}x, "
            f"reads {price.cache_read / price.input:g}x input price)",
            f"{input_cost:.3f}x",
        )
        out.add(
            "  the service's usage of that course",
            f"{_tokens(stream['usage'])} tokens, ${stream['usage']['cost_usd']:.4f}",
        )
        for what, mismatches in (
            ("streamed course", stream["mismatches"]),
            ("batch course", batch["mismatches"]),
            (f"{courses} rate-limited courses", limited["mismatches"]),
        ):
            _loudly(what, mismatches)
            out.add(
                f"  service's usage = the fake's accounting, {what}",
                "equal (tokens and cost)" if not mismatches else f"MISMATCH: {mismatches[0]}",
                "equal",
                not mismatches,
            )
        out.add(
            "lessons' cost, batch mode vs streaming mode, same course",
            f"{lessons_ratio:.3f}x (${batch['lesson_cost_usd']:.4f} vs "
            f"${stream['lesson_cost_usd']:.4f})",
            "0.5x",
            abs(lessons_ratio - 0.5) <= 0.005,
        )
        out.add(
            "  whole course with its outline (one synchronous call either way)",
            f"{course_ratio:.3f}x (${batch['usage']['cost_usd']:.4f} vs "
            f"${stream['usage']['cost_usd']:.4f})",
        )
        unwritten = sum(s != "complete" for s in stream["statuses"] + batch["statuses"])
        if unwritten:
            out.add("  lessons not complete (stream and batch courses)", str(unwritten), "0", False)
        total = limited["lessons"]
        out.add(
            f"rate-limited load ({RPM} requests/min): lessons failed",
            f"{limited['lessons_failed']} of {total}",
            "0",
            limited["lessons_failed"] == 0,
        )
        out.add(
            "  time vs the limit's minimum",
            f"{limited['ratio']:.3f}x "
            f"({limited['elapsed_s']:.1f} s / {limited['minimum_s']:.1f} s)",
            "<= 1.15x",
            limited["ratio"] <= 1.15,
        )
        out.add(
            "  minimum = (requests - 30) x 2 s + one lesson call",
            f"({limited['requests_admitted']} - 30) x 2 s + {limited['lesson_call_p50_s']:.2f} s: "
            "the bucket holds 30, then refills one per 2 s",
        )
        out.add(
            "  429s answered / lowest effective concurrency",
            f"{limited['rate_limited_429']} / {limited['lowest_effective_concurrency']} "
            f"(of {LOAD_CONCURRENCY}); outline retries {limited['generate_retries']}",
        )
    return out
