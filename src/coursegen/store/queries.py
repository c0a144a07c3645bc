"""Reads: each runs inside a transaction, so the rows it combines agree with each other."""

from __future__ import annotations

import json
import time
from typing import Any

from coursegen.domain import (
    Course,
    CourseListItem,
    CourseOptions,
    CourseOutline,
    CoursePage,
    Event,
    JobSnapshot,
    Lesson,
    LessonCounts,
    LessonPlan,
    LessonStatus,
    Level,
    Outline,
    Progress,
    QuizQuestion,
    QuizStatus,
    Usage,
    Version,
)
from coursegen.store.base import USAGE_SUMS, Row, progress_of, summary_of, usage_of
from coursegen.store.transaction import JOB_COLUMNS, LATEST_JOB, Transaction

IDEMPOTENCY_TTL = 24 * 3600
# A condition on courses `c` and its parameters.
Condition = tuple[str, tuple[Any, ...]]
# A course's options, as columns of `courses` (or of its alias, given as "c.").
OPTION_COLUMNS = "{a}level, {a}language, {a}instructions, {a}quizzes"
# USAGE_SUMS as one JSON object, for statements that read everything at once (SQLite).
_USAGE_JSON = (
    "'input_tokens', coalesce(sum(input_tokens), 0), "
    "'output_tokens', coalesce(sum(output_tokens), 0), "
    "'cache_creation_input_tokens', coalesce(sum(cache_creation_input_tokens), 0), "
    "'cache_read_input_tokens', coalesce(sum(cache_read_input_tokens), 0), "
    "'cost_usd', CASE WHEN count(*) = count(cost_usd) THEN coalesce(sum(cost_usd), 0) END"
)


