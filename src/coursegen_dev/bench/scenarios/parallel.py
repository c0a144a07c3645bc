"""Parallel efficiency: 2 courses x 12 lessons at concurrency 1, 4 and 8, ideal / measured."""

from __future__ import annotations

import asyncio
import math
import time

from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.service import JobWatch
from coursegen_dev.bench.stats import summary

COURSES, LESSONS = 2, 12
CONCURRENCIES = (1, 4, 8)


async def run(bench: Bench) -> Outcome:
    delay = 0.1 if bench.quick else 0.5
    lessons = 6 if bench.quick else LESSONS
    async with bench.measure("parallel") as out:
        runs: dict[int, dict[str, float]] = {}
        for concurrency in CONCURRENCIES:
            async with bench.service(
                f"parallel-{concurrency}", concurrency=concurrency, lesson_delay=delay
            ) as svc:
                watch = await JobWatch(svc).start()
                mark = bench.fake.mark()
                clients = [svc.client() for _ in range(COURSES)]
                start = time.time()
                courses = await asyncio.gather(
                    *(
                        svc.generate(f"parallel c{concurrency} course {i}.", lessons, client)
                        for i, client in enumerate(clients)
                    )
                )
                for client in clients:
                    await client.close()
                end = await watch.ended({c["job_id"] for c in courses}, within=60)
                watch.close()
            calls = [c.end - c.start for c in bench.fake.calls_since(mark, "lesson")]
            waves = math.ceil(COURSES * lessons / concurrency)
            measured = end - start
            fake_call = summary(calls)["p50"]
            runs[concurrency] = {
                "ideal_s": waves * delay,
                "measured_s": measured,
                "efficiency": waves * delay / measured,
                "fake_lesson_call_s": fake_call,
                # The same against what the fake really took per call: the service's share.
                "efficiency_vs_fake_actual": waves * fake_call / measured,
                "service_overhead_per_wave_s": (measured - waves * fake_call) / waves,
            }
        speedup = runs[1]["measured_s"] / runs[4]["measured_s"]
        out.data = {
            "courses": COURSES,
            "lessons_per_course": lessons,
            "lesson_delay_s": delay,
            "runs": {str(c): r for c, r in runs.items()},
            "speedup_4_over_1": speedup,
            "method": "a fresh service per concurrency; wall time from just before the two "
            "POSTs to the arrival of the last terminal `job` event on /api/events; ideal = "
            "ceil(24 / concurrency) x lesson delay",
        }
        for c, r in runs.items():
            out.add(
                f"parallel efficiency, concurrency {c}",
                f"{r['efficiency']:.3f} ({r['measured_s']:.2f} s / ideal {r['ideal_s']:.2f})",
                ">= 0.95",
                r["efficiency"] >= 0.95,
            )
        out.add("speedup, concurrency 4 over 1", f"{speedup:.2f}x", ">= 3.8x", speedup >= 3.8)
        out.add(
            "  fake's lesson call, p50 (its own latency)",
            f"{runs[1]['fake_lesson_call_s'] * 1000:.1f} ms for {delay * 1000:.0f} ms asked",
        )
        out.add(
            "  efficiency against the fake's actual call time, c=1/4/8",
            " / ".join(f"{r['efficiency_vs_fake_actual']:.3f}" for r in runs.values()),
        )
        out.add(
            "  service time per wave of lessons, c=1/4/8",
            " / ".join(f"{r['service_overhead_per_wave_s'] * 1000:.1f} ms" for r in runs.values()),
        )
    return out
