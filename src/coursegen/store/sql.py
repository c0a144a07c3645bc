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
    ClaimedLesson,
    Course,
    CourseListItem,
    CourseOutline,
    Event,
    JobSnapshot,
    Lesson,
    LessonStatus,
    ModelCall,
    Outline,
    Progress,
    Usage,
)
from coursegen.errors import Conflict, NotFound
from coursegen.store import queries
from coursegen.store.base import EVENT_PAGE, USAGE_SUMS, usage_of
from coursegen.store.queries import IDEMPOTENCY_TTL
from coursegen.store.transaction import LATEST_JOB, LESSON_CHANGE, Transaction, utcnow

T = TypeVar("T")


class SqlStore(abc.ABC):
    """Async access to courses, lessons, jobs, the event log and idempotency keys."""

    shared = False  # whether other processes write the database too
    # A lesson a runner may claim (`l` is the lessons table), and how the claim locks it.
    _CLAIMABLE = "l.content_status = 'pending'"
    _CLAIM_LOCK = ""  # one writer at a time owns an unshared database
    # More columns set once a lesson is in a Message Batch (`, column = value`...).
    _UNLEASE = ""

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

    async def renew_leases(self, lessons: list[tuple[int, int]]) -> set[int]:
        """Extend the claims on these (lesson id, attempt); the ids whose claim was lost.

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
                "INSERT INTO courses (topic, title, description, created_at, mode) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (topic, outline.title, outline.description, now, mode),
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
                f"{LESSON_CHANGE}, attempt, {LATEST_JOB.format(course='lessons.course_id')} "
                "AS job_id",
                (*params, utcnow(), job_id),
            )
            if row is None:
                return None
            txn.lesson_changed(row["job_id"], row["course_id"], row)
            return ClaimedLesson(
                row["id"], row["position"], row["attempt"], row["job_id"], row["course_id"]
            )

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
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = ?, content = ?, content_error = ?, "
                "model = ?, stop_reason = ?, duration_ms = ?, batch_id = NULL, updated_at = ? "
                "WHERE id = ? AND attempt = ? AND content_status = 'generating' "
                f"{LESSON_CHANGE}",
                ("complete" if error is None else "error", content, error, model, stop_reason,
                 duration_ms, utcnow(), lesson_id, attempt),
            )  # fmt: skip
            if row is None:
                return False
            spent = await txn.usage(lesson_id=lesson_id)
            txn.lesson_changed(job_id, row["course_id"], row, spent)
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
            progress = await txn.refresh_job(job_id)
            txn.emit("job", progress.to_json(), job_id=job_id, course_id=job["course_id"])
            return progress

        return await self._write(work)

    async def retry_lesson(self, lesson_id: int) -> str:
        """Queue a failed (or complete) lesson again; its job runs again. Returns the job id."""

        async def work(txn: Transaction) -> str:
            lesson = await txn.fetchone(
                "SELECT content_status, course_id, "
                f"{LATEST_JOB.format(course='lessons.course_id')} AS job_id "
                "FROM lessons WHERE id = ?",
                (lesson_id,),
            )
            if lesson is None or lesson["job_id"] is None:
                raise NotFound("no such lesson")
            await txn.lock_job(lesson["job_id"])
            row = await txn.fetchone(
                "UPDATE lessons SET content_status = 'pending', content = NULL, "
                "content_error = NULL, updated_at = ? "
                "WHERE id = ? AND content_status IN ('error', 'complete') "
                f"{LESSON_CHANGE}",
                (utcnow(), lesson_id),
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
            retried = len(rows)
            if job["status"] == "cancelled":
                waiting = await txn.fetchone(
                    "SELECT count(*) AS n FROM lessons WHERE course_id = ? "
                    "AND content_status = 'pending'",
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

    async def attach_batch(
        self, batch_id: str, job_id: str, course_id: int, lessons: list[ClaimedLesson]
    ) -> None:
        """Record a sent batch and its lessons: from now on it is polled, not leased."""

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

    async def batch_lessons(self, batch_id: str) -> list[tuple[int, int]]:
        """The lessons a batch is still writing: (lesson id, attempt)."""

        async def work(txn: Transaction) -> list[tuple[int, int]]:
            rows = await txn.fetchall(
                "SELECT id, attempt FROM lessons WHERE batch_id = ? "
                "AND content_status = 'generating' ORDER BY position, id",
                (batch_id,),
            )
            return [(row["id"], row["attempt"]) for row in rows]

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

    async def list_courses(self) -> tuple[list[CourseListItem], int]:
        return await self._read(queries.list_courses)

    async def get_course(self, course_id: int) -> Course | None:
        return await self._read(lambda txn: queries.course_view(txn, course_id))

    async def get_lesson(self, lesson_id: int) -> Lesson | None:
        return await self._read_one(lambda txn: queries.lesson_view(txn, lesson_id))

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
        """Running jobs with a lesson that a free slot could claim now."""
        return await self._read_one(lambda txn: queries.claimable_jobs(txn, self._CLAIMABLE))

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
