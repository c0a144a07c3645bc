"""What the terminal knows of a course being written, kept up to date from its events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

FINISHED_JOB = frozenset({"complete", "error", "cancelled"})


@dataclass
class LessonLine:
    id: int
    position: int
    title: str
    status: str
    error: str | None = None
    tokens: int = 0
    cost_usd: float | None = None


@dataclass
class CourseView:
    course_id: int
    title: str
    job_id: str
    status: str = "running"
    total: int = 0
    completed: int = 0
    failed: int = 0
    error_message: str | None = None
    tokens: int = 0
    cost_usd: float | None = None
    lessons: dict[int, LessonLine] = field(default_factory=dict)

    @classmethod
    def of(cls, course: dict[str, Any]) -> CourseView:
        """The view of a course as `GET /api/courses/{id}` (or generate) answers it."""
        job = course.get("job") or {}
        view = cls(course["id"], course.get("title") or course.get("topic", ""), job["job_id"])
        view.load(course)
        return view

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_JOB

    @property
    def ordered(self) -> list[LessonLine]:
        return sorted(self.lessons.values(), key=lambda lesson: lesson.position)

    def load(self, course: dict[str, Any]) -> list[LessonLine]:
        """Take the whole course in (a first look, or a poll); returns the lessons whose
        status changed."""
        changed = []
        seen = set()
        for data in course.get("lessons", []):
            seen.add(data["id"])
            line = self.lessons.get(data["id"])
            if line is None:
                line = self.lessons[data["id"]] = LessonLine(
                    data["id"], data["position"], data["title"], data["content_status"]
                )
                changed.append(line)
            elif line.status != data["content_status"]:
                changed.append(line)
            line.position, line.title = data["position"], data["title"]
            line.status, line.error = data["content_status"], data.get("content_error")
            _take_usage(line, data.get("usage"))
        for gone in set(self.lessons) - seen:
            del self.lessons[gone]
        if course.get("job"):
            self._progress(course["job"])
        if course.get("usage"):
            self.tokens, self.cost_usd = _usage(course["usage"])
        return changed

    def apply(self, event: str, data: dict[str, Any]) -> list[LessonLine]:
        """Take one event of the job's stream in; returns the lessons whose status changed."""
        if event == "snapshot":
            self._progress(data["job"])
            return self._snapshot(data.get("lessons", []))
        if event in ("progress", "job"):
            self._progress(data)
            return []
        if event in ("lesson", "quiz"):
            return self._lesson(data)
        return []

    def _snapshot(self, lessons: list[dict[str, Any]]) -> list[LessonLine]:
        changed = []
        for data in lessons:
            line = self.lessons.get(data["id"])
            if line is None:
                line = self.lessons[data["id"]] = LessonLine(
                    data["id"], data["position"], data["title"], data["content_status"]
                )
                changed.append(line)
            elif line.status != data["content_status"]:
                line.status = data["content_status"]
                changed.append(line)
            line.position, line.error = data["position"], data.get("content_error")
        return changed

    def _lesson(self, data: dict[str, Any]) -> list[LessonLine]:
        lesson_id = data["lesson_id"]
        if data.get("change") == "removed":
            self.lessons.pop(lesson_id, None)
            return []
        line = self.lessons.get(lesson_id)
        status = data.get("content_status")
        if line is None:
            title = data.get("title") or f"lesson {lesson_id}"
            line = self.lessons[lesson_id] = LessonLine(
                lesson_id, data.get("position", 0), title, status or "pending"
            )
            changed = True
        else:
            changed = status is not None and status != line.status
        if data.get("title"):
            line.title = data["title"]
        if "position" in data:
            line.position = data["position"]
        if status is not None:  # a quiz event carries the lesson's usage, not its status
            line.status, line.error = status, data.get("content_error")
        _take_usage(line, data.get("usage"))
        return [line] if changed else []

    def _progress(self, job: dict[str, Any]) -> None:
        self.status = job["status"]
        self.total = job["total_lessons"]
        self.completed = job["completed_lessons"]
        self.failed = job["failed_lessons"]
        self.error_message = job.get("error_message")
        if job.get("usage"):
            self.tokens, self.cost_usd = _usage(job["usage"])


def _usage(usage: dict[str, Any]) -> tuple[int, float | None]:
    tokens = sum(
        int(usage.get(name) or 0)
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    )
    cost = usage.get("cost_usd")
    return tokens, None if cost is None else float(cost)


def _take_usage(line: LessonLine, usage: dict[str, Any] | None) -> None:
    if usage:
        line.tokens, line.cost_usd = _usage(usage)


def dollars(cost: float | None) -> str:
    """A cost as people read it: four decimals below a dollar; said in words for a model
    with no known price (where a bare `$?` would leave the reader guessing)."""
    if cost is None:
        return "cost unknown"
    return f"${cost:,.4f}" if cost < 1 else f"${cost:,.2f}"
