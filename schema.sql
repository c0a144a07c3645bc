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
    created_at  TEXT NOT NULL,
    -- 'stream': lessons are written one call each, streamed to readers; 'batch': as
    -- one Message Batch at batch prices (coursegen/batches.py).
    mode        TEXT NOT NULL DEFAULT 'stream' CHECK (mode IN ('stream', 'batch')),
    -- What the person asked for (SPEC 9), given to every prompt of the course.
    level        TEXT NOT NULL DEFAULT 'beginner'
        CHECK (level IN ('beginner', 'intermediate', 'advanced')),
    language     TEXT NOT NULL DEFAULT 'English',
    instructions TEXT NOT NULL DEFAULT '',
    quizzes      INTEGER NOT NULL DEFAULT 1
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
    attempt        INTEGER NOT NULL DEFAULT 0,
    -- Set when a reader opens the pending lesson: the highest is written next, ahead
    -- of every other job's lessons (lessons_by_priority is made by store/schema.py).
    priority       INTEGER,
    -- How the text was made: the model, its last call's stop reason, and how long
    -- the attempt that wrote it took.
    model          TEXT,
    stop_reason    TEXT,
    duration_ms    INTEGER,
    -- The Message Batch writing the lesson, while it does (batch mode).
    batch_id       TEXT,
    -- What a regeneration was asked for: used by its attempt, then cleared.
    instructions   TEXT,
    -- The lesson's quiz (JSON questions), written once its text is complete.
    quiz_status    TEXT NOT NULL DEFAULT 'none'
        CHECK (quiz_status IN ('none', 'pending', 'generating', 'complete', 'error')),
    quiz           TEXT,
    quiz_error     TEXT,
    quiz_attempt   INTEGER NOT NULL DEFAULT 0
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

-- Every model call and the tokens it was billed for, priced when it was made. No
-- foreign keys: a removed lesson's calls still count in its course's total.
-- `id` is the runner's own id for the call, so a report stored twice counts once.
CREATE TABLE IF NOT EXISTS model_calls (
    id                          TEXT PRIMARY KEY,
    course_id                   INTEGER NOT NULL,
    lesson_id                   INTEGER,
    kind                        TEXT NOT NULL CHECK (kind IN ('outline', 'lesson', 'quiz')),
    model                       TEXT NOT NULL,
    batch                       INTEGER NOT NULL DEFAULT 0,
    input_tokens                INTEGER NOT NULL DEFAULT 0,
    output_tokens               INTEGER NOT NULL DEFAULT 0,
    cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_input_tokens     INTEGER NOT NULL DEFAULT 0,
    -- NULL: the model has no known price.
    cost_usd                    REAL,
    stop_reason                 TEXT,
    duration_ms                 INTEGER,
    created_at                  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS model_calls_by_course ON model_calls(course_id);
CREATE INDEX IF NOT EXISTS model_calls_by_lesson ON model_calls(lesson_id);

-- Message Batches sent for batch-mode courses, polled until they end (also after a
-- restart).
CREATE TABLE IF NOT EXISTS batches (
    id         TEXT PRIMARY KEY,
    course_id  INTEGER NOT NULL,
    job_id     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended')),
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS batches_open ON batches(status);

-- Every text a lesson has had: generated, edited by hand or restored. Nothing is
-- overwritten; `version` counts from 1 per lesson.
CREATE TABLE IF NOT EXISTS lesson_versions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    lesson_id    INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    created_at   TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('generated', 'edited', 'restored')),
    instructions TEXT,
    content      TEXT NOT NULL,
    UNIQUE (lesson_id, version)
);

-- Course search (GET /api/courses?q=): an FTS5 index of each course's title, topic and
-- description, kept in step with `courses` by the triggers below. It holds no text of
-- its own (external content), so it is derived data: `coursegen copy` leaves it behind,
-- and store/schema.py rebuilds it when it does not hold one row per course.
CREATE VIRTUAL TABLE IF NOT EXISTS courses_search USING fts5(
    title, topic, description,
    content = 'courses', content_rowid = 'id',
    -- Any language: words split at what is not a letter or digit, accents folded.
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS courses_search_insert AFTER INSERT ON courses BEGIN
    INSERT INTO courses_search (rowid, title, topic, description)
    VALUES (new.id, new.title, new.topic, new.description);
END;
CREATE TRIGGER IF NOT EXISTS courses_search_delete AFTER DELETE ON courses BEGIN
    INSERT INTO courses_search (courses_search, rowid, title, topic, description)
    VALUES ('delete', old.id, old.title, old.topic, old.description);
END;
CREATE TRIGGER IF NOT EXISTS courses_search_update
AFTER UPDATE OF title, topic, description ON courses BEGIN
    INSERT INTO courses_search (courses_search, rowid, title, topic, description)
    VALUES ('delete', old.id, old.title, old.topic, old.description);
    INSERT INTO courses_search (rowid, title, topic, description)
    VALUES (new.id, new.title, new.topic, new.description);
END;
