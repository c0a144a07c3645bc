"""A reader opens a pending lesson and asks for it first: how soon does its text arrive."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from coursegen_dev.bench.fake_control import FakeCall, StreamShape
from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.procs import run_delay
from coursegen_dev.bench.scenarios.streaming import WARMUP
from coursegen_dev.bench.service import JobWatch, Service
from coursegen_dev.bench.sse import Frame

TOPIC = "prioritise "
LESSONS = 6
FIRST_TOKEN = 0.5
MARGIN = 0.050
# 2 s lessons: the first delta 0.5 s after the call starts, the other ~490 over 1.5 s.
SHAPE = StreamShape(chars=8000, delta_chars=14, first_token=FIRST_TOKEN, gap=1.5 / 490, stamp=TOPIC)
# (position of the lesson opened and prioritised, seconds into the lesson in flight):
# each is two or more places down the course, so only its priority makes it the next.
PLAN = ((6, 0.4), (5, 1.0), (4, 1.6))

METHOD = (
    "concurrency 1, one course of 6 lessons, each a 2 s call (first delta after 0.5 s). "
    "While lesson k is being written (0.4, 1.0 and 1.6 s after its `generating` event), a "
    "reader opens a later pending lesson's /api/lessons/{id}/events (snapshot: pending), "
    "then POSTs /api/lessons/{id}/prioritize; measured = kernel arrival stamp of the "
    "first `text` chunk on that stream - the wall clock just before the POST. Bound = the "
    "slot wait (the fake's end of the call in flight - the POST) + the time to first "
    "token asked of the fake (0.5 s) + 50 ms"
)


async def open_and_prioritise(svc: Service, lesson_id: int) -> tuple[float, float, float]:
    """Open the lesson's stream, prioritise it: (wall clock of the POST, first chunk arrival,
    seconds the service waited for its CPU meanwhile)."""
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_frame(frame: Frame) -> None:
        if frame.raw.startswith(b"event: text\r\n") and not first.done():
            first.set_result(frame.arrival)

    stream = svc.stream(f"/api/lessons/{lesson_id}/events", on_frame, keep=False)
    try:
        await stream.connect()
        await asyncio.wait_for(stream.first, 30)
        waited, posted = run_delay(svc.pid), time.time()
        answer = await svc.api.post_json(f"/api/lessons/{lesson_id}/prioritize", {}, expect=202)
        assert answer["content_status"] == "pending", answer
        arrival = await asyncio.wait_for(first, 30)
        return posted, arrival, run_delay(svc.pid) - waited
    finally:
        stream.close()


async def calls_of(bench: Bench, mark: int, topic: str, positions: set[int]) -> dict[int, FakeCall]:
    """The fake's record of these lesson calls, once it has reported them all."""
    async with asyncio.timeout(10):
        while True:
            calls = {
                c.position: c for c in bench.fake.calls_since(mark, "lesson") if c.topic == topic
            }
            if positions <= calls.keys():
                return calls
            await asyncio.sleep(0.05)


async def run(bench: Bench) -> Outcome:
    async with bench.measure("prioritise") as out:
        async with bench.service("prioritise", concurrency=1, lesson_delay=0, stream=WARMUP) as svc:
            watch = await JobWatch(svc).start()
            warm = await svc.generate("prioritise warmup.", 1)
            await watch.ended({warm["job_id"]}, within=60)
            await bench.fake.stream(SHAPE)
            topic = f"{TOPIC}course."
            mark = bench.fake.mark()
            course = await svc.generate(topic, LESSONS)
            ids = {lesson["position"]: lesson["id"] for lesson in course["course"]["lessons"]}
            in_flight = 1
            opened: list[dict[str, Any]] = []
            for position, into in PLAN:
                await watch.lessons_reached([ids[in_flight]], "generating", within=30)
                began = watch.lesson_at[(ids[in_flight], "generating")]
                await asyncio.sleep(max(0.0, began + into - time.time()))
                posted, arrival, waited = await open_and_prioritise(svc, ids[position])
                opened.append(
                    {
                        "lesson": position,
                        "behind": in_flight,
                        "posted": posted,
                        "arrival": arrival,
                        "waited": waited,
                    }
                )
                in_flight = position
            # The last lesson opened is written whole, so that the fake reports its call.
            await watch.lessons_reached([ids[in_flight]], "complete", within=30)
            calls = await calls_of(
                bench, mark, topic, {o["behind"] for o in opened} | {o["lesson"] for o in opened}
            )
            order = sorted(
                (at, next(p for p, i in ids.items() if i == lesson_id))
                for (lesson_id, status), at in watch.lesson_at.items()
                if status == "generating" and lesson_id in ids.values()
            )
            watch.close()
        samples = [sample(o, calls) for o in opened]
        out.data = {
            "method": METHOD,
            "lessons": LESSONS,
            "first_token_s": FIRST_TOKEN,
            "samples": samples,
            "order_written": [p for _, p in order],
        }
        worst = max(samples, key=lambda s: s["measured_s"] - s["bound_s"])
        out.add(
            "prioritised lesson: POST to its first chunk (concurrency 1, 2 s lessons)",
            f"{worst['measured_s'] * 1000:,.0f} ms, bound {worst['bound_s'] * 1000:,.0f} ms "
            f"(slot wait {worst['slot_wait_s'] * 1000:,.0f} + first token "
            f"{FIRST_TOKEN * 1000:.0f} + 50)",
            "<= bound",
            all(s["measured_s"] <= s["bound_s"] for s in samples),
        )
        out.add(
            "  each opening: measured / bound (service waiting for its CPU)",
            "; ".join(
                f"{s['measured_s'] * 1000:,.0f} / {s['bound_s'] * 1000:,.0f} "
                f"({s['service_waited_for_cpu_s'] * 1000:.0f}) ms"
                for s in samples
            ),
        )
        out.add(
            "  that worst: slot free -> next call at the fake / first delta / chunk",
            f"{worst['handover_s'] * 1000:.1f} / +{worst['fake_first_token_s'] * 1000:.0f} / "
            f"+{worst['delivery_s'] * 1000:.1f} ms",
        )
        out.add("  order the lessons were written", ", ".join(str(p) for _, p in order))
    return out


def sample(opened: dict[str, Any], calls: dict[int, FakeCall]) -> dict[str, Any]:
    """One opening's time, its bound and where the time went."""
    behind, target = calls[opened["behind"]], calls.get(opened["lesson"])
    slot_wait = behind.end - opened["posted"]
    measured = opened["arrival"] - opened["posted"]
    result: dict[str, Any] = {
        "lesson": opened["lesson"],
        "behind_lesson": opened["behind"],
        "measured_s": measured,
        # Runnable but not running meanwhile: other processes had the service's CPU.
        "service_waited_for_cpu_s": opened["waited"],
        "slot_wait_s": slot_wait,
        "bound_s": slot_wait + FIRST_TOKEN + MARGIN,
        "handover_s": float("nan"),
        "fake_first_token_s": float("nan"),
        "delivery_s": float("nan"),
    }
    if target is not None and target.deltas:
        result["handover_s"] = target.start - behind.end
        result["fake_first_token_s"] = target.deltas[0][1] - target.start
        result["delivery_s"] = opened["arrival"] - target.deltas[0][1]
    return result
