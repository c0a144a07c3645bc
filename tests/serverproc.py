"""`coursegen serve` as a child process, the database checks made after killing it, and
the ledger that tells a legitimate repeated model call from a duplicate.

Used by tests/test_durability.py and scripts/chaos.py, so it imports nothing from
pytest: only the standard library, httpx (a dev dependency) and nothing of the
service itself. The child runs on its own free port with its output in a log
file (a pipe nobody reads could fill and block it), and every start is paired
with a stop that reaps the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

STARTUP_TIMEOUT = 30.0
# Variables of the service and of the SDK that must come from the caller, never
# from whatever shell happens to run the tests.
_OWNED_PREFIXES = ("COURSEGEN_", "ANTHROPIC_")


class ServerFailed(RuntimeError):
    """The server did not come up, or did not go down, as asked."""


def free_port() -> int:
    """A port nobody listens on right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(
    *, api_key: str, base_url: str, model: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a server that talks to a fake Messages API, with no SDK retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWNED_PREFIXES)}
    env.update(
        ANTHROPIC_API_KEY=api_key,
        ANTHROPIC_BASE_URL=base_url,
        COURSEGEN_PROVIDER="anthropic",
        COURSEGEN_MODEL=model,
        COURSEGEN_MAX_RETRIES="0",
        COURSEGEN_LESSON_TIMEOUT="60",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


@dataclass
class ServerProcess:
    """One `coursegen serve` child on `db_path`; start, signal, stop and read its log."""

    db_path: Path
    env: dict[str, str]
    log_path: Path
    # A postgresql:// URL to serve instead of the SQLite file at db_path.
    db_url: str | None = None
    port: int = 0
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    exit_codes: list[int] = field(default_factory=list)
    _killed: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self, within: float = STARTUP_TIMEOUT) -> None:
        """Start the child on a fresh free port and return once /api/health answers."""
        if self.running:
            raise ServerFailed("the server is already running")
        deadline = time.monotonic() + within
        # A port picked free can be taken before the child binds it; then try another.
        for _ in range(3):
            self.port = free_port()
            await self._spawn()
            if await self._wait_healthy(deadline):
                return
            if time.monotonic() >= deadline or "address already in use" not in self.log_tail():
                break
        await self.stop()
        raise ServerFailed(f"coursegen serve did not come up; its output:\n{self.log_tail()}")

    async def _spawn(self) -> None:
        self.starts += 1
        self._killed = False
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} on port {self.port}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "coursegen", "serve",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--db", self.db_url or str(self.db_path),
                env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    async def _wait_healthy(self, deadline: float) -> bool:
        """Poll /api/health until it answers 200; False if the child died or time ran out."""
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    await self._reap()
                    return False
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/api/health")).status_code == 200:
                        return True
                await asyncio.sleep(0.05)
        return False

    async def kill(self) -> None:
        """SIGKILL (unless already sent) and reap: the process dies with no cleanup at all."""
        if self.running and not self._killed:
            self.send(signal.SIGKILL)
        await self._reap()

    async def terminate(self, within: float = 10.0) -> float:
        """SIGTERM and wait for the exit; the seconds it took. Raises if it took too long."""
        started = time.monotonic()
        self.send(signal.SIGTERM)
        await self.wait(within)
        return time.monotonic() - started

    async def wait(self, within: float) -> int:
        """Wait for an exit already asked for; its code. Past `within`, SIGKILL and raise."""
        try:
            await self._reap(within)
        except TimeoutError:
            await self.kill()
            raise ServerFailed(f"the server did not exit within {within:g} s") from None
        return self.exit_codes[-1]

    def send(self, signum: int) -> None:
        """Send a signal now, without waiting: to hit the exact moment an event arrived."""
        if not self.running:
            raise ServerFailed(f"cannot send signal {signum}: the server is not running")
        assert self.process is not None
        # Signal a process at most once after SIGKILL: Popen.send_signal polls first, and a
        # poll that reaps the dead child steals its status from asyncio (which reports 255).
        self._killed = self._killed or signum == signal.SIGKILL
        with contextlib.suppress(ProcessLookupError):  # it exited and is only not reaped yet
            self.process.send_signal(signum)

    async def stop(self) -> None:
        """Make sure the child is gone and reaped (for `finally` blocks)."""
        await self.kill()

    async def _reap(self, within: float | None = None) -> None:
        if self.process is None:
            return
        async with asyncio.timeout(within):
            code = await self.process.wait()
        self.exit_codes.append(code)
        self.process = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


