"""`coursegen copy`: a SQLite database made by the previous release moves into PostgreSQL
with its ids, and the service carries on from it there."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from coursegen.settings import Settings
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import Running, counters_hold, db_rows

StartApp = Callable[..., Awaitable[Running]]
PREVIOUS_SCHEMA = Path(__file__).parent / "data" / "schema-previous-release.sql"
JOB = "7f1c1a52-8a9e-4b8e-9d0e-2f5a7c1b9e01"


@pytest.fixture
def engine() -> str:
    return "postgresql"


def old_database(path: Path) -> None:
    """A database as the previous release left it after a crash mid-job, with gaps in ids."""
    with sqlite3.connect(path) as db:
        db.executescript(PREVIOUS_SCHEMA.read_text())
        db.executescript(f"""
            INSERT INTO courses VALUES
              (3, 'Old topic', 'Old course', 'From before', '2026-11-01T10:00:00Z');
            INSERT INTO lessons (id, course_id, position, title, description, content,
                content_status, content_error, updated_at, attempt) VALUES
              (7, 3, 1, 'Lesson 1: Basics', 'b', '# Basics', 'complete', NULL, 't', 1),
              (8, 3, 2, 'Lesson 2: Middle', 'm', NULL, 'error', 'the model failed', 't', 1),
              (9, 3, 3, 'Lesson 3: End', 'e', 'half a les', 'generating', NULL, 't', 2);
            INSERT INTO content_generation_jobs VALUES
              ('{JOB}', 3, 'running', 3, 1, 1, '2026-11-01T10:00:00Z', NULL, NULL);
            INSERT INTO events (id, job_id, course_id, type, data, created_at) VALUES
              (40, '{JOB}', 3, 'job', '{{"status": "running"}}', 't'),
              (42, '{JOB}', 3, 'lesson', '{{"lesson_id": 7}}', 't');
            INSERT INTO idempotency_keys VALUES ('key-1', '["Old topic", null]', '{{}}', 1.5);
        """)  # fmt: skip


async def run_copy(source: Path, target: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coursegen", "copy", "--from", str(source), "--to", target,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_a_previous_release_database_moves_with_its_ids_and_carries_on(
    settings: Settings, start_app: StartApp, fake: FakeAnthropic, tmp_path: Path
) -> None:
    source = tmp_path / "old.db"
    old_database(source)
    code, output = await run_copy(source, settings.db)
    assert code == 0, output
    assert "copied 1 courses, 3 lessons, 1 content_generation_jobs, 2 events" in output

    running = await start_app()  # on the PostgreSQL database the copy filled
    course = (await running.http.get("/api/courses/3")).json()  # a bookmark still opens
    assert course["title"] == "Old course" and [x["id"] for x in course["lessons"]] == [7, 8, 9]
    lesson = (await running.http.get("/api/lessons/7")).json()
    assert lesson["content"] == "# Basics"
    # The job resumes: the lesson a crash cut off is written again, the failed one retried.
    await running.settle(JOB)
    assert (await running.http.post(f"/api/jobs/{JOB}/retry")).status_code == 202
    final = await running.settle(JOB)
    assert final["status"] == "complete" and final["completed_lessons"] == 3
    assert sorted(c.title.split(":")[0] for c in fake.lesson_calls()) == ["Lesson 2", "Lesson 3"]
    # A client resumes its stream with the cursor it had before the move.
    stream = await running.http.get(f"/api/jobs/{JOB}/events", headers={"Last-Event-ID": "40"})
    ids = [int(line[4:]) for line in stream.text.splitlines() if line.startswith("id: ")]
    assert ids[0] == 42 and ids == sorted(ids) and len(ids) > 5
    created = await running.generate("A new course", lessons=1)
    assert created["course_id"] == 4 and created["course"]["lessons"][0]["id"] == 10
    assert await counters_hold(settings) == []


async def test_a_second_copy_refuses_to_overwrite(settings: Settings, tmp_path: Path) -> None:
    source = tmp_path / "old.db"
    old_database(source)
    assert (await run_copy(source, settings.db))[0] == 0
    code, output = await run_copy(source, settings.db)
    assert code == 1
    assert "already holds courses" in output and "nothing was copied" in output


async def test_bad_sources_and_targets_say_what_is_wrong(
    settings: Settings, tmp_path: Path
) -> None:
    code, output = await run_copy(tmp_path / "missing.db", settings.db)
    assert code == 1 and "there is no SQLite database at" in output
    not_ours = tmp_path / "other.db"
    with sqlite3.connect(not_ours) as db:
        db.execute("CREATE TABLE x (y)")
    code, output = await run_copy(not_ours, settings.db)
    assert code == 1 and "is not a coursegen database" in output
    code, output = await run_copy(not_ours, str(tmp_path / "file.db"))
    assert code == 1 and "--to must be a postgresql:// URL" in output


async def test_costs_and_an_open_batch_move_with_the_course(
    settings: Settings, tmp_path: Path
) -> None:
    """What a course spent moves with it, and a lesson in a Message Batch stays in it
    (the PostgreSQL nodes poll the batch on), where a streamed one is requeued."""
    source = tmp_path / "current.db"
    with sqlite3.connect(source) as db:
        db.executescript((Path(__file__).parents[1] / "schema.sql").read_text())
        db.executescript(f"""
            INSERT INTO courses (id, topic, title, description, created_at, mode)
              VALUES (5, 'T', 'Batch course', 'd', 't', 'batch');
            INSERT INTO lessons (id, course_id, position, title, description, content,
                content_status, updated_at, attempt, batch_id, model, stop_reason)
              VALUES (11, 5, 1, 'L1', 'd', NULL, 'generating', 't', 1, 'msgbatch_1', NULL, NULL),
                     (12, 5, 2, 'L2', 'd', 'text', 'complete', 't', 1, NULL, 'm', 'end_turn');
            INSERT INTO content_generation_jobs VALUES
              ('{JOB}', 5, 'running', 2, 1, 0, 't', NULL, NULL);
            INSERT INTO batches VALUES ('msgbatch_1', 5, '{JOB}', 'open', 't');
            INSERT INTO model_calls (id, course_id, lesson_id, kind, model, batch, input_tokens,
                output_tokens, cost_usd, created_at)
              VALUES ('c1', 5, NULL, 'outline', 'm', 0, 100, 50, 0.25, 't'),
                     ('c2', 5, 12, 'lesson', 'm', 1, 1000, 2000, 0.5, 't');
        """)  # fmt: skip
    code, output = await run_copy(source, settings.db)
    assert code == 0, output
    assert await db_rows(
        settings, "SELECT id, content_status, batch_id, model FROM lessons ORDER BY id"
    ) == [(11, "generating", "msgbatch_1", None), (12, "complete", None, "m")]
    assert await db_rows(settings, "SELECT id, status FROM batches") == [("msgbatch_1", "open")]
    assert await db_rows(
        settings, "SELECT id, batch, output_tokens, cost_usd FROM model_calls ORDER BY id"
    ) == [("c1", 0, 50, 0.25), ("c2", 1, 2000, 0.5)]
    assert await db_rows(settings, "SELECT mode FROM courses") == [("batch",)]
