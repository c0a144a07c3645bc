"""Generate overhead: the time of POST /api/courses/generate minus the fake's outline latency."""

from __future__ import annotations

import time

from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.stats import ms, summary

OUTLINE_DELAY = 0.020
WARMUP = 5
HELD = "held generate "


async def run(bench: Bench) -> Outcome:
    calls = 50 if bench.quick else 200
    # Lessons are held at the fake, so no lesson work runs beside the requests measured:
    # this is the request path alone (4 lesson calls wait at the fake, the rest queue).
    await bench.fake.gate(HELD)
    async with bench.measure("generate") as out:
        async with bench.service(
            "generate", concurrency=4, lesson_delay=0.0, outline_delay=OUTLINE_DELAY
        ) as svc:
            for i in range(WARMUP):
                await svc.generate(f"{HELD}warmup {i}", 3)
            mark = bench.fake.mark()
            took: dict[str, float] = {}
            for i in range(calls):
                topic = f"{HELD}{i}"
                start = time.perf_counter()
                await svc.generate(topic, 3)
                took[topic] = time.perf_counter() - start
        outline = {c.topic: c.end - c.start for c in bench.fake.calls_since(mark, "outline")}
        overhead = [t - OUTLINE_DELAY for t in took.values()]
        beyond_fake = [t - outline[topic] for topic, t in took.items() if topic in outline]
        total = summary(list(took.values()))
        over = summary(overhead)
        out.data = {
            "calls": calls,
            "warmup_calls": WARMUP,
            "outline_delay_s": OUTLINE_DELAY,
            "post_seconds": total,
            "overhead_seconds": over,
            "overhead_beyond_fake_call_seconds": summary(beyond_fake),
            "method": "sequential POSTs on one keep-alive connection, lessons held at the fake; "
            "overhead = client-measured POST time - configured outline delay; "
            "'beyond fake call' subtracts the outline call's duration as the fake saw it",
        }
        out.add("generate overhead p50", ms(over["p50"]), "<= 5 ms", over["p50"] <= 0.005)
        out.add("generate overhead p99", ms(over["p99"]), "<= 20 ms", over["p99"] <= 0.020)
        beyond = out.data["overhead_beyond_fake_call_seconds"]
        out.add(
            "  same, minus the fake's own handling p50/p99",
            f"{ms(beyond['p50'])} / {ms(beyond['p99'])}",
        )
    return out
