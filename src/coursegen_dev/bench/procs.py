"""Processes as the kernel sees them: CPU time, memory, threads and files from /proc; pinning."""

from __future__ import annotations

import contextlib
import os
import resource
from collections.abc import Iterator
from dataclasses import dataclass

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ProcStats:
    """One reading of a process: CPU seconds (user + system), RSS, threads and open files."""

    cpu: float
    rss: int
    threads: int
    fds: int

    def as_dict(self) -> dict[str, float]:
        return {
            "cpu_s": self.cpu,
            "rss_mb": self.rss / 2**20,
            "threads": self.threads,
            "fds": self.fds,
        }


def read_stats(pid: int) -> ProcStats:
    """Read /proc/<pid>/stat, status and fd; CPU has the kernel's tick resolution (10 ms)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return ProcStats(cpu, rss, threads, fds)


def run_delay(pid: int) -> float:
    """Seconds the process's main thread has spent runnable but waiting for a CPU (another
    process was running on it): /proc/<pid>/task/<pid>/schedstat, nanoseconds."""
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        return int(f.read().split()[1]) / 1e9


def tcp_sockets(pid: int, ports: dict[int, str]) -> dict[str, int]:
    """The process's TCP sockets, named by the port (local or remote) found in `ports`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    counts: dict[str, int] = {}
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[9] not in inodes:
                    continue
                local, remote = (int(fields[i].rsplit(":", 1)[1], 16) for i in (1, 2))
                name = "listening" if remote == 0 else ports.get(local, ports.get(remote, "other"))
                counts[name] = counts.get(name, 0) + 1
    return counts


def machine_busy() -> float:
    """CPU seconds all processes on this machine have used since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy.
    ticks = [int(v) for v in fields[:8]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS


def own_cpu() -> float:
    """CPU seconds this (bench) process has used, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def raise_open_files() -> int:
    """Raise the soft limit on open files to the hard one; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def split_cpus(enabled: bool) -> tuple[set[int] | None, set[int] | None]:
    """CPUs for (the service, the bench and the fake): one core apart, or no pinning."""
    cpus = sorted(os.sched_getaffinity(0))
    if not enabled or len(cpus) < 2:
        return None, None
    return {cpus[-1]}, set(cpus[:-1])


@contextlib.contextmanager
def spawned_on(cpus: set[int] | None) -> Iterator[None]:
    """Fork children inside this block on `cpus`: a child inherits the spawning thread's mask."""
    if cpus is None:
        yield
        return
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, previous)
