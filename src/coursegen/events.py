"""Committed events in memory: a window on the event log that wakes live streams.

The event log table is the source of truth. The store tells the broker of each
commit's events; the broker holds the newest of them, each with its SSE frame
encoded once, so a thousand streams read new events from memory instead of each
querying the database; a stream whose cursor is older than the window reads the
log itself (and frames what it read with `Frame.of`).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from coursegen.domain import Event, JobStatus

TERMINAL_JOB_STATUSES = frozenset(s.value for s in JobStatus if s.finished)
# Streams are woken this long after a commit, so that commits close together (a lesson
# finishing, then the next one starting) reach each client in one write, not two.
COALESCE = 0.002


@dataclass(frozen=True, slots=True)
class Frame:
    """A committed event as the streams send it."""

    id: int
    job_id: str | None
    course_id: int | None
    type: str
    data: str  # one line of JSON
    frame: bytes = field(repr=False)  # the SSE frame, encoded once for every stream
    ends_job: bool = False  # a `job` event that puts its job in a terminal status

    @classmethod
    def of(cls, event: Event) -> Frame:
        id, type, data = event.id, event.type, event.data
        frame = f"id: {id}\r\nevent: {type}\r\ndata: {data}\r\n\r\n".encode()
        ends = type == "job" and json.loads(data).get("status") in TERMINAL_JOB_STATUSES
        return cls(id, event.job_id, event.course_id, type, data, frame, ends)


def encode_data(data: dict[str, Any]) -> str:
    """JSON on one line, as an SSE `data:` field needs it."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class Subscription:
    """One stream's place at the broker: what wakes it, and when it owes a ping.

    An event of interest published at any moment is remembered until the next
    `wait`, so a stream can never sleep through one, whatever it awaited meanwhile.
    A ping is due every `ping_interval` seconds, from one timer per stream that is
    re-armed when it fires, never per event.
    """

    __slots__ = ("_broker", "_future", "_timer", "job_id", "ping_due", "ping_interval", "woken")

    def __init__(self, broker: Broker, job_id: str | None, ping_interval: float | None) -> None:
        self._broker = broker
        self.job_id = job_id
        self.ping_interval = ping_interval
        self.woken = False
        self.ping_due = False
        self._future: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if ping_interval is not None:
            self._timer = asyncio.get_running_loop().call_later(ping_interval, self._ping)

    async def wait(self) -> None:
        """Return at an event of interest (at once if one came since the last wait), when
        a ping is due, or when the broker closes."""
        if not (self.woken or self.ping_due or self._broker.closed):
            self._future = asyncio.get_running_loop().create_future()
            try:
                await self._future
            finally:
                self._future = None
        self.woken = False

    def wake(self) -> None:
        self.woken = True
        self._resolve()

    def mark(self) -> None:
        """Note an event of interest; the broker wakes the stream shortly (see COALESCE)."""
        self.woken = True

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._broker._unsubscribe(self)

    def _ping(self) -> None:
        assert self.ping_interval is not None
        self.ping_due = True
        self._resolve()
        self._timer = asyncio.get_running_loop().call_later(self.ping_interval, self._ping)

    def _resolve(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(None)


class Broker:
    """The newest committed events, in commit order, and the streams they wake.

    A stream of all jobs wakes on every commit; a stream of one job wakes only on
    that job's events, so thousands of idle streams cost nothing while others work.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._window: deque[Frame] = deque()
        # Every event with an id above the floor is in the window (if it still exists).
        self._floor = 0
        self.last_id = 0
        self._every_job: set[Subscription] = set()
        self._by_job: dict[str, set[Subscription]] = {}
        self._waking: asyncio.TimerHandle | None = None
        self.closed = False

    @property
    def subscribers(self) -> int:
        return len(self._every_job) + sum(len(subs) for subs in self._by_job.values())

    def subscribe(self, job_id: str | None, ping_interval: float | None) -> Subscription:
        """Wake on every event (job_id None) or on one job's; close it when done."""
        subscription = Subscription(self, job_id, ping_interval)
        if job_id is None:
            self._every_job.add(subscription)
        else:
            self._by_job.setdefault(job_id, set()).add(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription.job_id is None:
            self._every_job.discard(subscription)
            return
        subs = self._by_job.get(subscription.job_id)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._by_job[subscription.job_id]

    def reset(self, last_id: int) -> None:
        """Start an empty window after the newest event already in the log."""
        self._window.clear()
        self._floor = self.last_id = last_id

    def publish(self, events: Iterable[Event]) -> None:
        """Add events just committed (in commit order) and wake the streams they concern."""
        added = False
        jobs: set[str] = set()
        for event in events:
            if event.type == "course" and json.loads(event.data)["action"] == "deleted":
                self._forget_course(event.course_id)  # as the deletion did in the log
            if len(self._window) >= self._capacity:
                self._floor = self._window.popleft().id
            self._window.append(Frame.of(event))
            self.last_id = event.id
            added = True
            if event.job_id is not None:
                jobs.add(event.job_id)
        if not added:
            return
        for subscription in self._every_job:
            subscription.mark()
        for job_id in jobs:
            for subscription in self._by_job.get(job_id, ()):
                subscription.mark()
        if self._waking is None:
            self._waking = asyncio.get_running_loop().call_later(COALESCE, self._wake_marked)

    def _wake_marked(self) -> None:
        self._waking = None
        for subscription in self._every_job:
            if subscription.woken:
                subscription.wake()
        for subs in self._by_job.values():
            for subscription in subs:
                if subscription.woken:
                    subscription.wake()

    def _forget_course(self, course_id: int | None) -> None:
        kept = [e for e in self._window if e.course_id != course_id]
        self._window = deque(kept)

    def since(self, cursor: int, job_id: str | None = None) -> list[Frame] | None:
        """Events after `cursor` (of one job, if given), or None if the log must be read."""
        if cursor < self._floor:
            return None
        newer: list[Frame] = []
        for event in reversed(self._window):
            if event.id <= cursor:
                break
            if job_id is None or event.job_id == job_id:
                newer.append(event)
        newer.reverse()
        return newer

    def close(self) -> None:
        """Wake every stream for the last time: the server is stopping."""
        self.closed = True
        for subscription in list(self._every_job):
            subscription.wake()
        for subs in list(self._by_job.values()):
            for subscription in list(subs):
                subscription.wake()
