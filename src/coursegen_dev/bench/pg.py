"""The bench's own throwaway PostgreSQL server, a fresh database per service, and its CPU.

The few lines of tests/pgserver.py that start a server, kept here so that the bench
runs from an installed package too (tests/ is not one, and imports pytest): Debian's
binaries (`/usr/lib/postgresql/<newest>/bin`, `make postgres`) on a unix socket only,
in a temporary directory (on /dev/shm when it has room), durability off. initdb and
postgres refuse to run as root, so as root they run as the `postgres` user through
runuser. The server is started on the CPUs given (the clients' and the fake's: like
the fake, it is what the service talks to, not the service) and with
`track_commit_timestamp` on, so that the bench can read when each event committed.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from coursegen_dev.bench.procs import CLOCK_TICKS, spawned_on

if TYPE_CHECKING:
    import asyncpg

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
TIMEOUT = 30
# As tests/pgserver.py, plus the commit time of every transaction (pg_xact_commit_timestamp):
# the moment a commit is made, which the cross-node delivery figure measures from.
SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    " -c max_wal_size=256MB -c track_commit_timestamp=on"
)
SHM = Path("/dev/shm")
SHM_MIN_FREE = 1 << 30


class PgError(RuntimeError):
    """The server could not be started, or a database not created."""


def find_bindir() -> Path:
    """The newest `/usr/lib/postgresql/<major>/bin` with initdb, else initdb on PATH."""
    found = []
    for initdb in PG_ROOT.glob("*/bin/initdb"):
        with contextlib.suppress(ValueError):
            found.append((float(initdb.parent.parent.name), initdb.parent))
    if found:
        return max(found)[1]
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise PgError(
        f"--engine postgresql needs PostgreSQL's binaries (no {PG_ROOT}/*/bin/initdb, no "
        "initdb on PATH): `make postgres`, or as root `apt-get install -y postgresql`"
    )


def _run(bindir: Path, argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(bindir / argv[0]), *argv[1:]]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
    return subprocess.run(
        cmd,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 10,
        check=False,
    )


def _make_dir() -> Path:
    parent = None
    with contextlib.suppress(OSError):
        st = os.statvfs(SHM)
        if st.f_bavail * st.f_frsize >= SHM_MIN_FREE and os.access(SHM, os.W_OK | os.X_OK):
            parent = str(SHM)
    base = Path(tempfile.mkdtemp(prefix="cg-bench-pg-", dir=parent))
    if os.geteuid() == 0:
        try:
            shutil.chown(base, SUPERUSER, SUPERUSER)
        except (LookupError, OSError) as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise PgError(f"cannot hand {base} to the {SUPERUSER!r} user: {exc}") from exc
    return base


@dataclass
class PgServer:
    """A running server; `stop()` ends it and removes its directory."""

    bindir: Path
    base: Path
    port: int
    startup_seconds: float = 0.0
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def dsn_for(self, dbname: str) -> str:
        host = quote(str(self.base), safe="/")
        return f"postgresql://{SUPERUSER}@/{dbname}?host={host}&port={self.port}"

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    @classmethod
    def start(cls, cpus: set[int] | None) -> PgServer:
        """initdb in a new temporary directory and start a server on `cpus`."""
        began = time.perf_counter()
        bindir = find_bindir()
        base = _make_dir()
        try:
            init = _run(
                bindir,
                ["initdb", "-D", str(base / "data"), "-U", SUPERUSER, "-A", "trust", "-E",
                 "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
                cwd=base,
            )  # fmt: skip
            if init.returncode != 0:
                raise PgError(f"initdb failed:\n{init.stdout}{init.stderr}")
            for _ in range(3):
                server = cls(bindir, base, random.randint(20000, 60000))
                options = f"-k '{base}' -c listen_addresses= -p {server.port} {SETTINGS}"
                with spawned_on(cpus):
                    started = _run(
                        bindir,
                        ["pg_ctl", "start", "-D", str(server.data), "-l", str(server.log),
                         "-w", "-t", str(TIMEOUT), "-o", options],
                        cwd=base,
                    )  # fmt: skip
                if started.returncode == 0:
                    server.startup_seconds = time.perf_counter() - began
                    atexit.register(server.stop)  # should the run end without stopping it
                    return server
                server._kill()
            log = server.log.read_text(errors="replace") if server.log.exists() else ""
            raise PgError(f"PostgreSQL did not start:\n{started.stderr}\n{log[-2000:]}")
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def cpu(self) -> float:
        """CPU seconds the server has used: the postmaster, the children it has reaped (its
        cutime and cstime: backends that ended) and the ones running now."""
        pid = self.postmaster_pid()
        if pid is None:
            return 0.0
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # After the name: state, ppid, ...; utime, stime, cutime, cstime are 11..14.
            if int(entry) == pid:
                total += sum(int(v) for v in fields[11:15])
            elif int(fields[1]) == pid:
                total += int(fields[11]) + int(fields[12])
        return total / CLOCK_TICKS

    def _kill(self) -> None:
        pid = self.postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                os.kill(pid, 0)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Fast shutdown and remove the directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            stopped = _run(
                self.bindir,
                ["pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", str(TIMEOUT)],
                cwd=self.base,
            )
            if stopped.returncode != 0:
                self._kill()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    async def create_database(self) -> str:
        """A new empty database; its DSN."""
        import asyncpg

        name = f"bench_{next(self._names)}"
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        finally:
            await conn.close()
        return self.dsn_for(name)


async def connect(dsn: str) -> asyncpg.Connection:
    """An asyncpg connection (imported here: the SQLite bench does not need asyncpg)."""
    import asyncpg

    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    return conn


async def write_transactions(conn: asyncpg.Connection) -> int:
    """The server's next transaction id: it grows by one for each transaction that writes
    (a reading one is given none), whatever the database and connection."""
    value: int = await conn.fetchval("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
    return value
