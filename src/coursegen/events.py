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
    frame: bytes = field(repr=False)

    @classmethod
    def from_row(
        cls, id: int, job_id: str | None, course_id: int | None, type: str, data: str
    ) -> Event:
        frame = f"id: {id}\r\nevent: {type}\r\ndata: {data}\r\n\r\n".encode()
        return cls(id, job_id, course_id, type, data, frame)

    @property
    def ends_job(self) -> bool:
        """True for a `job` event that puts its job in a terminal status."""
        if self.type != "job":
            return False
        status: Any = json.loads(self.data).get("status")
        return status in TERMINAL_JOB_STATUSES


def encode_data(data: dict[str, Any]) -> str:
    """JSON on one line, as an SSE `data:` field needs it."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


class Broker:
    """The newest committed events, in commit order, and a wake-up for their readers."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._window: deque[Event] = deque()
        # Every event with an id above the floor is in the window (if it still exists).
        self._floor = 0
        self.last_id = 0
        self._changed = asyncio.Event()
        self.closed = False
        self.subscribers = 0

    def reset(self, last_id: int) -> None:
        """Start an empty window after the newest event already in the log."""
        self._window.clear()
        self._floor = self.last_id = last_id

    def publish(self, events: Iterable[Event]) -> None:
        """Add events just committed (in commit order) and wake every waiting stream."""
        added = False
        for event in events:
            if len(self._window) >= self._capacity:
                self._floor = self._window.popleft().id
            self._window.append(event)
            self.last_id = event.id
            added = True
        if added:
            self._wake()

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

    async def wait(self, cursor: int) -> None:
        """Return once an event newer than `cursor` is committed, or the broker closes."""
        while self.last_id <= cursor and not self.closed:
            await self._changed.wait()

    def close(self) -> None:
        """Wake every stream for the last time: the server is stopping."""
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
