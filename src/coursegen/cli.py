"""The command line: `coursegen serve`, `copy`, and the terminal client's `generate`,
`list` and `export`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from coursegen.export import FORMATS
from coursegen.services import Services
from coursegen.settings import SPECS, Settings, SettingsError, SettingSpec
from coursegen.validation import LESSONS_MAX, LESSONS_MIN

# Long enough to finish a response, short enough that Ctrl-C feels immediate.
GRACEFUL_SHUTDOWN_SECONDS = 3
# Settings of a listening server only: a command run without --server serves its own
# database on a free loopback port, behind a token of its own.
_SERVE_ONLY = frozenset({"host", "port", "allowed_hosts", "allowed_origins"})
LEVELS = ("beginner", "intermediate", "advanced")
LIST_LIMIT_MAX = 200


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
    _add_settings(serve, SPECS)
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
    _add_generate(commands)
    _add_list(commands)
    _add_export(commands)
    return parser


_WHERE = (
    "It talks to the service at --server (or COURSEGEN_SERVER), sending COURSEGEN_API_TOKEN "
    "when that is set; without one it works on the local database (COURSEGEN_DB), with the "
    "same settings as `coursegen serve`, each a flag or its environment variable."
)


def _add_generate(commands: Any) -> None:
    generate = commands.add_parser(
        "generate",
        help="write a course from the terminal, with live progress",
        allow_abbrev=False,
        description="Write a course on TOPIC, showing the course's progress and one line per "
        "lesson with its status and cost, then save its Markdown into a folder. " + _WHERE
        + " Exit status: 0 every lesson written, 1 some failed (or the service did), "
        "2 bad usage, 130 interrupted (Ctrl-C cancels the job).",
    )  # fmt: skip
    generate.add_argument("topic", metavar="TOPIC", help="what the course teaches")
    generate.add_argument("--lessons", type=_lesson_count, metavar="N",
                          help=f"how many lessons ({LESSONS_MIN}-{LESSONS_MAX}; "
                          "default: the model decides)")  # fmt: skip
    generate.add_argument("--level", choices=LEVELS, help="who it is for (default: beginner)")
    generate.add_argument("--language", metavar="L", help="language to write in (default: English)")
    generate.add_argument("--out", type=Path, metavar="DIR",
                          help="folder for the Markdown (default: the course's name)")  # fmt: skip
    _add_where(generate)


def _add_list(commands: Any) -> None:
    listing = commands.add_parser(
        "list",
        help="list courses, newest first",
        allow_abbrev=False,
        description="List courses, newest first: id, lessons written, job status, cost "
        "and title. " + _WHERE,
    )
    listing.add_argument("--limit", type=_limit, default=20, metavar="N",
                         help=f"at most N courses (1-{LIST_LIMIT_MAX}; default 20)")  # fmt: skip
    listing.add_argument("--search", metavar="WORDS",
                         help="courses whose title, topic or description hold them")  # fmt: skip
    listing.add_argument("--before", metavar="CURSOR",
                         help="the next page: the cursor a previous list printed")  # fmt: skip
    _add_where(listing)


def _add_export(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="save a course as Markdown, HTML, SCORM 1.2 or Common Cartridge",
        allow_abbrev=False,
        description="Save a course as a file. " + _WHERE,
    )
    export.add_argument("course_id", type=int, metavar="ID", help="the course's id")
    export.add_argument("--format", required=True, choices=list(FORMATS),
                        help="markdown (zip), html, scorm12 (zip) or cc (.imscc)")  # fmt: skip
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="where to save it (default: a name made from the title)")  # fmt: skip
    _add_where(export)


def _add_where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", metavar="URL", default=os.environ.get("COURSEGEN_SERVER"),
                        help="a running coursegen, e.g. http://127.0.0.1:8000 "
                        "(env COURSEGEN_SERVER; its token: env COURSEGEN_API_TOKEN)")  # fmt: skip
    local = parser.add_argument_group(
        "without --server", "settings of the service run in this process on the local database"
    )
    _add_settings(local, [spec for spec in SPECS if spec.field not in _SERVE_ONLY])


def _add_settings(parser: Any, specs: Sequence[SettingSpec]) -> None:
    for spec in specs:
        if spec.flag is None:
            continue
        parser.add_argument(
            spec.flag,
            dest=spec.field,
            metavar=spec.env,
            type=_flag_parser(spec),
            help=f"{spec.help} (env {spec.env}; default: {spec.default})",
        )


def _flag_parser(spec: SettingSpec) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            return spec.parse(raw, spec.flag or spec.env)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


_lesson_count = _bounded(LESSONS_MIN, LESSONS_MAX)
_limit = _bounded(1, LIST_LIMIT_MAX)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.command == "copy":
        copy_command(args.source, args.target)
        return
    settings = _settings({spec.field: getattr(args, spec.field, None) for spec in SPECS})
    if args.command == "serve":
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        serve(settings)
        return
    sys.exit(client_command(args, settings))


def client_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run `generate`, `list` or `export`; returns the exit status."""
    from coursegen.client import commands
    from coursegen.client.remote import ClientError

    target = commands.Target(settings, args.server, os.environ.get("COURSEGEN_API_TOKEN"))
    work: Coroutine[Any, Any, int]
    if args.command == "generate":
        request = commands.GenerateRequest(args.topic, args.lessons, args.level, args.language)
        work = commands.generate(request, target, args.out)
    elif args.command == "list":
        work = commands.list_courses(
            target, limit=args.limit, search=args.search, before=args.before
        )
    else:
        work = commands.export(target, args.course_id, args.format, args.output)
    try:
        return asyncio.run(work)
    except ClientError as exc:
        print(f"coursegen {args.command}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # list and export: nothing to cancel
        return commands.EXIT_INTERRUPTED


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


def _settings(overrides: dict[str, Any]) -> Settings:
    try:
        return Settings.from_env(os.environ, overrides)
    except SettingsError as exc:
        print(f"coursegen: {exc}", file=sys.stderr)
        sys.exit(2)


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
