"""The store's transitions and reads, written once in SQL that both engines speak.

An engine supplies its connections and transactions (`_write`, `_read`, `_read_one`)
and overrides the few statements its dialect says differently.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

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
    Lesson,
    LessonStatus,
    ModelCall,
    Outline,
    Progress,
    QuizQuestion,
    Usage,
    Version,
)
from coursegen.errors import Conflict, NotFound
from coursegen.store import queries
from coursegen.store.base import EVENT_PAGE, USAGE_SUMS, Row, usage_of
from coursegen.store.queries import IDEMPOTENCY_TTL, Condition
from coursegen.store.transaction import (
    LATEST_JOB,
    LESSON_CHANGE,
    QUIZ_CHANGE,
    Transaction,
    utcnow,
)

T = TypeVar("T")


class SqlStore(abc.ABC):
    """Async access to courses, lessons, jobs, the event log and idempotency keys."""

    shared = False  # whether other processes write the database too
    # A lesson a runner may claim (`l` is the lessons table), and how the claim locks it.
    _CLAIMABLE = "l.content_status = 'pending'"
    _QUIZ_CLAIMABLE = "l.quiz_status = 'pending'"
    _CLAIM_LOCK = ""  # one writer at a time owns an unshared database
    # More columns set once a lesson is in a Message Batch (`, column = value`...).
    _UNLEASE = ""

    def _matching(self, words: list[str]) -> Condition:
        """Courses `c` whose title, topic or description hold every word, the last as a
        prefix. FTS5: each word a quoted string (its quotes doubled), so no word is
        syntax (`NEAR`, `*`, `:`, `-`); the quoted word goes through the same
        tokenizer as the course, so `node.js` finds the tokens `node` `js` in a row."""
        quoted = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        return (
            "c.id IN (SELECT rowid FROM courses_search WHERE courses_search MATCH ?)",
            (f"{quoted} *",),
        )

    def _claim(self) -> tuple[str, tuple[Any, ...]]:
        """More columns a claim sets (`, column = ?`...), and their parameters."""
        return "", ()

    async def _may_claim(self, txn: Transaction) -> bool:
        """Whether a claim may be made now (a limit beyond this process's own)."""
        return True

    @abc.abstractmethod
    async def close(self) -> None: ...

    def _own_lessons(self) -> tuple[str, tuple[Any, ...]]:
        """A condition on `lessons` that keeps the ones this process writes, and its
        parameters. One process owns a SQLite file: every lesson is its own."""
        return "", ()

    async def renew_leases(self, held: list[tuple[int, int, bool]]) -> set[tuple[int, bool]]:
        """Extend the claims on these (lesson id, attempt, whether it is the quiz); the
        (lesson id, quiz) whose claim was lost.

        Nothing to do where one process owns the database: no claim can be lost.
        """
        return set()

    @abc.abstractmethod
    async def _write(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run `work` in a write transaction with its events; tell of them once committed."""

    @abc.abstractmethod
    async def _read(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run several reads on one consistent snapshot."""

    @abc.abstractmethod
    async def _read_one(self, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run one statement (its own snapshot)."""

    # -- generate --------------------------------------------------------------------

    async def create_course(
        self,
        topic: str,
        outline: Outline,
        *,
        mode: str = "stream",
        options: CourseOptions = DEFAULT_OPTIONS,
        outline_call: ModelCall | None = None,
        idempotency: tuple[str, str] | None = None,
    ) -> tuple[Course, bool]:
        """Store a course, its pending lessons and a running job in one transaction.

        With an (Idempotency-Key, fingerprint) whose answer is already stored, nothing is
        created and the stored course comes back; the flag says whether it was created.
        """
        job_id = str(uuid.uuid4())

        async def work(txn: Transaction) -> tuple[Course, bool]:
            now = utcnow()
            if idempotency:
                await txn.execute(
                    "DELETE FROM idempotency_keys WHERE created_at <= ?",
                    (time.time() - IDEMPOTENCY_TTL,),
                )
                stored = await queries.idempotent_answer(txn, idempotency[0])
                if stored:
                    return Course.from_json(stored[1]), False
            inserted = await txn.fetchone(
                "INSERT INTO courses (topic, title, description, created_at, mode, level, "
                "language, instructions, quizzes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    topic,
                    outline.title,
                    outline.description,
                    now,
                    mode,
                    options.level.value,
                    options.language,
                    options.instructions,
                    int(options.quizzes),
                ),
            )
            assert inserted is not None
            course_id: int = inserted["id"]
            if outline_call is not None:
                await _record_calls(txn, [dataclasses.replace(outline_call, course_id=course_id)])
            await txn.executemany(
                "INSERT INTO lessons (course_id, position, title, description, content_status, "
                "updated_at) VALUES (?, ?, ?, ?, 'pending', ?)",
                [
                    (course_id, position, plan.title, plan.description, now)
                    for position, plan in enumerate(outline.lessons, start=1)
                ],
            )
            await txn.execute(
                # Every column given: older databases have no defaults for the counters.
                "INSERT INTO content_generation_jobs (id, course_id, status, total_lessons, "
                "completed_lessons, failed_lessons, started_at) "
                "VALUES (?, ?, 'running', ?, 0, 0, ?)",
                (job_id, course_id, len(outline.lessons), now),
            )
            course = await queries.course_view(txn, course_id)
            assert course is not None and course.job is not None
            txn.emit(
                "course", {"course_id": course_id, "action": "created"},
                job_id=None, course_id=course_id,
            )  # fmt: skip
            txn.emit("job", course.job.to_json(), job_id=job_id, course_id=course_id)
            if idempotency:
                await txn.execute(
                    "INSERT INTO idempotency_keys (key, fingerprint, response, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    (idempotency[0], idempotency[1], json.dumps(course.to_json()), time.time()),
                )
            return course, True

        return await self._write(work)

    # -- the runner's transitions ----------------------------------------------------

    async def claim_next_lesson(self, job_id: str) -> ClaimedLesson | None:
        """Move the next lesson to `generating`: the most recently prioritised claimable
        lesson of any running job, else this job's first claimable one."""
        claim, params = self._claim()
        lock = self._CLAIM_LOCK

        async def work(txn: Transaction) -> ClaimedLesson | None:
            if not await self._may_claim(txn):
                return None
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = 'generating', content = '', "
                f"content_error = NULL, attempt = attempt + 1, priority = NULL{claim}, "
                "batch_id = NULL, updated_at = ? WHERE id = coalesce("
                " (SELECT l.id FROM lessons l JOIN content_generation_jobs j "
                "  ON j.course_id = l.course_id WHERE l.priority IS NOT NULL "
                f"  AND {self._CLAIMABLE} AND j.status = 'running' "
                f"  ORDER BY l.priority DESC LIMIT 1{lock}),"
                " (SELECT l.id FROM lessons l JOIN content_generation_jobs j "
                "  ON j.course_id = l.course_id WHERE j.id = ? AND j.status = 'running' "
                f"  AND {self._CLAIMABLE} ORDER BY l.position, l.id LIMIT 1{lock})) "
                f"{LESSON_CHANGE}, attempt, instructions, "
                f"{LATEST_JOB.format(course='lessons.course_id')} AS job_id",
                (*params, utcnow(), job_id),
            )
            if row is None:
                return None
            txn.lesson_changed(row["job_id"], row["course_id"], row)
            return ClaimedLesson(
                row["id"], row["position"], row["attempt"], row["job_id"], row["course_id"],
                row["instructions"] or "",
            )  # fmt: skip

        return await self._write(work)

    async def prioritize(self, lesson_id: int) -> LessonStatus:
        """Put a pending lesson ahead of every other; the lesson's status (as it was)."""

        async def work(txn: Transaction) -> LessonStatus:
            row = await txn.fetchone(
                "SELECT l.content_status, c.mode FROM lessons l "
                "JOIN courses c ON c.id = l.course_id WHERE l.id = ?",
                (lesson_id,),
            )
            if row is None:
                raise NotFound("no such lesson")
            # A batch course's lessons come with its batch: none is written on its own.
            if row["content_status"] == "pending" and row["mode"] == "stream":
                await txn.execute(
                    "UPDATE lessons SET priority = "
                    "(SELECT coalesce(max(priority), 0) + 1 FROM lessons) WHERE id = ?",
                    (lesson_id,),
                )
            return LessonStatus(row["content_status"])

        return await self._write(work)

    async def save_drafts(
        self, drafts: list[tuple[int, int, str]], calls: list[ModelCall] | None = None
    ) -> None:
        """Store the text so far of lessons being written: (lesson id, attempt, text),
        and what the calls under way have been billed so far.

        One transaction for every draft, and no event: the text is not a status change.
        """

        async def work(txn: Transaction) -> None:
            if calls:
                await _record_calls(txn, calls)
            await txn.executemany(
                "UPDATE lessons SET content = ? WHERE id = ? AND attempt = ? "
                "AND content_status = 'generating'",
                [(text, lesson_id, attempt) for lesson_id, attempt, text in drafts],
            )

        await self._write(work)

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
    ) -> bool:
        """Store a lesson's result, unless a newer attempt or a cancel superseded this one.

        The calls that wrote it are stored either way: they were paid for.
        """

        async def work(txn: Transaction) -> bool:
            await txn.lock_job(job_id)
            if calls:
                await _record_calls(txn, calls)
            complete = error is None
            # What this attempt was asked for goes with its version; the UPDATE clears it.
            before = await txn.fetchone(
                "SELECT instructions FROM lessons WHERE id = ? AND attempt = ?",
                (lesson_id, attempt),
            )
            asked = (before["instructions"] or None) if before else None
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = ?, content = ?, content_error = ?, "
                "model = ?, stop_reason = ?, duration_ms = ?, batch_id = NULL, updated_at = ?, "
                "instructions = NULL, quiz = NULL, quiz_error = NULL, quiz_status = CASE "
                # A complete text gets its quiz, written next (when the course has quizzes).
                " WHEN ? AND (SELECT quizzes FROM courses c WHERE c.id = lessons.course_id) = 1 "
                " THEN 'pending' ELSE 'none' END "
                "WHERE id = ? AND attempt = ? AND content_status = 'generating' "
                f"{LESSON_CHANGE}, quiz_status, quiz_error",
                ("complete" if complete else "error", content, error, model, stop_reason,
                 duration_ms, utcnow(), complete, lesson_id, attempt),
            )  # fmt: skip
            if row is None:
                return False
            if complete and content is not None:
                await _add_version(txn, lesson_id, "generated", content, asked)
            spent = await txn.usage(lesson_id=lesson_id)
            txn.lesson_changed(job_id, row["course_id"], row, spent)
            if row["quiz_status"] == "pending":
                txn.quiz_changed(job_id, row["course_id"], row)
            await txn.refresh_job(job_id)
            return True

        return await self._write(work)

    async def fail_job(self, job_id: str, message: str) -> None:
        """End a job that cannot go on: its unfinished lessons fail with `message`."""

        async def work(txn: Transaction) -> None:
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'error', content_error = ?, updated_at = ? "
                "WHERE course_id = (SELECT course_id FROM content_generation_jobs WHERE id = ?) "
                "AND content_status IN ('pending', 'generating') "
                f"{LESSON_CHANGE}",
                (message, utcnow(), job_id),
            )
            for row in rows:
                txn.lesson_changed(job_id, row["course_id"], row)
            await txn.refresh_job(job_id)
            await txn.execute(
                "UPDATE content_generation_jobs SET error_message = ? WHERE id = ?",
                (message, job_id),
            )

        await self._write(work)

    async def requeue_in_flight(self) -> list[str]:
        """Put this process's `generating` lessons back to `pending`; the running jobs,
        oldest first. Used on start (after a crash) and on shutdown, so that no lesson
        stays stuck."""

        async def work(txn: Transaction) -> list[str]:
            mine, params = self._own_lessons()
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'pending', content = NULL, updated_at = ? "
                # A lesson in a Message Batch is still being written: the batch is polled on.
                f"WHERE content_status = 'generating' AND batch_id IS NULL{mine} "
                f"{LESSON_CHANGE}, {LATEST_JOB.format(course='lessons.course_id')} AS job_id",
                (utcnow(), *params),
            )
            for row in sorted(rows, key=lambda r: r["id"]):
                if row["job_id"] is not None:
                    txn.lesson_changed(row["job_id"], row["course_id"], row)
            quizzes = await txn.fetchall(
                "UPDATE lessons SET quiz_status = 'pending' "
                f"WHERE quiz_status = 'generating' AND batch_id IS NULL{mine} "
                f"{QUIZ_CHANGE}, {LATEST_JOB.format(course='lessons.course_id')} AS job_id",
                params,
            )
            for row in sorted(quizzes, key=lambda r: r["id"]):
                if row["job_id"] is not None:
                    txn.quiz_changed(row["job_id"], row["course_id"], row)
            running = await txn.fetchall(
                "SELECT id FROM content_generation_jobs WHERE status = 'running' "
                "ORDER BY started_at, rowid"
            )
            for job in running:
                await txn.refresh_job(job["id"])
            return [job["id"] for job in running]

        return await self._write(work)

    # -- the user's actions -----------------------------------------------------------

    async def cancel_job(self, job_id: str) -> Progress:
        """Cancel a running job; its `generating` lessons go back to `pending`."""

        async def work(txn: Transaction) -> Progress:
            job = await txn.fetchone(
                "UPDATE content_generation_jobs SET status = 'cancelled', completed_at = ? "
                "WHERE id = ? AND status = 'running' RETURNING course_id",
                (utcnow(), job_id),
            )
            if job is None:
                status = await txn.fetchone(
                    "SELECT status FROM content_generation_jobs WHERE id = ?", (job_id,)
                )
                if status is None:
                    raise NotFound("no such job")
                raise Conflict(f"the job is {status['status']}, not running; nothing to cancel")
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'pending', content = NULL, batch_id = NULL, "
                "updated_at = ? WHERE course_id = ? AND content_status = 'generating' "
                f"{LESSON_CHANGE}",
                (utcnow(), job["course_id"]),
            )
            for row in sorted(rows, key=lambda r: r["position"]):
                txn.lesson_changed(job_id, job["course_id"], row)
            quizzes = await txn.fetchall(
                "UPDATE lessons SET quiz_status = 'pending', batch_id = NULL "
                f"WHERE course_id = ? AND quiz_status = 'generating' {QUIZ_CHANGE}",
                (job["course_id"],),
            )
            for row in quizzes:
                txn.quiz_changed(job_id, job["course_id"], row)
            progress = await txn.refresh_job(job_id)
            txn.emit("job", progress.to_json(), job_id=job_id, course_id=job["course_id"])
            return progress

        return await self._write(work)

    async def retry_lesson(self, lesson_id: int, instructions: str = "") -> str:
        """Queue a failed (or complete) lesson again, with `instructions` for that attempt
        only; its job runs again. Returns the job id."""

        async def work(txn: Transaction) -> str:
            lesson = await self._lesson_for_edit(txn, lesson_id)
            # Its quiz belongs to the text being replaced: a quiz call in flight is fenced
            # off by the bumped quiz_attempt.
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = 'pending', content = NULL, "
                "content_error = NULL, updated_at = ?, instructions = ?, quiz_status = 'none', "
                "quiz = NULL, quiz_error = NULL, quiz_attempt = quiz_attempt + 1 "
                "WHERE id = ? AND content_status IN ('error', 'complete') "
                f"{LESSON_CHANGE}",
                (utcnow(), instructions or None, lesson_id),
            )
            if row is None:
                raise Conflict(
                    f"the lesson is {lesson['content_status']}; it can be retried once it "
                    "has finished"
                )
            job_id: str = lesson["job_id"]
            txn.lesson_changed(job_id, row["course_id"], row)
            await txn.refresh_job(job_id, reopen=True)
            return job_id

        return await self._write(work)

    async def retry_job(self, job_id: str) -> int:
        """Queue every failed lesson again (and a cancelled job's pending ones)."""

        async def work(txn: Transaction) -> int:
            job = await txn.fetchone(
                "SELECT status, course_id FROM content_generation_jobs WHERE id = ?", (job_id,)
            )
            if job is None:
                raise NotFound("no such job")
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'pending', content = NULL, "
                "content_error = NULL, updated_at = ? WHERE course_id = ? "
                "AND content_status = 'error' "
                f"{LESSON_CHANGE}",
                (utcnow(), job["course_id"]),
            )
            quizzes = await txn.fetchall(
                "UPDATE lessons SET quiz_status = 'pending', quiz_error = NULL "
                f"WHERE course_id = ? AND quiz_status = 'error' {QUIZ_CHANGE}",
                (job["course_id"],),
            )
            for row in quizzes:
                txn.quiz_changed(job_id, job["course_id"], row)
            retried = len(rows) + len(quizzes)
            if job["status"] == "cancelled":
                waiting = await txn.fetchone(
                    "SELECT count(*) AS n FROM lessons WHERE course_id = ? "
                    "AND (content_status = 'pending' OR quiz_status = 'pending')",
                    (job["course_id"],),
                )
                assert waiting is not None
                retried = waiting["n"]
            if retried == 0:
                raise Conflict("the job has no failed or unfinished lessons to retry")
            for row in sorted(rows, key=lambda r: r["position"]):
                txn.lesson_changed(job_id, job["course_id"], row)
            await txn.refresh_job(job_id, reopen=True)
            return retried

        return await self._write(work)

    async def delete_course(self, course_id: int) -> None:
        """Delete a course with its lessons, jobs and events; log that it is gone."""

        async def work(txn: Transaction) -> None:
            if await txn.fetchone("SELECT id FROM courses WHERE id = ?", (course_id,)) is None:
                raise NotFound("no such course")
            # Children first, explicitly: older databases' foreign keys do not cascade.
            await txn.execute(
                "DELETE FROM lesson_versions WHERE lesson_id IN "
                "(SELECT id FROM lessons WHERE course_id = ?)",
                (course_id,),
            )
            for table in (
                "events",
                "model_calls",
                "batches",
                "lessons",
                "content_generation_jobs",
                "courses",
            ):
                column = "id" if table == "courses" else "course_id"
                await txn.execute(f"DELETE FROM {table} WHERE {column} = ?", (course_id,))
            txn.emit(
                "course", {"course_id": course_id, "action": "deleted"},
                job_id=None, course_id=course_id,
            )  # fmt: skip

        await self._write(work)

    async def stop_at_limit(
        self, job_id: str, claimed: tuple[int, int] | None, message: str
    ) -> None:
        """The course has spent its limit: every pending lesson (and the claimed one, as
        (id, attempt)) fails with `message`, which the job's error repeats. Calls in
        flight may still finish."""
        lesson_id, attempt = claimed or (0, 0)

        async def work(txn: Transaction) -> None:
            await txn.lock_job(job_id)
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'error', content = NULL, content_error = ?, "
                "batch_id = NULL, updated_at = ? WHERE course_id = "
                "(SELECT course_id FROM content_generation_jobs WHERE id = ?) AND "
                "(content_status = 'pending' OR (id = ? AND attempt = ? "
                "AND content_status = 'generating')) "
                f"{LESSON_CHANGE}",
                (message, utcnow(), job_id, lesson_id, attempt),
            )
            for row in sorted(rows, key=lambda r: r["position"]):
                txn.lesson_changed(job_id, row["course_id"], row)
            await txn.execute(
                "UPDATE content_generation_jobs SET error_message = ? WHERE id = ? "
                "AND status = 'running'",
                (message, job_id),
            )
            await txn.refresh_job(job_id)

        await self._write(work)

    # -- quizzes ---------------------------------------------------------------------

    async def claim_next_quiz(self, job_id: str) -> ClaimedQuiz | None:
        """Move the job's first lesson whose quiz waits to a quiz `generating`."""
        claim, params = self._claim()
        lock = self._CLAIM_LOCK

        async def work(txn: Transaction) -> ClaimedQuiz | None:
            if not await self._may_claim(txn):
                return None
            row = await txn.fetchone(
                "UPDATE lessons SET quiz_status = 'generating', quiz_error = NULL, "
                f"quiz_attempt = quiz_attempt + 1{claim} WHERE id = "
                " (SELECT l.id FROM lessons l JOIN content_generation_jobs j "
                "  ON j.course_id = l.course_id WHERE j.id = ? AND j.status = 'running' "
                f"  AND l.content_status = 'complete' AND {self._QUIZ_CLAIMABLE} "
                f"  ORDER BY l.position, l.id LIMIT 1{lock}) "
                f"{QUIZ_CHANGE}, quiz_attempt, content",
                (*params, job_id),
            )
            if row is None:
                return None
            txn.quiz_changed(job_id, row["course_id"], row)
            return ClaimedQuiz(
                row["id"], row["quiz_attempt"], job_id, row["course_id"], row["content"] or ""
            )

        return await self._write(work)

    async def finish_quiz(
        self,
        job_id: str,
        lesson_id: int,
        attempt: int,
        *,
        quiz: tuple[QuizQuestion, ...] | None = None,
        error: str | None = None,
        calls: list[ModelCall] | None = None,
    ) -> bool:
        """Store a quiz (or why it failed), unless a newer attempt superseded this one.
        A failed quiz never fails its lesson's text."""

        async def work(txn: Transaction) -> bool:
            await txn.lock_job(job_id)
            if calls:
                await _record_calls(txn, calls)
            data = None if quiz is None else json.dumps([q.to_json() for q in quiz])
            row = await txn.fetchone(
                "UPDATE lessons SET quiz_status = ?, quiz = ?, quiz_error = ?, batch_id = NULL "
                "WHERE id = ? AND quiz_attempt = ? AND quiz_status = 'generating' "
                f"{QUIZ_CHANGE}",
                ("complete" if error is None else "error", data, error, lesson_id, attempt),
            )
            if row is None:
                return False
            txn.quiz_changed(job_id, row["course_id"], row, await txn.usage(lesson_id=lesson_id))
            before = await txn.fetchone(
                "SELECT status FROM content_generation_jobs WHERE id = ?", (job_id,)
            )
            progress = await txn.refresh_job(job_id)
            if before is not None and before["status"] == progress.status:
                # Its counters count texts, but what the course spent grew: tell the pages
                # (a `job` event, when the job just ended, carries the new usage already).
                txn.emit("progress", progress.to_json(), job_id=job_id, course_id=row["course_id"])
            return True

        return await self._write(work)

    async def retry_quiz(self, lesson_id: int) -> str:
        """Write a lesson's quiz again; its job runs again. Returns the job id."""

        async def work(txn: Transaction) -> str:
            lesson = await self._lesson_for_edit(txn, lesson_id)
            if not lesson["quizzes"]:
                raise Conflict("this course has no quizzes")
            if lesson["content_status"] != "complete":
                raise Conflict("the quiz is written once the lesson's text is complete")
            if lesson["quiz_status"] in ("pending", "generating"):
                raise Conflict(f"the quiz is {lesson['quiz_status']} already")
            row = await txn.fetchone(
                "UPDATE lessons SET quiz_status = 'pending', quiz_error = NULL WHERE id = ? "
                f"{QUIZ_CHANGE}",
                (lesson_id,),
            )
            assert row is not None
            job_id: str = lesson["job_id"]
            txn.quiz_changed(job_id, row["course_id"], row)
            await txn.refresh_job(job_id, reopen=True)
            return job_id

        return await self._write(work)

    # -- the author's edits ---------------------------------------------------------

    async def _lesson_for_edit(self, txn: Transaction, lesson_id: int) -> Row:
        """The lesson with its course's options and job, its job locked; 404 if none."""
        job_id = await queries.lesson_job(txn, lesson_id)
        if job_id is None:
            raise NotFound("no such lesson")
        await txn.lock_job(job_id)
        row = await txn.fetchone(
            "SELECT l.id, l.course_id, l.position, l.title, l.content_status, l.content_error, "
            "l.quiz_status, c.quizzes, ? AS job_id FROM lessons l JOIN courses c "
            "ON c.id = l.course_id WHERE l.id = ?",
            (job_id, lesson_id),
        )
        if row is None:
            raise NotFound("no such lesson")
        return row

    async def edit_lesson(
        self,
        lesson_id: int,
        *,
        title: str | None = None,
        description: str | None = None,
        content: str | None = None,
        position: int | None = None,
        source: str = "edited",
    ) -> str:
        """Change a lesson by hand; a new text becomes a version and the lesson complete.
        Returns the job id (it runs again when the new text needs a quiz)."""

        async def work(txn: Transaction) -> str:
            lesson = await self._lesson_for_edit(txn, lesson_id)
            job_id: str = lesson["job_id"]
            course_id: int = lesson["course_id"]
            if content is not None and lesson["content_status"] in ("pending", "generating"):
                raise Conflict(
                    f"the lesson is {lesson['content_status']}: its text can be edited once "
                    "it has been written"
                )
            sets, params = [], []
            if title is not None:
                sets.append("title = ?")
                params.append(title)
            if description is not None:
                sets.append("description = ?")
                params.append(description)
            reopen = False
            if content is not None:
                needs_quiz = bool(lesson["quizzes"])
                sets.append(
                    "content = ?, content_status = 'complete', content_error = NULL, "
                    "stop_reason = NULL, quiz = NULL, quiz_error = NULL, "
                    "quiz_attempt = quiz_attempt + 1, quiz_status = ?"
                )
                params += [content, "pending" if needs_quiz else "none"]
                reopen = needs_quiz or lesson["content_status"] == "error"
            if sets:
                row = await txn.fetchone(
                    f"UPDATE lessons SET {', '.join(sets)}, updated_at = ? WHERE id = ? "
                    f"{LESSON_CHANGE}, quiz_status, quiz_error",
                    (*params, utcnow(), lesson_id),
                )
                assert row is not None
                if content is not None:
                    await _add_version(txn, lesson_id, source, content, None)
                txn.lesson_changed(job_id, course_id, row, change="edited")
                if content is not None and row["quiz_status"] == "pending":
                    txn.quiz_changed(job_id, course_id, row)
            if position is not None:
                await self._move(txn, job_id, course_id, lesson_id, lesson["position"], position)
            await txn.refresh_job(job_id, reopen=reopen)
            return job_id

        return await self._write(work)

    async def _move(
        self, txn: Transaction, job_id: str, course_id: int, lesson_id: int, old: int, new: int
    ) -> None:
        count = await txn.fetchone(
            "SELECT count(*) AS n FROM lessons WHERE course_id = ?", (course_id,)
        )
        assert count is not None
        # Past the end means last, as when adding: the author asked for the end, and a
        # lesson another page removed meanwhile must not turn that into an error.
        new = min(new, count["n"])
        if new == old:
            return
        # The lessons between the two places shift by one; positions stay 1..n.
        step, low, high = (1, new, old - 1) if new < old else (-1, old + 1, new)
        rows = await txn.fetchall(
            "UPDATE lessons SET position = CASE WHEN id = ? THEN ? ELSE position + ? END "
            "WHERE course_id = ? AND (id = ? OR position BETWEEN ? AND ?) "
            f"{LESSON_CHANGE}",
            (lesson_id, new, step, course_id, lesson_id, low, high),
        )
        for row in sorted(rows, key=lambda r: r["position"]):
            txn.lesson_changed(job_id, course_id, row, change="moved")

    async def add_lesson(
        self, course_id: int, title: str, description: str, position: int | None
    ) -> tuple[int, str]:
        """A new pending lesson at `position` (default, or past the end: last); its job runs
        again to write it. Returns (lesson id, job id)."""

        async def work(txn: Transaction) -> tuple[int, str]:
            found = await txn.fetchone(
                f"SELECT {LATEST_JOB.format(course='courses.id')} AS job_id FROM courses "
                "WHERE id = ?",
                (course_id,),
            )
            if found is None or found["job_id"] is None:
                raise NotFound("no such course")
            job_id: str = found["job_id"]
            await txn.lock_job(job_id)
            count = await txn.fetchone(
                "SELECT count(*) AS n FROM lessons WHERE course_id = ?", (course_id,)
            )
            assert count is not None
            last = count["n"] + 1
            # Past the end means last: how many lessons there are is the server's to know.
            at = last if position is None else min(position, last)
            shifted = await txn.fetchall(
                "UPDATE lessons SET position = position + 1 WHERE course_id = ? "
                f"AND position >= ? {LESSON_CHANGE}",
                (course_id, at),
            )
            row = await txn.fetchone(
                "INSERT INTO lessons (course_id, position, title, description, content_status, "
                f"updated_at) VALUES (?, ?, ?, ?, 'pending', ?) {LESSON_CHANGE}",
                (course_id, at, title, description, utcnow()),
            )
            assert row is not None
            txn.lesson_changed(job_id, course_id, row, change="added")
            for moved in sorted(shifted, key=lambda r: r["position"]):
                txn.lesson_changed(job_id, course_id, moved, change="moved")
            await txn.refresh_job(job_id, reopen=True)
            return int(row["id"]), job_id

        return await self._write(work)

    async def remove_lesson(self, lesson_id: int) -> str:
        """Delete a lesson (its versions too, its calls stay counted); the later ones move
        up. Returns the job id."""

        async def work(txn: Transaction) -> str:
            lesson = await self._lesson_for_edit(txn, lesson_id)
            job_id: str = lesson["job_id"]
            course_id: int = lesson["course_id"]
            await txn.execute("DELETE FROM lesson_versions WHERE lesson_id = ?", (lesson_id,))
            await txn.execute("DELETE FROM lessons WHERE id = ?", (lesson_id,))
            txn.lesson_changed(job_id, course_id, lesson, change="removed")
            shifted = await txn.fetchall(
                "UPDATE lessons SET position = position - 1 WHERE course_id = ? "
                f"AND position > ? {LESSON_CHANGE}",
                (course_id, lesson["position"]),
            )
            for moved in sorted(shifted, key=lambda r: r["position"]):
                txn.lesson_changed(job_id, course_id, moved, change="moved")
            await txn.refresh_job(job_id)
            return job_id

        return await self._write(work)

    async def restore_version(self, lesson_id: int, number: int) -> str:
        """Make an earlier version the lesson's text again, as a new version."""
        found = await self._read_one(lambda txn: queries.version(txn, lesson_id, number))
        if found is None:
            raise NotFound(f"lesson {lesson_id} has no version {number}")
        return await self.edit_lesson(lesson_id, content=found.content, source="restored")

    async def versions(self, lesson_id: int) -> list[Version] | None:
        return await self._read_one(lambda txn: queries.versions(txn, lesson_id))

    async def version(self, lesson_id: int, number: int) -> Version | None:
        return await self._read_one(lambda txn: queries.version(txn, lesson_id, number))

    # -- batch mode ------------------------------------------------------------------

    async def claim_for_batch(self, job_id: str) -> list[ClaimedLesson]:
        """Move every claimable lesson of a running batch-mode job to `generating`."""
        claim, params = self._claim()

        async def work(txn: Transaction) -> list[ClaimedLesson]:
            await txn.lock_job(job_id)
            rows = await txn.fetchall(
                "UPDATE lessons SET content_status = 'generating', content = '', "
                f"content_error = NULL, attempt = attempt + 1, priority = NULL{claim}, "
                "batch_id = NULL, updated_at = ? WHERE id IN (SELECT l.id FROM lessons l "
                "JOIN content_generation_jobs j ON j.course_id = l.course_id "
                f"WHERE j.id = ? AND j.status = 'running' AND {self._CLAIMABLE}) "
                f"{LESSON_CHANGE}, attempt",
                (*params, utcnow(), job_id),
            )
            rows.sort(key=lambda r: r["position"])
            for row in rows:
                txn.lesson_changed(job_id, row["course_id"], row)
            return [
                ClaimedLesson(r["id"], r["position"], r["attempt"], job_id, r["course_id"])
                for r in rows
            ]

        return await self._write(work)

    async def claim_quizzes_for_batch(self, job_id: str) -> list[ClaimedQuiz]:
        """Move every claimable quiz of a running batch-mode job to `generating`."""
        claim, params = self._claim()

        async def work(txn: Transaction) -> list[ClaimedQuiz]:
            await txn.lock_job(job_id)
            rows = await txn.fetchall(
                "UPDATE lessons SET quiz_status = 'generating', quiz_error = NULL, "
                f"quiz_attempt = quiz_attempt + 1{claim}, batch_id = NULL WHERE id IN "
                "(SELECT l.id FROM lessons l JOIN content_generation_jobs j "
                "ON j.course_id = l.course_id WHERE j.id = ? AND j.status = 'running' "
                f"AND l.content_status = 'complete' AND {self._QUIZ_CLAIMABLE}) "
                f"{QUIZ_CHANGE}, quiz_attempt, content, position",
                (*params, job_id),
            )
            rows.sort(key=lambda r: r["position"])
            for row in rows:
                txn.quiz_changed(job_id, row["course_id"], row)
            return [
                ClaimedQuiz(r["id"], r["quiz_attempt"], job_id, r["course_id"], r["content"] or "")
                for r in rows
            ]

        return await self._write(work)

    async def attach_batch(
        self,
        batch_id: str,
        job_id: str,
        course_id: int,
        lessons: list[ClaimedLesson],
        quizzes: list[ClaimedQuiz] | None = None,
    ) -> None:
        """Record a sent batch and its lessons (or quizzes): from now on it is polled, not
        leased."""

        async def work(txn: Transaction) -> None:
            await txn.execute(
                "INSERT INTO batches (id, course_id, job_id, status, created_at) "
                "VALUES (?, ?, ?, 'open', ?)",
                (batch_id, course_id, job_id, utcnow()),
            )
            await txn.executemany(
                f"UPDATE lessons SET batch_id = ?{self._UNLEASE} WHERE id = ? AND attempt = ? "
                "AND content_status = 'generating'",
                [(batch_id, lesson.id, lesson.attempt) for lesson in lessons],
            )
            await txn.executemany(
                f"UPDATE lessons SET batch_id = ?{self._UNLEASE} WHERE id = ? "
                "AND quiz_attempt = ? AND quiz_status = 'generating'",
                [(batch_id, quiz.id, quiz.attempt) for quiz in quizzes or ()],
            )

        await self._write(work)

    async def requeue_lesson(
        self, job_id: str, lesson_id: int, attempt: int, calls: list[ModelCall]
    ) -> None:
        """Put a claimed lesson back to `pending` (a rate limit, not its fault), storing
        the calls it made."""

        async def work(txn: Transaction) -> None:
            await txn.lock_job(job_id)
            if calls:
                await _record_calls(txn, calls)
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = 'pending', content = NULL, updated_at = ? "
                "WHERE id = ? AND attempt = ? AND content_status = 'generating' "
                f"{LESSON_CHANGE}",
                (utcnow(), lesson_id, attempt),
            )
            if row is not None:
                txn.lesson_changed(job_id, row["course_id"], row)

        await self._write(work)

    async def requeue_quiz(
        self, job_id: str, lesson_id: int, attempt: int, calls: list[ModelCall]
    ) -> None:
        """Put a claimed quiz back to `pending` (a rate limit), storing its calls."""

        async def work(txn: Transaction) -> None:
            await txn.lock_job(job_id)
            if calls:
                await _record_calls(txn, calls)
            row = await txn.fetchone(
                "UPDATE lessons SET quiz_status = 'pending' WHERE id = ? AND quiz_attempt = ? "
                f"AND quiz_status = 'generating' {QUIZ_CHANGE}",
                (lesson_id, attempt),
            )
            if row is not None:
                txn.quiz_changed(job_id, row["course_id"], row)

        await self._write(work)

    async def batch_lessons(self, batch_id: str) -> list[tuple[int, int, str | None]]:
        """What a batch is still writing: (lesson id, attempt, None) for a lesson's text,
        (lesson id, quiz attempt, the lesson's text) for its quiz."""

        async def work(txn: Transaction) -> list[tuple[int, int, str | None]]:
            rows = await txn.fetchall(
                "SELECT id, attempt, quiz_attempt, content_status, content FROM lessons "
                "WHERE batch_id = ? AND (content_status = 'generating' "
                "OR quiz_status = 'generating') ORDER BY position, id",
                (batch_id,),
            )
            return [
                (row["id"], row["attempt"], None)
                if row["content_status"] == "generating"
                else (row["id"], row["quiz_attempt"], row["content"] or "")
                for row in rows
            ]

        return await self._read_one(work)

    async def open_batches(self) -> list[tuple[str, str, int]]:
        """The batches still being polled: (batch id, job id, course id), oldest first."""

        async def work(txn: Transaction) -> list[tuple[str, str, int]]:
            rows = await txn.fetchall(
                "SELECT id, job_id, course_id FROM batches WHERE status = 'open' "
                "ORDER BY created_at, id"
            )
            return [(row["id"], row["job_id"], row["course_id"]) for row in rows]

        return await self._read_one(work)

    async def end_batch(self, batch_id: str) -> None:
        async def work(txn: Transaction) -> None:
            await txn.execute("UPDATE batches SET status = 'ended' WHERE id = ?", (batch_id,))

        await self._write(work)

    # -- reads, each on one consistent snapshot ------------------------------------------

    async def course_spent(self, course_id: int, unsaved: Sequence[ModelCall] = ()) -> Usage:
        """What a course has spent: its stored calls, each of `unsaved` (reported, perhaps
        not stored yet) counted once, by its newer figures."""
        ids = [call.id for call in unsaved]
        others = f" AND id NOT IN ({', '.join('?' * len(ids))})" if ids else ""

        async def work(txn: Transaction) -> Usage:
            sql = f"SELECT {USAGE_SUMS} FROM model_calls WHERE course_id = ?{others}"
            return usage_of(await txn.fetchone(sql, (course_id, *ids)))

        spent = await self._read_one(work)
        for call in unsaved:
            spent += call.usage
        return spent

    async def list_courses(
        self, *, limit: int = 50, before: int | None = None, search: str | None = None
    ) -> CoursePage:
        """A page of courses, newest first: those older than `before`, and with `search`
        those whose title, topic or description hold its words (the last as a prefix)."""
        matching = None
        if search is not None and search.strip():
            words = queries.search_words(search)
            matching = self._matching(words) if words else ("1 = 0", ())
        return await self._read(lambda txn: queries.list_courses(txn, limit, before, matching))

    async def get_course(self, course_id: int) -> Course | None:
        return await self._read(lambda txn: queries.course_view(txn, course_id))

    async def get_lesson(self, lesson_id: int) -> Lesson | None:
        return await self._read_one(lambda txn: queries.lesson_view(txn, lesson_id))

    async def course_texts(self, course_id: int) -> tuple[Course, list[Lesson]] | None:
        return await self._read(lambda txn: queries.course_texts(txn, course_id))

    async def get_progress(self, job_id: str) -> Progress | None:
        return await self._read_one(lambda txn: queries.progress(txn, job_id))

    async def job_snapshot(self, job_id: str) -> JobSnapshot | None:
        return await self._read_one(lambda txn: queries.job_snapshot(txn, job_id))

    async def lesson_job(self, lesson_id: int) -> str | None:
        return await self._read_one(lambda txn: queries.lesson_job(txn, lesson_id))

    async def course_outline(self, job_id: str) -> CourseOutline | None:
        return await self._read(lambda txn: queries.course_outline(txn, job_id))

    async def events_after(
        self, cursor: int, job_id: str | None = None, limit: int = EVENT_PAGE
    ) -> list[Event]:
        return await self._read_one(lambda txn: queries.events_after(txn, cursor, job_id, limit))

    async def newest_event_id(self) -> int:
        return await self._read_one(queries.newest_event_id)

    async def count_running_jobs(self) -> int:
        return await self._read_one(queries.count_running_jobs)

    async def claimable_jobs(self) -> list[str]:
        """Running jobs with a lesson (or a written lesson's quiz) that a free slot could
        claim now: a dead node's quizzes too, once their leases end."""
        claimable = (
            f"({self._CLAIMABLE} OR (l.content_status = 'complete' AND {self._QUIZ_CLAIMABLE}))"
        )
        return await self._read_one(lambda txn: queries.claimable_jobs(txn, claimable))

    async def idempotent_answer(self, key: str) -> tuple[str, dict[str, Any]] | None:
        return await self._read_one(lambda txn: queries.idempotent_answer(txn, key))


