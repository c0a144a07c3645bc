"""Showing a course being written: a live screen on a terminal, plain lines otherwise."""

from __future__ import annotations

from typing import IO, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from coursegen.client.view import CourseView, LessonLine, dollars

BAR_WIDTH = 30  # the course's progress bar at its widest, in columns
_STYLES = {
    "pending": "dim",
    "generating": "yellow",
    "complete": "green",
    "error": "bold red",
}
_MARKS = {"pending": "·", "generating": "…", "complete": "✓", "error": "✗"}


class Display(Protocol):
    def start(self, view: CourseView) -> None: ...
    def update(self, view: CourseView, changed: list[LessonLine]) -> None: ...
    def note(self, text: str) -> None: ...
    def stop(self, view: CourseView) -> None: ...


def choose_display(stream: IO[str]) -> Display:
    """The live screen when `stream` is a terminal; one plain line per change otherwise."""
    console = Console(file=stream)
    return LiveDisplay(console) if console.is_terminal else PlainDisplay(stream)


def summary(view: CourseView) -> str:
    """The course in one line: lessons written, failed, and what it cost."""
    parts = [f"{view.completed}/{view.total} lessons written"]
    if view.failed:
        parts.append(f"{view.failed} failed")
    parts.append(f"{view.tokens:,} tokens, {dollars(view.cost_usd)}")
    return ", ".join(parts)


class PlainDisplay:
    """One line per lesson status change and per job status change: for logs and pipes."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._job_status = ""

    def start(self, view: CourseView) -> None:
        self._line(
            f'course {view.course_id} "{view.title}": {view.total} lessons, job {view.job_id}'
        )
        self._job_status = view.status
        self.update(view, view.ordered)

    def update(self, view: CourseView, changed: list[LessonLine]) -> None:
        for lesson in changed:
            self._line(_lesson_line(view, lesson))
        if view.status != self._job_status:
            self._job_status = view.status
            self._line(f"course {view.status}: {summary(view)}")

    def note(self, text: str) -> None:
        self._line(text)

    def stop(self, view: CourseView) -> None:
        self.update(view, [])

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()


def _lesson_line(view: CourseView, lesson: LessonLine) -> str:
    line = f'lesson {lesson.position}/{view.total} {lesson.status}: "{lesson.title}"'
    if lesson.status in ("complete", "error") and lesson.tokens:
        line += f" ({lesson.tokens:,} tokens, {dollars(lesson.cost_usd)})"
    if lesson.status == "error" and lesson.error:
        line += f" - {lesson.error}"
    return line


class LiveDisplay:
    """rich's Live screen: the course's bar, then one line per lesson with status and cost."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None

    def start(self, view: CourseView) -> None:
        self._live = Live(
            render(view), console=self._console, refresh_per_second=8, transient=False
        )
        self._live.start()

    def update(self, view: CourseView, changed: list[LessonLine]) -> None:
        if self._live is not None:
            self._live.update(render(view))

    def note(self, text: str) -> None:
        # One line, folded by the terminal if at all: a job id or a folder split by an
        # inserted line break would not copy and paste whole.
        self._console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stop(self, view: CourseView) -> None:
        if self._live is not None:
            self._live.update(render(view), refresh=True)
            self._live.stop()
            self._live = None


def render(view: CourseView) -> RenderableType:
    done = view.completed + view.failed
    # On a narrow terminal (80 columns is the usual default) the bar gives way, not the
    # words: the course's state stays on the line with its figures.
    bar = Table.grid(padding=(0, 1))
    bar.add_column(max_width=BAR_WIDTH)
    bar.add_column(no_wrap=True, overflow="ellipsis")
    bar.add_row(
        ProgressBar(total=max(view.total, 1), completed=done),
        Text(f"{summary(view)}  [{view.status}]"),
    )
    # Likewise a long title is cut short before a status or a cost is folded: only the
    # title column may shrink; its cells end in an ellipsis rather than wrap.
    lessons = Table.grid(padding=(0, 2))
    lessons.add_column(justify="right", no_wrap=True)
    lessons.add_column(max_width=60)
    lessons.add_column(no_wrap=True)
    lessons.add_column(justify="right", no_wrap=True)
    lessons.add_column(justify="right", no_wrap=True)
    for lesson in view.ordered:
        style = _STYLES.get(lesson.status, "")
        status = Text(f"{_MARKS.get(lesson.status, ' ')} {lesson.status}", style=style)
        used = lesson.tokens > 0
        lessons.add_row(
            str(lesson.position),
            Text(lesson.title, no_wrap=True, overflow="ellipsis"),
            status,
            f"{lesson.tokens:,} tok" if used else "",
            dollars(lesson.cost_usd) if used else "",
        )
        if lesson.status == "error" and lesson.error:
            # Under the title, wrapped there: the other columns stay aligned.
            lessons.add_row("", Text(f"↳ {lesson.error}", style="red", no_wrap=False))
    return Group(Text(view.title, style="bold"), bar, lessons)
