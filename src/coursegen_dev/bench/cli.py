"""`python -m coursegen_dev.bench`: run the scenarios, print one table, write results and a plot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from coursegen_dev.bench import report
from coursegen_dev.bench.fake_control import FakeProcess
from coursegen_dev.bench.harness import Bench, Outcome
from coursegen_dev.bench.pg import SETTINGS as PG_SETTINGS
from coursegen_dev.bench.pg import start_server
from coursegen_dev.bench.procs import machine_busy, own_cpu, raise_open_files, split_cpus
from coursegen_dev.bench.scenarios import (
    cluster,
    cost,
    delivery,
    generate,
    idle,
    leaks,
    parallel,
    prioritise,
    spend,
    streaming,
    writes,
)
from coursegen_dev.pgserver import PgServer, PgServerError

Scenario = Callable[[Bench], Awaitable[list[Outcome]]]
DID_NOT_RUN = "did not complete"


def _one(run: Callable[[Bench], Awaitable[Outcome]]) -> Scenario:
    async def scenario(bench: Bench) -> list[Outcome]:
        return [await run(bench)]

    return scenario


SCENARIOS: dict[str, Scenario] = {
    "generate": _one(generate.run),
    "parallel": _one(parallel.run),
    "delivery": _one(delivery.run),
    "cost": _one(cost.run),
    "idle": _one(idle.run),
    "write": _one(writes.run),
    "leaks": leaks.run,
    "stream": _one(streaming.run),
    "prioritise": _one(prioritise.run),
    "spend": _one(spend.run),
}
# Several nodes on one database: PostgreSQL only (SPEC section 13).
CLUSTER: dict[str, Scenario] = {
    "crossnode": _one(cluster.cross_node),
    "takeover": _one(cluster.takeover),
    "rolling": _one(cluster.rolling_restart),
}
ENGINES = ("sqlite", "postgresql")


async def _write_and_leaks(bench: Bench) -> list[Outcome]:
    return await leaks.run(bench, with_write=True)


def plan(chosen: list[str]) -> list[tuple[str, Scenario]]:
    """The scenarios to run, in order; write and leaks share one service when both run."""
    every = {**SCENARIOS, **CLUSTER}
    if "write" in chosen and "leaks" in chosen:
        # The leak check's 1,000 lessons are the write-path load: one service does both.
        return [(n, _write_and_leaks if n == "leaks" else every[n]) for n in chosen if n != "write"]
    return [(n, every[n]) for n in chosen]


def available(engine: str) -> list[str]:
    """The scenarios an engine runs, in order (a cluster needs PostgreSQL)."""
    return [*SCENARIOS, *CLUSTER] if engine == "postgresql" else list(SCENARIOS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m coursegen_dev.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~30 s)")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="sqlite",
        help="the database every service runs on; postgresql: a throwaway server of the "
        "bench's own, a new database per service, and the cluster scenarios",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated scenarios, of: {', '.join(SCENARIOS)} "
        f"(and with --engine postgresql: {', '.join(CLUSTER)})",
    )
    parser.add_argument("--out", type=Path, default=Path("bench"), help="folder for the results")
    parser.add_argument("--no-pin", action="store_true", help="do not pin service and clients")
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs")
    parser.add_argument(
        "--profile", type=Path, help="record each service with py-spy into this folder"
    )
    return parser


async def run(args: argparse.Namespace) -> int:
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or available(args.engine)
    unknown = [s for s in chosen if s not in available(args.engine)]
    if unknown:
        needs = " (they need --engine postgresql)" if set(unknown) <= set(CLUSTER) else ""
        print(f"unknown scenario(s): {', '.join(unknown)}{needs}", file=sys.stderr)
        return 2
    started, cpu, busy = time.monotonic(), own_cpu(), machine_busy()
    load_before = os.getloadavg()
    open_files = raise_open_files()
    service_cpus, client_cpus = split_cpus(not args.no_pin)
    if client_cpus is not None:
        os.sched_setaffinity(0, client_cpus)
    pg: PgServer | None = None
    if args.engine == "postgresql":
        # Like the fake, it is what the service talks to: it runs beside the clients.
        try:
            pg = start_server(client_cpus)
        except PgServerError as exc:
            print(f"[bench] {exc}", file=sys.stderr)
            return 2
    workdir = Path(tempfile.mkdtemp(prefix="coursegen-bench-"))
    try:
        fake = await FakeProcess.start(client_cpus)
    except BaseException:
        if pg is not None:
            pg.stop()
        raise
    bench = Bench(fake, workdir, args.quick, service_cpus, client_cpus, args.profile, pg)
    outcomes: list[Outcome] = []
    db_cpu = bench.db_cpu()
    try:
        for name, scenario in plan(chosen):
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                outcomes += await scenario(bench)
            except Exception as exc:
                traceback.print_exc()
                failed = Outcome(name)
                failed.add(
                    f"{name}: {DID_NOT_RUN}", f"{type(exc).__name__}: {exc}"[:60], "runs", False
                )
                outcomes.append(failed)
        fake_cpu = fake.stats().cpu
        db_cpu = bench.db_cpu() - db_cpu
    finally:
        await fake.stop()
        if pg is not None:
            if args.keep:  # its data goes with the server; its log stays with the services'
                with contextlib.suppress(OSError):
                    shutil.copy(pg.log, workdir / "postgresql.log")
            pg.stop()
        if args.keep:
            print(f"[bench] databases and service logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    environment = _environment(open_files, service_cpus, client_cpus, args)
    if pg is not None:
        environment["postgresql"] = {
            "bindir": str(pg.bindir),
            "settings": PG_SETTINGS,
            "startup_seconds": pg.startup_seconds,
        }
    client_cpu = own_cpu() - cpu
    service_cpu = sum(o.service_cpu for o in outcomes)
    ours = client_cpu + fake_cpu + service_cpu + db_cpu
    environment.update(
        wall_seconds=time.monotonic() - started,
        client_cpu_seconds=client_cpu,
        fake_cpu_seconds=fake_cpu,
        service_cpu_seconds=service_cpu,
        database_cpu_seconds=db_cpu,
        other_processes_cpu_seconds=machine_busy() - busy - ours,
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
    )
    report.write(outcomes, environment, args.out)
    # Misses are findings, not failures; a scenario that could not run is a failure.
    return 1 if any(f.figure.endswith(DID_NOT_RUN) for o in outcomes for f in o.figures) else 0


def _environment(
    open_files: int, service: set[int] | None, clients: set[int] | None, args: Any
) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "open_files_limit": open_files,
        "service_cpus": sorted(service) if service else "unpinned",
        "client_and_fake_cpus": sorted(clients) if clients else "unpinned",
        "engine": args.engine,
        "quick": args.quick,
        "workdir_kept": args.keep,
    }


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(asyncio.run(run(args)))
