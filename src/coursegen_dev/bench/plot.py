"""A hand-made SVG: SSE delivery latency (and polling freshness) against the number of clients."""

from __future__ import annotations

import math
from typing import Any

from coursegen_dev.bench.harness import Outcome

WIDTH, HEIGHT = 640, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 170, 40, 60
Y_MIN, Y_MAX = 0.5, 5000.0  # milliseconds, log scale
SERIES = (  # (label, key in a phase, statistic, colour, dashed)
    ("SSE p50", "sse_latency_s", "p50", "#1f77b4", False),
    ("SSE p99", "sse_latency_s", "p99", "#d62728", False),
    ("polling p50", "poll_freshness_s", "p50", "#7f7f7f", True),
    ("polling p99", "poll_freshness_s", "p99", "#bcbd22", True),
)
TARGETS = {100: 25.0, 1000: 150.0}


def latency_svg(outcomes: list[Outcome]) -> str | None:
    """The plot, or None when no scenario measured delivery latency."""
    phases: list[dict[str, Any]] = next(
        (o.data.get("phases", []) for o in outcomes if o.name == "delivery"), []
    )
    if not phases:
        return None
    counts = [int(p["clients"]) for p in phases]
    x_min, x_max = min(counts) / 2, max(counts) * 2

    def x(n: float) -> float:
        span = math.log10(x_max) - math.log10(x_min)
        return LEFT + (math.log10(n) - math.log10(x_min)) / span * (WIDTH - LEFT - RIGHT)

    def y(value_ms: float) -> float:
        v = min(max(value_ms, Y_MIN), Y_MAX)
        span = math.log10(Y_MAX) - math.log10(Y_MIN)
        return TOP + (math.log10(Y_MAX) - math.log10(v)) / span * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{WIDTH / 2 - 60}" y="22" font-size="14" text-anchor="middle">'
        "Status delivery latency vs watching clients</text>",
    ]
    for value in (1, 10, 100, 1000):
        parts.append(_hline(y(value), f"{value} ms"))
    for n in counts:
        parts.append(
            f'<line x1="{x(n):.1f}" y1="{HEIGHT - BOTTOM}" x2="{x(n):.1f}" '
            f'y2="{HEIGHT - BOTTOM + 5}" stroke="black"/>'
            f'<text x="{x(n):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{n}</text>'
        )
    parts.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 20}" text-anchor="middle">'
        "SSE clients on one job (log scale); 100 pollers every 2 s in the same run</text>"
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="black"/>'
        f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}" '
        'stroke="black"/>'
    )
    for index, (label, key, stat, colour, dashed) in enumerate(SERIES):
        points = [(x(p["clients"]), y(p[key][stat] * 1000)) for p in phases if p[key].get(stat)]
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        parts += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"/>' for px, py in points
        ]
        ly = TOP + 10 + index * 20
        parts.append(
            f'<line x1="{WIDTH - RIGHT + 15}" y1="{ly}" x2="{WIDTH - RIGHT + 40}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{WIDTH - RIGHT + 46}" y="{ly + 4}">{label}</text>'
        )
    for n, target in TARGETS.items():
        if n in counts:
            cx, cy = x(n), y(target)
            parts.append(
                f'<path d="M{cx - 6:.1f},{cy:.1f} h12" stroke="#d62728" stroke-width="3"/>'
            )
    ly = TOP + 10 + len(SERIES) * 20
    parts.append(
        f'<path d="M{WIDTH - RIGHT + 21},{ly} h12" stroke="#d62728" stroke-width="3"/>'
        f'<text x="{WIDTH - RIGHT + 46}" y="{ly + 4}">SSE p99 target</text></svg>'
    )
    return "\n".join(parts) + "\n"


def _hline(py: float, label: str) -> str:
    return (
        f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" stroke="#ddd"/>'
        f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{label}</text>'
    )
