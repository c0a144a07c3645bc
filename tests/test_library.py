"""The course list as a library of 1,000 courses: keyset pages, counts, usage and search,
on both engines (SPEC 12)."""

from __future__ import annotations

import asyncio
import random
import re
import sqlite3
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from coursegen.settings import Settings
from tests.conftest import Running, counters_hold, db_rows

StartApp = Callable[..., Awaitable[Running]]
LIBRARY = 1000
PREVIOUS_SCHEMA = Path(__file__).parent / "data" / "schema-previous-release.sql"
TOPICS = (
    "Sourdough baking", "Quantum computing", "Medieval history", "Watercolour painting",
    "Beekeeping", "Linear algebra", "Urban gardening", "Jazz improvisation",
)  # fmt: skip
# Courses with words no other course has, by their index in the library.
SPECIAL = {
    100: ("Sailing knots", "Knot tying for sailors", "From the bowline to the clove hitch"),
    200: ("Photosynthesis explained", "Plant biology", "How leaves turn light into sugar"),
    300: (
        "Größenwahn und Café-Kultur",
        "Deutsche Kultur",
        "日本語の文法 und Русская литература",
    ),
    400: ('Say "NEAR" and -mean it: C++ for *everyone*', "Programming", "title:col & a|b!c"),
}
# Lesson statuses by course (index modulo 6), and the job status they leave.
LESSON_PATTERNS = (
    (("complete",) * 3, "complete"),
    (("complete", "error", "complete"), "error"),
    (("pending",) * 4, "cancelled"),
    (("complete", "generating", "pending"), "cancelled"),
    (("error",), "error"),
    (("complete", "complete", "pending", "pending", "pending"), "cancelled"),
)
# Model calls by course (index modulo 4): (input tokens, output tokens, cost or unknown).
CALL_PATTERNS: tuple[tuple[tuple[int, int, float | None], ...], ...] = (
    (),
    ((1200, 2400, 0.0396),),
    ((900, 150, None),),  # a model without a known price: the total is unknown
    ((1000, 300, 0.0075), (2000, 1800, 0.033)),
)
HOSTILE = (
    '"', '""', '"unterminated', "'", "''", "'quoted'", "*", "**", "sourdough*", "*sourdough",
    "-", "-sourdough", "sourdough -baking", "NEAR(", "NEAR(a b)", "NEAR/2", "NEAR", "AND",
    "OR", "NOT", "a AND", "a OR b", "title:x", ":", "col:", "title : quantum", "^start",
    "&|!", "!", "a & b | !c", "(a", "a)", "<->", "a <-> b", "a:*", "a:*b", "\\", "a\\",
    "\\'", "'\\", "%", "_", "%_%", "{}", "[]", "+", "~", "日本語", "😀", "\uff2eear", "\u200b",
    "ﬁ", "İ", "ß", "e\u0301", "a" * 200, "x " * 100, '"NEAR"', "'&'", "''''", "\\\\'",
    "a'b", 'a"b', "AND OR NOT", "sourdough:*", "bowline:A", "{title}: x", "a''b''",
)  # fmt: skip


@dataclass
class Seed:
    """One course of the library, as rows to insert."""

    title: str
    topic: str
    description: str
    lessons: tuple[str, ...]
    job_status: str
    calls: tuple[tuple[int, int, float | None], ...]
    id: int = 0
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def library_seeds(count: int = LIBRARY) -> list[Seed]:
    seeds = []
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        title, topic, description = SPECIAL.get(
            i, (f"{topic}, part {i}", topic, f"Course number {i} of the library on {topic}")
        )
        lessons, status = LESSON_PATTERNS[i % len(LESSON_PATTERNS)]
        seeds.append(Seed(title, topic, description, lessons, status, CALL_PATTERNS[i % 4]))
    return seeds


Fetch = Callable[[str, Sequence[Any]], Awaitable[list[tuple[Any, ...]]]]


