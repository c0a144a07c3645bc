"""Lesson text as it is written: chunk latency and CPU per chunk, CPU per lesson, commits."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from array import array
from collections.abc import Iterable
from typing import Any

from coursegen_dev.bench import pg
from coursegen_dev.bench.fake_control import FakeCall, StreamShape
from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.procs import run_delay
from coursegen_dev.bench.service import JobWatch, Service
from coursegen_dev.bench.sse import Frame, SseStream
from coursegen_dev.bench.stats import ms, summary
from coursegen_dev.bench.wal import WalCommits

TOPIC = "stream "
LESSONS = 10  # lessons written at once in the 10-lesson phases (the service's concurrency)
DB_POLL = 0.050
# ~2,000 tokens (8,000 characters) in ~490 deltas, one every 40 ms after 0.5 s to the first:
# ~100 tokens a second, faster than Sonnet-class models write (a heavier load than theirs).
SHAPE = StreamShape(chars=8000, delta_chars=14, first_token=0.5, gap=0.040, stamp=TOPIC)
QUICK = StreamShape(chars=2000, delta_chars=14, first_token=0.2, gap=0.010, stamp=TOPIC)
WARMUP = StreamShape(chars=8000, delta_chars=14, first_token=0.0, gap=0.001)
# The lessons answered in one delta come this long after their call starts. How long
# does not matter to their CPU: with no text before the end, there is nothing to save.
WHOLE_AFTER = 2.0

METHOD = {
    "chunk_latency": (
        "readers (raw sockets, kernel arrival stamps) open a lesson's /api/lessons/{id}/events "
        "while the lesson's call is held at the fake (it is `generating`, with no text yet); "
        "the fake then streams it, stamping the wall clock (CLOCK_REALTIME, shared with the "
        "kernel stamps) just after writing each delta to its socket, with the delta's end "
        "offset in the text. A delta is delivered to a reader by the first chunk (or "
        "snapshot) whose `end` reaches the delta's end less trailing white space (the "
        "service holds that back until text follows it); latency = that frame's arrival - "
        "the delta's stamp, one sample per delta and reader. Lessons start a tenth of a gap apart"
    ),
    "cpu_per_chunk": (
        "service CPU (/proc, 10 ms ticks) from the fake releasing the lessons to the end of "
        "the job and of every stream, minus the same for the same 10 lessons with no reader "
        "(the `quiet` phase), / text chunks received by all readers. It includes each "
        "reader's lesson status events and the closing of its stream. The 100-reader figure "
        "takes a tenth of the quiet phase as its baseline"
    ),
    "cpu_per_lesson": (
        "service CPU from the fake releasing 10 lessons (claimed, their calls held at the "
        "fake) to the job's end, / 10; no reader, one /api/events watcher. 'In one delta': "
        "the same lessons answered as one text delta, 2 s after their calls start (with no "
        "text before the end there is nothing to save, so the wait costs nothing); the "
        "difference is what streaming costs (SDK events, draft appends, the once-a-second "
        "saves)"
    ),
    "commits": (
        "during the quiet phase: every commit the service made, counted exactly from the "
        "SQLite write-ahead log (commit frames, read as a file every 50 ms, no lock taken); "
        "and each lesson's row as a read-only connection sees it every 50 ms (length of "
        "`content`, status): each change is a commit that wrote that lesson (a draft save or "
        "its result). Per lesson: those changes / (its `complete` event - the release); "
        "all: WAL commits / the sum of those lesson-seconds. On PostgreSQL the same, but "
        "every commit that wrote anything is counted as the transaction ids handed out "
        "(pg_snapshot_xmax(pg_current_snapshot()) before and after: a transaction that only "
        "reads is given none), and the rows are read through a connection of the bench's"
    ),
}


class Collector:
    """One reader's frames, kept lean: (arrival, text end) of its snapshots and chunks."""

    __slots__ = ("arrivals", "chunks", "ends", "lesson_id")

    def __init__(self, lesson_id: int) -> None:
        self.lesson_id = lesson_id
        self.arrivals = array("d")
        self.ends = array("q")
        self.chunks = 0

    def on_frame(self, frame: Frame) -> None:
        raw = frame.raw
        if raw.startswith(b"event: text\r\n"):
            # {"lesson_id":..,"attempt":..,"offset":..,"end":N,"text":..}: `end` precedes
            # the text, so its first occurrence is the key's.
            at = raw.index(b'"end":') + 6
            self.ends.append(int(raw[at : raw.index(b",", at)]))
            self.arrivals.append(frame.arrival)
            self.chunks += 1
        elif raw.startswith(b"event: snapshot\r\n"):
            _, _, data = frame.parsed()
            self.ends.append(len(data["lesson"].get("content") or ""))
            self.arrivals.append(frame.arrival)


