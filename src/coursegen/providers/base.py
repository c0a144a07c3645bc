"""What every provider offers, the outline it returns and how a reply is validated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from coursegen.domain import (
    CourseOptions,
    CourseOutline,
    LessonPlan,
    ModelCall,
    Outline,
    QuizQuestion,
    Usage,
)
from coursegen.errors import ProviderError

MAX_OUTLINE_LESSONS = 30
MAX_TITLE = 300
MAX_DESCRIPTION = 2000


# Called with each piece of a lesson's text as the model writes it, in order.
TextSink = Callable[[str], None]
# Called as a call's billing becomes known: when it starts, and again when it ends.
CallSink = Callable[[ModelCall], None]


@dataclass(frozen=True, slots=True)
class OutlineResult:
    outline: Outline
    call: ModelCall


@dataclass(frozen=True, slots=True)
class LessonResult:
    """How a lesson's writing ended (its text went to the sink piece by piece)."""

    stop_reason: str
    calls: int  # model calls it took: 1, plus one per continuation


@dataclass(frozen=True, slots=True)
class QuizResult:
    questions: tuple[QuizQuestion, ...]


@dataclass(frozen=True, slots=True)
class LessonRequest:
    """One lesson (or, given its text, its quiz) to write in a Message Batch;
    `custom_id` finds its result."""

    custom_id: str
    course: CourseOutline
    index: int
    instructions: str = ""
    quiz_of: str | None = None  # the lesson's text, for a quiz


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One lesson's result from a batch: its text, or the error that stopped it."""

    custom_id: str
    call: ModelCall | None  # None: no call was billed (cancelled, expired, errored)
    text: str | None = None
    error: str | None = None
    quiz: tuple[QuizQuestion, ...] | None = None


class LessonTooLong(ProviderError):
    """Still cut off after every continuation: the text written so far is kept."""


class RateLimited(ProviderError):
    """The provider answered 429: nothing was written, and a later call may succeed."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Provider(Protocol):
    """Writes outlines and lessons; failures raise ProviderError with a readable message."""

    name: str
    model: str

    async def generate_outline(
        self, topic: str, lessons: int | None, options: CourseOptions
    ) -> OutlineResult: ...

    async def write_lesson(
        self,
        course: CourseOutline,
        index: int,
        on_text: TextSink,
        on_call: CallSink,
        instructions: str = "",
    ) -> LessonResult:
        """Write Markdown for lesson `index` of the course, handing each piece to `on_text`;
        `instructions` are for this version only."""
        ...

    async def write_quiz(
        self, course: CourseOutline, index: int, text: str, on_call: CallSink
    ) -> QuizResult:
        """Write the quiz of lesson `index`, whose text is `text`."""
        ...

    def lesson_budget(self, course: CourseOutline, index: int, *, batch: bool) -> Usage:
        """The most tokens writing the lesson (and its quiz) can be billed for, at their
        token limits."""
        ...

    async def submit_batch(self, lessons: Sequence[LessonRequest]) -> str:
        """Send the lessons as one Message Batch; its id."""
        ...

    async def poll_batch(
        self, batch_id: str, lessons: Sequence[LessonRequest]
    ) -> list[BatchResult] | None:
        """The batch's results once it has ended, else None."""
        ...

    async def cancel_batch(self, batch_id: str) -> None: ...

    def rate_limits(self) -> dict[str, int]:
        """What the provider's last answers said is left of its rate limits."""
        ...

    async def aclose(self) -> None: ...


# The JSON schema of the forced tool call that returns the outline.
OUTLINE_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "description": "the course title"},
        "description": {"type": "string", "description": "one paragraph about the course"},
        "lessons": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_OUTLINE_LESSONS,
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "description": {"type": "string", "description": "what the lesson teaches"},
                },
                "required": ["title", "description"],
            },
        },
    },
    "required": ["title", "description", "lessons"],
}


def _invalid(why: str) -> ProviderError:
    return ProviderError(f"the model returned an invalid outline ({why}); try again")