# -- the database, read directly -----------------------------------------------------------


@contextlib.contextmanager
def connect(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection; closing it never checkpoints, so the next start sees the crash."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        yield db
    finally:
        db.close()


def lesson_statuses(db_path: Path, job_id: str) -> dict[str, str]:
    """The job's lessons: title to content_status, in course order."""
    with connect(db_path) as db:
        rows = db.execute(
            "SELECT l.title, l.content_status FROM lessons l "
            "JOIN content_generation_jobs j ON j.course_id = l.course_id "
            "WHERE j.id = ? ORDER BY l.position",
            (job_id,),
        ).fetchall()
    return {row["title"]: row["content_status"] for row in rows}


def job_row(db_path: Path, job_id: str) -> dict[str, Any]:
    with connect(db_path) as db:
        row = db.execute("SELECT * FROM content_generation_jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        raise LookupError(f"no job {job_id} in {db_path}")
    return dict(row)


def counter_mismatches(db_path: Path) -> list[str]:
    """Every job whose counters disagree with its lessons' statuses (empty when all hold)."""
    with connect(db_path) as db:
        rows = db.execute(
            "SELECT j.id, j.completed_lessons, j.failed_lessons, j.total_lessons, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
            " AND l.content_status = 'complete') AS complete, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
            " AND l.content_status = 'error') AS error, "
            "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id) AS total "
            "FROM content_generation_jobs j"
        ).fetchall()
    return [
        f"job {r['id']}: counters {r['completed_lessons']}/{r['failed_lessons']}/"
        f"{r['total_lessons']}, lessons {r['complete']}/{r['error']}/{r['total']}"
        for r in rows
        if (r["completed_lessons"], r["failed_lessons"], r["total_lessons"])
        != (r["complete"], r["error"], r["total"])
    ]


def integrity(db_path: Path) -> str:
    """`PRAGMA integrity_check`: 'ok' for a sound file."""
    with connect(db_path) as db:
        return "; ".join(row[0] for row in db.execute("PRAGMA integrity_check"))


def event_ids(db_path: Path, job_id: str | None = None, after: int = 0) -> list[int]:
    """Ids of the logged events (of one job, if given) after `after`, in order."""
    sql = "SELECT id FROM events WHERE id > ?"
    params: tuple[Any, ...] = (after,)
    if job_id is not None:
        sql, params = sql + " AND job_id = ?", (after, job_id)
    with connect(db_path) as db:
        return [row[0] for row in db.execute(sql + " ORDER BY id", params)]


# -- the ledger of model calls --------------------------------------------------------------


@dataclass
class ServerRun:
    """One life of the server: its lesson calls per title, and the lesson statuses it left.

    `left` is read from the database once the process is gone (right after a kill -9,
    or after its exit on SIGTERM), or at the end for the last run.
    """

    calls: Counter[str]
    left: dict[str, str]

    def in_flight(self) -> set[str]:
        """Lessons this run called but did not complete: the ones a restart must call again."""
        return {t for t, n in self.calls.items() if n and self.left.get(t) != "complete"}


def duplicate_calls(runs: Sequence[ServerRun]) -> dict[str, int]:
    """Per lesson, the calls beyond one plus one per run that had it in flight when it died.

    So a lesson complete before a kill is never called again, and one that was in
    flight is called again exactly once; anything more is a duplicate.
    """
    titles = set().union(*(run.left for run in runs), *(run.calls for run in runs))
    duplicates = {}
    for title in sorted(titles):
        allowed = 1 + sum(title in run.in_flight() for run in runs)
        made = sum(run.calls[title] for run in runs)
        if made > allowed:
            duplicates[title] = made - allowed
    return duplicates
