"""The Claude provider: the official SDK's AsyncAnthropic Messages API, nothing else."""

from __future__ import annotations

import asyncio
import logging

import anthropic
from anthropic import AsyncAnthropic
from anthropic.types import MessageParam

from coursegen.domain import Outline
from coursegen.errors import ProviderError
from coursegen.providers.base import (
    OUTLINE_SCHEMA,
    LessonResult,
    LessonTooLong,
    TextSink,
    parse_outline,
)
from coursegen.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

OUTLINE_TOOL = "record_course_outline"
OUTLINE_MAX_TOKENS = 4096
LESSON_MAX_TOKENS = 8192

SYSTEM = (
    "You are an expert teacher who writes clear, accurate and engaging online courses. "
    "You explain ideas from first principles, use concrete examples and never pad."
)


def outline_prompt(topic: str, lessons: int | None) -> str:
    count = f"exactly {lessons}" if lessons else "between 4 and 10, as the topic needs"
    return (
        "Plan an online course.\n"
        f"Topic: {topic}\n"
        f"Lessons: {count}\n\n"
        "Take the learner from the basics to confident practical use. Give the course a "
        "clear title and a one-paragraph description, then its lessons in teaching order, "
        "each with a short title and one sentence on what it teaches. Record the outline "
        f"with the {OUTLINE_TOOL} tool."
    )


def lesson_prompt(topic: str, outline: Outline, index: int) -> str:
    plan = outline.lessons[index]
    listing = "\n".join(
        f"{number}. {lesson.title}: {lesson.description}"
        for number, lesson in enumerate(outline.lessons, start=1)
    )
    return (
        f'You are writing one lesson of the course "{outline.title}" (topic: {topic}).\n'
        f"About the course: {outline.description}\n\n"
        f"The whole outline:\n{listing}\n\n"
        f"Lesson {index + 1} of {len(outline.lessons)}: {plan.title}\n"
        f"What it teaches: {plan.description}\n\n"
        "Write this lesson in Markdown. Build on the lessons before it without repeating "
        "them, and leave the later lessons' subjects to them. Include: an explanation of "
        "the key ideas, at least one worked example, a short exercise for the learner and "
        "a summary. Start with a level-2 heading holding the lesson title; no preamble."
    )


