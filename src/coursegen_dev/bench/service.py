"""The real service as a subprocess: `coursegen serve` on a new database, calling the fake."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from coursegen_dev.bench.http import HttpClient
from coursegen_dev.bench.procs import ProcStats, read_stats, spawned_on
from coursegen_dev.bench.sse import Frame, SseStream, open_streams
from coursegen_dev.net import free_port

HOST = "127.0.0.1"
TERMINAL = frozenset({"complete", "error", "cancelled"})
_OWN_PREFIXES = ("COURSEGEN_", "ANTHROPIC_")


def _command() -> list[str]:
    script = Path(sys.executable).with_name("coursegen")
    if script.exists():
        return [str(script), "serve"]
    found = shutil.which("coursegen")
    return [found, "serve"] if found else [sys.executable, "-m", "coursegen", "serve"]


def _open_log(workdir: Path) -> tuple[Path, BinaryIO]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "service.log"
    return log, log.open("wb")


class Service:
    """One running `coursegen serve`, a keep-alive JSON client to it and stream helpers."""

    def __init__(
        self, proc: asyncio.subprocess.Process, port: int, log: Path, dsn: str | None = None
    ) -> None:
        self.proc = proc
        self.port = port
        self.log = log
        self.db = log.with_name("bench.db")  # the SQLite file (`start` puts both together)
        self.dsn = dsn  # the postgresql:// URL it serves instead, if any
        self.api = HttpClient(HOST, port)
        self.last_stats = ProcStats(0.0, 0, 0, 0)

    @classmethod
    async def start(
        cls, workdir: Path, env: dict[str, str], cpus: set[int] | None, dsn: str | None = None
    ) -> Service:
        """Start on a free port with a new SQLite database in `workdir` (or on the
        PostgreSQL database `dsn`); return once it answers."""
        port = free_port()
        log, out = _open_log(workdir)
        db = dsn or str(workdir / "bench.db")
        command = [*_command(), "--port", str(port), "--db", db]
        # Only the bench's settings: none of the caller's COURSEGEN_ or ANTHROPIC_ variables.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
        with spawned_on(cpus), out:
            proc = await asyncio.create_subprocess_exec(
                *command, env={**inherited, **env}, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        service = cls(proc, port, log, dsn)
        deadline = time.monotonic() + 30
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"coursegen serve exited: {log.read_text()[-2000:]}")
            try:
                await service.api.get_json("/api/health")
                return service
            except (OSError, asyncio.IncompleteReadError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stats(self) -> ProcStats:
        """Its numbers now; once it has exited, the last ones read."""
        if self.proc.returncode is None:
            with contextlib.suppress(OSError):
                self.last_stats = read_stats(self.proc.pid)
        return self.last_stats

    def client(self) -> HttpClient:
        """A new keep-alive connection of its own."""
        return HttpClient(HOST, self.port)

    async def generate(
        self, topic: str, lessons: int, client: HttpClient | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = await (client or self.api).post_json(
            "/api/courses/generate", {"topic": topic, "lessons": lessons}
        )
        return body

    def stream(
        self,
        path: str,
        on_frame: Callable[[Frame], None] | None = None,
        *,
        keep: bool = True,
        headers: dict[str, str] | None = None,
    ) -> SseStream:
        return SseStream(HOST, self.port, path, on_frame, keep=keep, headers=headers)

    async def open_streams(
        self, path: str, count: int, *, parallel: int = 100, first: bool = True
    ) -> list[SseStream]:
        return await open_streams(HOST, self.port, path, count, parallel=parallel, first=first)

    def log_count(self, text: str) -> int:
        """How many lines of the service's log contain `text`."""
        with self.log.open("rb") as f:
            needle = text.encode()
            return sum(1 for line in f if needle in line)

    async def kill(self) -> int:
        """SIGKILL: it dies with no cleanup at all (its last numbers are kept)."""
        self.stats()
        await self.api.close()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        return await self.proc.wait()

    async def stop(self) -> int:
        """SIGTERM, as a user's Ctrl-C would; SIGKILL if it has not exited after 10 s."""
        self.stats()
        await self.api.close()
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
        return await self.proc.wait()


class JobWatch:
    """Every job's events through one `/api/events` stream: tells when jobs end."""

    def __init__(self, service: Service) -> None:
        self.stream = service.stream("/api/events", self._frame)
        self.status: dict[str, str] = {}
        self.ended_at: dict[str, float] = {}
        self.lesson_events: list[tuple[float, dict[str, Any]]] = []
        # Arrival of the first event putting a lesson in a status: (lesson id, status).
        self.lesson_at: dict[tuple[int, str], float] = {}
        self._changed = asyncio.Event()

    async def start(self) -> JobWatch:
        await self.stream.connect()
        await self.stream.opened
        return self

    def _frame(self, frame: Frame) -> None:
        _, kind, data = frame.parsed()
        if kind == "job":
            self.status[data["job_id"]] = data["status"]
            if data["status"] in TERMINAL:
                self.ended_at.setdefault(data["job_id"], frame.arrival)
            self._changed.set()
        elif kind == "lesson":
            self.lesson_events.append((frame.arrival, data))
            self.lesson_at.setdefault((data["lesson_id"], data["content_status"]), frame.arrival)
            self._changed.set()

    async def ended(self, job_ids: set[str], within: float) -> float:
        """Wait until every job is in a terminal status; the arrival of the last such event."""
        async with asyncio.timeout(within):
            while not all(self.status.get(j) in TERMINAL for j in job_ids):
                self._changed.clear()
                await self._changed.wait()
        return max(self.ended_at[j] for j in job_ids)

    async def lessons_reached(self, lesson_ids: list[int], status: str, within: float) -> None:
        """Wait until each of these lessons has been in `status` (as events tell)."""
        async with asyncio.timeout(within):
            while not all((i, status) in self.lesson_at for i in lesson_ids):
                self._changed.clear()
                await self._changed.wait()

    def close(self) -> None:
        self.stream.close()
