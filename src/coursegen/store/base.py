"""What the runner, the API and the streams need of a database, whatever its engine."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from coursegen.domain import (
    DEFAULT_OPTIONS,
    ClaimedLesson,
    ClaimedQuiz,
    Course,
    CourseOptions,
    CourseOutline,
    CoursePage,
    Event,
    JobSnapshot,
    JobStatus,
    Lesson,
    LessonStatus,
    LessonSummary,
    ModelCall,
    Outline,
    Progress,
    QuizQuestion,
    QuizStatus,
    Usage,
    Version,
)

# Events read from the log at once, at most.
EVENT_PAGE = 500

# Told of each transaction's events once it has committed, in commit order.
OnCommit = Callable[[Sequence[Event]], None]


class Row(Protocol):
    """A database row by column name: sqlite3's, asyncpg's, or a dict."""

    def __getitem__(self, key: str) -> Any: ...


JOB_FIELDS = (
    "id", "course_id", "status", "total_lessons", "completed_lessons", "failed_lessons",
    "error_message", "started_at", "completed_at",
)  # fmt: skip


# The sums of `model_calls` rows as a usage (see `usage_of`).
USAGE_SUMS = (
    "coalesce(sum(input_tokens), 0) AS input_tokens, "
    "coalesce(sum(output_tokens), 0) AS output_tokens, "
    "coalesce(sum(cache_creation_input_tokens), 0) AS cache_creation_input_tokens, "
    "coalesce(sum(cache_read_input_tokens), 0) AS cache_read_input_tokens, "
    # One call to a model without a price makes the total unknown, not too low.
    "CASE WHEN count(*) = count(cost_usd) THEN coalesce(sum(cost_usd), 0) END AS cost_usd"
)


def usage_of(row: Row | None) -> Usage:
    """A row of USAGE_SUMS as a usage (PostgreSQL sums integers as numerics)."""
    if row is None:
        return Usage()
    cost = row["cost_usd"]
    return Usage(
        int(row["input_tokens"]),
        int(row["output_tokens"]),
        int(row["cache_creation_input_tokens"]),
        int(row["cache_read_input_tokens"]),
        None if cost is None else float(cost),
    )


def progress_of(row: Row, usage: Usage | None = None) -> Progress:
    """A job row (JOB_COLUMNS) as its progress."""
    return Progress(
        job_id=row["id"],
        course_id=row["course_id"],
        status=JobStatus(row["status"]),
        total_lessons=row["total_lessons"],
        completed_lessons=row["completed_lessons"],
        failed_lessons=row["failed_lessons"],
        error_message=row["error_message"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        usage=usage or Usage(),
    )


def summary_of(row: Row, usage: Usage | None = None) -> LessonSummary:
    return LessonSummary(
        id=row["id"],
        position=row["position"],
        title=row["title"],
        description=row["description"],
        content_status=LessonStatus(row["content_status"]),
        content_error=row["content_error"],
        usage=usage,
        quiz_status=QuizStatus(row["quiz_status"]),
    )


def job_after(
    job: Row,
    total: int,
    completed: int,
    failed: int,
    *,
    reopen: bool,
    now: str,
    busy: bool = False,
) -> tuple[dict[str, Any], bool, bool]:
    """The job row once its counters follow its lessons' statuses, and its status them.

    Returns the new row and whether its counters and whether its status changed. The
    same rule on every engine: the counters always equal the lessons' statuses, and a
    job with quizzes still to write (`busy`) is not finished.
    """
    new = {key: job[key] for key in JOB_FIELDS}
    new.update(total_lessons=total, completed_lessons=completed, failed_lessons=failed)
    if reopen and job["status"] != JobStatus.RUNNING:
        new.update(status=JobStatus.RUNNING.value, completed_at=None, error_message=None)
    # A job reopened with nothing left to write (a hand edit of its one failed lesson)
    # ends at once: no driver would ever finish it.
    if new["status"] == JobStatus.RUNNING and completed + failed == total and not busy:
        new.update(
            status=(JobStatus.ERROR if failed else JobStatus.COMPLETE).value,
            completed_at=now,
            # A reason given while it ran (a spending limit) says more than a count.
            error_message=(new["error_message"] or f"{failed} of {total} lessons failed")
            if failed
            else None,
        )
    counters_changed = any(
        new[k] != job[k] for k in ("total_lessons", "completed_lessons", "failed_lessons")
    )
    return new, counters_changed, new["status"] != job["status"]


class Store(Protocol):
    """Courses, lessons, jobs and the event log. Every state change commits together
    with the events that describe it, then `on_commit` is told of them."""

    # Whether other processes (nodes) write the database too.
    shared: bool

    async def close(self) -> None: ...

    # -- generate
    async def create_course(
        self,
        topic: str,
        outline: Outline,
        *,
        mode: str = "stream",
        options: CourseOptions = DEFAULT_OPTIONS,
        outline_call: ModelCall | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> tuple[Course, bool]: ...

    # -- the runner's transitions
    async def claim_next_lesson(self, job_id: str) -> ClaimedLesson | None: ...
    async def save_drafts(
        self, drafts: list[tuple[int, int, str]], calls: list[ModelCall] | None = None
    ) -> None: ...
    async def finish_lesson(
        self,
        job_id: str,
        lesson_id: int,
        attempt: int,
        *,
        content: str | None = None,
        error: str | None = None,
        calls: list[ModelCall] | None = None,
        model: str | None = None,
        stop_reason: str | None = None,
        duration_ms: int | None = None,
    ) -> bool: ...
    async def requeue_lesson(
        self, job_id: str, lesson_id: int, attempt: int, calls: list[ModelCall]
    ) -> None: ...
    async def stop_at_limit(
        self, job_id: str, claimed: tuple[int, int] | None, message: str
    ) -> None: ...
    async def fail_job(self, job_id: str, message: str) -> None: ...
    async def requeue_in_flight(self) -> list[str]: ...
    async def renew_leases(self, held: list[tuple[int, int, bool]]) -> set[tuple[int, bool]]: ...

    # -- quizzes
    async def claim_next_quiz(self, job_id: str) -> ClaimedQuiz | None: ...
    async def finish_quiz(
        self,
        job_id: str,
        lesson_id: int,
        attempt: int,
        *,
        quiz: tuple[QuizQuestion, ...] | None = None,
        error: str | None = None,
        calls: list[ModelCall] | None = None,
    ) -> bool: ...
    async def retry_quiz(self, lesson_id: int) -> str: ...
    async def requeue_quiz(
        self, job_id: str, lesson_id: int, attempt: int, calls: list[ModelCall]
    ) -> None: ...

    # -- the author's edits
    async def edit_lesson(
        self,
        lesson_id: int,
        *,
        title: str | None = None,
        description: str | None = None,
        content: str | None = None,
        position: int | None = None,
        source: str = "edited",
    ) -> str: ...
    async def add_lesson(
        self, course_id: int, title: str, description: str, position: int | None
    ) -> tuple[int, str]: ...
    async def remove_lesson(self, lesson_id: int) -> str: ...
    async def restore_version(self, lesson_id: int, number: int) -> str: ...
    async def versions(self, lesson_id: int) -> list[Version] | None: ...
    async def version(self, lesson_id: int, number: int) -> Version | None: ...

    # -- batch mode
    async def claim_for_batch(self, job_id: str) -> list[ClaimedLesson]: ...
    async def claim_quizzes_for_batch(self, job_id: str) -> list[ClaimedQuiz]: ...
    async def attach_batch(
        self,
        batch_id: str,
        job_id: str,
        course_id: int,
        lessons: list[ClaimedLesson],
        quizzes: list[ClaimedQuiz] | None = None,
    ) -> None: ...
    async def open_batches(self) -> list[tuple[str, str, int]]: ...
    async def batch_lessons(self, batch_id: str) -> list[tuple[int, int, str | None]]: ...
    async def end_batch(self, batch_id: str) -> None: ...

    # -- the text of lessons being written, between nodes (a shared database only)
    def follow_text(
        self, on_text: Callable[[int, int, int, str], None], on_wanted: Callable[[int], None]
    ) -> None: ...
    async def want_text(self, lesson_id: int) -> None: ...
    def share_text(self, lesson_id: int, attempt: int, offset: int, text: str) -> None: ...

    # -- rate limits, between nodes sharing one API key (a shared database only)
    def follow_rate_limits(self, on_limited: Callable[[float | None], None]) -> None: ...
    async def share_rate_limit(self, retry_after: float | None) -> None: ...

    # -- the user's actions
    async def prioritize(self, lesson_id: int) -> LessonStatus: ...
    async def cancel_job(self, job_id: str) -> Progress: ...
    async def retry_lesson(self, lesson_id: int, instructions: str = "") -> str: ...
    async def retry_job(self, job_id: str) -> int: ...
    async def delete_course(self, course_id: int) -> None: ...

    # -- reads
    async def list_courses(
        self, *, limit: int = 50, before: int | None = None, search: str | None = None
    ) -> CoursePage: ...
    async def get_course(self, course_id: int) -> Course | None: ...
    async def get_lesson(self, lesson_id: int) -> Lesson | None: ...
    async def course_texts(self, course_id: int) -> tuple[Course, list[Lesson]] | None: ...
    async def get_progress(self, job_id: str) -> Progress | None: ...
    async def course_spent(self, course_id: int, unsaved: Sequence[ModelCall] = ()) -> Usage: ...
    async def job_snapshot(self, job_id: str) -> JobSnapshot | None: ...
    async def lesson_job(self, lesson_id: int) -> str | None: ...
    async def course_outline(self, job_id: str) -> CourseOutline | None: ...
    async def events_after(
        self, cursor: int, job_id: str | None = None, limit: int = EVENT_PAGE
    ) -> list[Event]: ...
    async def newest_event_id(self) -> int: ...
    async def count_running_jobs(self) -> int: ...
    async def claimable_jobs(self) -> list[str]: ...
    async def idempotent_answer(self, key: str) -> tuple[str, dict[str, Any]] | None: ...
