"""`coursegen serve` as a child process, the database checks made after killing it, and
the ledger that tells a legitimate repeated model call from a duplicate.

Used by tests/test_durability.py and scripts/chaos.py, so it imports nothing from
pytest: only the standard library, httpx (a dev dependency), the dev package's
free_port, asyncpg (imported only to read a PostgreSQL database) and nothing of the
service itself. The child runs on its own free port with its output in a log file (a
pipe nobody reads could fill and block it), and every start is paired with a stop that
reaps the process.

A database is a SQLite file (a `Path`) or a `postgresql://` URL (a `str`): every
check reads either, the same way, on one consistent snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import quote

import httpx

from coursegen_dev.net import free_port

STARTUP_TIMEOUT = 30.0
# How long the database server may take to notice that a killed child's connections
# are gone (it finishes what the child had already sent, a COMMIT too, then ends them).
BACKENDS_GONE_WITHIN = 10.0
# Variables of the service and of the SDK that must come from the caller, never
# from whatever shell happens to run the tests.
_OWNED_PREFIXES = ("COURSEGEN_", "ANTHROPIC_")


class ServerFailed(RuntimeError):
    """The server did not come up, or did not go down, as asked."""


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
    # The node name the current (or last) life gave in /api/health: it marks its claims.
    node: str = ""
    _killed: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Database:
        """The database the child serves: the URL if there is one, else the file."""
        return self.db_url or self.db_path

    @property
    def application_name(self) -> str:
        """How this life's PostgreSQL sessions are named (pg_stat_activity), so that the
        end of a life can wait for the server to finish with them."""
        return f"coursegen-{os.getpid()}-{self.port}-{self.starts}"

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
                "--db", self._served_db(),
                env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip

    def _served_db(self) -> str:
        if self.db_url is None:
            return str(self.db_path)
        # asyncpg passes unknown URL parameters on as server settings.
        separator = "&" if "?" in self.db_url else "?"
        return f"{self.db_url}{separator}application_name={quote(self.application_name)}"

    async def _wait_healthy(self, deadline: float) -> bool:
        """Poll /api/health until it answers 200; False if the child died or time ran out."""
        async with httpx.AsyncClient(base_url=self.url, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    await self._reap()
                    return False
                with contextlib.suppress(httpx.TransportError):
                    response = await http.get("/api/health")
                    if response.status_code == 200:
                        self.node = str(response.json().get("node", ""))
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
        if self.db_url is not None:
            # A child killed just after sending COMMIT still commits: the database server
            # reads the socket to its end. Only once its sessions are gone is what the
            # database holds what the dead process left.
            await sessions_gone(self.db_url, self.application_name)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


# -- the database, read directly -----------------------------------------------------------

# A SQLite file, or a postgresql:// URL.
Database: TypeAlias = Path | str
Query: TypeAlias = Callable[..., Awaitable[list[dict[str, Any]]]]


def is_postgres(db: Database) -> bool:
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def _numbered(sql: str) -> str:
    """PostgreSQL's `$1, $2, ...` for SQLite's `?` placeholders."""
    count = iter(range(1, 1000))
    parts = sql.split("?")
    return parts[0] + "".join(f"${next(count)}{part}" for part in parts[1:])


@contextlib.contextmanager
def connect(db_path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection; closing it never checkpoints, so the next start sees the crash."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        yield db
    finally:
        db.close()


@contextlib.asynccontextmanager
async def snapshot(db: Database) -> AsyncIterator[Query]:
    """`query(sql, *params)` (`?` placeholders) on one consistent, read-only snapshot of
    the database, while the service may still be writing it."""
    if is_postgres(db):
        import asyncpg  # the PostgreSQL extra: only those who read PostgreSQL need it

        assert isinstance(db, str)
        conn = await asyncpg.connect(db)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):

                async def pg_query(sql: str, *params: Any) -> list[dict[str, Any]]:
                    return [dict(row) for row in await conn.fetch(_numbered(sql), *params)]

                yield pg_query
        finally:
            await conn.close()
        return
    with connect(Path(db)) as conn:
        conn.execute("BEGIN")  # one read transaction: one snapshot of the WAL

        async def sqlite_query(sql: str, *params: Any) -> list[dict[str, Any]]:
            return [dict(row) for row in conn.execute(sql, params)]

        yield sqlite_query


async def fetch(db: Database, sql: str, *params: Any) -> list[dict[str, Any]]:
    """The rows of one statement (`?` placeholders), as dicts."""
    async with snapshot(db) as query:
        return await query(sql, *params)


async def sessions_gone(
    url: str, application_name: str, within: float = BACKENDS_GONE_WITHIN
) -> None:
    """Wait until PostgreSQL has no session named `application_name` left."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(within):
            while True:
                left = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    application_name,
                )
                if not left:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise ServerFailed(
            f"PostgreSQL still had sessions of {application_name} {within:g} s after its exit"
        ) from None
    finally:
        await conn.close()


