"""No leaks: 10,000 stream connect/disconnect cycles and 1,000 lessons; the process around them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.procs import ProcStats, tcp_sockets
from coursegen_dev.bench.scenarios import writes
from coursegen_dev.bench.service import Service
from coursegen_dev.bench.sse import SseStream

HELD = "leaks held."
PARALLEL = 50
CLIENTS = "from clients"
POOL = "to the model API (SDK pool)"


async def cycles(svc: Service, job_id: str, count: int) -> dict[str, Any]:
    """Open and drop `count` streams, alternately a job's (it sends a snapshot) and /api/events."""
    failures: list[str] = []
    todo = iter(range(count))
    started = time.monotonic()

    async def worker() -> None:
        for i in todo:
            per_job = i % 2 == 0
            stream: SseStream = svc.stream(
                f"/api/jobs/{job_id}/events" if per_job else "/api/events"
            )
            try:
                await stream.connect()
                await asyncio.wait_for(stream.first if per_job else stream.opened, 30)
            except (OSError, TimeoutError) as exc:
                failures.append(repr(exc))
            finally:
                stream.close()
            if stream.error:
                failures.append(stream.error)

    await asyncio.gather(*(worker() for _ in range(PARALLEL)))
    seconds = time.monotonic() - started
    return {
        "cycles": count,
        "seconds": seconds,
        "per_second": count / seconds,
        "failures": len(failures),
        "first_failure": failures[0] if failures else None,
    }


async def settled(
    bench: Bench, svc: Service, clients: int, within: float = 5.0
) -> tuple[ProcStats, dict[str, int]]:
    """The service's numbers and sockets once at most `clients` client sockets are left."""
    await asyncio.sleep(0.5)
    # /proc offers nothing to wait on: look ten times a second.
    for _ in range(int(within * 10)):
        if sockets(bench, svc).get(CLIENTS, 0) <= clients:
            break
        await asyncio.sleep(0.1)
    return svc.stats(), sockets(bench, svc)


def sockets(bench: Bench, svc: Service) -> dict[str, int]:
    fake_port = int(bench.fake.base_url.rsplit(":", 1)[1])
    return tcp_sockets(svc.pid, {svc.port: CLIENTS, fake_port: POOL})


async def run(bench: Bench, *, with_write: bool = False) -> list[Outcome]:
    """The leak check; with `with_write` its 1,000 lessons also give the write-path figure."""
    count = 1000 if bench.quick else 10_000
    lessons = 200 if bench.quick else 1000
    outcomes = []
    async with bench.measure("leaks") as out:
        async with bench.service(
            "leaks", concurrency=writes.CONCURRENCY, lesson_delay=writes.CALL_SECONDS
        ) as svc:
            await bench.fake.gate(HELD)
            held = await svc.generate(HELD, 1)
            await writes.load(bench, svc, 40, "leaks warmup")
            await cycles(svc, held["job_id"], 200)
            # The bench's own JSON connection stays open: one client socket is expected.
            before, sockets_before = await settled(bench, svc, 1)
            load = await writes.load(bench, svc, lessons, "leaks")
            churn = await cycles(svc, held["job_id"], count)
            after, sockets_after = await settled(bench, svc, sockets_before.get(CLIENTS, 0))
            # After the leak figures: the write path's second load, lessons in one delta.
            whole = await writes.load_whole(bench, svc, lessons) if with_write else {}
            locked, load["deadlocks_run_again"] = writes.refused(svc)
        grew = (after.rss - before.rss) / 2**20
        out.data = {
            "before": before.as_dict(),
            "after": after.as_dict(),
            "rss_growth_mb": grew,
            "cycles": churn,
            "lessons": load,
            "sockets_before": sockets_before,
            "sockets_after": sockets_after,
            "method": "after a warm-up (40 lessons, 200 cycles), the service's RSS, threads "
            "and open files from /proc before and after 1,000 lessons and 10,000 stream "
            "connect/disconnect cycles (50 at a time; even: a per-job stream, read until "
            "its snapshot; odd: /api/events, read until its headers). The asyncio task "
            "count is not exposed by the service: threads and open files stand in for it",
        }
        out.add(
            f"no leaks: threads after {count:,} cycles + {lessons:,} lessons",
            f"{before.threads} -> {after.threads}",
            "within +5",
            after.threads - before.threads <= 5,
        )
        clients_before = sockets_before.get(CLIENTS, 0)
        clients_after = sockets_after.get(CLIENTS, 0)
        out.add(
            "  client sockets before -> after",
            f"{clients_before} -> {clients_after}",
            "back",
            clients_after <= clients_before,
        )
        out.add(
            "  open files; of them SDK connections to the fake",
            f"{before.fds} -> {after.fds}; {sockets_before.get(POOL, 0)} -> "
            f"{sockets_after.get(POOL, 0)}",
        )
        out.add(
            "  RSS before -> after",
            f"{before.rss / 2**20:.1f} -> {after.rss / 2**20:.1f} MB ({grew:+.1f})",
            "<= +20 MB",
            grew <= 20,
        )
        out.add(
            "  stream cycles: rate, failures",
            f"{churn['per_second']:.0f}/s, {churn['failures']} failed",
            "0 failed",
            churn["failures"] == 0,
        )
    if with_write:
        write = Outcome("write", within="leaks")
        write.data = {
            **load,
            "locked_errors": locked,
            "method": writes.METHOD,
            "note": "measured inside the leaks scenario's service",
            "whole": whole,
        }
        writes.figures(write, load, locked, svc, whole)
        outcomes.append(write)
    outcomes.append(out)
    return outcomes