async def open_readers(
    svc: Service, lesson_ids: list[int], per_lesson: int
) -> tuple[list[Collector], list[SseStream]]:
    """`per_lesson` streams on each lesson, 100 opening at a time; each has its snapshot."""
    collectors = [Collector(i) for i in lesson_ids for _ in range(per_lesson)]
    streams = [
        svc.stream(f"/api/lessons/{c.lesson_id}/events", c.on_frame, keep=False) for c in collectors
    ]
    gate = asyncio.Semaphore(100)

    async def one(stream: SseStream) -> None:
        async with gate:
            await stream.connect()
            await asyncio.wait_for(stream.first, 60)

    await asyncio.gather(*(one(s) for s in streams))
    failed = [s.error for s in streams if s.error]
    if failed:
        raise RuntimeError(f"{len(failed)} lesson streams failed: {failed[0]}")
    return collectors, streams


def visible_deltas(call: FakeCall, content: str) -> list[tuple[int, float]]:
    """(end of the text the service may pass on after the delta, the delta's stamp), for
    each delta that adds such text: trailing white space waits for the next delta."""
    out: list[tuple[int, float]] = []
    last = 0
    for end, sent in call.deltas:
        visible = len(content[:end].rstrip())
        if visible > last:
            out.append((visible, sent))
            last = visible
    return out


def chunk_latencies(
    collectors: list[Collector], deltas: dict[int, list[tuple[int, float]]]
) -> tuple[list[float], int]:
    """One latency per (delta, reader), and how many deltas never reached their reader."""
    samples: list[float] = []
    missing = 0
    for c in collectors:
        ends, arrivals, k = c.ends, c.arrivals, 0
        for end, sent in deltas[c.lesson_id]:
            while k < len(ends) and ends[k] < end:
                k += 1
            if k == len(ends):
                missing += 1
            else:
                samples.append(arrivals[k] - sent)
    return samples, missing


async def watch_rows(
    svc: Service, lesson_ids: list[int], ready: asyncio.Event, stop: asyncio.Event
) -> tuple[dict[int, list[tuple[int, str]]], dict[str, int]]:
    """Each lesson's (content length, status) every time it changed, looked at every 50 ms,
    and the commits the service made from `ready` to `stop`: on SQLite counted from the
    WAL (read at the same pace), on PostgreSQL the transaction ids it was given."""
    if svc.dsn is not None:
        return await _watch_pg(svc.dsn, lesson_ids, ready, stop)
    wal = WalCommits(svc.db)
    wal.start()
    conn = sqlite3.connect(f"file:{svc.db}?mode=ro", uri=True)
    marks = ",".join("?" * len(lesson_ids))
    query = f"SELECT id, length(content), content_status FROM lessons WHERE id IN ({marks})"
    seen: dict[int, list[tuple[int, str]]] = {i: [] for i in lesson_ids}
    ready.set()
    try:
        while True:
            wal.poll()
            _note(seen, conn.execute(query, lesson_ids))
            if stop.is_set():
                return seen, {"commits": wal.commits, "wal_frames": wal.frames,
                              "wal_restarts": wal.restarts}  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), DB_POLL)
    finally:
        conn.close()


async def _watch_pg(
    dsn: str, lesson_ids: list[int], ready: asyncio.Event, stop: asyncio.Event
) -> tuple[dict[int, list[tuple[int, str]]], dict[str, int]]:
    conn = await pg.connect(dsn)
    seen: dict[int, list[tuple[int, str]]] = {i: [] for i in lesson_ids}
    query = "SELECT id, length(content), content_status FROM lessons WHERE id = ANY($1::bigint[])"
    try:
        first = await pg.write_transactions(conn)
        ready.set()
        while True:
            _note(seen, await conn.fetch(query, lesson_ids))
            if stop.is_set():
                return seen, {"commits": await pg.write_transactions(conn) - first}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), DB_POLL)
    finally:
        await conn.close()


def _note(seen: dict[int, list[tuple[int, str]]], rows: Iterable[Any]) -> None:
    for lesson_id, length, status in rows:
        value = (int(length or 0), str(status))
        if not seen[lesson_id] or seen[lesson_id][-1] != value:
            seen[lesson_id].append(value)


