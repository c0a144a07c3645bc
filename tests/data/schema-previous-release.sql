-- coursegen schema. Applied on every start: every statement is idempotent, so
-- existing databases keep working. What changed since the first release is
-- brought to old databases by coursegen/store/schema.py.

-- AUTOINCREMENT: an id is never reused, so an address bookmarked for a deleted
-- course or lesson never opens a newer one.
CREATE TABLE IF NOT EXISTS courses (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS lessons (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id      INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    position       INTEGER NOT NULL,
    title          TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    content        TEXT,
    content_status TEXT NOT NULL DEFAULT 'pending'
        CHECK (content_status IN ('pending', 'generating', 'complete', 'error')),
    content_error  TEXT,
    updated_at     TEXT NOT NULL,
    -- Bumped each time a call to write the lesson starts; a result is stored only
    -- if the attempt that produced it is still the current one.
    attempt        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS lessons_by_course ON lessons(course_id, position);

CREATE TABLE IF NOT EXISTS content_generation_jobs (
    id                TEXT PRIMARY KEY,
    course_id         INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    status            TEXT NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'complete', 'error', 'cancelled')),
    total_lessons     INTEGER NOT NULL DEFAULT 0,
    completed_lessons INTEGER NOT NULL DEFAULT 0,
    failed_lessons    INTEGER NOT NULL DEFAULT 0,
    started_at        TEXT NOT NULL,
    completed_at      TEXT,
    error_message     TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_course ON content_generation_jobs(course_id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON content_generation_jobs(status);

-- The event log: the source of truth for every stream. No foreign keys: the
-- row announcing a deleted course outlives the course.
CREATE TABLE IF NOT EXISTS events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT,
    course_id  INTEGER,
    type       TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_job ON events(job_id, id);
CREATE INDEX IF NOT EXISTS events_by_course ON events(course_id);

-- Answers to POST /api/courses/generate by Idempotency-Key, kept for 24 hours.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  REAL NOT NULL
);
