"""What every scenario shares: the fake process, the pinning, a service per scenario, results."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coursegen_dev.bench.fake_control import FakeProcess, StreamShape
from coursegen_dev.bench.procs import machine_busy, own_cpu, spawned_on
from coursegen_dev.bench.service import Service
from coursegen_dev.pgserver import PgServer


@dataclass(frozen=True, slots=True)
class Figure:
    """One line of the printed table; `ok` is None for a figure without a target."""

    figure: str
    measured: str
    target: str
    ok: bool | None


@dataclass
class Outcome:
    """What one scenario measured: table lines, every number, and the CPU it cost whom."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    client_cpu: float = 0.0
    fake_cpu: float = 0.0
    service_cpu: float = 0.0
    # CPU that other processes on the machine used meanwhile: the noise the figures carry.
    others_cpu: float = 0.0
    # Set when another scenario's service measured this one (write path inside the leak check).
    within: str | None = None
    # CPU of the PostgreSQL server (with --engine postgresql): the service's database work.
    db_cpu: float = 0.0

    def add(self, figure: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        self.figures.append(Figure(figure, measured, target, ok))


@dataclass
class Bench:
    """The run: options, the shared fake, where services get their databases and CPUs."""

    fake: FakeProcess
    workdir: Path
    quick: bool
    service_cpus: set[int] | None
    client_cpus: set[int] | None
    profile: Path | None = None
    # With --engine postgresql: the bench's own server; every service gets a new database.
    pg: PgServer | None = None
    services_started: int = 0
    _service_cpu: float = 0.0
    _profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def any_cpu(self) -> set[int] | None:
        """Every CPU (for the nodes of a cluster that are not the one measured), or None
        when nothing is pinned."""
        if self.service_cpus is None or self.client_cpus is None:
            return None
        return self.service_cpus | self.client_cpus

    def db_cpu(self) -> float:
        return self.pg.cpu() if self.pg is not None else 0.0

    async def database(self) -> str | None:
        """A new empty PostgreSQL database's DSN; None on SQLite (a new file per service)."""
        return await self.pg.create_database("bench") if self.pg is not None else None

    def env(
        self,
        *,
        concurrency: int,
        max_active_jobs: int = 100_000,
        model: str = "claude-bench",
        extra: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """A service's environment: the fake as its API, no retries, the rest as given."""
        return {
            "COURSEGEN_PROVIDER": "anthropic",
            "ANTHROPIC_API_KEY": self.fake.api_key,
            "ANTHROPIC_BASE_URL": self.fake.base_url,
            "COURSEGEN_CONCURRENCY": str(concurrency),
            "COURSEGEN_MAX_ACTIVE_JOBS": str(max_active_jobs),
            "COURSEGEN_MAX_RETRIES": "0",
            "COURSEGEN_MODEL": model,
            **(extra or {}),
        }

    async def start_node(
        self, name: str, env: dict[str, str], dsn: str | None, cpus: set[int] | None
    ) -> Service:
        """Start one `coursegen serve` (stop it with `stop_node`, which counts its CPU)."""
        self.services_started += 1
        label = f"{self.services_started:02d}-{name}"
        service = await Service.start(self.workdir / label, env, cpus, dsn)
        profiler = self._profile(service.pid, label)
        if profiler is not None:
            self._profilers.append(profiler)
        return service

    async def stop_node(self, service: Service, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL) it and count the CPU it used."""
        await (service.kill() if kill else service.stop())
        self._service_cpu += service.stats().cpu

    @contextlib.asynccontextmanager
    async def service(
        self,
        name: str,
        *,
        concurrency: int,
        lesson_delay: float,
        outline_delay: float = 0.0,
        max_active_jobs: int = 100_000,
        stream: StreamShape | None = None,
        model: str = "claude-bench",
        extra: dict[str, str] | None = None,
    ) -> AsyncIterator[Service]:
        """A fresh `coursegen serve` on its own database, with the fake's latency set.

        The fake streams lessons as `stream` says, or (None) as the test fake does. The
        service asks for `model` (the bench's own name has no price) with `extra` settings.
        """
        await self.fake.delays(lesson=lesson_delay, outline=outline_delay)
        await self.fake.stream(stream)
        env = self.env(
            concurrency=concurrency, max_active_jobs=max_active_jobs, model=model, extra=extra
        )
        service = await self.start_node(name, env, await self.database(), self.service_cpus)
        try:
            yield service
        finally:
            await self.stop_node(service)
            self.wait_profilers()

    def wait_profilers(self) -> None:
        """Wait for the py-spy recorders of the services stopped (each ends with its own)."""
        for profiler in self._profilers:
            profiler.wait(30)
        self._profilers.clear()

    def _profile(self, pid: int, name: str) -> subprocess.Popen[bytes] | None:
        """With --profile, sample the service with py-spy (collapsed stacks) until it exits."""
        if self.profile is None:
            return None
        local = Path(sys.executable).with_name("py-spy")
        spy = str(local) if local.exists() else shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.profile.mkdir(parents=True, exist_ok=True)
        command = [
            spy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(self.profile / f"{name}.txt"),
        ]
        with spawned_on(self.client_cpus):
            return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    @contextlib.asynccontextmanager
    async def measure(self, name: str) -> AsyncIterator[Outcome]:
        """Time a scenario and the CPU its clients, the fake and its services used."""
        outcome = Outcome(name)
        start, client, fake = time.monotonic(), own_cpu(), self.fake.stats().cpu
        service, busy, db = self._service_cpu, machine_busy(), self.db_cpu()
        try:
            yield outcome
        finally:
            outcome.seconds = time.monotonic() - start
            outcome.client_cpu = own_cpu() - client
            outcome.fake_cpu = self.fake.stats().cpu - fake
            outcome.service_cpu = self._service_cpu - service
            outcome.db_cpu = self.db_cpu() - db
            ours = outcome.client_cpu + outcome.fake_cpu + outcome.service_cpu + outcome.db_cpu
            outcome.others_cpu = max(0.0, machine_busy() - busy - ours)
