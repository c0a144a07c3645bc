"""The offline demo provider: deterministic, plausible courses made locally, no model involved."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
import re
import time
import uuid
from collections.abc import Sequence

from coursegen.domain import (
    CourseOptions,
    CourseOutline,
    LessonPlan,
    ModelCall,
    Outline,
    QuizQuestion,
    Usage,
)
from coursegen.providers.base import (
    BatchResult,
    CallSink,
    LessonRequest,
    LessonResult,
    OutlineResult,
    QuizResult,
    TextSink,
)
from coursegen.providers.prompts import lesson_prompt, lesson_system, outline_prompt

DEFAULT_LESSONS = 6

# (title, what it teaches); {t} is the topic.
_LESSONS: tuple[tuple[str, str], ...] = (
    ("What {t} is and why it matters", "the problem {t} solves and where it is used"),
    ("The core vocabulary of {t}", "the handful of terms every later lesson relies on"),
    ("First steps with {t}", "a first small, complete piece of work with {t}"),
    ("How {t} works underneath", "the mechanism behind the surface, so that behaviour makes sense"),
    ("Common patterns in {t}", "the recurring patterns practitioners of {t} reach for"),
    ("Mistakes to avoid with {t}", "the usual pitfalls of {t} and how to recognise them early"),
    ("{t} in a real project", "putting the pieces together on a realistic example"),
    ("Measuring success with {t}", "how to tell whether your use of {t} is working"),
    ("Advanced techniques in {t}", "the techniques that separate competent from expert use"),
    ("Where to go next with {t}", "a map of further topics and a plan for continued practice"),
)

# A few words at a time, as a model streams: each piece ends after its white space.
_PIECE = re.compile(r"(?:\S+\s*){1,3}|\s+")

_OPENERS = (
    "Most people meet {t} long before they can name it.",
    "Every field has a few ideas that unlock the rest; in {t} this is one of them.",
    "It is easier to learn {t} by doing than by reading, so this lesson keeps you busy.",
)


class DemoProvider:
    """Writes courses from templates, streamed a few words at a time over `delay` seconds
    per lesson, so that live writing can be seen without a model."""

    name = "demo"
    model = "demo"  # priced at 0 in the price table: its tokens show, its cost is $0

    def __init__(self, delay: float = 1.5) -> None:
        self.delay = delay
        self._batches = itertools.count(1)
        self._cancelled: set[str] = set()

    async def generate_outline(
        self, topic: str, lessons: int | None, options: CourseOptions
    ) -> OutlineResult:
        outline = self._outline(topic, lessons)
        usage = Usage(
            input_tokens=_tokens(outline_prompt(topic, lessons, options)),
            output_tokens=_tokens(str(outline)),
        )
        call = ModelCall(uuid.uuid4().hex, "outline", self.model, usage, stop_reason="tool_use")
        return OutlineResult(outline, call)

    def _outline(self, topic: str, lessons: int | None) -> Outline:
        count = lessons or DEFAULT_LESSONS
        plans = []
        for i in range(count):
            title, teaches = _LESSONS[i % len(_LESSONS)]
            part = f" (part {i // len(_LESSONS) + 1})" if i >= len(_LESSONS) else ""
            plans.append(
                LessonPlan(
                    title=title.format(t=topic) + part,
                    description=f"Covers {teaches.format(t=topic)}.",
                )
            )
        return Outline(
            title=f"{topic}: from first steps to confident practice",
            description=(
                f"A {count}-lesson course on {topic}. It starts with what {topic} is and why it "
                "matters, builds the vocabulary and mental model, and ends with real practice. "
                "(Demo content, written offline without a model.)"
            ),
            lessons=tuple(plans),
        )

    async def write_lesson(
        self,
        course: CourseOutline,
        index: int,
        on_text: TextSink,
        on_call: CallSink,
        instructions: str = "",
    ) -> LessonResult:
        started = time.monotonic()
        text = lesson_markdown(course, index, instructions).rstrip()
        call = ModelCall(uuid.uuid4().hex, "lesson", self.model, self._billed(course, index, ""))
        on_call(call)
        pieces = _PIECE.findall(text)
        gap = self.delay / len(pieces)
        for piece in pieces:
            if gap > 0:
                await asyncio.sleep(gap)
            on_text(piece)
        on_call(
            ModelCall(
                call.id,
                "lesson",
                self.model,
                self._billed(course, index, text),
                stop_reason="end_turn",
                duration_ms=round((time.monotonic() - started) * 1000),
            )
        )
        return LessonResult("end_turn", 1)

    async def write_quiz(
        self, course: CourseOutline, index: int, text: str, on_call: CallSink
    ) -> QuizResult:
        if self.delay > 0:
            await asyncio.sleep(self.delay / 4)
        quiz = demo_quiz(course, index)
        usage = Usage(input_tokens=_tokens(text) + 1000, output_tokens=_tokens(str(quiz.questions)))
        on_call(ModelCall(uuid.uuid4().hex, "quiz", self.model, usage, stop_reason="tool_use"))
        return quiz

    def lesson_budget(self, course: CourseOutline, index: int, *, batch: bool) -> Usage:
        return self._billed(course, index, lesson_markdown(course, index))

    def _billed(self, course: CourseOutline, index: int, text: str) -> Usage:
        """What a model would bill for the same prompt and text, ~4 characters a token."""
        prefix = "".join(block["text"] for block in lesson_system(course))
        return Usage(
            input_tokens=_tokens(prefix + lesson_prompt(course, index)),
            output_tokens=_tokens(text) if text else 1,
        )

    # A batch here ends `delay` seconds after it was sent; its id says when that was, so
    # a restarted server polls it on like a real one.

    async def submit_batch(self, lessons: Sequence[LessonRequest]) -> str:
        return f"demo_batch_{time.time():.3f}_{next(self._batches)}"

    async def poll_batch(
        self, batch_id: str, lessons: Sequence[LessonRequest]
    ) -> list[BatchResult] | None:
        sent = float(batch_id.split("_")[2])
        if batch_id not in self._cancelled and time.time() < sent + self.delay:
            return None
        results = []
        for lesson in lessons:
            if batch_id in self._cancelled:
                results.append(BatchResult(lesson.custom_id, None, error="cancelled"))
                continue
            call_id = f"{batch_id}:{lesson.custom_id}"
            if lesson.quiz_of is not None:
                quiz = demo_quiz(lesson.course, lesson.index)
                usage = Usage(_tokens(lesson.quiz_of) + 1000, _tokens(str(quiz.questions)))
                call = ModelCall(call_id, "quiz", self.model, usage, batch=True)
                results.append(BatchResult(lesson.custom_id, call, quiz=quiz.questions))
                continue
            text = lesson_markdown(lesson.course, lesson.index, lesson.instructions).rstrip()
            usage = self._billed(lesson.course, lesson.index, text)
            call = ModelCall(
                call_id, "lesson", self.model, usage, batch=True, stop_reason="end_turn"
            )
            results.append(BatchResult(lesson.custom_id, call, text=text))
        return results

    async def cancel_batch(self, batch_id: str) -> None:
        self._cancelled.add(batch_id)

    def rate_limits(self) -> dict[str, int]:
        return {}

    async def aclose(self) -> None:
        return None


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def demo_quiz(course: CourseOutline, index: int) -> QuizResult:
    """A plausible quiz of four questions on the lesson, its answers spread over the choices."""
    plan = course.outline.lessons[index]
    topic = course.topic
    asks = (
        (f"What should come first when you apply {topic}?",
         ("Be clear about the goal", "Pick the most advanced technique",
          "Skip straight to checking", "Copy someone else's result"),
         "The lesson starts every piece of work from the goal: it decides everything else."),
        (f"Why name the parts of {topic}?",
         ("It looks professional", "Knowing each part's job tells you where a problem lives",
          "It is required by law", "It makes the work slower"),
         "Each part has a job, so a problem points to the part whose job failed."),
        ("What is the best size for a first step?",
         ("As large as possible", "It does not matter",
          "The smallest one that shows a visible result", "Whatever takes a full day"),
         "A small step with a visible result can be checked at once."),
        (f"What does this lesson, {plan.title!r}, cover?",
         ("Nothing in particular", "Only history", "Only vocabulary",
          plan.description or plan.title),
         "That is what the outline says this lesson teaches."),
    )  # fmt: skip
    return QuizResult(
        tuple(
            QuizQuestion(question, choices, right, why)
            for (question, choices, why), right in zip(asks, (0, 1, 2, 3), strict=True)
        )
    )


def lesson_markdown(course: CourseOutline, index: int, instructions: str = "") -> str:
    """A deterministic lesson: heading, explanation, example, exercise, summary."""
    outline, topic, options = course.outline, course.topic, course.options
    plan = outline.lessons[index]
    seed = int.from_bytes(hashlib.sha256(f"{topic}\n{index}".encode()).digest()[:4], "big")
    opener = _OPENERS[seed % len(_OPENERS)].format(t=topic)
    before = (
        f"Last lesson, *{outline.lessons[index - 1].title}*, gave us the ground to stand on."
        if index
        else "This is the first lesson, so we assume nothing."
    )
    asked = "".join(
        f"; {label}: “{text}”"
        for label, text in (
            ("course instructions", options.instructions),
            ("for this version", instructions),
        )
        if text
    )
    after = (
        f"Next comes **{outline.lessons[index + 1].title}**."
        if index + 1 < len(outline.lessons)
        else "This is the last lesson of the course: well done for getting here."
    )
    return f"""## {plan.title}

> Demo content: written offline by coursegen's demo provider, not by a model.
> Asked for: {options.level.value} level, in {options.language}{asked}.

{opener} {before} {plan.description}

### The key ideas

1. **Start from the goal.** Before any technique, be clear about what {topic} should achieve
   for you in this situation.
2. **Name the parts.** Each part of {topic} has a job; knowing the jobs tells you where a
   problem lives.
3. **Check your work.** A small, quick check after each step beats a long search for the
   step that went wrong.

### A worked example

Suppose you are asked to apply {topic} to a small task for the first time. Write down the
goal in one sentence, list the parts involved, and do the smallest step that produces a
visible result:

```text
goal:   one sentence about the outcome
parts:  the two or three pieces of {topic} involved
step 1: the smallest change that shows a result
check:  how you will know step 1 worked
```

Filling this in takes two minutes and turns a vague task into a list you can follow.

### Exercise

Pick a real situation from your own work or life where {topic} applies. Fill in the four
lines above for it, then carry out step 1 and note what the check told you.

### Summary

- {plan.description}
- Goal first, then parts, then the smallest step, then a check.
- {after}
"""
