"""The records the service deals in: statuses, outlines, courses, lessons, jobs, events.

Every store engine returns these, the providers produce outlines of them, and the
API turns them into JSON with `to_json` at its edge: one shape each, seen by mypy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class LessonStatus(StrEnum):
    PENDING = "pending"
    GENERATING = "generating"
    COMPLETE = "complete"
    ERROR = "error"

    @property
    def finished(self) -> bool:
        return self in (LessonStatus.COMPLETE, LessonStatus.ERROR)


class JobStatus(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self is not JobStatus.RUNNING


@dataclass(frozen=True, slots=True)
class LessonPlan:
    title: str
    description: str


@dataclass(frozen=True, slots=True)
class Outline:
    title: str
    description: str
    lessons: tuple[LessonPlan, ...]


class Level(StrEnum):
    BEGINNER = "beginner"
    INTERMEDIATE = "intermediate"
    ADVANCED = "advanced"


@dataclass(frozen=True, slots=True)
class CourseOptions:
    """How the person wants the course written: given to every prompt of the course."""

    level: Level = Level.BEGINNER
    language: str = "English"
    instructions: str = ""  # audience, tone, what to include; "" for none
    quizzes: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "level": self.level.value,
            "language": self.language,
            "instructions": self.instructions,
            "quizzes": self.quizzes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CourseOptions:
        return cls(
            Level(data.get("level", "beginner")),
            data.get("language", "English"),
            data.get("instructions", ""),
            data.get("quizzes", True),
        )


# What a course asks for when the person chose nothing.
DEFAULT_OPTIONS = CourseOptions()


@dataclass(frozen=True, slots=True)
class QuizQuestion:
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices
    explanation: str

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "choices": list(self.choices),
            "answer": self.answer,
            "explanation": self.explanation,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuizQuestion:
        return cls(data["question"], tuple(data["choices"]), data["answer"], data["explanation"])


class QuizStatus(StrEnum):
    NONE = "none"  # the course has no quizzes, or the text is not written yet
    PENDING = "pending"
    GENERATING = "generating"
    COMPLETE = "complete"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a model call (or the sum of several) was billed for, and their price.

    `cost_usd` is None when a call's model has no known price: the tokens still count.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float | None = 0.0

    def __add__(self, other: Usage) -> Usage:
        cost = (
            None
            if self.cost_usd is None or other.cost_usd is None
            else self.cost_usd + other.cost_usd
        )
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            cost,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        return cls(
            data["input_tokens"],
            data["output_tokens"],
            data["cache_creation_input_tokens"],
            data["cache_read_input_tokens"],
            data["cost_usd"],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 6),
        }


@dataclass(frozen=True, slots=True)
class Progress:
    """A job's state: the progress object of the API and of `progress`/`job` events."""

    job_id: str
    course_id: int
    status: JobStatus
    total_lessons: int
    completed_lessons: int
    failed_lessons: int
    error_message: str | None
    started_at: str
    completed_at: str | None
    # What the course has spent so far: its outline and every lesson call.
    usage: Usage = Usage()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(
            job_id=data["job_id"],
            course_id=data["course_id"],
            status=JobStatus(data["status"]),
            total_lessons=data["total_lessons"],
            completed_lessons=data["completed_lessons"],
            failed_lessons=data["failed_lessons"],
            error_message=data["error_message"],
            started_at=data["started_at"],
            completed_at=data["completed_at"],
            usage=Usage.from_json(data["usage"]) if "usage" in data else Usage(),
        )

    @property
    def percent(self) -> int:
        settled = self.completed_lessons + self.failed_lessons
        return settled * 100 // self.total_lessons if self.total_lessons else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "course_id": self.course_id,
            "status": self.status.value,
            "progress": self.percent,
            "total_lessons": self.total_lessons,
            "completed_lessons": self.completed_lessons,
            "failed_lessons": self.failed_lessons,
            "error_message": self.error_message,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "usage": self.usage.to_json(),
        }


@dataclass(frozen=True, slots=True)
class LessonSummary:
    """A lesson as a course, a job snapshot and a `lesson` event list it."""

    id: int
    position: int
    title: str
    description: str
    content_status: LessonStatus
    content_error: str | None
    # In a course's listing; None where a list leaves it out (snapshots, events).
    usage: Usage | None = None
    quiz_status: QuizStatus = QuizStatus.NONE

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LessonSummary:
        return cls(
            id=data["id"],
            position=data["position"],
            title=data["title"],
            description=data.get("description", ""),
            content_status=LessonStatus(data["content_status"]),
            content_error=data["content_error"],
            usage=Usage.from_json(data["usage"]) if data.get("usage") else None,
            quiz_status=QuizStatus(data.get("quiz_status", "none")),
        )

    def to_json(self, *, description: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "position": self.position, "title": self.title}
        if description:
            data["description"] = self.description
        data["content_status"] = self.content_status.value
        data["content_error"] = self.content_error
        data["quiz_status"] = self.quiz_status.value
        if self.usage is not None:
            data["usage"] = self.usage.to_json()
        return data


@dataclass(frozen=True, slots=True)
class Course:
    """A course with its newest job and its lessons in course order."""

    id: int
    topic: str
    title: str
    description: str
    created_at: str
    job: Progress | None
    lessons: tuple[LessonSummary, ...]
    mode: str = "stream"
    usage: Usage = Usage()
    options: CourseOptions = DEFAULT_OPTIONS

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Course:
        """A course from its `to_json` (an answer stored for an Idempotency-Key)."""
        return cls(
            id=data["id"],
            topic=data["topic"],
            title=data["title"],
            description=data["description"],
            created_at=data["created_at"],
            job=Progress.from_json(data["job"]) if data["job"] else None,
            lessons=tuple(LessonSummary.from_json(lesson) for lesson in data["lessons"]),
            mode=data.get("mode", "stream"),
            usage=Usage.from_json(data["usage"]) if "usage" in data else Usage(),
            options=CourseOptions.from_json(data),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "title": self.title,
            "description": self.description,
            "created_at": self.created_at,
            "mode": self.mode,
            **self.options.to_json(),
            "job": self.job.to_json() if self.job else None,
            "lessons": [lesson.to_json() for lesson in self.lessons],
            "usage": self.usage.to_json(),
        }