class AnthropicProvider:
    """Outline by a forced tool call, lessons as Markdown text."""

    name = "anthropic"

    def __init__(
        self, settings: Settings, *, api_key: str | None = None, base_url: str | None = None
    ) -> None:
        self.model = settings.model
        self._timeout = settings.lesson_timeout
        self._max_continuations = settings.max_continuations
        # With no arguments the SDK reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL itself.
        try:
            self._client = AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                max_retries=settings.max_retries,
                timeout=anthropic.Timeout(settings.lesson_timeout, connect=10.0),
            )
        except anthropic.CredentialsError as exc:
            raise SettingsError(f"the Anthropic credentials could not be loaded: {exc}") from None
        if self._client.api_key is None and self._client.auth_token is None:
            logger.warning("no ANTHROPIC_API_KEY is set: every call to the model will fail")

    async def generate_outline(self, topic: str, lessons: int | None) -> Outline:
        try:
            message = await self._client.messages.create(
                model=self.model,
                max_tokens=OUTLINE_MAX_TOKENS,
                system=SYSTEM,
                tools=[
                    {
                        "name": OUTLINE_TOOL,
                        "description": "Record the outline of the course.",
                        "input_schema": OUTLINE_SCHEMA,
                    }
                ],
                tool_choice={"type": "tool", "name": OUTLINE_TOOL},
                messages=[{"role": "user", "content": outline_prompt(topic, lessons)}],
            )
        except Exception as exc:
            failure = self._failure(exc, "outline")
            if failure is None:
                raise
            raise failure from exc
        for block in message.content:
            if block.type == "tool_use" and block.name == OUTLINE_TOOL:
                return parse_outline(block.input, lessons)
        raise ProviderError("the model answered without an outline (no tool call); try again")

    async def write_lesson(
        self, topic: str, outline: Outline, index: int, on_text: TextSink
    ) -> LessonResult:
        """Stream the lesson; one cut off at max_tokens is continued where it stopped.

        Raw events (`stream=True`), not the SDK's accumulating helper: a lesson is
        hundreds of deltas, and each costs the helper far more CPU than this loop.
        """
        prompt = lesson_prompt(topic, outline, index)
        written: list[str] = []
        for call in range(1, self._max_continuations + 2):
            messages: list[MessageParam] = [{"role": "user", "content": prompt}]
            if written:
                # The API refuses a prefill that ends in white space, and the model
                # writes that white space again: trailing space was never passed on.
                messages.append({"role": "assistant", "content": "".join(written)})
            stop_reason = await self._stream_call(messages, written, on_text)
            if stop_reason == "max_tokens":
                logger.info(
                    "lesson %d of %r reached max_tokens; continuing", index + 1, outline.title
                )
                continue
            if stop_reason == "refusal":
                raise ProviderError(
                    "the model declined to write this lesson; regenerate it, or change the "
                    "topic or the lesson's wording"
                )
            if not written:
                raise ProviderError("the model returned an empty lesson; retry it")
            return LessonResult(stop_reason or "end_turn", call)
        raise LessonTooLong(
            "the lesson was longer than the model may write at once; regenerate it with "
            "shorter instructions"
        )

    async def _stream_call(
        self, messages: list[MessageParam], written: list[str], on_text: TextSink
    ) -> str | None:
        """One streamed call; its text (less trailing white space) goes to both sinks."""
        stop_reason: str | None = None
        held = ""  # trailing white space, passed on only once more text follows it
        try:
            async with asyncio.timeout(self._timeout):
                stream = await self._client.messages.create(
                    model=self.model,
                    max_tokens=LESSON_MAX_TOKENS,
                    system=SYSTEM,
                    messages=messages,
                    stream=True,
                )
                async with stream:
                    async for event in stream:
                        if event.type == "content_block_delta":
                            if event.delta.type != "text_delta":
                                continue
                            text = held + event.delta.text
                            body = text.rstrip()
                            held = text[len(body) :]
                            if body:
                                written.append(body)
                                on_text(body)
                        elif event.type == "message_delta":
                            stop_reason = event.delta.stop_reason
        except TimeoutError:
            raise ProviderError(
                f"the model provider timed out after {self._timeout:g} s; retry the lesson"
            ) from None
        except Exception as exc:
            failure = self._failure(exc, "lesson")
            if failure is None:
                raise
            raise failure from exc
        return stop_reason

    async def aclose(self) -> None:
        await self._client.close()

    def _failure(self, exc: Exception, what: str) -> ProviderError | None:
        """A ProviderError a person can act on, or None for an unexpected failure."""
        message = describe(exc, what, self.model, self._timeout)
        if message is None:
            return None
        for secret in (self._client.api_key, self._client.auth_token):
            if secret:
                message = message.replace(secret, "[redacted]")
        return ProviderError(message)


def _attempts(exc: anthropic.APIError) -> int:
    retries = exc.request.headers.get("x-stainless-retry-count", "0")
    return int(retries) + 1 if retries.isdigit() else 1


def _times(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def describe(exc: Exception, what: str, model: str, timeout: float) -> str | None:
    """Words for an SDK failure, or None if it is not one."""
    if isinstance(exc, anthropic.APITimeoutError):
        return f"the model provider timed out after {timeout:g} s writing the {what}; try again"
    if isinstance(exc, anthropic.APIConnectionError):
        return (
            f"could not reach the model provider at {exc.request.url.host} "
            f"({_times(_attempts(exc))}); check the network or ANTHROPIC_BASE_URL"
        )
    if isinstance(exc, anthropic.AuthenticationError):
        return "the model provider rejected the API key (401); check ANTHROPIC_API_KEY"
    if isinstance(exc, anthropic.PermissionDeniedError):
        return f"the API key may not use model {model} (403); check COURSEGEN_MODEL or the key"
    if isinstance(exc, anthropic.NotFoundError):
        return f"the model provider does not know model {model} (404); check COURSEGEN_MODEL"
    if isinstance(exc, anthropic.RateLimitError):
        return (
            f"rate limited by the model provider after {_times(_attempts(exc))} (429); "
            "wait a minute and retry, or lower COURSEGEN_CONCURRENCY"
        )
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code == 200:  # an `error` event inside a stream that had begun
            kind = "overloaded" if exc.type == "overloaded_error" else "failed"
            return f"the model provider {kind} while writing the {what}; retry it"
        if exc.status_code == 529:
            return (
                f"the model provider is overloaded (529, {_times(_attempts(exc))}); "
                "retry in a few minutes"
            )
        if exc.status_code >= 500:
            return (
                f"the model provider failed ({exc.status_code}, {_times(_attempts(exc))}); "
                "retry in a few minutes"
            )
        detail = f": {exc.api_message}" if exc.api_message else ""
        return f"the model provider refused the {what} request ({exc.status_code}){detail}"
    if isinstance(exc, TypeError) and "authentication method" in str(exc):
        return "no API key is configured; set ANTHROPIC_API_KEY or use COURSEGEN_PROVIDER=demo"
    return None
