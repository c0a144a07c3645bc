"""What every provider offers, the outline it returns and how a reply is validated."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from coursegen.domain import LessonPlan, ModelCall, Outline, Usage
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
class LessonRequest:
    """One lesson to write in a Message Batch; `custom_id` finds its result."""

    custom_id: str
    topic: str
    outline: Outline
    index: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One lesson's result from a batch: its text, or the error that stopped it."""

    custom_id: str
    call: ModelCall | None  # None: no call was billed (cancelled, expired, errored)
    text: str | None = None
    error: str | None = None


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

    async def generate_outline(self, topic: str, lessons: int | None) -> OutlineResult: ...

    async def write_lesson(
        self, topic: str, outline: Outline, index: int, on_text: TextSink, on_call: CallSink
    ) -> LessonResult:
        """Write Markdown for `outline.lessons[index]`, handing each piece to `on_text`."""
        ...

    def lesson_budget(self, topic: str, outline: Outline, index: int, *, batch: bool) -> Usage:
        """The most tokens writing the lesson can be billed for, at its token limits."""
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