async def phase(
    bench: Bench,
    svc: Service,
    watch: JobWatch,
    shape: StreamShape,
    name: str,
    lessons: int,
    readers: int,
    *,
    commits: bool = False,
) -> dict[str, Any]:
    """One course of `lessons` lessons, each read by `readers` streams, written at once."""
    topic = f"{TOPIC}{name}."
    await bench.fake.gate(topic)
    course = await svc.generate(topic, lessons)
    job = course["job_id"]
    ids = [lesson["id"] for lesson in course["course"]["lessons"]]
    await watch.lessons_reached(ids, "generating", within=30)
    started = time.monotonic()
    collectors, streams = await open_readers(svc, ids, readers) if readers else ([], [])
    connect_s = time.monotonic() - started
    mark = bench.fake.mark()
    stop, ready = asyncio.Event(), asyncio.Event()
    rows: asyncio.Task[tuple[dict[int, list[tuple[int, str]]], dict[str, int]]] | None = None
    if commits:
        rows = asyncio.create_task(watch_rows(svc, ids, ready, stop))
        await ready.wait()
    before, released, waited = svc.stats(), time.time(), run_delay(svc.pid)
    await bench.fake.open(topic, spacing=shape.gap / lessons)
    await watch.ended({job}, within=120)
    await asyncio.wait_for(asyncio.gather(*(s.ended for s in streams)), 60)
    after, seconds, waited = svc.stats(), time.time() - released, run_delay(svc.pid) - waited
    stop.set()
    seen, counted = await rows if rows is not None else ({}, {})
    calls = {c.position: c for c in bench.fake.calls_since(mark, "lesson") if c.topic == topic}
    by_position = {lesson["id"]: lesson["position"] for lesson in course["course"]["lessons"]}
    deltas: dict[int, list[tuple[int, float]]] = {}
    for lesson_id in ids:
        lesson = await svc.api.get_json(f"/api/lessons/{lesson_id}")
        deltas[lesson_id] = visible_deltas(calls[by_position[lesson_id]], lesson["content"])
    samples, missing = chunk_latencies(collectors, deltas)
    chunks = sum(c.chunks for c in collectors)
    result: dict[str, Any] = {
        "lessons": lessons,
        "readers_per_lesson": readers,
        "connect_seconds": connect_s,
        "seconds": seconds,
        "service_cpu_s": after.cpu - before.cpu,
        # Runnable but not running: other processes had the service's CPU (the noise).
        "service_waited_for_cpu_s": waited,
        "deltas_per_lesson": sum(len(c.deltas) for c in calls.values()) / len(calls),
        "chars_per_lesson": sum(c.deltas[-1][0] if c.deltas else 0 for c in calls.values())
        / len(calls),
        "chunks_received": chunks,
        "chunks_per_lesson_per_reader": chunks / len(collectors) if collectors else 0,
        "chunk_latency_s": summary(samples),
        "deltas_not_delivered": missing + sum(1 for s in streams if s.error),
        "kernel_stamped": all(s.stamped for s in streams),
        "stream_errors": sorted({s.error for s in streams if s.error})[:5],
    }
    if commits:
        lesson_seconds = {i: watch.lesson_at[(i, "complete")] - released for i in ids}
        # The first value is the claim's (empty, generating): each later one is a commit.
        per_lesson = {i: (len(seen[i]) - 1) / lesson_seconds[i] for i in ids}
        result["commits"] = {
            **counted,
            "counted_by": "SQLite WAL" if svc.dsn is None else "PostgreSQL transaction ids",
            "lesson_seconds": sum(lesson_seconds.values()),
            "all_commits_per_lesson_second": counted["commits"] / sum(lesson_seconds.values()),
            "row_writes_per_lesson": {str(i): len(seen[i]) - 1 for i in ids},
            "row_writes_per_lesson_per_s": {str(i): r for i, r in per_lesson.items()},
            "max_row_writes_per_lesson_per_s": max(per_lesson.values()),
        }
    return result


async def run(bench: Bench) -> Outcome:
    shape = QUICK if bench.quick else SHAPE
    few, many = (20, 20) if bench.quick else (100, 100)
    async with bench.measure("stream") as out:
        async with bench.service(
            "stream", concurrency=LESSONS, lesson_delay=0, stream=shape
        ) as svc:
            watch = await JobWatch(svc).start()
            # A first course loads what streaming a lesson imports, outside the figures.
            await bench.fake.stream(WARMUP)
            warm = await svc.generate("stream warmup.", 2)
            await watch.ended({warm["job_id"]}, within=60)
            await bench.fake.stream(shape)
            quiet = await phase(bench, svc, watch, shape, "quiet", LESSONS, 0, commits=True)
            wide = await phase(bench, svc, watch, shape, "wide", LESSONS, many)
            one = await phase(bench, svc, watch, shape, "one", 1, few)
            # The same lessons, each in one delta.
            await bench.fake.stream(
                StreamShape(shape.chars, 0, WHOLE_AFTER, 0.0, stamp=shape.stamp)
            )
            whole = await phase(bench, svc, watch, shape, "whole", LESSONS, 0)
            watch.close()
        figures(out, shape, quiet, wide, one, whole, few, many)
    return out


