"""The database: pragmas, an older database brought up to date, and one transaction per change."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from coursegen.domain import LessonPlan, Outline
from coursegen.events import Broker
from coursegen.settings import Settings
from coursegen.store import SqliteStore
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import Running, counters_hold, job_reaches


@pytest.fixture
def engine() -> str:
    """SQLite's own file, pragmas and older schemas (PostgreSQL's are tests/test_postgres.py)."""
    return "sqlite"


# The seed's tables: the same names, before `attempt`, the event log and idempotency keys.
SEED_SCHEMA = """
CREATE TABLE courses (id INTEGER PRIMARY KEY, topic TEXT, title TEXT, description TEXT,
                      created_at TEXT);
CREATE TABLE lessons (id INTEGER PRIMARY KEY,
                      course_id INTEGER REFERENCES courses(id) ON DELETE CASCADE,
                      position INTEGER, title TEXT, description TEXT, content TEXT,
                      content_status TEXT CHECK (content_status IN
                          ('pending', 'generating', 'complete', 'error')),
                      content_error TEXT, updated_at TEXT);
CREATE TABLE content_generation_jobs (id TEXT PRIMARY KEY, course_id INTEGER REFERENCES courses(id),
                      status TEXT CHECK (status IN ('running', 'complete', 'error', 'cancelled')),
                      total_lessons INTEGER, completed_lessons INTEGER, failed_lessons INTEGER,
                      started_at TEXT, completed_at TEXT, error_message TEXT);
INSERT INTO courses VALUES (1, 'Old topic', 'Old course', 'From the seed', '2026-01-01 10:00:00');
INSERT INTO lessons VALUES (1, 1, 1, 'One', 'd', '# One', 'complete', NULL, '2026-01-01 10:00:00');
INSERT INTO lessons VALUES (2, 1, 2, 'Two', 'd', NULL, 'generating', NULL, '2026-01-01 10:00:00');
INSERT INTO lessons VALUES (3, 1, 3, 'Three', 'd', NULL, 'pending', NULL, '2026-01-01 10:00:00');
INSERT INTO content_generation_jobs VALUES ('6f1c2a9e-2b1f-4c55-9a61-3f4c1f7f2a10', 1, 'running',
                      3, 1, 0, '2026-01-01 10:00:00', NULL, NULL);
"""


async def test_an_older_database_is_brought_up_to_date_and_its_job_resumes(
    start_app: Callable[..., Awaitable[Running]], fake: FakeAnthropic, settings: Settings
) -> None:
    with sqlite3.connect(settings.db_path) as db:
        db.executescript(SEED_SCHEMA)
    running = await start_app()
    job_id = "6f1c2a9e-2b1f-4c55-9a61-3f4c1f7f2a10"
    done = await job_reaches(running.services, job_id)
    assert (done["status"], done["completed_lessons"]) == ("complete", 3)
    assert sorted(call.title for call in fake.lesson_calls()) == ["Three", "Two"]
    course = (await running.http.get("/api/courses/1")).json()
    assert course["title"] == "Old course"
    assert await counters_hold(settings) == []
    with sqlite3.connect(settings.db_path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(lessons)")}
        assert "attempt" in columns
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        indexes = {
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='index'")
        }
        assert {"lessons_by_course", "jobs_by_course"} <= indexes
    # The rebuilt tables never hand out an id again, even the newest one's after a delete.
    newest = await running.generate("Newest course", lessons=2)
    await running.settle(newest["job_id"])
    assert (await running.http.delete(f"/api/courses/{newest['course_id']}")).status_code == 204
    after = await running.generate("After the delete", lessons=2)
    assert after["course_id"] > newest["course_id"]
    old_lessons = {lesson["id"] for lesson in newest["course"]["lessons"]}
    assert not old_lessons & {lesson["id"] for lesson in after["course"]["lessons"]}
    # The seed's rows came through the rebuild whole, and a delete still cascades.
    assert [lesson["title"] for lesson in course["lessons"]] == ["One", "Two", "Three"]
    assert (await running.http.delete("/api/courses/1")).status_code == 204
    with sqlite3.connect(settings.db_path) as db:
        assert db.execute("SELECT count(*) FROM lessons WHERE course_id = 1").fetchone()[0] == 0


async def test_a_new_database_never_reuses_ids(running: Running) -> None:
    first = await running.generate(lessons=1)
    await running.settle(first["job_id"])
    await running.http.delete(f"/api/courses/{first['course_id']}")
    second = await running.generate(lessons=1)
    assert second["course_id"] == first["course_id"] + 1
    assert second["course"]["lessons"][0]["id"] == first["course"]["lessons"][0]["id"] + 1


async def test_connections_use_wal_foreign_keys_and_normal_sync(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "x.db", Broker().publish)
    try:
        for connection in (store._writer, store._reader):
            pragmas = {}
            for name in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout"):
                async with connection.execute(f"PRAGMA {name}") as cursor:
                    row = await cursor.fetchone()
                    assert row is not None
                    pragmas[name] = row[0]
            assert pragmas == {
                "journal_mode": "wal", "foreign_keys": 1, "synchronous": 1, "busy_timeout": 5000,
            }  # fmt: skip
    finally:
        await store.close()


async def test_a_change_and_its_events_commit_together(tmp_path: Path) -> None:
    broker = Broker()
    store = await SqliteStore.open(tmp_path / "x.db", broker.publish)
    try:
        outline = Outline("T", "D", (LessonPlan("a", "b"), LessonPlan("c", "d")))
        course, created = await store.create_course("Topic", outline)
        assert created
        job_id = course.job.job_id
        # A failing transaction leaves neither the change nor its events behind.
        before = broker.last_id
        with pytest.raises(RuntimeError):
            await store._write(lambda txn: _fail_after_a_change(txn, course.id))
        assert broker.last_id == before
        again = await store.get_course(course.id)
        assert again is not None and again.title == "T"
        assert await store.events_after(before) == []
        # The events of a commit reach the broker in commit order, with the logged ids.
        lesson = await store.claim_next_lesson(job_id)
        assert lesson is not None
        await store.finish_lesson(job_id, lesson.id, lesson.attempt, error="boom")
        logged = await store.events_after(before)
        assert [e.type for e in logged] == ["lesson", "lesson", "progress"]
        assert [(f.id, f.type, f.data) for f in broker.since(before) or []] == [
            (e.id, e.type, e.data) for e in logged
        ]
    finally:
        await store.close()


async def _fail_after_a_change(txn: object, course_id: int) -> None:
    db = txn.db  # type: ignore[attr-defined]
    await db.execute("UPDATE courses SET title = 'changed' WHERE id = ?", (course_id,))
    txn.emit("course", {"x": 1}, job_id=None, course_id=course_id)  # type: ignore[attr-defined]
    raise RuntimeError("the transaction fails half-way")
