"""Committed events in memory: a window on the event log that wakes live streams.

The event log table is the source of truth. The broker holds the newest
committed rows, each with its SSE frame encoded once, so a thousand streams
read new events from memory instead of each querying the database; a stream
whose cursor is older than the window reads the log itself.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TERMINAL_JOB_STATUSES = frozenset({"complete", "error", "cancelled"})


@dataclass(frozen=True, slots=True)
class Event:
    """One committed row of the event log."""

    id: int
    job_id: str | None
    course_id: int | None
    type: str
    data: str  # one line of JSON
    frame: bytes = field(repr=False)  # the SSE frame, encoded once for every stream
    ends_job: bool = False  # a `job` event that puts its job in a terminal status

    @classmethod
    def from_row(
        cls, id: int, job_id: str | None, course_id: int | None, type: str, data: str
    ) -> Event:
        frame = f"id: {id}\r\nevent: {type}\r\ndata: {data}\r\n\r\n".encode()
        ends = type == "job" and json.loads(data).get("status") in TERMINAL_JOB_STATUSES
        return cls(id, job_id, course_id, type, data, frame, ends)


def encode_data(data: dict[str, Any]) -> str:
    """JSON on one line, as an SSE `data:` field needs it."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


@dataclass
class _JobWait:
    """The streams of one job waiting for its next event."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    streams: int = 0


class Broker:
    """The newest committed events, in commit order, and a wake-up for their readers.

    A stream of all jobs wakes on every commit; a stream of one job wakes only on
    that job's events, so thousands of idle streams cost nothing while others work.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._window: deque[Event] = deque()
        # Every event with an id above the floor is in the window (if it still exists).
        self._floor = 0
        self.last_id = 0
        self._changed = asyncio.Event()
        self._job_waits: dict[str, _JobWait] = {}
        self.closed = False
        self.subscribers = 0

    def reset(self, last_id: int) -> None:
        """Start an empty window after the newest event already in the log."""
        self._window.clear()
        self._floor = self.last_id = last_id

    def publish(self, events: Iterable[Event]) -> None:
        """Add events just committed (in commit order) and wake the streams they concern."""
        added = False
        jobs: set[str] = set()
        for event in events:
            if len(self._window) >= self._capacity:
                self._floor = self._window.popleft().id
            self._window.append(event)
            self.last_id = event.id
            added = True
            if event.job_id is not None:
                jobs.add(event.job_id)
        if not added:
            return
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
        for job_id in jobs:
            waiting = self._job_waits.pop(job_id, None)
            if waiting is not None:
                waiting.event.set()

    def forget_course(self, course_id: int) -> None:
        """Drop a deleted course's events, as its deletion dropped them from the log."""
        kept = [e for e in self._window if e.course_id != course_id]
        self._window = deque(kept)

    def since(self, cursor: int, job_id: str | None = None) -> list[Event] | None:
        """Events after `cursor` (of one job, if given), or None if the log must be read."""
        if cursor < self._floor:
            return None
        newer: list[Event] = []
        for event in reversed(self._window):
            if event.id <= cursor:
                break
            if job_id is None or event.job_id == job_id:
                newer.append(event)
        newer.reverse()
        return newer

    async def wait(self, cursor: int, job_id: str | None = None) -> None:
        """Return once an event after `cursor` is committed (of `job_id`, if given).

        A stream of one job must have read everything up to now, with no await since:
        only that job's next event wakes it.
        """
        if job_id is None:
            while self.last_id <= cursor and not self.closed:
                await self._changed.wait()
            return
        if self.closed:
            return
        waiting = self._job_waits.setdefault(job_id, _JobWait())
        waiting.streams += 1
        try:
            await waiting.event.wait()
        finally:
            waiting.streams -= 1
            if not waiting.streams and self._job_waits.get(job_id) is waiting:
                del self._job_waits[job_id]  # a disconnected stream leaves nothing behind

    def close(self) -> None:
        """Wake every stream for the last time: the server is stopping."""
        self.closed = True
        self._changed.set()
        for waiting in self._job_waits.values():
            waiting.event.set()
        self._job_waits.clear()