async def list_courses(
    txn: Transaction, limit: int, before: int | None, matching: Condition | None
) -> CoursePage:
    """Up to `limit` courses older than `before` (and `matching`), newest first.

    Keyset paging on the id, so a page costs the same wherever it is in the list and
    courses created or deleted meanwhile never shift the others. A constant number of
    statements, however many courses: the page's, then its lessons', calls' and jobs'.
    """
    where, params = [], []
    if before is not None:
        where.append("c.id < ?")
        params.append(before)
    if matching is not None:
        where.append(matching[0])
        params.extend(matching[1])
    rows = await txn.fetchall(
        "SELECT c.id, c.topic, c.title, coalesce(c.description, '') AS description, c.created_at, "
        f"c.mode, {OPTION_COLUMNS.format(a='c.')}, "
        f"{LATEST_JOB.format(course='c.id')} AS job_id FROM courses c "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "ORDER BY c.id DESC LIMIT ?",
        (*params, limit + 1),  # one more tells whether there is a next page
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return CoursePage((), None, await newest_event_id(txn))
    ids = [row["id"] for row in rows]
    marks = ", ".join("?" * len(ids))
    statuses: dict[int, dict[str, int]] = {}
    for row in await txn.fetchall(
        "SELECT course_id, content_status, count(*) AS n FROM lessons "
        f"WHERE course_id IN ({marks}) GROUP BY course_id, content_status",
        ids,
    ):
        statuses.setdefault(row["course_id"], {})[row["content_status"]] = int(row["n"])
    spent = {
        row["course_id"]: usage_of(row)
        for row in await txn.fetchall(
            f"SELECT course_id, {USAGE_SUMS} FROM model_calls "
            f"WHERE course_id IN ({marks}) GROUP BY course_id",
            ids,
        )
    }
    job_ids = [row["job_id"] for row in rows if row["job_id"] is not None]
    jobs = {
        job["id"]: progress_of(job, spent.get(job["course_id"]))
        for job in (
            await txn.fetchall(
                f"SELECT {JOB_COLUMNS} FROM content_generation_jobs "
                f"WHERE id IN ({', '.join('?' * len(job_ids))})",
                job_ids,
            )
            if job_ids
            else []
        )
    }
    courses = tuple(
        CourseListItem(
            id=row["id"],
            topic=row["topic"],
            title=row["title"],
            description=row["description"],
            created_at=row["created_at"],
            job=jobs.get(row["job_id"]),
            lesson_statuses=LessonCounts(**statuses.get(row["id"], {})),
            mode=row["mode"],
            usage=spent.get(row["id"], Usage()),
            options=options_of(row),
        )
        for row in rows
    )
    return CoursePage(courses, ids[-1] if more else None, await newest_event_id(txn))


async def course_view(txn: Transaction, course_id: int) -> Course | None:
    """A course with its newest job and its lessons in course order."""
    course = await txn.fetchone(
        "SELECT id, topic, title, coalesce(description, '') AS description, created_at, mode, "
        f"{OPTION_COLUMNS.format(a='')}, "
        f"{LATEST_JOB.format(course='courses.id')} AS job_id FROM courses WHERE id = ?",
        (course_id,),
    )
    if course is None:
        return None
    lessons = await txn.fetchall(
        "SELECT id, position, title, coalesce(description, '') AS description, content_status, "
        "content_error, quiz_status FROM lessons WHERE course_id = ? ORDER BY position, id",
        (course_id,),
    )
    by_lesson = {
        row["lesson_id"]: usage_of(row)
        for row in await txn.fetchall(
            f"SELECT lesson_id, {USAGE_SUMS} FROM model_calls WHERE course_id = ? "
            "AND lesson_id IS NOT NULL GROUP BY lesson_id",
            (course_id,),
        )
    }
    spent = await txn.usage(course_id=course_id)
    job = await progress(txn, course["job_id"], spent) if course["job_id"] else None
    return Course(
        id=course["id"],
        topic=course["topic"],
        title=course["title"],
        description=course["description"],
        created_at=course["created_at"],
        job=job,
        lessons=tuple(summary_of(row, by_lesson.get(row["id"], Usage())) for row in lessons),
        mode=course["mode"],
        usage=spent,
        options=options_of(course),
    )


_LESSON_COLUMNS = (
    "id, course_id, position, title, coalesce(description, '') AS description, "
    "content, content_status, content_error, updated_at, attempt, model, stop_reason, "
    "quiz_status, quiz, quiz_error, "
    f"duration_ms, {LATEST_JOB.format(course='lessons.course_id')} AS job_id"
)


async def lesson_view(txn: Transaction, lesson_id: int) -> Lesson | None:
    """A lesson; its content is the text so far while generating, none while pending."""
    row = await txn.fetchone(
        f"SELECT {_LESSON_COLUMNS}, u.* FROM lessons, "
        # An aggregate with no GROUP BY: always one row, zeros for a lesson with no calls.
        f"(SELECT {USAGE_SUMS} FROM model_calls WHERE lesson_id = ?) u WHERE id = ?",
        (lesson_id, lesson_id),
    )
    return None if row is None else _lesson(row, usage_of(row))


async def course_texts(txn: Transaction, course_id: int) -> tuple[Course, list[Lesson]] | None:
    """A course and its whole lessons in course order, read at one moment (for exports)."""
    course = await course_view(txn, course_id)
    if course is None:
        return None
    usage = {lesson.id: lesson.usage for lesson in course.lessons}
    rows = await txn.fetchall(
        f"SELECT {_LESSON_COLUMNS} FROM lessons WHERE course_id = ? ORDER BY position, id",
        (course_id,),
    )
    return course, [_lesson(row, usage.get(row["id"]) or Usage()) for row in rows]


def _lesson(row: Row, usage: Usage) -> Lesson:
    status = LessonStatus(row["content_status"])
    return Lesson(
        id=row["id"],
        course_id=row["course_id"],
        job_id=row["job_id"],
        position=row["position"],
        title=row["title"],
        description=row["description"],
        content=None if status is LessonStatus.PENDING else row["content"],
        content_status=status,
        content_error=row["content_error"],
        updated_at=row["updated_at"],
        attempt=row["attempt"],
        usage=usage,
        model=row["model"],
        stop_reason=row["stop_reason"],
        duration_ms=row["duration_ms"],
        quiz_status=QuizStatus(row["quiz_status"]),
        quiz=None if row["quiz"] is None else _questions(row["quiz"]),
        quiz_error=row["quiz_error"],
    )


async def lesson_job(txn: Transaction, lesson_id: int) -> str | None:
    """The id of the job that writes a lesson (its course's newest)."""
    row = await txn.fetchone(
        f"SELECT {LATEST_JOB.format(course='lessons.course_id')} AS job_id "
        "FROM lessons WHERE id = ?",
        (lesson_id,),
    )
    return row["job_id"] if row else None


async def progress(txn: Transaction, job_id: str, spent: Usage | None = None) -> Progress | None:
    """A job's progress; `spent` is its course's usage, if the caller has it already."""
    job = await txn.fetchone(
        f"SELECT {JOB_COLUMNS} FROM content_generation_jobs WHERE id = ?", (job_id,)
    )
    if job is None:
        return None
    return progress_of(job, spent or await txn.usage(course_id=job["course_id"]))


async def job_snapshot(txn: Transaction, job_id: str) -> JobSnapshot | None:
    """A job's progress and lessons, with the id of its newest event.

    One statement, so one consistent snapshot without a transaction around it: a
    thousand clients reconnecting at once each cost one trip to the database thread.
    """
    row = await txn.fetchone(
        f"SELECT {JOB_COLUMNS}, "
        "(SELECT coalesce(max(e.id), 0) FROM events e WHERE e.job_id = j.id) AS newest, "
        "(SELECT json_group_array(json_object('id', l.id, 'position', l.position, "
        "'title', l.title, 'description', coalesce(l.description, ''), "
        "'content_status', l.content_status, 'content_error', l.content_error, "
        "'quiz_status', l.quiz_status)) "
        "FROM lessons l WHERE l.course_id = j.course_id) AS lessons, "
        f"(SELECT json_object({_USAGE_JSON}) FROM model_calls m "
        "WHERE m.course_id = j.course_id) AS usage "
        "FROM content_generation_jobs j WHERE j.id = ?",
        (job_id,),
    )
    if row is None:
        return None
    lessons = sorted(
        (summary_of(lesson) for lesson in json.loads(row["lessons"])),
        key=lambda lesson: (lesson.position, lesson.id),
    )
    spent = usage_of(json.loads(row["usage"]))
    return JobSnapshot(progress_of(row, spent), tuple(lessons), row["newest"])


async def course_outline(txn: Transaction, job_id: str) -> CourseOutline | None:
    """The topic and outline of a job's course, for the lesson prompts."""
    course = await txn.fetchone(
        "SELECT c.id, c.topic, c.title, coalesce(c.description, '') AS description, c.mode, "
        f"{OPTION_COLUMNS.format(a='c.')} FROM courses c "
        "JOIN content_generation_jobs j ON j.course_id = c.id WHERE j.id = ?",
        (job_id,),
    )
    if course is None:
        return None
    lessons = await txn.fetchall(
        "SELECT id, title, coalesce(description, '') AS description FROM lessons "
        "WHERE course_id = ? ORDER BY position, id",
        (course["id"],),
    )
    outline = Outline(
        title=course["title"],
        description=course["description"],
        lessons=tuple(LessonPlan(row["title"], row["description"]) for row in lessons),
    )
    return CourseOutline(
        course["topic"],
        outline,
        tuple(row["id"] for row in lessons),
        course_id=course["id"],
        mode=course["mode"],
        options=options_of(course),
    )


async def events_after(
    txn: Transaction, cursor: int, job_id: str | None, limit: int
) -> list[Event]:
    """Up to `limit` events after `cursor` (of one job, if given), from the log."""
    sql = "SELECT id, job_id, course_id, type, data FROM events WHERE id > ? "
    params: tuple[Any, ...] = (cursor,)
    if job_id is not None:
        sql += "AND job_id = ? "
        params = (cursor, job_id)
    rows = await txn.fetchall(sql + "ORDER BY id LIMIT ?", (*params, limit))
    return [Event(r["id"], r["job_id"], r["course_id"], r["type"], r["data"]) for r in rows]


async def newest_event_id(txn: Transaction) -> int:
    row = await txn.fetchone("SELECT coalesce(max(id), 0) AS id FROM events")
    return int(row["id"]) if row else 0


async def claimable_jobs(txn: Transaction, claimable: str) -> list[str]:
    """Running jobs with a lesson matching `claimable` (a condition on lessons `l`)."""
    rows = await txn.fetchall(
        "SELECT j.id FROM content_generation_jobs j WHERE j.status = 'running' AND EXISTS "
        f"(SELECT 1 FROM lessons l WHERE l.course_id = j.course_id AND {claimable})"
    )
    return [row["id"] for row in rows]


async def count_running_jobs(txn: Transaction) -> int:
    row = await txn.fetchone(
        "SELECT count(*) AS n FROM content_generation_jobs WHERE status = 'running'"
    )
    return int(row["n"]) if row else 0


async def idempotent_answer(txn: Transaction, key: str) -> tuple[str, dict[str, Any]] | None:
    """The fingerprint and course stored under an Idempotency-Key less than 24 h old."""
    row = await txn.fetchone(
        "SELECT fingerprint, response FROM idempotency_keys WHERE key = ? AND created_at > ?",
        (key, time.time() - IDEMPOTENCY_TTL),
    )
    return (row["fingerprint"], json.loads(row["response"])) if row else None


def search_words(text: str) -> list[str]:
    """The words of a search, split at white space. A piece without a letter or a digit
    (`-`, `&|!`) can match nothing, so it is left out rather than sent to the engine."""
    return [word for word in text.split() if any(ch.isalnum() for ch in word)]


def options_of(row: Row) -> CourseOptions:
    """A course row's OPTION_COLUMNS."""
    return CourseOptions(
        Level(row["level"]), row["language"], row["instructions"], bool(row["quizzes"])
    )


def _questions(data: str) -> tuple[QuizQuestion, ...]:
    return tuple(QuizQuestion.from_json(question) for question in json.loads(data))


async def versions(txn: Transaction, lesson_id: int) -> list[Version] | None:
    """Every version of a lesson, newest first; None if there is no such lesson."""
    if await txn.fetchone("SELECT id FROM lessons WHERE id = ?", (lesson_id,)) is None:
        return None
    rows = await txn.fetchall(
        "SELECT version, created_at, source, instructions, content FROM lesson_versions "
        "WHERE lesson_id = ? ORDER BY version DESC",
        (lesson_id,),
    )
    return [_version(row) for row in rows]


async def version(txn: Transaction, lesson_id: int, number: int) -> Version | None:
    row = await txn.fetchone(
        "SELECT version, created_at, source, instructions, content FROM lesson_versions "
        "WHERE lesson_id = ? AND version = ?",
        (lesson_id, number),
    )
    return _version(row) if row else None


def _version(row: Row) -> Version:
    return Version(
        row["version"], row["created_at"], row["source"], row["instructions"], row["content"]
    )
