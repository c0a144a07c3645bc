"""The job runner: writes lessons as asyncio tasks in the server's own event loop.

One semaphore bounds the lesson calls in flight across every job. Each running
job has one driver task that claims its lessons in course order, one per free
slot, and starts a task per lesson call. All state lives in the database; the
runner holds only the tasks, so a restart resumes from the database alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

from coursegen.domain import (
    DEFAULT_OPTIONS,
    ClaimedLesson,
    ClaimedQuiz,
    Course,
    CourseOptions,
    CourseOutline,
    JobStatus,
    LessonPlan,
    LessonStatus,
    ModelCall,
    Outline,
    Progress,
)
from coursegen.drafts import Drafts
from coursegen.errors import Conflict, ProviderError, ShuttingDown, TooManyJobs
from coursegen.prices import Prices
from coursegen.providers.base import LessonRequest, LessonTooLong, Provider, RateLimited
from coursegen.settings import Settings
from coursegen.store import Store
from coursegen.throttle import Throttle, Ticket

logger = logging.getLogger(__name__)

# How often the text so far of the lessons being written is stored, in one commit.
SAVE_INTERVAL = 1.0


@dataclass
class _Driver:
    task: asyncio.Task[None] | None = None
    # Set when lessons were queued while the driver may already have found none.
    again: bool = False


class JobRunner:
    """Starts, resumes, retries and cancels jobs; admits new ones up to the limit."""

    def __init__(
        self,
        store: Store,
        provider: Provider,
        settings: Settings,
        drafts: Drafts,
        prices: Prices,
    ) -> None:
        self._store = store
        self._provider = provider
        self.drafts = drafts
        self._prices = prices
        self._max_cost = settings.max_course_cost
        self._batch_poll = settings.batch_poll
        # Calls reported but not stored yet: stored by the draft saver, or with the result.
        self._unsaved_calls: dict[str, ModelCall] = {}
        self._lease = settings.lease_seconds
        self._chores: list[asyncio.Task[None]] = []
        # The calls this process makes: (lesson id, whether for its quiz) -> (attempt, task).
        self._in_flight: dict[tuple[int, bool], tuple[int, asyncio.Task[None]]] = {}
        self._timeout = settings.lesson_timeout
        self._max_active_jobs = settings.max_active_jobs
        # The calls in flight: at most COURSEGEN_CONCURRENCY, fewer while rate limited.
        self.throttle = Throttle(settings.concurrency)
        self._drivers: dict[str, _Driver] = {}
        self._calls: dict[str, set[asyncio.Task[None]]] = {}
        self._admitting = 0
        self._key_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._closing = False

    async def start(self) -> None:
        """Resume every job left running, e.g. by a crash: nothing in flight survived it."""
        running = await self._store.requeue_in_flight()
        if running:
            logger.info("resuming %d running job(s)", len(running))
        self._chores = [
            asyncio.create_task(self._save_drafts(), name="draft saver"),
            asyncio.create_task(self._keep_claims(), name="lease keeper"),
            asyncio.create_task(self._poll_batches(), name="batch poller"),
        ]
        if self._store.shared:
            self._chores.append(asyncio.create_task(self._find_work(), name="work finder"))
        for job_id in running:
            self.kick(job_id)

    def drain(self) -> None:
        """Start nothing new: the server is stopping. Calls in flight may still finish."""
        self._closing = True

    async def close(self) -> None:
        """Stop all work; lessons in flight go back to `pending`, to resume on next start."""
        self.drain()
        await self._stop(list(self._drivers) + list(self._calls))
        for chore in self._chores:
            chore.cancel()
        await asyncio.gather(*self._chores, return_exceptions=True)
        # Handed back at once: another node (or the next start) takes them, no lease wait.
        await self._store.requeue_in_flight()

    # -- what the API asks for ------------------------------------------------------------

    async def generate(
        self,
        topic: str,
        lessons: int | None,
        idempotency_key: str | None = None,
        *,
        mode: str = "stream",
        options: CourseOptions = DEFAULT_OPTIONS,
    ) -> Course:
        """Ask for the outline, store the course and start its job; return the course."""
        if self._closing:
            raise ShuttingDown("the server is shutting down; try again in a moment")
        if idempotency_key is None:
            return await self._create(topic, lessons, mode, options, None)
        asked: list[Any] = [topic, lessons]
        if mode != "stream" or options != DEFAULT_OPTIONS:
            asked += [mode, options.to_json()]
        fingerprint = json.dumps(asked)
        # Requests with one key wait for each other, so only the first calls the model.
        async with self._key_lock(idempotency_key):
            stored = await self._store.idempotent_answer(idempotency_key)
            if stored is not None:
                if stored[0] != fingerprint:
                    raise Conflict("this Idempotency-Key was already used for another request")
                return Course.from_json(stored[1])
            return await self._create(topic, lessons, mode, options, (idempotency_key, fingerprint))

    def estimate(self, course: Course) -> float | None:
        """The most the course's lessons can cost at their token limits (None: no price)."""
        outline = Outline(
            course.title,
            course.description,
            tuple(LessonPlan(lesson.title, lesson.description) for lesson in course.lessons),
        )
        brief = CourseOutline(
            course.topic,
            outline,
            tuple(lesson.id for lesson in course.lessons),
            course.id,
            course.mode,
            course.options,
        )
        batch = course.mode == "batch"
        total = 0.0
        for index in range(len(outline.lessons)):
            budget = self._provider.lesson_budget(brief, index, batch=batch)
            cost = self._prices.cost(self._provider.model, budget, batch=batch)
            if cost is None:
                return None
            total += cost
        return total

    async def retry_lesson(self, lesson_id: int, instructions: str = "") -> str:
        job_id = await self._store.retry_lesson(lesson_id, instructions)
        self.kick(job_id)
        return job_id

    async def retry_quiz(self, lesson_id: int) -> str:
        job_id = await self._store.retry_quiz(lesson_id)
        self.kick(job_id)
        return job_id

    async def edit_lesson(
        self,
        lesson_id: int,
        *,
        title: str | None = None,
        description: str | None = None,
        content: str | None = None,
        position: int | None = None,
    ) -> None:
        job_id = await self._store.edit_lesson(
            lesson_id, title=title, description=description, content=content, position=position
        )
        self.kick(job_id)  # a new text gets its quiz

    async def restore_version(self, lesson_id: int, number: int) -> None:
        self.kick(await self._store.restore_version(lesson_id, number))

    async def add_lesson(
        self, course_id: int, title: str, description: str, position: int | None
    ) -> int:
        lesson_id, job_id = await self._store.add_lesson(course_id, title, description, position)
        self.kick(job_id)
        return lesson_id

    async def remove_lesson(self, lesson_id: int) -> None:
        """Delete a lesson; a call in flight for it (its text or its quiz) is cancelled."""
        job_id = await self._store.remove_lesson(lesson_id)
        calls = [self._in_flight.get((lesson_id, quiz)) for quiz in (False, True)]
        for held in calls:
            if held is not None:
                held[1].cancel()
        await asyncio.gather(*(held[1] for held in calls if held), return_exceptions=True)
        self.kick(job_id)

    async def prioritize(self, lesson_id: int) -> LessonStatus:
        """Make a pending lesson the next one written; its status (pending if it was)."""
        status = await self._store.prioritize(lesson_id)
        if status is LessonStatus.PENDING:
            # Its job's driver may have stopped (a cancelled job resumes only by retry).
            job_id = await self._store.lesson_job(lesson_id)
            if job_id is not None:
                self.kick(job_id)
        return status

    async def retry_job(self, job_id: str) -> int:
        retried = await self._store.retry_job(job_id)
        self.kick(job_id)
        return retried

    async def cancel(self, job_id: str) -> Progress:
        """Cancel a running job: first in the database, so no new lesson starts, then its calls
        (and its batches, whose results still come in to be counted)."""
        progress = await self._store.cancel_job(job_id)
        await self._stop([job_id])
        for batch_id, batch_job, _ in await self._store.open_batches():
            if batch_job == job_id:
                await self._provider.cancel_batch(batch_id)
        return progress

    async def delete_course(self, course_id: int) -> None:
        course = await self._store.get_course(course_id)
        job = course.job if course else None
        if job and job.status is JobStatus.RUNNING:
            with contextlib.suppress(Conflict):  # it finished meanwhile: nothing to stop
                await self.cancel(job.job_id)
        await self._store.delete_course(course_id)

    # -- running --------------------------------------------------------------------------

    def kick(self, job_id: str) -> None:
        """Make sure a driver is generating the job's pending lessons."""
        if self._closing:
            return
        driver = self._drivers.get(job_id)
        if driver is not None:
            driver.again = True
            return
        driver = self._drivers[job_id] = _Driver()
        driver.task = asyncio.create_task(self._drive(job_id, driver), name=f"job {job_id}")

    async def _create(
        self,
        topic: str,
        lessons: int | None,
        mode: str,
        options: CourseOptions,
        idempotency: tuple[str, str] | None,
    ) -> Course:
        if await self._store.count_running_jobs() + self._admitting >= self._max_active_jobs:
            raise TooManyJobs(
                f"{self._max_active_jobs} courses are being written already; "
                "wait for one to finish, or cancel one"
            )
        self._admitting += 1
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    result = await self._provider.generate_outline(topic, lessons, options)
            except TimeoutError:
                raise ProviderError(
                    f"the model provider timed out after {self._timeout:g} s writing the outline; "
                    "try again"
                ) from None
            except RateLimited as exc:
                self.throttle.rate_limited(None, exc.retry_after)
                await self._tell_rate_limited(exc.retry_after)
                raise
            course, created = await self._store.create_course(
                topic,
                result.outline,
                mode=mode,
                options=options,
                outline_call=self._priced(result.call),
                idempotency=idempotency,
            )
        finally:
            self._admitting -= 1
        if created and course.job is not None:
            self.kick(course.job.job_id)
        return course

    async def _drive(self, job_id: str, driver: _Driver) -> None:
        try:
            course = await self._store.course_outline(job_id)
            if course is not None and course.mode == "batch":
                # Again after a 429 (once its pause is over), or for lessons queued meanwhile.
                while True:
                    driver.again = False
                    if not await self._send_batch(job_id, course) and not driver.again:
                        return
            # The first call of a course writes its prompt prefix to the provider's cache;
            # the others wait until it has begun, to read it from there at a tenth of the price.
            warming: asyncio.Event | None = asyncio.Event()
            # The quizzes have a cached prefix of their own: the first warms it the same way.
            quiz_warming: asyncio.Event | None = asyncio.Event()
            while course is not None:
                ticket = await self.throttle.acquire()
                if self._closing:  # a lesson claimed now would only be cut off
                    self.throttle.release(ticket)
                    break
                try:
                    # Texts first (readers wait for them), then the quizzes of those written.
                    work: ClaimedLesson | ClaimedQuiz | None = await self._store.claim_next_lesson(
                        job_id
                    ) or await self._store.claim_next_quiz(job_id)
                except BaseException:
                    self.throttle.release(ticket)
                    raise
                if work is None:
                    self.throttle.release(ticket)
                    if not driver.again:
                        break
                    driver.again = False
                    continue
                if self._closing:
                    # The server began to stop while the claim committed: start no call
                    # that could only be cut off and paid for twice; close() hands the
                    # lesson back.
                    self.throttle.release(ticket)
                    break
                owner = work.job_id
                quiz = isinstance(work, ClaimedQuiz)
                call = asyncio.create_task(
                    self._quiz(work, ticket, quiz_warming if owner == job_id else None)
                    if isinstance(work, ClaimedQuiz)
                    else self._write(work, ticket, warming if owner == job_id else None),
                    name=f"{'quiz' if quiz else 'lesson'} {work.id}",
                )
                self._calls.setdefault(owner, set()).add(call)
                self._in_flight[(work.id, quiz)] = (work.attempt, call)
                call.add_done_callback(functools.partial(self._call_done, owner, (work.id, quiz)))
                if warming is not None and owner == job_id and not quiz:
                    await warming.wait()
                    warming = None
                if quiz_warming is not None and owner == job_id and quiz:
                    await quiz_warming.wait()
                    quiz_warming = None
        except Exception:
            logger.exception("the driver of job %s failed", job_id)
            await self._store.fail_job(job_id, "an internal error stopped this job; retry it")
        finally:
            # Checked and dropped with no await between, so a kick() cannot slip in.
            if self._drivers.get(job_id) is driver:
                del self._drivers[job_id]

    async def _write(
        self, lesson: ClaimedLesson, ticket: Ticket, warming: asyncio.Event | None = None
    ) -> None:
        """Write one lesson's text."""
        job_id = lesson.job_id
        content: str | None = None
        error: str | None = None
        stop_reason: str | None = None
        calls: dict[str, ModelCall] = {}
        started = time.monotonic()

        def on_call(call: ModelCall) -> None:
            priced = self._priced(call, lesson)
            calls[call.id] = self._unsaved_calls[call.id] = priced
            if warming is not None:
                warming.set()

        draft = self.drafts.start(lesson.id, job_id, lesson.course_id, lesson.attempt)
        try:
            try:
                if await self._over_limit(job_id, lesson.course_id, lesson):
                    return
                # Read now, so that a lesson written after an outline edit sees the edit.
                course = await self._store.course_outline(job_id)
                if course is None or lesson.id not in course.lesson_ids:
                    return  # removed meanwhile
                index = course.lesson_ids.index(lesson.id)
                result = await self._provider.write_lesson(
                    course, index, draft.append, on_call, lesson.instructions
                )
                content, stop_reason = draft.text, result.stop_reason
                self.throttle.succeeded(ticket)
            except RateLimited as exc:
                # Not the lesson's fault: it waits for its turn again, at a lower concurrency.
                self.throttle.rate_limited(ticket, exc.retry_after)
                self.throttle.release(ticket)
                await self._tell_rate_limited(exc.retry_after)
                draft.flush()
                await self._store.requeue_lesson(
                    job_id, lesson.id, lesson.attempt, list(calls.values())
                )
                self._forget(calls)
                self.kick(job_id)
                return
            except LessonTooLong as exc:
                error, content = exc.message, draft.text
            except ProviderError as exc:
                error = exc.message
            except Exception:
                logger.exception("writing lesson %d of job %s failed", lesson.id, job_id)
                error = "an unexpected error stopped this lesson; retry it"
            finally:
                self.throttle.release(ticket)
                if warming is not None:
                    warming.set()
            if stop_reason is None and calls:
                # It failed: how its last call ended (max_tokens, refusal) says why.
                stop_reason = list(calls.values())[-1].stop_reason
            # Every reader gets the last words before the status change that ends it.
            draft.flush()
            stored = await self._store.finish_lesson(
                job_id,
                lesson.id,
                lesson.attempt,
                content=content,
                error=error,
                calls=list(calls.values()),
                model=self._provider.model if calls else None,
                stop_reason=stop_reason,
                duration_ms=round((time.monotonic() - started) * 1000),
            )
            self._forget(calls)
        finally:
            # After the commit, so a reader that looks now finds the stored text.
            self.drafts.end(draft)
        if not stored:
            logger.info("lesson %d: a newer attempt or a cancel superseded this result", lesson.id)
        elif error is None:
            self.kick(job_id)  # its quiz is to be written, perhaps after the driver stopped

    async def _quiz(
        self, claimed: ClaimedQuiz, ticket: Ticket, warming: asyncio.Event | None = None
    ) -> None:
        """Write one lesson's quiz. Its failure is the quiz's own: the text stays."""
        job_id = claimed.job_id
        calls: dict[str, ModelCall] = {}
        questions = error = None

        def on_call(call: ModelCall) -> None:
            calls[call.id] = self._unsaved_calls[call.id] = replace(
                call,
                usage=self._prices.priced(call.model, call.usage, batch=call.batch),
                course_id=claimed.course_id,
                lesson_id=claimed.id,
            )
            if warming is not None:
                warming.set()

        try:
            if await self._spent_past_limit(claimed.course_id) is not None:
                error = "the course reached its spending limit (COURSEGEN_MAX_COURSE_COST)"
            else:
                course = await self._store.course_outline(job_id)
                if course is None or claimed.id not in course.lesson_ids:
                    return
                index = course.lesson_ids.index(claimed.id)
                result = await self._provider.write_quiz(course, index, claimed.text, on_call)
                questions = result.questions
                self.throttle.succeeded(ticket)
        except RateLimited as exc:
            self.throttle.rate_limited(ticket, exc.retry_after)
            self.throttle.release(ticket)
            await self._tell_rate_limited(exc.retry_after)
            error = None
            await self._store.requeue_quiz(
                job_id, claimed.id, claimed.attempt, list(calls.values())
            )
            self._forget(calls)
            self.kick(job_id)
            return
        except ProviderError as exc:
            error = exc.message
        except Exception:
            logger.exception("writing the quiz of lesson %d failed", claimed.id)
            error = "an unexpected error stopped this quiz; retry it"
        finally:
            self.throttle.release(ticket)
            if warming is not None:
                warming.set()
        await self._store.finish_quiz(
            job_id,
            claimed.id,
            claimed.attempt,
            quiz=questions,
            error=error,
            calls=list(calls.values()),
        )
        self._forget(calls)

    async def _tell_rate_limited(self, retry_after: float | None) -> None:
        """Other nodes use the same API key: they back off too."""
        try:
            await self._store.share_rate_limit(retry_after)
        except Exception as exc:
            logger.warning("telling other nodes of a rate limit failed: %s", exc)

    def _priced(self, call: ModelCall, lesson: ClaimedLesson | None = None) -> ModelCall:
        usage = self._prices.priced(call.model, call.usage, batch=call.batch)
        if lesson is None:
            return replace(call, usage=usage)
        return replace(call, usage=usage, course_id=lesson.course_id, lesson_id=lesson.id)

    def _forget(self, calls: dict[str, ModelCall]) -> None:
        """These calls were stored with their lesson: the draft saver need not store them."""
        for call_id in calls:
            self._unsaved_calls.pop(call_id, None)

    async def _over_limit(self, job_id: str, course_id: int, lesson: ClaimedLesson | None) -> bool:
        """Whether the course has spent COURSEGEN_MAX_COURSE_COST; if so, its job stops
        (with the lesson just claimed for a call that will not start)."""
        spent = await self._spent_past_limit(course_id)
        if spent is None or self._max_cost is None:
            return False
        await self._store.stop_at_limit(
            job_id,
            (lesson.id, lesson.attempt) if lesson else None,
            f"the course has spent {_usd(spent)}, reaching its limit of {_usd(self._max_cost)} "
            "(COURSEGEN_MAX_COURSE_COST); raise the limit and retry to go on",
        )
        return True

    async def _spent_past_limit(self, course_id: int) -> float | None:
        """What the course has spent, if that reaches COURSEGEN_MAX_COURSE_COST; else None."""
        if self._max_cost is None:
            return None
        # A call that has just ended frees its slot before its lesson is stored: count it
        # (and every call reported but not stored yet) by what it reported.
        unsaved = [c for c in self._unsaved_calls.values() if c.course_id == course_id]
        spent = (await self._store.course_spent(course_id, unsaved)).cost_usd
        return spent if spent is not None and spent >= self._max_cost else None

    # -- batch mode -----------------------------------------------------------------

    async def _send_batch(self, job_id: str, course: CourseOutline) -> bool:
        """Send every claimable lesson of a batch-mode job as one Message Batch; True when
        the provider rate-limited it, to be sent again."""
        # A slot like any call's, so that a rate limit's pause holds the submission too.
        ticket = await self.throttle.acquire()
        try:
            if self._closing or await self._over_limit(job_id, course.course_id, None):
                return False
            # The lessons' texts first; their quizzes go in a second batch once written.
            lessons = await self._store.claim_for_batch(job_id)
            quizzes = [] if lessons else await self._store.claim_quizzes_for_batch(job_id)
            if not lessons and not quizzes:
                return False
            # Once sent, the provider makes the batch whatever becomes of this task: a cancel
            # (or shutdown) waits until it is recorded, so that it is cancelled (or polled
            # after a restart) rather than run on unseen, and paid for.
            submission = asyncio.ensure_future(
                self._submit_batch(job_id, course, lessons, quizzes, ticket)
            )
            try:
                return await asyncio.shield(submission)
            except asyncio.CancelledError:
                await submission
                raise
        finally:
            self.throttle.release(ticket)

    async def _submit_batch(
        self,
        job_id: str,
        course: CourseOutline,
        lessons: list[ClaimedLesson],
        quizzes: list[ClaimedQuiz],
        ticket: Ticket,
    ) -> bool:
        requests = [
            self._request(course, lesson.id, lesson.attempt, None, lesson.instructions)
            for lesson in lessons
        ] + [self._request(course, quiz.id, quiz.attempt, quiz.text) for quiz in quizzes]
        try:
            batch_id = await self._provider.submit_batch(requests)
        except RateLimited as exc:
            # Not the lessons' fault (SPEC 11): they wait, and go in the next batch.
            self.throttle.rate_limited(ticket, exc.retry_after)
            for lesson in lessons:
                await self._store.requeue_lesson(job_id, lesson.id, lesson.attempt, [])
            for quiz in quizzes:
                await self._store.requeue_quiz(job_id, quiz.id, quiz.attempt, [])
            return True
        except ProviderError as exc:
            for lesson in lessons:
                await self._store.finish_lesson(
                    job_id, lesson.id, lesson.attempt, error=exc.message
                )
            for quiz in quizzes:
                await self._store.finish_quiz(job_id, quiz.id, quiz.attempt, error=exc.message)
            return False
        self.throttle.succeeded(ticket)
        await self._store.attach_batch(batch_id, job_id, course.course_id, lessons, quizzes)
        logger.info(
            "job %s: sent %d lesson(s) and %d quiz(zes) as batch %s",
            job_id, len(lessons), len(quizzes), batch_id,
        )  # fmt: skip
        return False

    @staticmethod
    def _request(
        course: CourseOutline, lesson_id: int, attempt: int, quiz_of: str | None, asked: str = ""
    ) -> LessonRequest:
        """A batch request: `l<id>a<attempt>` writes a text, `q<id>a<attempt>` a quiz."""
        index = course.lesson_ids.index(lesson_id)
        kind = "l" if quiz_of is None else "q"
        return LessonRequest(f"{kind}{lesson_id}a{attempt}", course, index, asked, quiz_of)

    async def _poll_batches(self) -> None:
        """Apply the results of every open batch once it has ended (after a restart too)."""
        while True:
            await asyncio.sleep(self._batch_poll)
            try:
                for batch_id, job_id, course_id in await self._store.open_batches():
                    await self._poll_batch(batch_id, job_id, course_id)
            except Exception:
                logger.exception("polling the open Message Batches failed")

    async def _poll_batch(self, batch_id: str, job_id: str, course_id: int) -> None:
        course = await self._store.course_outline(job_id)
        waiting = await self._store.batch_lessons(batch_id)
        requests = (
            []
            if course is None
            else [self._request(course, *row) for row in waiting if row[0] in course.lesson_ids]
        )
        try:
            results = await self._provider.poll_batch(batch_id, requests)
        except ProviderError as exc:
            logger.warning("polling batch %s: %s", batch_id, exc.message)
            return
        if results is None:
            return
        for result in results:
            quiz, lesson_id, attempt = _work_of(result.custom_id)
            calls = []
            if result.call is not None:
                call = replace(result.call, course_id=course_id, lesson_id=lesson_id)
                calls.append(self._priced(call))
            if quiz:
                await self._store.finish_quiz(
                    job_id, lesson_id, attempt, quiz=result.quiz, error=result.error, calls=calls
                )
                continue
            await self._store.finish_lesson(
                job_id,
                lesson_id,
                attempt,
                content=result.text,
                error=result.error,
                calls=calls,
                model=self._provider.model if calls else None,
                stop_reason=calls[0].stop_reason if calls else None,
            )
        for lesson_id, attempt, quiz_of in await self._store.batch_lessons(batch_id):
            # Not left waiting on a batch that has ended.
            missing = "the batch ended without this one; retry it"
            if quiz_of is None:
                await self._store.finish_lesson(job_id, lesson_id, attempt, error=missing)
            else:
                await self._store.finish_quiz(job_id, lesson_id, attempt, error=missing)
        await self._store.end_batch(batch_id)
        # Lessons queued while it ran (a retry) go in the next batch.
        self.kick(job_id)

    async def _save_drafts(self) -> None:
        """Store the text so far of every lesson being written, once a second, together."""
        while True:
            await asyncio.sleep(SAVE_INTERVAL)
            drafts = self.drafts.unsaved()
            calls = list(self._unsaved_calls.values())
            if not drafts and not calls:
                continue
            texts = [(d.lesson_id, d.attempt, d.text) for d in drafts]
            try:
                await self._store.save_drafts(texts, calls)
            except Exception:
                logger.exception("storing the text of lessons being written failed")
                continue
            for call in calls:
                if self._unsaved_calls.get(call.id) is call:
                    del self._unsaved_calls[call.id]
            for draft, (_, _, text) in zip(drafts, texts, strict=True):
                draft.saved = len(text)

    async def _keep_claims(self) -> None:
        """Renew the leases on the lessons being written; stop a call whose claim was lost
        (another node took the lesson over, or it was cancelled there)."""
        while True:
            await asyncio.sleep(self._lease / 3)
            held = [(key[0], attempt, key[1]) for key, (attempt, _) in self._in_flight.items()]
            try:
                lost = await self._store.renew_leases(held)
            except Exception:
                logger.exception("renewing the leases on lessons being written failed")
                continue
            for key in lost:
                _, call = self._in_flight.get(key, (0, None))
                if call is not None:
                    logger.warning("lesson %d: its claim was lost; stopping its call", key[0])
                    call.cancel()

    async def _find_work(self) -> None:
        """Drive every running job with a lesson to claim: jobs started on other nodes,
        and the lessons of a node that died once their leases run out."""
        while True:
            await asyncio.sleep(min(1.0, self._lease / 4))
            try:
                jobs = await self._store.claimable_jobs()
            except Exception:
                logger.exception("looking for lessons to write failed")
                continue
            for job_id in jobs:
                self.kick(job_id)

    def _call_done(self, job_id: str, key: tuple[int, bool], call: asyncio.Task[None]) -> None:
        if self._in_flight.get(key, (0, None))[1] is call:
            del self._in_flight[key]
        calls = self._calls.get(job_id)
        if calls is not None:
            calls.discard(call)
            if not calls:
                del self._calls[job_id]
        if not call.cancelled() and call.exception() is not None:
            # Storing the result failed (the lesson stays `generating` until the next
            # start resumes it): say so rather than lose the error with the task.
            logger.error("storing a lesson of job %s failed", job_id, exc_info=call.exception())

    async def _stop(self, job_ids: list[str]) -> None:
        """Cancel the drivers and lesson calls of these jobs and wait until they are gone."""
        tasks: list[asyncio.Task[None]] = []
        for job_id in set(job_ids):
            driver = self._drivers.get(job_id)
            if driver is not None and driver.task is not None:
                tasks.append(driver.task)
            tasks.extend(self._calls.get(job_id, ()))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @asynccontextmanager
    async def _key_lock(self, key: str) -> AsyncIterator[None]:
        lock, users = self._key_locks.get(key, (asyncio.Lock(), 0))
        self._key_locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._key_locks[key]
            if users == 1:
                del self._key_locks[key]
            else:
                self._key_locks[key] = (lock, users - 1)


def _usd(amount: float) -> str:
    """Dollars with cents, and the further decimals (to 6, as cost_usd) a small sum needs:
    a limit of $0.004 must not read as $0.00."""
    whole, _, fraction = f"{amount:.6f}".partition(".")
    return f"${whole}.{fraction.rstrip('0').ljust(2, '0')}"


def _work_of(custom_id: str) -> tuple[bool, int, int]:
    """Whether a batch request's custom_id (`l<id>a<attempt>`, `q<id>a<attempt>`) names a
    quiz, and the lesson id and attempt it names."""
    lesson, attempt = custom_id[1:].split("a")
    return custom_id.startswith("q"), int(lesson), int(attempt)