async def lesson_statuses(db: Database, job_id: str) -> dict[str, str]:
    """The job's lessons: title to content_status, in course order."""
    rows = await fetch(
        db,
        "SELECT l.title, l.content_status FROM lessons l "
        "JOIN content_generation_jobs j ON j.course_id = l.course_id "
        "WHERE j.id = ? ORDER BY l.position",
        job_id,
    )
    return {row["title"]: row["content_status"] for row in rows}


async def job_row(db: Database, job_id: str) -> dict[str, Any]:
    rows = await fetch(db, "SELECT * FROM content_generation_jobs WHERE id = ?", job_id)
    if not rows:
        raise LookupError(f"no job {job_id} in {db}")
    return rows[0]


async def leases(db: Database, job_id: str) -> dict[str, tuple[str, float]]:
    """PostgreSQL: the job's `generating` lessons, title to (the node holding the claim,
    the seconds its lease has left by the database's clock; negative once it ended)."""
    rows = await fetch(
        db,
        "SELECT l.title, l.node, "
        "extract(epoch FROM l.lease_until - clock_timestamp()) AS seconds_left "
        "FROM lessons l JOIN content_generation_jobs j ON j.course_id = l.course_id "
        "WHERE j.id = ? AND l.content_status = 'generating' ORDER BY l.position",
        job_id,
    )
    return {row["title"]: (row["node"], float(row["seconds_left"])) for row in rows}


async def counter_mismatches(db: Database) -> list[str]:
    """Every job whose counters disagree with its lessons' statuses (empty when all hold)."""
    rows = await fetch(
        db,
        "SELECT j.id, j.completed_lessons, j.failed_lessons, j.total_lessons, "
        "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
        " AND l.content_status = 'complete') AS complete, "
        "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id "
        " AND l.content_status = 'error') AS error, "
        "(SELECT count(*) FROM lessons l WHERE l.course_id = j.course_id) AS total "
        "FROM content_generation_jobs j",
    )
    return [
        f"job {r['id']}: counters {r['completed_lessons']}/{r['failed_lessons']}/"
        f"{r['total_lessons']}, lessons {r['complete']}/{r['error']}/{r['total']}"
        for r in rows
        if (r["completed_lessons"], r["failed_lessons"], r["total_lessons"])
        != (r["complete"], r["error"], r["total"])
    ]


# Rows that break what the service keeps true at every commit: (what it means, query).
_ROW_CHECKS = (
    ("lessons of no course",
     "SELECT l.id FROM lessons l "
     "WHERE NOT EXISTS (SELECT 1 FROM courses c WHERE c.id = l.course_id)"),
    ("jobs of no course",
     "SELECT j.id FROM content_generation_jobs j "
     "WHERE NOT EXISTS (SELECT 1 FROM courses c WHERE c.id = j.course_id)"),
    ("events of no job",
     "SELECT e.id FROM events e WHERE e.job_id IS NOT NULL AND NOT EXISTS "
     "(SELECT 1 FROM content_generation_jobs j WHERE j.id = e.job_id)"),
    ("courses whose lesson positions are not 1..n",
     "SELECT course_id AS id FROM lessons GROUP BY course_id HAVING count(*) <> "
     "count(DISTINCT position) OR min(position) <> 1 OR max(position) <> count(*)"),
    ("lessons generating or complete that were never claimed",
     "SELECT id FROM lessons WHERE content_status IN ('generating', 'complete') AND attempt < 1"),
    ("running jobs with no lesson left to write",
     "SELECT id FROM content_generation_jobs "
     "WHERE status = 'running' AND completed_lessons + failed_lessons >= total_lessons"),
    ("complete jobs with a lesson not complete",
     "SELECT id FROM content_generation_jobs "
     "WHERE status = 'complete' AND completed_lessons <> total_lessons"),
    ("failed jobs that are not finished or failed nothing",
     "SELECT id FROM content_generation_jobs WHERE status = 'error' "
     "AND (failed_lessons = 0 OR completed_lessons + failed_lessons <> total_lessons)"),
    ("jobs whose completed_at disagrees with their status",
     "SELECT id FROM content_generation_jobs WHERE (status = 'running') <> (completed_at IS NULL)"),
)  # fmt: skip
_PG_ROW_CHECKS = (
    # A lesson in a Message Batch has no claim: the batch is polled by every node.
    ("lessons generating under no claim and in no batch",
     "SELECT id FROM lessons WHERE content_status = 'generating' AND batch_id IS NULL "
     "AND (node IS NULL OR lease_until IS NULL)"),
    ("lessons in a batch that is not open",
     "SELECT l.id FROM lessons l WHERE l.content_status = 'generating' AND l.batch_id IS NOT "
     "NULL AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = l.batch_id AND b.status = 'open')"),
)  # fmt: skip