async def _record_calls(txn: Transaction, calls: list[ModelCall]) -> None:
    """Store calls by their id: a later report of a call replaces the earlier one."""
    await txn.executemany(
        "INSERT INTO model_calls (id, course_id, lesson_id, kind, model, batch, input_tokens, "
        "output_tokens, cache_creation_input_tokens, cache_read_input_tokens, cost_usd, "
        "stop_reason, duration_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET input_tokens = excluded.input_tokens, "
        "output_tokens = excluded.output_tokens, "
        "cache_creation_input_tokens = excluded.cache_creation_input_tokens, "
        "cache_read_input_tokens = excluded.cache_read_input_tokens, "
        "cost_usd = excluded.cost_usd, stop_reason = excluded.stop_reason, "
        "duration_ms = excluded.duration_ms "
        # A call's final report (it has a stop reason) is never replaced by an earlier one
        # that the draft saver commits late.
        "WHERE model_calls.stop_reason IS NULL",
        [
            (call.id, call.course_id, call.lesson_id, call.kind, call.model, int(call.batch),
             call.usage.input_tokens, call.usage.output_tokens,
             call.usage.cache_creation_input_tokens, call.usage.cache_read_input_tokens,
             call.usage.cost_usd, call.stop_reason, call.duration_ms, utcnow())
            for call in calls
        ],
    )  # fmt: skip


async def _add_version(
    txn: Transaction, lesson_id: int, source: str, content: str, instructions: str | None
) -> int:
    """Keep a lesson's new text as its next version; the version's number."""
    row = await txn.fetchone(
        "INSERT INTO lesson_versions (lesson_id, version, created_at, source, instructions, "
        "content) SELECT ?, coalesce(max(version), 0) + 1, ?, ?, ?, ? FROM lesson_versions "
        "WHERE lesson_id = ? RETURNING version",
        (lesson_id, utcnow(), source, instructions, content, lesson_id),
    )
    assert row is not None
    return int(row["version"])