async def insert_library(settings: Settings, seeds: list[Seed]) -> list[int]:
    """Insert the courses, their lessons, jobs and model calls straight into the database
    (many rows a statement: 1,000 courses in well under a second); their ids, in order."""
    if settings.engine == "postgresql":
        conn = await asyncpg.connect(settings.db)

        async def fetch_pg(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
            count = iter(range(1, len(params) + 1))
            numbered = re.sub(r"\?", lambda _: f"${next(count)}", sql)
            return [tuple(row) for row in await conn.fetch(numbered, *params)]

        try:
            async with conn.transaction():
                return await _insert(fetch_pg, seeds)
        finally:
            await conn.close()
    db = sqlite3.connect(settings.db_path, timeout=10, check_same_thread=False)

    async def fetch_sqlite(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(lambda: db.execute(sql, params).fetchall())

    try:
        ids = await _insert(fetch_sqlite, seeds)
        await asyncio.to_thread(db.commit)
        return ids
    finally:
        db.close()


async def _insert_rows(
    fetch: Fetch, head: str, rows: list[tuple[Any, ...]], tail: str = ""
) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(rows), 400):
        page = rows[start : start + 400]
        values = ", ".join(["(" + ", ".join("?" * len(page[0])) + ")"] * len(page))
        found += await fetch(f"{head} VALUES {values} {tail}", [v for row in page for v in row])
    return found


async def _insert(fetch: Fetch, seeds: list[Seed]) -> list[int]:
    stamp = "2026-12-01T12:00:00.000Z"
    returned = await _insert_rows(
        fetch,
        "INSERT INTO courses (topic, title, description, created_at)",
        [(seed.topic, seed.title, seed.description, stamp) for seed in seeds],
        "RETURNING id",
    )
    # Rows get rising ids in VALUES order; RETURNING's order is not promised.
    for seed, (course_id,) in zip(seeds, sorted(returned), strict=True):
        seed.id = course_id
    await _insert_rows(
        fetch,
        "INSERT INTO lessons (course_id, position, title, description, content, "
        "content_status, content_error, updated_at)",
        [
            (seed.id, position, f"Lesson {position}", "", "# Text" if status == "complete"
             else None, status, "the model failed" if status == "error" else None, stamp)
            for seed in seeds
            for position, status in enumerate(seed.lessons, start=1)
        ],
    )  # fmt: skip
    await _insert_rows(
        fetch,
        "INSERT INTO content_generation_jobs (id, course_id, status, total_lessons, "
        "completed_lessons, failed_lessons, started_at, completed_at, error_message)",
        [
            (seed.job_id, seed.id, seed.job_status, len(seed.lessons),
             seed.lessons.count("complete"), seed.lessons.count("error"), stamp, stamp,
             "some lessons failed" if seed.job_status == "error" else None)
            for seed in seeds
        ],
    )  # fmt: skip
    calls = [
        (str(uuid.uuid4()), seed.id, "lesson", "claude-test", tokens_in, tokens_out, cost, stamp)
        for seed in seeds
        for tokens_in, tokens_out, cost in seed.calls
    ]
    await _insert_rows(
        fetch,
        "INSERT INTO model_calls (id, course_id, kind, model, input_tokens, output_tokens, "
        "cost_usd, created_at)",
        calls,
    )
    return [seed.id for seed in seeds]


async def library(running: Running, count: int = LIBRARY) -> list[Seed]:
    seeds = library_seeds(count)
    await insert_library(running.services.settings, seeds)
    assert await counters_hold(running.services.settings) == []
    return seeds


async def page(http: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await http.get("/api/courses", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def walk(
    http: httpx.AsyncClient,
    between: Callable[[int], Awaitable[None]] | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    """Every page from the first until `next` is null; `between(n)` runs after page n."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for number in range(10_000):
        answer = await page(http, **params, **({"before": cursor} if cursor else {}))
        seen += answer["courses"]
        cursor = answer["next"]
        if cursor is None:
            return seen
        assert answer["courses"], "a page with a next has courses"
        if between is not None:
            await between(number)
    raise AssertionError("the walk never ended")


def ids_of(courses: list[dict[str, Any]]) -> list[int]:
    return [course["id"] for course in courses]


# -- paging -------------------------------------------------------------------------------


async def test_pages_visit_every_course_once_newest_first(running: Running) -> None:
    seeds = await library(running)
    everything = sorted((seed.id for seed in seeds), reverse=True)
    for limit in (37, 200):
        seen = ids_of(await walk(running.http, limit=limit))
        assert seen == everything, limit
    # 1,000 in pages of 200: the fifth page says there is no sixth, rather than an empty one.
    pages = []
    cursor = None
    while True:
        answer = await page(running.http, limit=200, **({"before": cursor} if cursor else {}))
        pages.append(answer)
        if (cursor := answer["next"]) is None:
            break
    assert [len(p["courses"]) for p in pages] == [200] * 5
    first = await page(running.http)
    assert len(first["courses"]) == 50  # the default
    assert first["next"] == str(first["courses"][-1]["id"])
    assert first["last_event_id"] == running.services.broker.last_id


async def test_pages_stay_exact_while_courses_are_created_and_deleted(running: Running) -> None:
    seeds = await library(running)
    initial = {seed.id for seed in seeds}
    chance = random.Random(14)
    deleted: set[int] = set()
    unlisted: set[int] = set()  # deleted before their page came
    listed: set[int] = set()  # deleted after
    created: list[int] = []
    seen: list[int] = []
    cursor: str | None = None
    for number in range(1000):
        answer = await page(running.http, limit=40, **({"before": cursor} if cursor else {}))
        seen += ids_of(answer["courses"])
        if (cursor := answer["next"]) is None:
            break
        # Meanwhile a course is made now and then, and one course not listed yet and one
        # already listed go away.
        if number % 3 == 0:
            made = await running.generate(f"New course {number}", lessons=1)
            created.append(made["course_id"])
        for pool, gone in (
            (initial - set(seen) - deleted, unlisted),
            (set(seen) - deleted, listed),
        ):
            victim = chance.choice(sorted(pool))
            assert (await running.http.delete(f"/api/courses/{victim}")).status_code == 204
            gone.add(victim)
            deleted.add(victim)

    assert len(seen) == len(set(seen)), "no course is listed twice"
    assert seen == sorted(seen, reverse=True)
    assert created and not set(created) & set(seen), "new courses come on a later first page"
    assert initial - deleted <= set(seen), "nothing that existed throughout is skipped"
    assert len(unlisted) >= 10 and not unlisted & set(seen), "deleted before their page"
    assert len(listed) >= 10 and listed <= set(seen)
    # A fresh first page starts with the new courses, newest first.
    fresh = await page(running.http, limit=len(created))
    assert ids_of(fresh["courses"]) == sorted(created, reverse=True)
    assert all(course["id"] not in deleted for course in (await walk(running.http, limit=200)))
    for course in fresh["courses"]:
        await running.settle(course["job"]["job_id"])
    if running.services.settings.engine == "sqlite":  # the search index kept in step
        await db_rows(
            running.services.settings,
            "INSERT INTO courses_search (courses_search, rank) VALUES ('integrity-check', 1)",
        )


async def test_each_listed_course_agrees_with_its_own_page(running: Running) -> None:
    await library(running, 240)
    made = await running.generate("Bird watching", lessons=3)  # written by the fake, priced
    await running.settle(made["job_id"])
    for before in (None, "121"):
        answer = await page(running.http, limit=200, **({"before": before} if before else {}))
        assert answer["courses"]
        for listed in answer["courses"]:
            course = (await running.http.get(f"/api/courses/{listed['id']}")).json()
            statuses = {status: 0 for status in ("pending", "generating", "complete", "error")}
            for lesson in course["lessons"]:
                statuses[lesson["content_status"]] += 1
            assert listed["lesson_statuses"] == statuses, listed["id"]
            assert listed["lesson_count"] == len(course["lessons"])
            assert listed["usage"] == course["usage"], listed["id"]
            assert listed["job"] == course["job"], listed["id"]
            assert {k: v for k, v in listed.items() if k in course} == {
                k: v for k, v in course.items() if k in listed
            }
    newest = (await page(running.http, limit=1))["courses"][0]
    assert newest["id"] == made["course_id"]
    assert newest["lesson_statuses"] == {"pending": 0, "generating": 0, "complete": 3, "error": 0}
    assert newest["usage"]["output_tokens"] > 0
    unknown = next(c for c in answer["courses"] if c["usage"]["input_tokens"] == 900)
    assert unknown["usage"]["cost_usd"] is None  # a call without a price: the total is unknown


# -- search -------------------------------------------------------------------------------


async def found(running: Running, q: str, **params: Any) -> list[str]:
    return [course["title"] for course in (await page(running.http, q=q, **params))["courses"]]


async def test_search_finds_by_title_topic_description_and_prefix(running: Running) -> None:
    seeds = await library(running)
    assert await found(running, "Sailing") == ["Sailing knots"]  # a title word
    assert await found(running, "knot SAILORS") == ["Sailing knots"]  # topic words, any case
    assert await found(running, "bowline") == ["Sailing knots"]  # a description word
    assert await found(running, "clove bowl") == ["Sailing knots"]  # the last word a prefix
    assert await found(running, "photosyn") == ["Photosynthesis explained"]
    assert await found(running, "sailors photosynthesis") == []  # every word must be there
    assert await found(running, "größenwahn") == ["Größenwahn und Café-Kultur"]
    assert await found(running, "日本語") == ["Größenwahn und Café-Kultur"]
    assert await found(running, "Русская литература") == ["Größenwahn und Café-Kultur"]
    near = 'Say "NEAR" and -mean it: C++ for *everyone*'
    assert await found(running, '"near" -mean') == [near]  # quotes and minus are just text
    assert await found(running, "title:col") == [near]
    assert await found(running, "*everyone*") == [near]
    # A topic word shared by an eighth of the library, in pages, newest first.
    beekeeping = await walk(running.http, limit=50, q="beekeeping")
    titles = [course["title"] for course in beekeeping]
    assert len(titles) == len(set(titles)) == 123  # the library's 125, two of them special
    assert set(ids_of(beekeeping)) == {seed.id for seed in seeds if seed.topic == "Beekeeping"}
    assert all(course["topic"] == "Beekeeping" for course in beekeeping)
    assert ids_of(beekeeping) == sorted(ids_of(beekeeping), reverse=True)
    # Empty or white space: no filter.
    everything = await page(running.http, limit=10)
    for blank in ("", "   ", "\u3000"):
        assert await page(running.http, limit=10, q=blank) == everything


async def test_search_follows_changes_to_courses(running: Running) -> None:
    await library(running, 50)
    assert await found(running, "bowline") == []
    made = await running.generate("Knot tying for sailors", lessons=1)
    assert await found(running, "sailors") == ["Knot tying for sailors: a practical course"]
    await running.settle(made["job_id"])
    assert (await running.http.delete(f"/api/courses/{made['course_id']}")).status_code == 204
    assert await found(running, "sailors") == []
    # A title changed in the database is found by its new words, not its old ones.
    settings = running.services.settings
    await db_rows(
        settings, "UPDATE courses SET title = ? WHERE title = ?", "Knitting", "Beekeeping, part 4"
    )
    assert await found(running, "knitting") == ["Knitting"]
    assert "Beekeeping, part 4" not in await found(running, "beekeeping part")


async def test_hostile_search_text_is_only_text(running: Running) -> None:
    await library(running, 450)
    for q in HOSTILE:
        response = await running.http.get("/api/courses", params={"q": q, "limit": 5})
        assert response.status_code == 200, (q, response.text)
        body = response.json()
        assert isinstance(body["courses"], list) and len(body["courses"]) <= 5, q
        if body["next"] is not None:
            params = {"q": q, "limit": 5, "before": body["next"]}
            more = await running.http.get("/api/courses", params=params)
            assert more.status_code == 200, (q, more.text)
    # Bytes that are not UTF-8, or a lone surrogate's: decoded as replacement characters.
    for raw in ("%FF", "%ED%A0%80", "%C0%AF", "sour%F0%9F", "bowline%FF"):
        response = await running.http.get(f"/api/courses?q={raw}")
        assert response.status_code == 200, (raw, response.text)
        assert len(response.json()["courses"]) <= 50, raw
    # A right-to-left override (U+202E) would show a search as something else.
    response = await running.http.get("/api/courses?q=%E2%80%AE%22")
    assert response.status_code == 400 and "control characters" in response.json()["error"]
    # Text that is syntax to either engine finds the course that holds it as words.
    assert await found(running, "NEAR( C++") == ['Say "NEAR" and -mean it: C++ for *everyone*']
    assert await found(running, "a|b!c & col") == ['Say "NEAR" and -mean it: C++ for *everyone*']


# -- bad input ------------------------------------------------------------------------------


BAD_CURSORS = (
    "abc", "-1", "0", "1.5", "007", " 5", "5 ", "+5", "1e3", "0x10", "\u0663", "\uff15",
    "null", "[]", "", "9" * 19, "9" * 5000, "5\x00", "\uff11\uff12", "NaN",
)  # fmt: skip
BAD_LIMITS = ("", "0", "201", "abc", "1.5", "-5", "050", "\u0665", "1e2", " 5", "9" * 5000, "true")


async def test_bad_cursors_and_limits_are_400_with_a_message(running: Running) -> None:
    for cursor in BAD_CURSORS:
        response = await running.http.get("/api/courses", params={"before": cursor})
        assert response.status_code == 400, cursor
        assert "before must be the `next` of an earlier answer" in response.json()["error"]
    for limit in BAD_LIMITS:
        response = await running.http.get("/api/courses", params={"limit": limit})
        assert response.status_code == 400, limit
        assert "limit must be a whole number from 1 to 200" in response.json()["error"]


async def test_other_bad_list_requests_are_400(running: Running) -> None:
    for params, word in (
        ({"q": "x" * 201}, "q must be at most 200"),
        ({"q": "a\x00b"}, "control characters"),
        ({"q": "tab\there"}, "control characters"),
        ({"q": "\u202eevil"}, "control characters"),
        ([("limit", "5"), ("limit", "6")], "limit must be given at most once"),
        ([("before", "5"), ("before", "6")], "before must be given at most once"),
    ):
        response = await running.http.get("/api/courses", params=params)
        assert response.status_code == 400, params
        assert word in response.json()["error"], params
    # The largest id either engine holds is a valid cursor; limits at the edges are fine.
    assert (await page(running.http, before=str(2**63 - 1), limit=200))["next"] is None
    assert (await page(running.http, limit=1, q=""))["courses"] == []


# -- the search index on older databases ---------------------------------------------------


# The first release's courses table: ids that could be reused, a description that may be NULL.
FIRST_RELEASE = """
CREATE TABLE courses (id INTEGER PRIMARY KEY, topic TEXT, title TEXT, description TEXT,
                      created_at TEXT);
"""


@pytest.mark.parametrize("engine", ["sqlite"])
@pytest.mark.parametrize("release", ["first", "previous"])
async def test_an_older_sqlite_database_is_indexed_for_search(
    settings: Settings, start_app: StartApp, release: str
) -> None:
    with sqlite3.connect(settings.db_path) as db:
        db.executescript(FIRST_RELEASE if release == "first" else PREVIOUS_SCHEMA.read_text())
        db.executemany(
            "INSERT INTO courses (topic, title, description, created_at) VALUES (?, ?, ?, 't')",
            [("Knot tying", "Sailing knots", "bowline"), ("Bees", "Beekeeping", "hives")]
            + [("Old", f"Old course {n}", None if release == "first" else "") for n in range(3)],
        )
    running = await start_app()
    assert await found(running, "bowline") == ["Sailing knots"]
    assert await found(running, "hive") == ["Beekeeping"]
    assert len(await found(running, "old course")) == 3
    made = await running.generate("Hive maintenance", lessons=1)
    assert await found(running, "hive") == ["Hive maintenance: a practical course", "Beekeeping"]
    await running.settle(made["job_id"])
    assert (await running.http.delete("/api/courses/1")).status_code == 204
    assert await found(running, "bowline") == []
    # FTS5's own check of the index against the courses it was made from.
    await db_rows(
        running.services.settings,
        "INSERT INTO courses_search (courses_search, rank) VALUES ('integrity-check', 1)",
    )


@pytest.mark.parametrize("engine", ["postgresql"])
async def test_postgresql_search_uses_its_index_made_on_start(
    settings: Settings, start_app: StartApp
) -> None:
    running = await start_app()
    await library(running, 120)
    conn = await asyncpg.connect(settings.db)
    try:
        await conn.execute("DROP INDEX courses_search")  # as a database before this release
        running = await start_app()  # a node starting on it makes the index
        await conn.execute("SET enable_seqscan = off")
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                "EXPLAIN SELECT id FROM courses c WHERE to_tsvector('simple', c.title || ' ' "
                "|| c.topic || ' ' || c.description) @@ to_tsquery('simple', 'bowline')"
            )
        )
    finally:
        await conn.close()
    assert "courses_search" in plan, plan
    assert await found(running, "bowline") == ["Sailing knots"]


# -- how long it takes ----------------------------------------------------------------------


@pytest.mark.parametrize("engine", ["sqlite"])
async def test_a_page_costs_the_same_statements_whatever_its_size(running: Running) -> None:
    await library(running)
    statements: list[str] = []
    reader = running.services.store._reader  # type: ignore[attr-defined]
    await reader.set_trace_callback(statements.append)
    counts: dict[str, int] = {}
    try:
        for params in (
            {"limit": 1},
            {"limit": 200},
            {"limit": 200, "before": "500"},
            {"limit": 1, "q": "part"},
            {"limit": 200, "q": "part", "before": "500"},
        ):
            statements.clear()
            await page(running.http, **params)
            # FTS5 reads its own tables ('main'.'courses_search_idx'...) as it needs.
            counts[str(params)] = len([sql for sql in statements if "'main'." not in sql])
    finally:
        await reader.set_trace_callback(None)
    # The page, its lessons, calls and jobs, the newest event id, and BEGIN and COMMIT.
    assert set(counts.values()) == {7}, counts


async def test_print_list_and_search_times_over_the_library(running: Running, engine: str) -> None:
    seeds = await library(running)
    beekeeping = sorted((seed.id for seed in seeds if seed.topic == "Beekeeping"), reverse=True)
    timings: dict[str, list[float]] = {"first page": [], "search": [], "page 10": []}
    for _ in range(20):
        for name, params, expected in (
            ("first page", {}, [seed.id for seed in reversed(seeds)][:50]),
            ("search", {"q": "beekeeping part"}, beekeeping[:50]),
            ("page 10", {"before": str(seeds[550].id)}, [seed.id for seed in seeds[500:550]][::-1]),
        ):
            started = time.perf_counter()
            answer = await page(running.http, **params)
            timings[name].append((time.perf_counter() - started) * 1000)
            assert ids_of(answer["courses"]) == expected, name
    # The machine is shared: the fastest run is the figure least disturbed by others.
    figures = ", ".join(
        f"{name} p50 {statistics.median(ms):.1f} ms (min {min(ms):.1f})"
        for name, ms in timings.items()
    )
    print(f"\n{engine}, {LIBRARY} courses, 50 a page, over ASGI: {figures}")
