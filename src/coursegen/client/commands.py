"""`coursegen generate`, `list` and `export`: the terminal's side of the HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import sys
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

import httpx2

from coursegen.client.display import Display, choose_display, summary
from coursegen.client.local import local_service
from coursegen.client.remote import (
    EXIT_FAILED,
    RECONNECTS,
    ClientError,
    Download,
    NoEventStream,
    Remote,
    pause,
)
from coursegen.client.stored import stored_courses, stored_export
from coursegen.client.view import CourseView, dollars
from coursegen.settings import Settings

EXIT_OK = 0
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a program Ctrl-C stopped
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Target:
    """Where a command's courses are: a service's URL (with its token), or else the local
    database those settings name."""

    settings: Settings
    server: str | None = None
    token: str | None = None

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[Remote]:
        """The service: the one at `server`, or one served in this process meanwhile."""
        if self.server:
            async with Remote(self.server, self.token) as remote:
                yield remote
            return
        async with local_service(self.settings) as (url, token), Remote(url, token) as remote:
            yield remote


@dataclass(frozen=True)
class GenerateRequest:
    topic: str
    lessons: int | None = None
    level: str | None = None
    language: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"topic": self.topic}
        for name in ("lessons", "level", "language"):
            if getattr(self, name) is not None:
                body[name] = getattr(self, name)
        return body


async def generate(
    request: GenerateRequest, target: Target, out: Path | None, stdout: IO[str] = sys.stdout
) -> int:
    """Write a course, showing it live, then save its Markdown; returns the exit status."""
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl-C is answered, not raised: the job is cancelled before the command exits.
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    try:
        async with target.connect() as remote:
            return await _generate(remote, request, out, stdout, interrupted)
    finally:
        loop.remove_signal_handler(signal.SIGINT)


async def _generate(
    remote: Remote,
    request: GenerateRequest,
    out: Path | None,
    stdout: IO[str],
    interrupted: asyncio.Event,
) -> int:
    display = choose_display(stdout)
    if interrupted.is_set():  # while the local service was starting: nothing to cancel yet
        return EXIT_INTERRUPTED
    display.note(f'Writing the outline of "{request.topic}"...')
    # A Ctrl-C meanwhile waits for the answer: the course exists then, and its job can stop.
    answer = await remote.generate(request.body())
    view = CourseView.of(answer["course"])
    display.start(view)
    try:
        return await _follow(remote, view, display, out, interrupted)
    finally:
        display.stop(view)  # also when something failed: the terminal gets its cursor back


async def _follow(
    remote: Remote, view: CourseView, display: Display, out: Path | None, interrupted: asyncio.Event
) -> int:
    watcher = asyncio.create_task(watch(remote, view, display))
    stop = asyncio.create_task(interrupted.wait())
    try:
        await asyncio.wait({watcher, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    if interrupted.is_set():
        return await _cancel(remote, view, display)
    display.stop(view)
    watcher.result()  # a lost service ends the command with its reason
    if view.error_message:
        display.note(f"The job ended {view.status}: {view.error_message}")
    folder = await _save_markdown(remote, view, out)
    display.note(f"Saved the course's Markdown in {folder}/")
    return EXIT_OK if view.status == "complete" and view.failed == 0 else EXIT_FAILED


async def _cancel(remote: Remote, view: CourseView, display: Display) -> int:
    try:
        cancelled = await remote.cancel(view.job_id)
        # Its lessons as the cancel left them: those cut off are pending again.
        display.update(view, view.load(await remote.course(view.course_id)))
    except ClientError as exc:
        display.stop(view)
        display.note(f"Interrupted; cancelling job {view.job_id} failed: {exc.message}")
        return EXIT_INTERRUPTED
    display.stop(view)
    if cancelled is None:
        display.note(f"Interrupted; job {view.job_id} had already ended ({view.status}).")
    else:
        display.note(f"Interrupted: cancelled job {view.job_id}; {summary(view)}.")
    return EXIT_INTERRUPTED


async def watch(remote: Remote, view: CourseView, display: Display) -> None:
    """Follow the job's events until it ends, resuming after the last event seen when the
    connection breaks; poll the course instead where no event stream is to be had."""
    after: str | None = None
    failures = 0
    while not view.finished:
        try:
            async for event in remote.job_events(view.job_id, after):
                failures = 0
                if event.id:
                    after = event.id
                display.update(view, view.apply(event.type, event.data))
        except NoEventStream:
            await poll(remote, view, display)
            return
        except httpx2.TransportError as exc:
            reason = str(exc) or type(exc).__name__
        else:
            reason = "the stream closed before the job ended"
        if view.finished:
            return
        failures += 1
        if failures > RECONNECTS:
            raise ClientError(f"lost the service at {remote.base_url}: {reason}")
        await pause(failures)


async def poll(remote: Remote, view: CourseView, display: Display) -> None:
    while True:
        display.update(view, view.load(await remote.course(view.course_id)))
        if view.finished:
            return
        await asyncio.sleep(POLL_SECONDS)


async def _save_markdown(remote: Remote, view: CourseView, out: Path | None) -> Path:
    made = await remote.export(view.course_id, "markdown")
    folder = out or Path(_folder_name(made, view.course_id))
    await asyncio.to_thread(unpack, made.body, folder)
    return folder


def _folder_name(made: Download, course_id: int) -> str:
    name = made.filename.removesuffix(".zip").removesuffix("-markdown")
    return name or f"course-{course_id}"


def unpack(archive: bytes, folder: Path) -> None:
    """Write the zip's files into `folder`; a name that would land outside it is refused."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as package:
            members = [m for m in package.infolist() if not m.is_dir()]
            for member in members:
                parts = PurePosixPath(member.filename.replace("\\", "/")).parts
                if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]:
                    raise ClientError(f"the export holds an unsafe file name: {member.filename}")
            if folder.exists() and not folder.is_dir():
                raise ClientError(f"{folder} exists and is not a folder")
            for member in members:
                target = folder.joinpath(*PurePosixPath(member.filename.replace("\\", "/")).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(package.read(member))
    except zipfile.BadZipFile:
        raise ClientError("the Markdown export is not a zip file") from None
    except OSError as exc:
        raise ClientError(f"cannot write into {folder}: {exc}") from None


async def list_courses(
    target: Target,
    *,
    limit: int,
    search: str | None,
    before: str | None,
    stdout: IO[str] = sys.stdout,
    stderr: IO[str] = sys.stderr,
) -> int:
    if target.server:
        async with target.connect() as remote:
            page = await remote.courses(limit=limit, before=before, q=search)
    else:
        page = await stored_courses(target.settings, limit=limit, before=before, q=search)
    courses = page.get("courses", [])
    if not courses:
        stderr.write("no courses match\n" if search else "no courses yet\n")
        return EXIT_OK
    rows = [("ID", "WRITTEN", "STATUS", "COST", "TITLE")]
    rows += [_list_row(course) for course in courses]
    widths = [max(len(row[k]) for row in rows) for k in range(4)]
    for row in rows:
        cells = [
            cell.rjust(w) if k in (0, 3) else cell.ljust(w)
            for k, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        stdout.write("  ".join([*cells, row[4]]) + "\n")
    if page.get("next") is not None:
        stderr.write(f"more: coursegen list --before {page['next']}\n")
    return EXIT_OK


def _list_row(course: dict[str, Any]) -> tuple[str, str, str, str, str]:
    job = course.get("job") or {}
    statuses = course.get("lesson_statuses")
    total = course.get("lesson_count", job.get("total_lessons", 0))
    if statuses:
        written, failed = statuses.get("complete", 0), statuses.get("error", 0)
    else:
        written, failed = job.get("completed_lessons", 0), job.get("failed_lessons", 0)
    status = job.get("status", "-")
    if failed:
        status += f" ({failed} failed)"
    cost = dollars((course.get("usage") or {}).get("cost_usd"))
    return (str(course["id"]), f"{written}/{total}", status, cost, course.get("title", ""))


async def export(
    target: Target, course_id: int, format_name: str, output: Path | None,
    stdout: IO[str] = sys.stdout,
) -> int:  # fmt: skip
    if target.server:
        async with target.connect() as remote:
            made = await remote.export(course_id, format_name)
    else:
        made = await stored_export(target.settings, course_id, format_name)
    path = output or Path(made.filename or f"course-{course_id}.{format_name}")
    try:
        await asyncio.to_thread(path.write_bytes, made.body)
    except OSError as exc:
        raise ClientError(f"cannot write {path}: {exc}") from None
    stdout.write(f"wrote {path} ({len(made.body):,} bytes)\n")
    return EXIT_OK
