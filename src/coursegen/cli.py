"""The command line: `coursegen serve`, `coursegen copy` and `coursegen export`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from coursegen.export import FORMATS
from coursegen.services import Services
from coursegen.settings import SPECS, Settings, SettingsError, SettingSpec

# Long enough to finish a response, short enough that Ctrl-C feels immediate.
GRACEFUL_SHUTDOWN_SECONDS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coursegen", description="Self-hosted course generator written by Claude."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the web service",
        description="Run the web service. Every flag can also be set by its environment "
        "variable; a flag wins. ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL are read by the "
        "Anthropic SDK itself.",
    )
    copy = commands.add_parser(
        "copy",
        help="move a SQLite database into an empty PostgreSQL database",
        description="Copy every course, lesson, job, event and idempotency key, "
        "with their ids, from a SQLite file into an empty PostgreSQL database. A second run "
        "refuses to overwrite.",
    )
    copy.add_argument("--from", dest="source", required=True, metavar="FILE",
                      help="the SQLite database, e.g. coursegen.db")  # fmt: skip
    copy.add_argument("--to", dest="target", required=True, metavar="URL",
                      help="the PostgreSQL database, postgresql://...")  # fmt: skip
    export = commands.add_parser(
        "export",
        help="save a course as Markdown, HTML, SCORM 1.2 or Common Cartridge",
        description="Save a course as a file: from the server named by --server or "
        "COURSEGEN_SERVER (with COURSEGEN_API_TOKEN when it needs one), or else from the "
        "local database (COURSEGEN_DB).",
    )
    export.add_argument("course_id", type=int, metavar="ID", help="the course's id")
    export.add_argument("--format", required=True, choices=list(FORMATS),
                        help="markdown (zip), html, scorm12 (zip) or cc (.imscc)")  # fmt: skip
    export.add_argument("-o", "--output", metavar="FILE",
                        help="where to save it (default: a name made from the title)")  # fmt: skip
    export.add_argument("--server", metavar="URL", default=os.environ.get("COURSEGEN_SERVER"),
                        help="a running coursegen, e.g. http://127.0.0.1:8000")  # fmt: skip
    for spec in SPECS:
        if spec.flag is None:
            continue
        serve.add_argument(
            spec.flag,
            dest=spec.field,
            metavar=spec.env,
            type=_flag_parser(spec),
            help=f"{spec.help} (env {spec.env}; default: {spec.default})",
        )
    return parser


def _flag_parser(spec: SettingSpec) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return spec.parse(raw, spec.flag or spec.env)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "copy":
        copy_command(args.source, args.target)
        return
    if args.command == "export":
        export_command(args)
        return
    settings = _settings({spec.field: getattr(args, spec.field, None) for spec in SPECS})
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    serve(settings)


def copy_command(source: str, target: str) -> None:
    from coursegen.dbcopy import CopyError, copy_database

    if not target.startswith(("postgresql://", "postgres://")):
        sys.exit("coursegen copy: --to must be a postgresql:// URL")
    try:
        copied = asyncio.run(copy_database(Path(source), target))
    except CopyError as exc:
        sys.exit(f"coursegen copy: {exc}")
    except (OSError, ImportError) as exc:
        sys.exit(f"coursegen copy: cannot reach the PostgreSQL database: {exc}")
    counts = ", ".join(f"{n} {table}" for table, n in copied.counts.items())
    print(f"coursegen copy: copied {counts}")


def export_command(args: argparse.Namespace) -> None:
    from coursegen.exporting import ExportFailed, fetch_export, local_export

    try:
        if args.server:
            made = fetch_export(args.server, os.environ.get("COURSEGEN_API_TOKEN"),
                                args.course_id, args.format)  # fmt: skip
        else:
            made = asyncio.run(local_export(_settings({}), args.course_id, args.format))
    except ExportFailed as exc:
        sys.exit(f"coursegen export: {exc}")
    target = Path(args.output or made.filename)
    target.write_bytes(made.body)
    print(f"coursegen export: wrote {target} ({len(made.body):,} bytes)")


def _settings(overrides: dict[str, Any]) -> Settings:
    try:
        return Settings.from_env(os.environ, overrides)
    except SettingsError as exc:
        sys.exit(f"coursegen: {exc}")


class _Server(uvicorn.Server):
    """uvicorn that tells the job runner at the first signal, not after the drain.

    uvicorn waits for open connections before it runs the lifespan's shutdown; lesson
    calls started in that time would only be cut off, paid for and made again.
    """

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        services: Services | None = getattr(self.app.state, "services", None)
        if services is not None:
            services.runner.drain()


def serve(settings: Settings) -> None:
    from coursegen.app import create_app

    app = create_app(settings)
    # Thousands of open streams are hundreds of thousands of long-lived objects, and
    # the default thresholds made the collector walk them all every few hundred
    # events: 100-140 ms pauses, the whole p99 of delivery to 1,000 clients (185 ms;
    # 57 ms with this). Frozen: what exists now (code, modules) is never walked again.
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_level="info",
        lifespan="on",
    )
    print(f"coursegen: serving on http://{settings.host}:{settings.port}/", flush=True)
    _Server(config, app).run()
