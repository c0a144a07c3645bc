"""A throwaway PostgreSQL server, for the tests (tests/pgserver.py) and the benchmark.

The server is Debian's binaries (`/usr/lib/postgresql/<newest>/bin`, installed by
`make postgres`) run on a unix socket only, in a temporary directory, with durability off:
nothing of it outlives the session and port 5432 (the packaged `main` cluster) is never
touched. initdb and postgres refuse to run as root, so as root they run as the
`postgres` user through runuser; as anyone else they run directly.

Each server's socket lives in its own directory, so servers (one per pytest-xdist
worker, the bench's) never collide. Any failure to start raises PgServerError with the
server's log. asyncpg is imported only to create and drop databases.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

PG_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
PORTS = (20000, 60000)
START_ATTEMPTS = 3
TIMEOUT = 30  # seconds, for initdb and for pg_ctl start/stop
# A unix socket path is at most 107 bytes on Linux (103 on macOS).
_SOCKET_PATH_MAX = 100
# Durability off, enough connections for tests that open many, and WAL kept small (it
# may live in RAM, see _make_dir).
SERVER_SETTINGS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    " -c max_wal_size=128MB"
)
# On a disk, CREATE DATABASE took ~220 ms and startup ~1.3 s even with fsync=off; on
# tmpfs ~10 ms and ~0.5 s. /dev/shm is used when it has room (Docker's default is 64 MB).
SHM = Path("/dev/shm")
SHM_MIN_FREE = 1 << 30
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class PgServerError(RuntimeError):
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
    raise PgServerError(
        f"no PostgreSQL binaries (no {PG_ROOT}/*/bin/initdb, no initdb on PATH): "
        "run `make postgres` (as root: apt-get install -y postgresql)"
    )


def _as_root() -> bool:
    return os.geteuid() == 0


def _env() -> dict[str, str]:
    # The caller's PGDATA, PGPORT, PGHOST... must not steer initdb or pg_ctl.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def _run(bindir: Path, argv: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(bindir / argv[0]), *argv[1:]]
    if _as_root():
        cmd = ["runuser", "-u", SUPERUSER, "--", *cmd]
    return subprocess.run(
        cmd,
        cwd=cwd,  # the postgres user may not enter the caller's directory
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT + 10,
        check=False,
    )


def _output(proc: subprocess.CompletedProcess[str]) -> str:
    cmd = " ".join(map(str, proc.args))
    return f"$ {cmd}\n(exit {proc.returncode})\n{proc.stdout}{proc.stderr}"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"


def _parent_dir() -> str | None:
    try:
        st = os.statvfs(SHM)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize >= SHM_MIN_FREE and os.access(SHM, os.W_OK | os.X_OK):
        return str(SHM)
    return None  # tempfile's default


def _make_dir() -> Path:
    base = Path(tempfile.mkdtemp(prefix="cg-pg-", dir=_parent_dir()))
    if len(str(base)) > _SOCKET_PATH_MAX - len("/.s.PGSQL.65535.lock"):
        base.rmdir()
        base = Path(tempfile.mkdtemp(prefix="cg-pg-", dir="/tmp"))
    if _as_root():
        try:
            shutil.chown(base, SUPERUSER, SUPERUSER)
        except (LookupError, OSError) as exc:
            shutil.rmtree(base, ignore_errors=True)
            raise PgServerError(
                f"cannot hand {base} to the {SUPERUSER!r} user ({exc}); "
                "as root the server runs as that user: apt-get install -y postgresql"
            ) from exc
    return base


@dataclass
class PgServer:
    """A running server; `stop()` ends it and removes its directory."""

    bindir: Path
    base: Path  # the temporary directory: data/, the log and the socket
    port: int
    startup_seconds: float = 0.0
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    _created: set[str] = field(default_factory=set, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    @property
    def dsn(self) -> str:
        """The DSN of the `postgres` database, as the superuser."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str) -> str:
        host = quote(str(self.base), safe="/")
        return f"postgresql://{SUPERUSER}@/{dbname}?host={host}&port={self.port}"

    @classmethod
    def start(
        cls,
        settings: str = SERVER_SETTINGS,
        spawn: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> PgServer:
        """initdb in a new temporary directory and start a server on a free port, with
        `settings` (postgres -c options) and started inside `spawn()` (e.g. CPU pinning)."""
        t0 = time.perf_counter()
        bindir = find_bindir()
        base = _make_dir()
        try:
            server = cls._init_and_start(bindir, base, settings, spawn)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise
        server.startup_seconds = time.perf_counter() - t0
        atexit.register(server.stop)  # should the session end without its teardown
        return server

    @classmethod
    def _init_and_start(
        cls,
        bindir: Path,
        base: Path,
        settings: str,
        spawn: Callable[[], AbstractContextManager[None]],
    ) -> PgServer:
        data = base / "data"
        init = _run(
            bindir,
            [
                "initdb",
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",  # the same collation on every machine
                "--no-sync",
                "--no-instructions",
            ],
            cwd=base,
        )
        if init.returncode != 0:
            raise PgServerError(f"initdb failed:\n{_output(init)}")

        failures = []
        for _ in range(START_ATTEMPTS):
            port = random.randint(*PORTS)
            if (base / f".s.PGSQL.{port}").exists():
                continue
            server = cls(bindir=bindir, base=base, port=port)
            opts = f"-k '{base}' -c listen_addresses= -p {port} {settings}"
            with spawn():
                start = _run(
                    bindir,
                    [
                        "pg_ctl",
                        "start",
                        "-D",
                        str(data),
                        "-l",
                        str(server.log),
                        "-w",
                        "-t",
                        str(TIMEOUT),
                        "-o",
                        opts,
                    ],
                    cwd=base,
                )
            if start.returncode == 0:
                return server
            failures.append(f"{_output(start)}\n--- {server.log} ---\n{_read(server.log)}")
            server._kill()  # pg_ctl may time out with a postmaster still coming up
            with contextlib.suppress(OSError):
                server.log.unlink()
        raise PgServerError(
            f"PostgreSQL did not start ({len(failures)} attempts):\n" + "\n\n".join(failures)
        )

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _kill(self) -> None:
        """Fast shutdown by signal, for when pg_ctl cannot do it."""
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
        """Fast shutdown (active sessions are cut) and remove the directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            proc = _run(
                self.bindir,
                ["pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", str(TIMEOUT)],
                cwd=self.base,
            )
            if proc.returncode != 0:
                self._kill()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

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

    async def create_database(self, prefix: str = "test") -> str:
        """A new empty database (`<prefix>_<n>`); returns its DSN."""
        import asyncpg

        name = f"{prefix}_{next(self._names)}"
        self._created.add(name)
        conn = await asyncpg.connect(self.dsn)
        try:
            # FILE_COPY: a copy of template1's files, not ~7 MB of WAL per database.
            await conn.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
        finally:
            await conn.close()
        return self.dsn_for(name)

    async def drop_database(self, dsn_or_name: str) -> None:
        """Drop a database made by create_database, cutting any connection still open."""
        name = dsn_or_name
        if "://" in name:
            name = name.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
        if name not in self._created:
            raise ValueError(f"not a database this server made: {name!r}")
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