@dataclass(frozen=True, slots=True)
class LessonCounts:
    """How many of a course's lessons are in each status."""

    pending: int = 0
    generating: int = 0
    complete: int = 0
    error: int = 0

    @property
    def total(self) -> int:
        return self.pending + self.generating + self.complete + self.error

    def to_json(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "generating": self.generating,
            "complete": self.complete,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class CourseListItem:
    """A course in the list: its lessons counted by status instead of listed."""

    id: int
    topic: str
    title: str
    description: str
    created_at: str
    job: Progress | None
    lesson_statuses: LessonCounts = LessonCounts()
    mode: str = "stream"
    usage: Usage = Usage()
    options: CourseOptions = DEFAULT_OPTIONS

    @property
    def lesson_count(self) -> int:
        return self.lesson_statuses.total

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "title": self.title,
            "description": self.description,
            "created_at": self.created_at,
            "lesson_count": self.lesson_count,
            "lesson_statuses": self.lesson_statuses.to_json(),
            "mode": self.mode,
            **self.options.to_json(),
            "job": self.job.to_json() if self.job else None,
            "usage": self.usage.to_json(),
        }


@dataclass(frozen=True, slots=True)
class CoursePage:
    """One page of the course list, newest first.

    `next` is the id to list before for the following page (None: this is the last);
    `last_event_id` the newest event when the page was read, to follow changes from.
    """

    courses: tuple[CourseListItem, ...]
    next: int | None
    last_event_id: int


@dataclass(frozen=True, slots=True)
class Lesson:
    """One lesson whole. `content` is the text so far while generating, None while pending."""

    id: int
    course_id: int
    job_id: str | None
    position: int
    title: str
    description: str
    content: str | None
    content_status: LessonStatus
    content_error: str | None
    updated_at: str
    attempt: int
    usage: Usage = Usage()
    model: str | None = None
    stop_reason: str | None = None
    duration_ms: int | None = None
    quiz_status: QuizStatus = QuizStatus.NONE
    quiz: tuple[QuizQuestion, ...] | None = None
    quiz_error: str | None = None

    def to_json(self, content_html: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "course_id": self.course_id,
            "job_id": self.job_id,
            "position": self.position,
            "title": self.title,
            "description": self.description,
            "content": self.content,
            "content_html": content_html,
            "content_status": self.content_status.value,
            "content_error": self.content_error,
            "updated_at": self.updated_at,
            "usage": self.usage.to_json(),
            # How it was made (SPEC 11): `attempts` counts the times it was started (its
            # continuations are part of one attempt).
            "model": self.model,
            "attempts": self.attempt,
            "duration_ms": self.duration_ms,
            "stop_reason": self.stop_reason,
            "quiz_status": self.quiz_status.value,
            "quiz": None if self.quiz is None else [q.to_json() for q in self.quiz],
            "quiz_error": self.quiz_error,
        }


@dataclass(frozen=True, slots=True)
class JobSnapshot:
    """A job's progress and lessons, and the id of its newest event."""

    job: Progress
    lessons: tuple[LessonSummary, ...]
    newest_event_id: int

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job.to_json(),
            "lessons": [lesson.to_json(description=False) for lesson in self.lessons],
        }


@dataclass(frozen=True, slots=True)
class CourseOutline:
    """What a lesson prompt needs: the topic and the whole outline, in course order."""

    topic: str
    outline: Outline
    lesson_ids: tuple[int, ...]
    course_id: int = 0
    mode: str = "stream"
    options: CourseOptions = DEFAULT_OPTIONS


@dataclass(frozen=True, slots=True)
class ClaimedLesson:
    """A lesson a runner has just moved to `generating`."""

    id: int
    position: int
    attempt: int
    job_id: str
    course_id: int
    # For this attempt only: what the person asked of a regeneration ("" for nothing).
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class ClaimedQuiz:
    """A lesson whose quiz a runner has just moved to `generating`, with its text."""

    id: int
    attempt: int  # the quiz's own attempt
    job_id: str
    course_id: int
    text: str


@dataclass(frozen=True, slots=True)
class Event:
    """One committed row of the event log; `data` is one line of JSON."""

    id: int
    job_id: str | None
    course_id: int | None
    type: str
    data: str


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One call to the model as the provider reported it: it is stored (by `id`, so a
    later report of the same call replaces the earlier) as soon as it is known."""

    id: str
    kind: str  # "outline" or "lesson"
    model: str
    usage: Usage
    batch: bool = False
    stop_reason: str | None = None  # None while the call runs
    duration_ms: int | None = None
    # Filled in by the runner, which knows what the call was for.
    course_id: int = 0
    lesson_id: int | None = None


@dataclass(frozen=True, slots=True)
class Version:
    """One text a lesson has had."""

    version: int
    created_at: str
    source: str  # generated, edited or restored
    instructions: str | None
    content: str

    def to_json(self, *, content: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": self.version,
            "created_at": self.created_at,
            "source": self.source,
            "instructions": self.instructions,
            "length": len(self.content),
        }
        if content:
            data["content"] = self.content
        return data