async def integrity(db: Database) -> str:
    """'ok' for a sound database, else what is wrong.

    SQLite: `PRAGMA integrity_check` and `PRAGMA foreign_key_check`. PostgreSQL keeps
    its own files sound (only the service's processes are killed here, never the
    database server, and its WAL makes each commit all-or-nothing), so there this
    checks what the service could break: rows that point at nothing, and the
    invariants every commit keeps (positions, claims, job statuses). On both engines
    the lesson events agree with the lessons: each lesson's last event gives its
    status, and there is one `generating` event per claim (attempt).
    """
    problems: list[str] = []
    async with snapshot(db) as query:
        if not is_postgres(db):
            verdict = [next(iter(row.values())) for row in await query("PRAGMA integrity_check")]
            if verdict != ["ok"]:
                problems.extend(str(v) for v in verdict)
            for row in await query("PRAGMA foreign_key_check"):
                problems.append(f"foreign key: {row}")
        checks = _ROW_CHECKS + (_PG_ROW_CHECKS if is_postgres(db) else ())
        for meaning, sql in checks:
            ids = [row["id"] for row in await query(sql)]
            if ids:
                problems.append(f"{meaning}: {ids}")
        problems.extend(_log_disagreements(await _lesson_history(query)))
    return "; ".join(problems) or "ok"


@dataclass
class _History:
    """A lesson as its row stands, and the statuses its events announced, in order."""

    status: str
    attempt: int
    announced: list[str] = field(default_factory=list)


async def _lesson_history(query: Query) -> dict[int, _History]:
    lessons = {
        row["id"]: _History(row["content_status"], row["attempt"])
        for row in await query("SELECT id, content_status, attempt FROM lessons")
    }
    for row in await query("SELECT data FROM events WHERE type = 'lesson' ORDER BY id"):
        data = json.loads(row["data"])
        history = lessons.get(data["lesson_id"])
        if history is not None:
            history.announced.append(data["content_status"])
    return lessons


def _log_disagreements(lessons: dict[int, _History]) -> list[str]:
    problems = []
    for lesson_id, history in sorted(lessons.items()):
        last = history.announced[-1] if history.announced else "pending"
        claims = history.announced.count("generating")
        if last != history.status or claims != history.attempt:
            problems.append(
                f"lesson {lesson_id} is {history.status} (attempt {history.attempt}) but its "
                f"events say {last} after {claims} claim(s)"
            )
    return problems


async def stored_twice(db: Database) -> list[str]:
    """Lessons whose result was stored more than once in one attempt: a second `complete`
    (or `error`) event with no claim (`generating`) or requeue (`pending`) between."""
    async with snapshot(db) as query:
        lessons = await _lesson_history(query)
    found = []
    for lesson_id, history in sorted(lessons.items()):
        attempt = results = 0
        for status in history.announced:
            if status == "generating":
                attempt, results = attempt + 1, 0
            elif status == "pending":
                results = 0
            else:
                results += 1
                if results == 2:
                    found.append(f"lesson {lesson_id}: a second result in attempt {attempt}")
    return found


async def event_ids(db: Database, job_id: str | None = None, after: int = 0) -> list[int]:
    """Ids of the logged events (of one job, if given) after `after`, in order."""
    sql = "SELECT id FROM events WHERE id > ?"
    params: tuple[Any, ...] = (after,)
    if job_id is not None:
        sql, params = sql + " AND job_id = ?", (after, job_id)
    return [row["id"] for row in await fetch(db, sql + " ORDER BY id", *params)]


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
