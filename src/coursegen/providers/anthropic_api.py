"""The Claude provider: the official SDK's AsyncAnthropic Messages API, nothing else."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import anthropic
from anthropic import AsyncAnthropic
from anthropic._middleware import AsyncCallNext
from anthropic._request import APIRequest
from anthropic._response import AsyncAPIResponse
from anthropic.types import (
    Message,
    MessageCreateParams,
    MessageDeltaUsage,
    MessageParam,
    TextBlockParam,
)
from anthropic.types import Usage as AnthropicUsage
from anthropic.types.messages import MessageBatchResult
from anthropic.types.messages.batch_create_params import Request

from coursegen.domain import CourseOptions, CourseOutline, ModelCall, Usage
from coursegen.errors import ProviderError
from coursegen.providers.base import (
    OUTLINE_SCHEMA,
    QUIZ_SCHEMA,
    BatchResult,
    CallSink,
    LessonRequest,
    LessonResult,
    LessonTooLong,
    OutlineResult,
    QuizResult,
    RateLimited,
    TextSink,
    parse_outline,
    parse_quiz,
)
from coursegen.providers.prompts import (
    OUTLINE_TOOL,
    QUIZ_TOOL,
    SYSTEM,
    lesson_prompt,
    lesson_system,
    outline_prompt,
    quiz_prompt,
    quiz_system,
)
from coursegen.settings import Settings, SettingsError

logger = logging.getLogger(__name__)

OUTLINE_MAX_TOKENS = 4096
LESSON_MAX_TOKENS = 8192
QUIZ_MAX_TOKENS = 2048
# The rate-limit headers worth showing an operator, as the last response gave them.
LIMIT_HEADERS = (
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-output-tokens-remaining",
)
# Prompts are counted generously for the estimate: English runs ~4 characters a
# token, code and other languages fewer.
_CHARS_PER_TOKEN_AT_MOST = 3


class RateLimitWatch:
    """SDK middleware: reads the rate-limit headers of every response, and turns a 429
    into RateLimited at once.

    Raised from middleware, RateLimited is not an APIStatusError, so the SDK does not
    retry it: the job runner alone decides when to try again (after `retry-after`, at a
    lower concurrency), rather than every call in flight retrying on its own.
    """

    def __init__(self) -> None:
        self.remaining: dict[str, int] = {}

    async def __call__(
        self, request: APIRequest, call_next: AsyncCallNext
    ) -> AsyncAPIResponse[Any]:
        response = await call_next(request)
        for name in LIMIT_HEADERS:
            value = response.headers.get(name, "")
            if value.isdigit():
                self.remaining[name.removeprefix("anthropic-ratelimit-")] = int(value)
        if response.status_code == 429:
            retry_after = _retry_after(response.headers)
            await response.http_response.aclose()
            wait = math.ceil(retry_after) if retry_after else 1
            raise RateLimited(
                f"the model provider is rate limiting this API key (429); try again in {wait} s",
                retry_after,
            )
        return response


def _retry_after(headers: Mapping[str, str]) -> float | None:
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(name, "")) * scale
        except ValueError:
            continue
        if 0 <= seconds < 3600:
            return seconds
    return None


class AnthropicProvider:
    """Outline by a forced tool call, lessons as Markdown text."""

    name = "anthropic"

    def __init__(
        self, settings: Settings, *, api_key: str | None = None, base_url: str | None = None
    ) -> None:
        self.model = settings.model
        self._timeout = settings.lesson_timeout
        self._max_continuations = settings.max_continuations
        self.limits = RateLimitWatch()
        # With no arguments the SDK reads ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL itself.
        try:
            self._client = AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                max_retries=settings.max_retries,
                timeout=anthropic.Timeout(settings.lesson_timeout, connect=10.0),
                middleware=[self.limits],
            )
        except anthropic.CredentialsError as exc:
            raise SettingsError(f"the Anthropic credentials could not be loaded: {exc}") from None
        if self._client.api_key is None and self._client.auth_token is None:
            logger.warning("no ANTHROPIC_API_KEY is set: every call to the model will fail")

    async def generate_outline(
        self, topic: str, lessons: int | None, options: CourseOptions
    ) -> OutlineResult:
        started = time.monotonic()
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
                messages=[{"role": "user", "content": outline_prompt(topic, lessons, options)}],
            )
        except Exception as exc:
            failure = self._failure(exc, "outline")
            if failure is None:
                raise
            raise failure from exc
        for block in message.content:
            if block.type == "tool_use" and block.name == OUTLINE_TOOL:
                call = ModelCall(
                    id=uuid.uuid4().hex,
                    kind="outline",
                    model=self.model,
                    usage=_usage(message.usage),
                    stop_reason=message.stop_reason,
                    duration_ms=_ms_since(started),
                )
                return OutlineResult(parse_outline(block.input, lessons), call)
        raise ProviderError("the model answered without an outline (no tool call); try again")

    async def write_lesson(
        self,
        course: CourseOutline,
        index: int,
        on_text: TextSink,
        on_call: CallSink,
        instructions: str = "",
    ) -> LessonResult:
        """Stream the lesson; one cut off at max_tokens is continued where it stopped.

        Raw events (`stream=True`), not the SDK's accumulating helper: a lesson is
        hundreds of deltas, and each costs the helper far more CPU than this loop.
        """
        system = lesson_system(course)
        prompt = lesson_prompt(course, index, instructions)
        written: list[str] = []
        for call in range(1, self._max_continuations + 2):
            messages: list[MessageParam] = [{"role": "user", "content": prompt}]
            if written:
                # The API refuses a prefill that ends in white space, and the model
                # writes that white space again: trailing space was never passed on.
                messages.append({"role": "assistant", "content": "".join(written)})
            stop_reason = await self._stream_call(system, messages, written, on_text, on_call)
            if stop_reason == "max_tokens":
                logger.info(
                    "lesson %d of %r reached max_tokens; continuing",
                    index + 1,
                    course.outline.title,
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

    def lesson_budget(self, course: CourseOutline, index: int, *, batch: bool) -> Usage:
        """Every call at max_tokens, each continuation resending all the text so far, the
        prefix written to the cache each time (the dearest way it can be billed), and the
        quiz reading the whole text."""
        prefix = sum(len(block["text"]) for block in lesson_system(course))
        prefix_tokens = prefix // _CHARS_PER_TOKEN_AT_MOST + 1
        own = len(lesson_prompt(course, index)) // _CHARS_PER_TOKEN_AT_MOST + 1
        calls = 1 if batch else self._max_continuations + 1
        budget = Usage(
            input_tokens=sum(own + k * LESSON_MAX_TOKENS for k in range(calls)),
            output_tokens=calls * LESSON_MAX_TOKENS,
            cache_creation_input_tokens=calls * prefix_tokens,
        )
        if not course.options.quizzes:
            return budget
        quiz_prefix = sum(len(block["text"]) for block in quiz_system(course))
        return budget + Usage(
            input_tokens=own + calls * LESSON_MAX_TOKENS,
            output_tokens=QUIZ_MAX_TOKENS,
            cache_creation_input_tokens=quiz_prefix // _CHARS_PER_TOKEN_AT_MOST + 1,
        )

    async def write_quiz(
        self, course: CourseOutline, index: int, text: str, on_call: CallSink
    ) -> QuizResult:
        """A forced tool call, validated like the outline; one call, not streamed."""
        started = time.monotonic()
        try:
            message = await self._client.messages.create(**self._quiz_params(course, index, text))
        except Exception as exc:
            failure = self._failure(exc, "quiz")
            if failure is None:
                raise
            raise failure from exc
        on_call(
            ModelCall(
                id=uuid.uuid4().hex,
                kind="quiz",
                model=self.model,
                usage=_usage(message.usage),
                stop_reason=message.stop_reason,
                duration_ms=_ms_since(started),
            )
        )
        return _quiz_of(message)

    def _quiz_params(self, course: CourseOutline, index: int, text: str) -> MessageCreateParams:
        return {
            "model": self.model,
            "max_tokens": QUIZ_MAX_TOKENS,
            "system": quiz_system(course),
            "tools": [
                {
                    "name": QUIZ_TOOL,
                    "description": "Record the quiz of the lesson.",
                    "input_schema": QUIZ_SCHEMA,
                }
            ],
            "tool_choice": {"type": "tool", "name": QUIZ_TOOL},
            "messages": [{"role": "user", "content": quiz_prompt(course, index, text)}],
        }

    async def _stream_call(
        self,
        system: list[TextBlockParam],
        messages: list[MessageParam],
        written: list[str],
        on_text: TextSink,
        on_call: CallSink,
    ) -> str | None:
        """One streamed call; its text (less trailing white space) goes to both sinks."""
        stop_reason: str | None = None
        held = ""  # trailing white space, passed on only once more text follows it
        started = time.monotonic()
        call = ModelCall(id=uuid.uuid4().hex, kind="lesson", model=self.model, usage=Usage())
        try:
            async with asyncio.timeout(self._timeout):
                stream = await self._client.messages.create(
                    model=self.model,
                    max_tokens=LESSON_MAX_TOKENS,
                    system=system,
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
                        elif event.type == "message_start":
                            # Billed from here on, even if the stream is cut off later.
                            call = replace(call, usage=_usage(event.message.usage))
                            on_call(call)
                        elif event.type == "message_delta":
                            stop_reason = event.delta.stop_reason
                            call = replace(call, usage=_final_usage(call.usage, event.usage))
        except TimeoutError:
            raise ProviderError(
                f"the model provider timed out after {self._timeout:g} s; retry the lesson"
            ) from None
        except Exception as exc:
            failure = self._failure(exc, "lesson")
            if failure is None:
                raise
            raise failure from exc
        finally:
            if call.usage != Usage():
                on_call(
                    replace(call, stop_reason=stop_reason or "cut", duration_ms=_ms_since(started))
                )
        return stop_reason

    # -- Message Batches ------------------------------------------------------------

    async def submit_batch(self, lessons: Sequence[LessonRequest]) -> str:
        requests: list[Request] = []
        for lesson in lessons:
            params: MessageCreateParams
            if lesson.quiz_of is not None:
                params = self._quiz_params(lesson.course, lesson.index, lesson.quiz_of)
            else:
                prompt = lesson_prompt(lesson.course, lesson.index, lesson.instructions)
                params = {
                    "model": self.model,
                    "max_tokens": LESSON_MAX_TOKENS,
                    "system": lesson_system(lesson.course),
                    "messages": [{"role": "user", "content": prompt}],
                }
            requests.append({"custom_id": lesson.custom_id, "params": params})  # type: ignore[typeddict-item]
        try:
            batch = await self._client.messages.batches.create(requests=requests)
        except Exception as exc:
            failure = self._failure(exc, "batch")
            if failure is None:
                raise
            raise failure from exc
        return batch.id

    async def poll_batch(
        self, batch_id: str, lessons: Sequence[LessonRequest]
    ) -> list[BatchResult] | None:
        try:
            batch = await self._client.messages.batches.retrieve(batch_id)
            if batch.processing_status != "ended":
                return None
            results = [
                _batch_result(entry.custom_id, entry.result, self.model)
                async for entry in await self._client.messages.batches.results(batch_id)
            ]
        except Exception as exc:
            failure = self._failure(exc, "batch")
            if failure is None:
                raise
            raise failure from exc
        return results

    async def cancel_batch(self, batch_id: str) -> None:
        try:
            await self._client.messages.batches.cancel(batch_id)
        except (anthropic.APIError, ProviderError) as exc:
            # It ended meanwhile, or the provider is busy: the job is cancelled either way,
            # and the batch's results, whatever they are, are counted but not applied.
            logger.warning("cancelling batch %s failed: %s", batch_id, exc)

    def rate_limits(self) -> dict[str, int]:
        return dict(self.limits.remaining)

    async def aclose(self) -> None:
        await self._client.close()

    def _failure(self, exc: Exception, what: str) -> ProviderError | None:
        """A ProviderError a person can act on, or None for an unexpected failure."""
        if isinstance(exc, ProviderError):
            return exc
        message = describe(exc, what, self.model, self._timeout)
        if message is None:
            return None
        for secret in (self._client.api_key, self._client.auth_token):
            if secret:
                message = message.replace(secret, "[redacted]")
        return ProviderError(message)


def _usage(usage: AnthropicUsage) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_creation_input_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_input_tokens=usage.cache_read_input_tokens or 0,
    )


def _final_usage(start: Usage, delta: MessageDeltaUsage) -> Usage:
    """The usage once a stream ends: `message_delta` has the output (and may repeat the
    input figures, cumulatively)."""
    return Usage(
        input_tokens=delta.input_tokens if delta.input_tokens is not None else start.input_tokens,
        output_tokens=delta.output_tokens,
        cache_creation_input_tokens=delta.cache_creation_input_tokens
        if delta.cache_creation_input_tokens is not None
        else start.cache_creation_input_tokens,
        cache_read_input_tokens=delta.cache_read_input_tokens
        if delta.cache_read_input_tokens is not None
        else start.cache_read_input_tokens,
    )


def _quiz_of(message: Message) -> QuizResult:
    for block in message.content:
        if block.type == "tool_use" and block.name == QUIZ_TOOL:
            return parse_quiz(block.input)
    raise ProviderError("the model answered without a quiz (no tool call); retry the quiz")


def _batch_result(custom_id: str, result: MessageBatchResult, model: str) -> BatchResult:
    if result.type == "succeeded":
        message = result.message
        call = ModelCall(
            id=f"{message.id}:{custom_id}",
            kind="quiz" if custom_id.startswith("q") else "lesson",
            model=model,
            usage=_usage(message.usage),
            batch=True,
            stop_reason=message.stop_reason,
        )
        if call.kind == "quiz":
            try:
                return BatchResult(custom_id, call, quiz=_quiz_of(message).questions)
            except ProviderError as exc:
                return BatchResult(custom_id, call, error=exc.message)
        text = "".join(block.text for block in message.content if block.type == "text").strip()
        if message.stop_reason == "refusal":
            return BatchResult(custom_id, call, error="the model declined to write this lesson")
        if message.stop_reason == "max_tokens":
            return BatchResult(
                custom_id,
                call,
                text=text,
                error="the lesson was longer than the model may write at once; regenerate it",
            )
        if not text:
            return BatchResult(custom_id, call, error="the model returned an empty lesson")
        return BatchResult(custom_id, call, text=text)
    if result.type == "errored":
        detail = getattr(result.error.error, "message", "") or "an error"
        return BatchResult(custom_id, None, error=f"the batch request failed: {detail}; retry it")
    if result.type == "expired":
        return BatchResult(
            custom_id, None, error="the batch expired before this lesson was written; retry it"
        )
    return BatchResult(custom_id, None, error="the batch was cancelled before this lesson")


def _ms_since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


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