def _text(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(f"{what} is not a non-empty text")
    text = " ".join(value.split())
    if len(text) > limit:
        raise _invalid(f"{what} is over {limit} characters")
    return text


def parse_outline(data: object, requested: int | None) -> Outline:
    """Validate a model's outline; with a requested count, extra lessons are dropped."""
    if not isinstance(data, dict):
        raise _invalid("it is not an object")
    lessons = data.get("lessons")
    if not isinstance(lessons, list) or not lessons:
        raise _invalid("it has no lessons")
    if requested is not None:
        lessons = lessons[:requested]
    elif len(lessons) > MAX_OUTLINE_LESSONS:
        raise _invalid(f"{len(lessons)} lessons, more than {MAX_OUTLINE_LESSONS}")
    plans = []
    for number, lesson in enumerate(lessons, start=1):
        if not isinstance(lesson, dict):
            raise _invalid(f"lesson {number} is not an object")
        plans.append(
            LessonPlan(
                title=_text(lesson.get("title"), f"lesson {number}'s title", MAX_TITLE),
                description=_text(
                    lesson.get("description"), f"lesson {number}'s description", MAX_DESCRIPTION
                ),
            )
        )
    return Outline(
        title=_text(data.get("title"), "the title", MAX_TITLE),
        description=_text(data.get("description"), "the description", MAX_DESCRIPTION),
        lessons=tuple(plans),
    )


MIN_QUESTIONS, MAX_QUESTIONS = 3, 5
MIN_CHOICES, MAX_CHOICES = 2, 6
MAX_QUIZ_TEXT = 1000

# The JSON schema of the forced tool call that returns a lesson's quiz.
QUIZ_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "questions": {
            "type": "array",
            "minItems": MIN_QUESTIONS,
            "maxItems": MAX_QUESTIONS,
            "items": {
                "type": "object",
                "properties": {
                    "question": {"type": "string"},
                    "choices": {
                        "type": "array",
                        "minItems": MIN_CHOICES,
                        "maxItems": MAX_CHOICES,
                        "items": {"type": "string"},
                    },
                    "answer": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "the index of the correct choice, from 0",
                    },
                    "explanation": {"type": "string", "description": "why it is right"},
                },
                "required": ["question", "choices", "answer", "explanation"],
            },
        }
    },
    "required": ["questions"],
}


def _bad_quiz(why: str) -> ProviderError:
    return ProviderError(f"the model returned an invalid quiz ({why}); retry the quiz")


def _quiz_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad_quiz(f"{what} is not a non-empty text")
    if len(value) > MAX_QUIZ_TEXT:
        raise _bad_quiz(f"{what} is over {MAX_QUIZ_TEXT} characters")
    return value.strip()


def parse_quiz(data: object) -> QuizResult:
    """Validate a model's quiz: 3..5 questions of 2..6 choices, one right answer each."""
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise _bad_quiz("it has no questions")
    questions = data["questions"]
    if not MIN_QUESTIONS <= len(questions) <= MAX_QUESTIONS:
        raise _bad_quiz(f"{len(questions)} questions, not {MIN_QUESTIONS} to {MAX_QUESTIONS}")
    parsed = []
    for number, item in enumerate(questions, start=1):
        if not isinstance(item, dict):
            raise _bad_quiz(f"question {number} is not an object")
        choices = item.get("choices")
        if not isinstance(choices, list) or not MIN_CHOICES <= len(choices) <= MAX_CHOICES:
            raise _bad_quiz(f"question {number} needs {MIN_CHOICES} to {MAX_CHOICES} choices")
        answer = item.get("answer")
        if not isinstance(answer, int) or isinstance(answer, bool):
            raise _bad_quiz(f"question {number}'s answer is not a whole number")
        if not 0 <= answer < len(choices):
            raise _bad_quiz(f"question {number}'s answer is not one of its choices")
        parsed.append(
            QuizQuestion(
                question=_quiz_text(item.get("question"), f"question {number}"),
                choices=tuple(
                    _quiz_text(choice, f"a choice of question {number}") for choice in choices
                ),
                answer=answer,
                explanation=_quiz_text(item.get("explanation"), f"question {number}'s explanation"),
            )
        )
    return QuizResult(tuple(parsed))
