"""The printed table and bench/results.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from coursegen_dev.bench import plot
from coursegen_dev.bench.harness import Outcome

_MARK = {True: "pass", False: "MISS", None: ""}


def table(outcomes: list[Outcome]) -> str:
    """One table: figure, measured, target, pass/miss."""
    rows = [("figure", "measured", "target", "")]
    for outcome in outcomes:
        rows += [(f.figure, f.measured, f.target, _MARK[f.ok]) for f in outcome.figures]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def cpu_lines(outcomes: list[Outcome], environment: dict[str, Any]) -> str:
    """Who used the CPU in each scenario: the service, the bench's clients and the fake
    (and PostgreSQL, when it is the engine)."""
    pg = environment.get("engine") == "postgresql"
    db_head = f" {'postgresql cpu s':>17}" if pg else ""
    lines = [
        f"{'scenario':<10} {'wall s':>7} {'service cpu s':>14} {'client cpu s':>13} "
        f"{'fake cpu s':>11}{db_head} {'other processes cpu s':>22}"
    ]
    for o in outcomes:
        if o.within:
            lines.append(f"{o.name:<10} (measured within the {o.within} scenario)")
            continue
        db = f" {o.db_cpu:>17.2f}" if pg else ""
        lines.append(
            f"{o.name:<10} {o.seconds:>7.1f} {o.service_cpu:>14.2f} "
            f"{o.client_cpu:>13.2f} {o.fake_cpu:>11.2f}{db} {o.others_cpu:>22.2f}"
        )
    pins = (
        f"service on CPU {environment['service_cpus']}, clients and fake"
        f"{' and PostgreSQL' if pg else ''} on CPU {environment['client_and_fake_cpus']}"
    )
    db_total = f"PostgreSQL {environment['database_cpu_seconds']:.1f} s, " if pg else ""
    lines.append(
        f"total wall {environment['wall_seconds']:.1f} s; CPU: service "
        f"{environment['service_cpu_seconds']:.1f} s, bench clients "
        f"{environment['client_cpu_seconds']:.1f} s, fake {environment['fake_cpu_seconds']:.1f} "
        f"s, {db_total}other processes {environment['other_processes_cpu_seconds']:.1f} s; {pins}"
    )
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write(outcomes: list[Outcome], environment: dict[str, Any], folder: Path) -> None:
    """Print the table, write results.json and the latency plot into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if environment.get("quick"):
        print("--quick: a smoke run with shorter jobs and fewer clients; not the issue's figures")
    if environment.get("engine") == "postgresql":
        print("engine: PostgreSQL (a throwaway server of the bench's own; a new database each)")
    print(table(outcomes))
    print()
    print(cpu_lines(outcomes, environment))
    results = {
        "environment": environment,
        "figures": [
            {
                "scenario": o.name,
                "figure": f.figure,
                "measured": f.measured,
                "target": f.target,
                "ok": f.ok,
            }
            for o in outcomes
            for f in o.figures
        ],
        "scenarios": {
            o.name: {
                "seconds": o.seconds,
                "service_cpu_seconds": o.service_cpu,
                "client_cpu_seconds": o.client_cpu,
                "fake_cpu_seconds": o.fake_cpu,
                "other_processes_cpu_seconds": o.others_cpu,
                "postgresql_cpu_seconds": o.db_cpu,
                **o.data,
            }
            for o in outcomes
        },
    }
    path = folder / "results.json"
    path.write_text(json.dumps(_clean(results), indent=2) + "\n")
    written = [str(path)]
    svg = plot.latency_svg(outcomes)
    if svg is not None:
        (folder / "sse-latency.svg").write_text(svg)
        written.append(str(folder / "sse-latency.svg"))
    print(f"wrote {', '.join(written)}")
