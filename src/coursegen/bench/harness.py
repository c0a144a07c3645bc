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

from coursegen.bench.fake_control import FakeProcess, StreamShape
from coursegen.bench.procs import machine_busy, own_cpu, spawned_on
from coursegen.bench.service import Service


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
    services_started: int = 0
    _service_cpu: float = 0.0

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
    ) -> AsyncIterator[Service]:
        """A fresh `coursegen serve` on its own database, with the fake's latency set.

        The fake streams lessons as `stream` says, or (None) as the test fake does.
        """
        await self.fake.delays(lesson=lesson_delay, outline=outline_delay)
        await self.fake.stream(stream)
        self.services_started += 1
        env = {
            "COURSEGEN_PROVIDER": "anthropic",
            "ANTHROPIC_API_KEY": self.fake.api_key,
            "ANTHROPIC_BASE_URL": self.fake.base_url,
            "COURSEGEN_CONCURRENCY": str(concurrency),
            "COURSEGEN_MAX_ACTIVE_JOBS": str(max_active_jobs),
            "COURSEGEN_MAX_RETRIES": "0",
            "COURSEGEN_MODEL": "claude-bench",
        }
        workdir = self.workdir / f"{self.services_started:02d}-{name}"
        service = await Service.start(workdir, env, self.service_cpus)
        profiler = self._profile(service.pid, f"{self.services_started:02d}-{name}")
        try:
            yield service
        finally:
            self._service_cpu += service.stats().cpu
            await service.stop()
            if profiler is not None:
                profiler.wait(30)

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
        service, busy = self._service_cpu, machine_busy()
        try:
            yield outcome
        finally:
            outcome.seconds = time.monotonic() - start
            outcome.client_cpu = own_cpu() - client
            outcome.fake_cpu = self.fake.stats().cpu - fake
            outcome.service_cpu = self._service_cpu - service
            ours = outcome.client_cpu + outcome.fake_cpu + outcome.service_cpu
            outcome.others_cpu = max(0.0, machine_busy() - busy - ours)
