"""Clients that poll a job's /progress every few seconds and note when they saw each change."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

from coursegen_dev.bench.http import HttpClient
from coursegen_dev.bench.service import TERMINAL, Service


@dataclass(frozen=True, slots=True)
class Poll:
    """One answer: when it arrived (wall clock) and how many lessons had settled."""

    arrival: float
    settled: int
    status: str


async def poll_job(client: HttpClient, job_id: str, interval: float, offset: float) -> list[Poll]:
    """Poll every `interval` s (first after `offset` s) until the job is terminal."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(offset)
    due = loop.time()
    polls: list[Poll] = []
    try:
        while True:
            progress = await client.get_json(f"/api/jobs/{job_id}/progress")
            settled = progress["completed_lessons"] + progress["failed_lessons"]
            polls.append(Poll(time.time(), settled, progress["status"]))
            if progress["status"] in TERMINAL:
                return polls
            due += interval
            await asyncio.sleep(max(0.0, due - loop.time()))
    finally:
        await client.close()


def start_pollers(
    service: Service, job_id: str, count: int, interval: float = 2.0, seed: int = 5
) -> list[asyncio.Task[list[Poll]]]:
    """`count` pollers, their phases spread evenly at random over one interval."""
    rng = random.Random(seed)
    return [
        asyncio.create_task(poll_job(service.client(), job_id, interval, rng.uniform(0, interval)))
        for _ in range(count)
    ]


def freshness(polls: Sequence[Sequence[Poll]], changes: Sequence[float]) -> list[float]:
    """For each poller and each change k (k lessons settled at changes[k-1]): seen - changed."""
    delays = []
    for seen in polls:
        for k, changed in enumerate(sorted(changes), start=1):
            first = next((p.arrival for p in seen if p.settled >= k), None)
            if first is not None:
                delays.append(first - changed)
    return delays
