"""The PostgreSQL engine as a cluster sees it: two stores on one database are two nodes.

Event ids in commit order and every node told of every event once; claims that
never overlap; leases that lapse, are taken over and fence the late result; a
stopping node hands back only its own lessons.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest

from coursegen.domain import CourseOptions, Event, LessonPlan, Outline
from coursegen.settings import Settings
from coursegen.store.postgres import PostgresStore, _pieces
from coursegen.throttle import Throttle
from tests.conftest import counters_hold, db_rows
from tests.helpers import until


@pytest.fixture
def engine() -> str:
    return "postgresql"


class Node:
    """A store and every event it was told of."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.store: PostgresStore | None = None

    def told(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    @property
    def s(self) -> PostgresStore:
        assert self.store is not None
        return self.store


OpenNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def open_node(settings: Settings) -> AsyncIterator[OpenNode]:
    nodes: list[Node] = []

    async def start(name: str, lease: float = 30.0) -> Node:
        node = Node()
        node.store = await PostgresStore.open(settings.db, node.told, node=name, lease=lease)
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        await node.s.close()


# Store-level tests of texts: a quiz per lesson would keep their jobs running.
NO_QUIZZES = CourseOptions(quizzes=False)


def outline(lessons: int) -> Outline:
    return Outline("T", "D", tuple(LessonPlan(f"L{i}", "d") for i in range(1, lessons + 1)))


async def test_every_node_is_told_every_event_once_in_commit_order(
    open_node: OpenNode, settings: Settings
) -> None:
    a, b = await open_node("a"), await open_node("b")

    async def work(node: Node, n: int) -> None:
        course, _ = await node.s.create_course(f"Topic {n}", outline(3))
        assert course.job is not None
        job = course.job.job_id
        while (claimed := await node.s.claim_next_lesson(job)) is not None:
            await node.s.finish_lesson(job, claimed.id, claimed.attempt, content="text")

    # Writers on both nodes at once: ids are handed out in one order, commits in another.
    await asyncio.gather(*(work(a if n % 2 else b, n) for n in range(16)))
    logged = [row[0] for row in await db_rows(settings, "SELECT id FROM events ORDER BY id")]
    await until(lambda: len(a.events) == len(b.events) == len(logged))
    for node in (a, b):
        ids = [event.id for event in node.events]
        assert ids == logged  # all of them, once each, in id order, which is commit order
    assert await counters_hold(settings) == []


async def test_concurrent_claims_never_take_one_lesson_twice(open_node: OpenNode) -> None:
    a, b = await open_node("a"), await open_node("b")
    course, _ = await a.s.create_course("Topic", outline(20))
    assert course.job is not None
    job = course.job.job_id

    async def claims(node: Node) -> list[int]:
        taken = []
        while (claimed := await node.s.claim_next_lesson(job)) is not None:
            taken.append(claimed.id)
        return taken

    results = await asyncio.gather(*(claims(node) for node in (a, b, a, b, a, b)))
    every = [lesson for taken in results for lesson in taken]
    assert sorted(every) == sorted(lesson.id for lesson in course.lessons)  # each exactly once


async def test_a_lapsed_claim_is_taken_over_and_the_late_result_refused(
    open_node: OpenNode, settings: Settings
) -> None:
    a, b = await open_node("a", lease=0.5), await open_node("b", lease=0.5)
    course, _ = await a.s.create_course("Topic", outline(1))
    assert course.job is not None
    job = course.job.job_id
    first = await a.s.claim_next_lesson(job)
    assert first is not None
    assert await b.s.claim_next_lesson(job) is None  # the claim holds while its lease does
    assert await a.s.renew_leases([(first.id, first.attempt, False)]) == set()
    await asyncio.sleep(0.7)  # a stops renewing, as a dead or frozen node would
    second = await b.s.claim_next_lesson(job)
    assert second is not None and (second.id, second.attempt) == (first.id, first.attempt + 1)
    # Node a wakes up: its claim is gone, and its result is not stored.
    assert await a.s.renew_leases([(first.id, first.attempt, False)]) == {(first.id, False)}
    assert not await a.s.finish_lesson(job, first.id, first.attempt, content="late")
    assert await b.s.finish_lesson(job, second.id, second.attempt, content="fresh")
    lesson = await b.s.get_lesson(first.id)
    assert lesson is not None and lesson.content == "fresh"
    assert await counters_hold(settings) == []


async def test_a_stopping_node_hands_back_only_its_own_lessons(open_node: OpenNode) -> None:
    a, b = await open_node("a"), await open_node("b")
    course, _ = await a.s.create_course("Topic", outline(2))
    assert course.job is not None
    job = course.job.job_id
    mine = await a.s.claim_next_lesson(job)
    theirs = await b.s.claim_next_lesson(job)
    assert mine is not None and theirs is not None
    assert await a.s.requeue_in_flight() == [job]
    stored = await a.s.get_course(course.id)
    assert stored is not None
    after = {lesson.id: lesson.content_status for lesson in stored.lessons}
    assert after == {mine.id: "pending", theirs.id: "generating"}
    again = await b.s.claim_next_lesson(job)  # handed back: claimable at once, no lease wait
    assert again is not None and again.id == mine.id


async def test_lessons_finishing_on_two_nodes_at_once_keep_the_counters_true(
    open_node: OpenNode, settings: Settings
) -> None:
    a, b = await open_node("a"), await open_node("b")
    course, _ = await a.s.create_course("Topic", outline(12), options=NO_QUIZZES)
    assert course.job is not None
    job = course.job.job_id
    claimed = [await (a if i % 2 else b).s.claim_next_lesson(job) for i in range(12)]
    # Every lesson finishes at the same moment, half on each node, with a cancel racing them.
    results = await asyncio.gather(
        *(
            (a if i % 2 else b).s.finish_lesson(job, c.id, c.attempt, content="x")
            for i, c in enumerate(claimed)
            if c is not None
        ),
        return_exceptions=True,
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    assert await counters_hold(settings) == []
    progress = await a.s.get_progress(job)
    assert progress is not None and (progress.status, progress.completed_lessons) == (
        "complete", 12,
    )  # fmt: skip


async def test_a_cancel_racing_lessons_that_finish_leaves_a_consistent_job(
    open_node: OpenNode, settings: Settings
) -> None:
    """A cancel locks the job, then its lessons; a finishing lesson the other way round.
    PostgreSQL picks one as a deadlock's victim, and that transaction runs again."""
    a, b = await open_node("a"), await open_node("b")
    for round in range(5):
        course, _ = await a.s.create_course(f"Topic {round}", outline(8))
        assert course.job is not None
        job = course.job.job_id
        claimed = [await (a if i % 2 else b).s.claim_next_lesson(job) for i in range(8)]
        finishing = [
            (a if i % 2 else b).s.finish_lesson(job, c.id, c.attempt, content="x")
            for i, c in enumerate(claimed)
            if c is not None
        ]
        results = await asyncio.gather(*finishing, b.s.cancel_job(job), return_exceptions=True)
        assert all(not isinstance(r, BaseException) or "not running" in str(r) for r in results)
        assert await counters_hold(settings) == []
        rows = await db_rows(
            settings,
            "SELECT content_status FROM lessons WHERE course_id = ? ORDER BY id",
            course.id,
        )
        progress = await a.s.get_progress(job)
        assert progress is not None
        if progress.status == "cancelled":  # lessons cut off went back to pending
            assert {row[0] for row in rows} <= {"complete", "pending"}
        else:
            assert progress.status == "complete" and {row[0] for row in rows} == {"complete"}


@pytest.mark.parametrize("text", ["", "plain words " * 2000, '\x01\n"é🍞' * 3000])
def test_text_is_cut_into_pieces_that_each_fit_one_notify(text: str) -> None:
    pieces = _pieces(100, text)
    assert "".join(piece for _, piece in pieces) == text
    offset = 100
    for start, piece in pieces:
        assert start == offset
        payload = {"l": 1, "a": 1, "o": start, "t": piece}
        assert len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()) < 8000
        offset += len(piece)


async def test_a_chunk_too_big_for_one_notify_reaches_another_node_whole(
    open_node: OpenNode,
) -> None:
    a, b = await open_node("a"), await open_node("b")
    got: list[tuple[int, int, int, str]] = []
    b.s.follow_text(lambda *chunk: got.append(chunk), lambda lesson: None)
    text = "Ünïcödé 🍞 and a long paragraph. " * 1000  # ~34 KB, ~5 payloads
    a.s.share_text(7, 2, 0, text)
    a.s.share_text(7, 2, len(text), " The end.")
    await until(lambda: sum(len(t) for *_, t in got) == len(text) + len(" The end."))
    assert all((lesson, attempt) == (7, 2) for lesson, attempt, _, _ in got)
    assert [offset for _, _, offset, _ in got] == sorted(offset for _, _, offset, _ in got)
    assert "".join(t for *_, t in got) == text + " The end."


async def test_a_rate_limit_on_one_node_slows_the_others(open_node: OpenNode) -> None:
    """The nodes share one API key: a 429 on one is every node's cue to back off."""
    a, b, c = await open_node("a"), await open_node("b"), await open_node("c")
    throttles = {node: Throttle(8) for node in "abc"}
    for name, node in zip("abc", (a, b, c), strict=True):
        node.s.follow_rate_limits(
            lambda retry_after, name=name: throttles[name].rate_limited(None, retry_after)
        )
    await a.s.share_rate_limit(7.5)
    await until(lambda: throttles["b"].effective == throttles["c"].effective == 4)
    assert throttles["b"].paused_until > 0 and throttles["c"].paused_until > 0
    assert throttles["a"].effective == 8  # its own 429 was counted where it happened