def figures(
    out: Outcome,
    shape: StreamShape,
    quiet: dict[str, Any],
    wide: dict[str, Any],
    one: dict[str, Any],
    whole: dict[str, Any],
    few: int,
    many: int,
) -> None:
    streamed = quiet["service_cpu_s"] / quiet["lessons"]
    at_once = whole["service_cpu_s"] / whole["lessons"]
    per_delta = (streamed - at_once) / quiet["deltas_per_lesson"]
    per_chunk = (wide["service_cpu_s"] - quiet["service_cpu_s"]) / wide["chunks_received"]
    per_chunk_one = (one["service_cpu_s"] - streamed) / max(1, one["chunks_received"])
    commits = quiet["commits"]
    out.data = {
        "method": METHOD,
        "shape": {
            "chars": shape.chars,
            "delta_chars": shape.delta_chars,
            "first_token_s": shape.first_token,
            "delta_gap_s": shape.gap,
        },
        "phases": {"quiet": quiet, "wide": wide, "one": one, "whole": whole},
        "cpu_per_chunk_per_reader_s": per_chunk,
        "cpu_per_chunk_per_reader_one_lesson_s": per_chunk_one,
        "cpu_per_streamed_lesson_s": streamed,
        "cpu_per_lesson_in_one_delta_s": at_once,
        "streaming_cpu_per_delta_s": per_delta,
    }
    targets = ((one, few, "on one lesson", 0.025), (wide, many * LESSONS, "over 10 lessons", 0.1))
    for p, readers, where, target in targets:
        lat = p["chunk_latency_s"]
        out.add(
            f"chunk latency p99, {readers:,} readers {where}",
            f"{ms(lat['p99'])} (p50 {ms(lat['p50'])}; service waited "
            f"{ms(p['service_waited_for_cpu_s'])} for its CPU)",
            f"<= {target * 1000:.0f} ms",
            lat["p99"] <= target,
        )
        if p["deltas_not_delivered"]:
            out.add(
                f"  deltas not delivered, {readers:,} readers",
                str(p["deltas_not_delivered"]),
                "0",
                False,
            )
    out.add(
        "  chunks a reader got / deltas, per lesson",
        f"{wide['chunks_per_lesson_per_reader']:.0f} / {wide['deltas_per_lesson']:.0f} "
        f"({wide['chars_per_lesson']:,.0f} chars, a delta every {shape.gap * 1000:.0f} ms)",
    )
    out.add(
        f"CPU to deliver one chunk to one reader ({many * LESSONS:,} readers)",
        f"{per_chunk * 1e6:.1f} us",
        "<= 15 us",
        per_chunk <= 15e-6,
    )
    out.add(f"  same, {few} readers on one lesson", f"{per_chunk_one * 1e6:.1f} us")
    out.add(
        f"service CPU per streamed lesson ({quiet['deltas_per_lesson']:.0f} deltas), no reader",
        f"{streamed * 1000:.1f} ms",
        "<= 40 ms",
        streamed <= 0.040,
    )
    out.add(
        "  same lesson in one delta; streaming's cost",
        f"{at_once * 1000:.1f} ms; +{(streamed - at_once) * 1000:.1f} ms "
        f"({per_delta * 1e6:.0f} us a delta)",
    )
    out.add(
        "commits writing a generating lesson, per lesson per s",
        f"{commits['max_row_writes_per_lesson_per_s']:.2f}/s (most of {quiet['lessons']})",
        "<= 2",
        commits["max_row_writes_per_lesson_per_s"] <= 2,
    )
    by = "WAL" if commits["counted_by"] == "SQLite WAL" else "transaction ids"
    out.add(
        f"  all commits per generating lesson-second ({by})",
        f"{commits['all_commits_per_lesson_second']:.2f} ({commits['commits']} commits, "
        f"{commits['lesson_seconds']:.0f} lesson-s)",
        "<= 2",
        commits["all_commits_per_lesson_second"] <= 2,
    )
