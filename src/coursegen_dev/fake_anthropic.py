"""A fake Anthropic Messages API served over real HTTP on loopback, for tests and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import itertools
import json
import math
import random
import re
import socket
import time
import zlib
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

CallKind = Literal["outline", "lesson", "quiz", "other"]
FaultKind = Literal["outline", "lesson", "quiz", "any"]
BatchStatus = Literal["in_progress", "canceling", "ended"]

DEFAULT_API_KEY: Final = "sk-ant-fake-key"
# A request whose forced tool is this one is a quiz call; any other tool call is an outline.
QUIZ_TOOL: Final = "record_lesson_quiz"
# Nginx's "client closed request": recorded when the client hung up before any answer.
CLIENT_GONE: Final = 499
# A Fault's `outline` or `quiz` may legitimately be None (a malformed answer), so "unset" needs a
# sentinel.
UNSET: Final = object()
# The fake's token: input and output are counted (and `max_tokens` applied) at ~4 characters
# a token; see `prompt_tokens` for what counts as a request's input.
CHARS_PER_TOKEN: Final = 4
# The usage figures every answer reports, in the order the API sends them.
USAGE_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
# Prompt caching: entries live 5 minutes from their last use (the `cache_ttl` knob), or an hour
# when the breakpoint's cache_control says `"ttl": "1h"`.
DEFAULT_CACHE_TTL: Final = 300.0
LONG_CACHE_TTL: Final = 3600.0
# The shortest cacheable prefix, in tokens, by model id prefix (first match wins), as listed in
# Anthropic's prompt-caching docs (https://platform.claude.com/docs/en/build-with-claude/
# prompt-caching, "Cache limitations"; quoted in anthropics/anthropic-sdk-python#1194). Opus 4.8
# and 4.1 and Sonnet 4.x are 1024; any model not listed gets DEFAULT_CACHE_MINIMUM.
CACHE_MINIMUMS: Final = (
    ("claude-mythos-preview", 4096),
    ("claude-opus-4-7", 4096),
    ("claude-opus-4-6", 4096),
    ("claude-opus-4-5", 4096),
    ("claude-haiku-4-5", 4096),
    ("claude-3-5-haiku", 2048),
    ("claude-3-haiku", 2048),
    ("claude-opus-4", 1024),
    ("claude-sonnet-4", 1024),
    ("claude-3-7-sonnet", 1024),
)
DEFAULT_CACHE_MINIMUM: Final = 1024
# Rate-limit headers: without `requests_per_minute` the fake reports this generous request
# limit; the token limits are always this large fixed figure (no token budget is enforced).
GENEROUS_REQUESTS_PER_MINUTE: Final = 1_000_000
TOKENS_PER_MINUTE: Final = 100_000_000
# Message Batches: how long a batch takes unless told otherwise, and when it would expire.
DEFAULT_BATCH_SECONDS: Final = 0.5
BATCH_LIFETIME: Final = 24 * 3600.0
# The longest text delta a stream sends, in characters.
MAX_DELTA: Final = 24
# The stop reasons a Fault can force on a lesson call.
FAULT_STOP_REASONS: Final = ("max_tokens", "refusal")

_ERROR_TYPES: Final = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_CALL_KEY: Final = "coursegen_dev.fake_anthropic.call"
# Set by an endpoint, read when its answer starts (see `FakeAnthropic.__call__`).
_ANSWER_KEY: Final = "coursegen_dev.fake_anthropic.answer"
_LIMITS_KEY: Final = "coursegen_dev.fake_anthropic.ratelimit"
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_TOPIC = re.compile(r"^\s*Topic:\s*(.+?)\s*$", re.MULTILINE)
_COUNT = re.compile(r"^\s*Lessons:\D*(\d+)", re.MULTILINE)
_LESSON = re.compile(r"^\s*Lesson \d+ of \d+:\s*(.+?)\s*$", re.MULTILINE)
_REFUSAL_DETAILS: Final = {
    "type": "refusal",
    "category": None,
    "explanation": "fake refusal (a scripted Fault)",
}
_ANGLES: Final = (
    "{} fundamentals",
    "Core ideas of {}",
    "{} in practice",
    "Common pitfalls in {}",
    "Advanced {}",
    "{} case studies",
    "Tools for {}",
    "Reviewing {}",
)
# The default quiz: (question, right choice, wrong choices), each about the lesson's title and
# what the default lesson text says.
_QUIZ_ITEMS: Final = (
    (
        "Where does the lesson on {} suggest you start?",
        "From the simplest working case",
        ("From the hardest edge case", "From the reference manual", "From someone else's code"),
    ),
    (
        "How should you experiment with {}?",
        "Change one thing at a time and watch what happens",
        ("Change everything at once", "Avoid changing anything", "Only read, never try"),
    ),
    (
        "What does the lesson on {} ask you to do with surprises?",
        "Write down what surprised you",
        ("Ignore them", "Start the lesson over", "Skip to the next lesson"),
    ),
    (
        "How does the lesson walk through {}?",
        "With small, concrete examples",
        ("With one long proof", "With a history of the field", "With no examples at all"),
    ),
)


@dataclass
class Fault:
    """One scripted misbehaviour, applied to the next `times` matching requests."""

    kind: FaultKind = "any"
    match: str | None = None  # lesson and quiz calls only: the lesson title must contain this
    times: int | None = 1  # None: forever
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream_error: str | None = None
    outline: object = UNSET  # outline calls: the tool input to answer with
    quiz: object = UNSET  # quiz calls only: the tool input to answer with
    no_tool_call: bool = False  # outline and quiz calls: answer with text, no tool_use
    # Lesson calls only: end early with this stop reason ("max_tokens" or "refusal"), after
    # sending `cut` (a fraction) of the text the call would otherwise have sent.
    stop_reason: str | None = None
    cut: float = 0.5
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("outline", "lesson", "quiz", "any"):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if self.stop_reason is not None and self.stop_reason not in FAULT_STOP_REASONS:
            raise ValueError(f"a fault's stop_reason must be one of {FAULT_STOP_REASONS}")
        if not 0.0 <= self.cut <= 1.0:
            raise ValueError(f"a fault's cut is a fraction from 0 to 1, not {self.cut!r}")

    @property
    def spent(self) -> bool:
        """Whether the fault has already hit as many requests as it was meant to."""
        return self.times is not None and self.hits >= self.times

    def matches(self, call: Call) -> bool:
        """Whether this fault applies to the request recorded in `call`."""
        if self.spent or call.kind == "other" or self.kind not in ("any", call.kind):
            return False
        if self.stop_reason is not None and call.kind != "lesson":
            return False  # an outline call must not use up a fault meant for a lesson
        if self.quiz is not UNSET and call.kind != "quiz":
            return False  # and one carrying a quiz is for quiz calls only
        titled = call.kind in ("lesson", "quiz")
        return self.match is None or (titled and self.match in call.title)


@dataclass
class Call:
    """One request the fake received, and what it answered."""

    kind: CallKind
    title: str  # the lesson title (lesson and quiz calls) or the outline topic
    headers: dict[str, str]  # lower-case names
    body: Any = None  # the parsed JSON body
    status: int = 0  # 0 until the answer starts
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    path: str = ""
    aborted: bool = False  # the client went away before the answer was complete
    prefill: str | None = None  # lesson calls: the final assistant turn's text, if any
    sent_text: str = ""  # lesson calls: the text answered (so far, while streaming)
    stop_reason: str | None = None  # lesson calls: set once the answer has been sent whole
    # The last usage the fake sent for this call (USAGE_FIELDS): None until the answer starts;
    # a stream's start figures (output_tokens 1) until its message_delta has been sent.
    usage: dict[str, int] | None = None
    batch_id: str | None = None  # a request inside a Message Batch: that batch's id


@dataclass
class Batch:
    """One Message Batch: its requests' calls, in request order, and how far it has got."""

    id: str
    custom_ids: list[str]
    calls: list[Call]
    status: BatchStatus = "in_progress"
    cancel_requested: bool = False  # a cancel request reached the fake
    created: float = field(default_factory=time.monotonic)
    created_at: float = field(default_factory=time.time)  # wall clock, for the API's dates
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)  # the JSONL lines, once ended

    def result_types(self) -> dict[str, str]:
        """Each request's result type (succeeded, errored, canceled), by custom_id, once ended."""
        return {line["custom_id"]: line["result"]["type"] for line in self.results}


@dataclass
class _Answer:
    """What a call's answer reports as it starts, and the cache entry it makes readable then."""

    usage: dict[str, int]
    cache_write: tuple[str, float] | None = None  # (key, ttl in seconds)


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signal handlers to its owner."""

    # Nested servers on one loop would otherwise restore each other's handlers out of order.
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class FakeAnthropic:
    """A Messages API double; the instance is an ASGI app and an async context manager."""

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        lesson_delay: float = 0.0,
        outline_delay: float = 0.0,
        quiz_delay: float = 0.0,
        first_token_delay: float = 0.0,
        delta_gap: float | None = None,
        default_lessons: int = 5,
        cache_ttl: float = DEFAULT_CACHE_TTL,
        requests_per_minute: int | None = None,
        batch_seconds: float = DEFAULT_BATCH_SECONDS,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        # A lesson stream waits `first_token_delay` before its first text delta, then
        # `delta_gap` before each next one; with `delta_gap` None, `lesson_delay` is spread
        # evenly over all the deltas instead. All three are read as the stream goes.
        self.lesson_delay = lesson_delay
        self.outline_delay = outline_delay
        self.quiz_delay = quiz_delay  # seconds before a quiz call's answer starts
        self.first_token_delay = first_token_delay
        self.delta_gap = delta_gap
        self.default_lessons = default_lessons
        self.outline: dict[str, Any] | None = None
        self.quiz: dict[str, Any] | None = None  # the tool input of every quiz call, if set
        self.lesson_text: Callable[[str], str] | None = None
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.in_flight = self.max_in_flight = 0
        self.lessons_in_flight = self.max_lessons_in_flight = 0
        self.quizzes_in_flight = self.max_quizzes_in_flight = 0
        # Seconds a cache entry lives from its last use (unless its breakpoint asks for 1h);
        # read at each use, so a test can shorten it to see entries expire.
        self.cache_ttl = cache_ttl
        self._cache: dict[str, float] = {}  # cache key -> when it expires (monotonic)
        self._tokens = 0.0  # the request bucket; see `requests_per_minute`
        self._refilled = time.monotonic()
        self.requests_per_minute = requests_per_minute
        # A batch is answered once this many seconds have passed since its creation, at the
        # first poll after that; read when polled.
        self.batch_seconds = batch_seconds
        self.batches: dict[str, Batch] = {}
        self.host, self.port = host, port
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        batch = "/v1/messages/batches/{batch_id}"
        self._app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/batches", self._create_batch, methods=["POST"]),
                Route(batch, self._retrieve_batch, methods=["GET"]),
                Route(f"{batch}/results", self._batch_results, methods=["GET"]),
                Route(f"{batch}/cancel", self._cancel_batch, methods=["POST"]),
                Route("/{path:path}", self._not_found, methods=methods),
            ]
        )

    @property
    def requests_per_minute(self) -> int | None:
        """The request rate limit (None: unlimited), enforced as a token bucket.

        The bucket holds `requests_per_minute` requests and refills continuously at
        requests_per_minute / 60 a second; each Messages call and each batch creation takes
        one. Setting it (at construction or later) starts a full bucket.
        """
        return self._requests_per_minute

    @requests_per_minute.setter
    def requests_per_minute(self, value: int | None) -> None:
        if value is not None and value < 1:
            raise ValueError(f"requests_per_minute must be at least 1 (or None), not {value!r}")
        self._requests_per_minute = value
        self._tokens, self._refilled = float(value or 0), time.monotonic()

    @property
    def base_url(self) -> str:
        """The URL to hand to `AsyncAnthropic(base_url=...)`; the SDK appends /v1."""
        return f"http://{self.host}:{self.port}"

    def add_fault(self, **kwargs: Any) -> Fault:
        """Script a fault (see `Fault` for the fields) and return it for later inspection."""
        fault = Fault(**kwargs)
        self.faults.append(fault)
        return fault

    def lesson_calls(self, title_substring: str | None = None) -> list[Call]:
        """The lesson calls so far, optionally only those whose title contains a substring."""
        lessons = [c for c in self.calls if c.kind == "lesson"]
        return [c for c in lessons if title_substring is None or title_substring in c.title]

    def outline_calls(self) -> list[Call]:
        """The outline calls so far."""
        return [c for c in self.calls if c.kind == "outline"]

    def quiz_calls(self, title_substring: str | None = None) -> list[Call]:
        """The quiz calls so far, optionally only those whose lesson title contains a substring."""
        quizzes = [c for c in self.calls if c.kind == "quiz"]
        return [c for c in quizzes if title_substring is None or title_substring in c.title]

    def reported_usage(self) -> dict[str, int]:
        """The usage the fake reported, summed over the calls (each call's last figures)."""
        total = dict.fromkeys(USAGE_FIELDS, 0)
        for call in self.calls:
            for name in USAGE_FIELDS:
                total[name] += (call.usage or {}).get(name, 0)
        return total

    @property
    def cache_entries(self) -> int:
        """How many prompt-cache entries are readable now (written, answered, not expired)."""
        now = time.monotonic()
        for key in [k for k, expires in self._cache.items() if expires <= now]:
            del self._cache[key]
        return len(self._cache)

    def clear_cache(self) -> None:
        """Forget every prompt-cache entry, as if they had all expired."""
        self._cache.clear()

    def reset(self) -> None:
        """Forget calls and faults; the maxima restart from what is in flight now.

        What the emulated API holds is kept: cache entries, batches and the request bucket.
        """
        self.calls.clear()
        self.faults.clear()
        self.max_in_flight = self.in_flight
        self.max_lessons_in_flight = self.lessons_in_flight
        self.max_quizzes_in_flight = self.quizzes_in_flight

    async def start(self) -> None:
        """Serve on the running loop; port 0 picks a free port."""
        sock = self._bind()
        self._server = server = _QuietServer(self._config())
        self._task = task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # surfaces the startup error
                raise RuntimeError("fake Anthropic server exited during startup")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving; open streams get `timeout_graceful_shutdown` to finish."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = self._task = None

    def _bind(self) -> socket.socket:
        # Binding ourselves (rather than letting uvicorn) makes port 0 usable: the port is known
        # before the server starts, with no race between finding a free port and taking it.
        # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets whose
        # protocol says TCP, and without it every answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        return sock

    def _config(self) -> uvicorn.Config:
        # A bounded graceful shutdown: a stalled stream must not hold up a test's teardown.
        return uvicorn.Config(
            self, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Record the request and keep the in-flight counts, around the Starlette app."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        call = Call(kind="other", title="", headers=headers, path=scope["path"])
        scope[_CALL_KEY] = call
        self.calls.append(call)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        complete = False

        async def observe(message: Message) -> None:
            nonlocal complete
            if message["type"] == "http.response.start":
                call.status = message["status"]
                limits: dict[str, str] | None = scope.get(_LIMITS_KEY)
                if limits:
                    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in limits.items()]
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
                # The answer begins here, whichever code builds its body (a subclass may stream
                # its own way): its usage is reported and its cache write becomes readable.
                answer: _Answer | None = scope.get(_ANSWER_KEY)
                if answer is not None and call.status == 200:
                    self._begin(call, answer)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self._app(scope, receive, observe)
        finally:
            # Runs on client disconnects and shutdown cancellation too, so counts cannot leak.
            self.in_flight -= 1
            if call.kind == "lesson":
                self.lessons_in_flight -= 1
            elif call.kind == "quiz":
                self.quizzes_in_flight -= 1
            call.aborted = call.aborted or not complete
            call.ended = time.monotonic()

    async def _messages(self, request: Request) -> Response:
        call: Call = request.scope[_CALL_KEY]
        try:
            body = await request.json()
        except ValueError:
            return self._error(400)
        if not isinstance(body, dict):
            return self._error(400)
        call.body = body
        kind, call.title = _classify(body)
        if kind == "lesson":
            self.lessons_in_flight += 1
            self.max_lessons_in_flight = max(self.max_lessons_in_flight, self.lessons_in_flight)
        elif kind == "quiz":
            self.quizzes_in_flight += 1
            self.max_quizzes_in_flight = max(self.max_quizzes_in_flight, self.quizzes_in_flight)
        call.kind = kind  # set after counting so the decrement in __call__ always pairs up
        if self.api_key is not None and not _authorised(call.headers, self.api_key):
            return self._error(401)
        limited = self._limit(request)
        if limited is not None:
            return limited
        problem, fault, full = self._plan(call, body)
        if problem is not None:
            return self._error(400, message=problem)
        if fault is not None:
            if not await _pause(request, fault.delay):
                return _gone(call)
            if fault.status is not None:
                return self._error(fault.status, fault.headers)
        headers = {"request-id": self._new_id("req_fake")}
        headers.update(fault.headers if fault else {})
        model = _model(body)
        # Looked up before the answer starts, and written only once it has: calls that arrive
        # together all miss, as they do on the real API.
        prompt, cache_write = self._prompt_usage(body, model)
        if call.kind in ("outline", "quiz"):
            message = self._tool_message(body, call, model, fault, prompt)
            delay = self.outline_delay if call.kind == "outline" else self.quiz_delay
            if not await _pause(request, delay):
                return _gone(call)
            if body.get("stream"):
                start_usage = {**message["usage"], "output_tokens": 1}
                request.scope[_ANSWER_KEY] = _Answer(start_usage, cache_write)
                headers["cache-control"] = "no-cache"
                events = self._message_stream(request, message)
                return StreamingResponse(events, 200, headers, media_type="text/event-stream")
            request.scope[_ANSWER_KEY] = _Answer(message["usage"], cache_write)
            return JSONResponse(message, 200, headers)
        # A continuation goes on from where its prefill ends, and answers only the rest.
        text, stop_reason = _cut(full[len(call.prefill or "") :], body.get("max_tokens"), fault)
        if body.get("stream"):
            request.scope[_ANSWER_KEY] = _Answer({**prompt, "output_tokens": 1}, cache_write)
            stream_error = fault.stream_error if fault else None
            input_tokens = prompt["input_tokens"]
            events = self._stream(request, model, text, stop_reason, input_tokens, stream_error)
            headers["cache-control"] = "no-cache"
            return StreamingResponse(events, 200, headers, media_type="text/event-stream")
        # Answered whole after as long as the same answer would take to stream.
        if not await _pause(request, self._stream_seconds(len(_deltas(text)))):
            return _gone(call)
        call.sent_text, call.stop_reason = text, stop_reason
        message = self._text_message(model, text, stop_reason, prompt)
        request.scope[_ANSWER_KEY] = _Answer(message["usage"], cache_write)
        return JSONResponse(message, 200, headers)

    def _plan(self, call: Call, body: dict[str, Any]) -> tuple[str | None, Fault | None, str]:
        """Check a request as the API would, then pick its fault: (problem, fault, lesson text).

        A lesson's whole text comes back too: a continuation answers only what follows its
        prefill. A refused request (a problem) does not use up a fault.
        """
        full = ""
        if call.kind == "lesson":
            call.prefill = _prefill(body)
            full = self._lesson(call.title)
            problem = _request_problem(body, full, call.prefill)
            if problem is not None:
                return problem, None, full
        fault = next((f for f in self.faults if f.matches(call)), None)
        if fault is not None:
            fault.hits += 1
        return None, fault, full

    def _lesson(self, title: str) -> str:
        """The whole text of a lesson; a continuation goes on with the same text."""
        return self.lesson_text(title) if self.lesson_text else _lesson_markdown(title)

    async def _not_found(self, request: Request) -> Response:
        return self._error(404)

    def _prompt_usage(
        self, body: dict[str, Any], model: str
    ) -> tuple[dict[str, int], tuple[str, float] | None]:
        """A request's input figures, and the cache entry it writes (None if it reads or none).

        A cache read refreshes the entry's expiry at once; a write is stored only when the
        answer begins (`_begin`), so until then the same prefix misses.
        """
        total, prefix, key, ttl = _prompt_cache(body, model, self.cache_ttl)
        usage = {
            "input_tokens": total,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if key is None:
            return usage, None
        usage["input_tokens"] = total - prefix
        now = time.monotonic()
        expires = self._cache.get(key)
        if expires is not None and expires > now:
            self._cache[key] = max(expires, now + ttl)
            usage["cache_read_input_tokens"] = prefix
            return usage, None
        usage["cache_creation_input_tokens"] = prefix
        return usage, (key, ttl)

    def _begin(self, call: Call, answer: _Answer) -> None:
        """An answer has begun: record its usage and make the cache entry it wrote readable."""
        call.usage = dict(answer.usage)
        if answer.cache_write is not None:
            key, ttl = answer.cache_write
            self._cache[key] = max(self._cache.get(key, 0.0), time.monotonic() + ttl)

    def _limit(self, request: Request) -> Response | None:
        """Take a request from the bucket; a 429 answer when it is empty, else None.

        Either way the answer will carry the rate-limit headers, as the real API's do.
        """
        now, wall = time.monotonic(), time.time()
        rpm = self._requests_per_minute
        retry_after: int | None = None
        if rpm is None:
            limit = remaining = GENEROUS_REQUESTS_PER_MINUTE
            full_in = 0.0
        else:
            rate = rpm / 60.0
            self._tokens = min(float(rpm), self._tokens + (now - self._refilled) * rate)
            self._refilled = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
            else:  # a refused request takes nothing: the bucket refills as if it had not come
                retry_after = max(1, math.ceil((1.0 - self._tokens) / rate))
            limit, remaining = rpm, math.floor(self._tokens)
            full_in = (rpm - self._tokens) / rate
        headers: dict[str, str] = {
            "anthropic-ratelimit-requests-limit": str(limit),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": _rfc3339(wall + full_in),
        }
        for kind in ("input-tokens", "output-tokens"):
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(TOKENS_PER_MINUTE)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(TOKENS_PER_MINUTE)
            headers[f"anthropic-ratelimit-{kind}-reset"] = _rfc3339(wall)
        request.scope[_LIMITS_KEY] = headers
        if retry_after is None:
            return None
        return self._error(429, {"retry-after": str(retry_after)})

    def _tool_message(
        self,
        body: dict[str, Any],
        call: Call,
        model: str,
        fault: Fault | None,
        prompt: dict[str, int],
    ) -> dict[str, Any]:
        """The answer to an outline or quiz call: the forced tool_use (or text, by a fault)."""
        if fault is not None and fault.no_tool_call:
            what = "an outline for" if call.kind == "outline" else "a quiz on"
            text = f"Here is {what} {call.title}, in prose."
            return self._text_message(model, text, "end_turn", prompt)
        tool_input: object
        if call.kind == "quiz":
            if fault is not None and fault.quiz is not UNSET:
                tool_input = fault.quiz
            else:
                tool_input = self.quiz if self.quiz is not None else _default_quiz(call.title)
        elif fault is not None and fault.outline is not UNSET:
            tool_input = fault.outline
        elif self.outline is not None:
            tool_input = self.outline
        else:
            found = _COUNT.search(_prompt(body))
            count = int(found[1]) if found else self.default_lessons
            tool_input = _default_outline(call.title, count)
        block = {
            "type": "tool_use",
            "id": self._new_id("toolu_fake"),
            "name": _forced_tool(body),
            "input": tool_input,
        }
        usage = {**prompt, "output_tokens": _output_tokens(_compact(tool_input))}
        return self._message(model, [block], "tool_use", usage)

    def _text_message(
        self, model: str, text: str, stop_reason: str, prompt: dict[str, int]
    ) -> dict[str, Any]:
        usage = {**prompt, "output_tokens": _output_tokens(text)}
        return self._message(model, [{"type": "text", "text": text}], stop_reason, usage)

    async def _stream(
        self,
        request: Request,
        model: str,
        text: str,
        stop_reason: str,
        input_tokens: int,
        stream_error: str | None,
    ) -> AsyncIterator[bytes]:
        call: Call = request.scope[_CALL_KEY]
        answer: _Answer | None = request.scope.get(_ANSWER_KEY)
        usage = answer.usage if answer else {"input_tokens": input_tokens, "output_tokens": 1}
        start = self._message(model, [], None, usage)
        yield _sse("message_start", {"type": "message_start", "message": start})
        yield _sse("ping", {"type": "ping"})
        block = {"type": "text", "text": ""}
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
        deltas = _deltas(text)
        for index, piece in enumerate(deltas):
            # Read the knobs per delta: a test may slow down or speed up a running stream.
            wait = self._delta_wait(index, len(deltas))
            if wait <= 0:
                await asyncio.sleep(0)  # no delay, but other tasks still run between deltas
            elif not await _pause(request, wait):
                call.aborted = True  # the client hung up: stop at once, not after the sleep
                return
            delta = {"type": "text_delta", "text": piece}
            yield _sse(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
            call.sent_text += piece
            if stream_error is not None:
                break
        if stream_error is not None:
            error = {"type": stream_error, "message": "fake stream error"}
            yield _sse("error", {"type": "error", "error": error})
            return
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        stop: dict[str, Any] = {"stop_reason": stop_reason, "stop_sequence": None}
        if stop_reason == "refusal":
            stop["stop_details"] = _REFUSAL_DETAILS
        # The real API repeats the input and cache figures here, cumulative like output_tokens.
        final_usage = {**start["usage"], "output_tokens": _output_tokens(text)}
        yield _sse("message_delta", {"type": "message_delta", "delta": stop, "usage": final_usage})
        # Resumed only once message_delta has gone out: its figures are now what was reported.
        call.stop_reason = stop_reason
        call.usage = final_usage
        yield _sse("message_stop", {"type": "message_stop"})

    async def _message_stream(
        self, request: Request, message: dict[str, Any]
    ) -> AsyncIterator[bytes]:
        """A finished message as the API streams it: each block's text or JSON in deltas.

        For outline and quiz calls with `stream` set: a tool_use block's input goes out as
        input_json_delta pieces (no pacing: the call's delay came before the answer began).
        """
        call: Call = request.scope[_CALL_KEY]
        final_usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None}
        start["usage"] = {**final_usage, "output_tokens": 1}
        start.pop("stop_details", None)
        yield _sse("message_start", {"type": "message_start", "message": start})
        yield _sse("ping", {"type": "ping"})
        for index, block in enumerate(message["content"]):
            if block["type"] == "tool_use":
                empty = {**block, "input": {}}
                pieces = _deltas(_compact(block["input"]))
                deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces]
            else:
                empty = {**block, "text": ""}
                deltas = [{"type": "text_delta", "text": p} for p in _deltas(block["text"])]
            yield _sse(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty},
            )
            for delta in deltas:
                await asyncio.sleep(0)
                yield _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
        stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        yield _sse("message_delta", {"type": "message_delta", "delta": stop, "usage": final_usage})
        call.usage = dict(final_usage)
        yield _sse("message_stop", {"type": "message_stop"})

    def _delta_wait(self, index: int, count: int) -> float:
        """Seconds to wait before text delta number `index` (from 0) of `count`."""
        if self.delta_gap is None:
            gap = self.lesson_delay / count
            return gap + self.first_token_delay if index == 0 else gap
        return self.first_token_delay if index == 0 else self.delta_gap

    def _stream_seconds(self, count: int) -> float:
        """How long a stream of `count` text deltas takes, with the knobs as they are now."""
        return sum(self._delta_wait(i, count) for i in range(count)) if count else 0.0

    def _message(
        self, model: str, content: list[Any], stop_reason: str | None, usage: dict[str, int]
    ) -> dict[str, Any]:
        full_usage = {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, **usage}
        message: dict[str, Any] = {
            "id": self._new_id("msg_fake"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": full_usage,
        }
        if stop_reason == "refusal":
            message["stop_details"] = _REFUSAL_DETAILS
        return message

    # --- Message Batches -------------------------------------------------------------------

    async def _create_batch(self, request: Request) -> Response:
        http_call: Call = request.scope[_CALL_KEY]
        if self.api_key is not None and not _authorised(http_call.headers, self.api_key):
            return self._error(401)
        limited = self._limit(request)
        if limited is not None:
            return limited
        try:
            body = await request.json()
        except ValueError:
            return self._error(400)
        http_call.body = body
        requests, problem = _batch_requests(body)
        if problem is not None:
            return self._error(400, message=problem)
        batch = Batch(id=self._new_id("msgbatch_fake"), custom_ids=[], calls=[])
        for item in requests:
            params: dict[str, Any] = item["params"]
            kind, title = _classify(params)
            call = Call(
                kind=kind,
                title=title,
                headers=http_call.headers,
                body=params,
                path=http_call.path,
                batch_id=batch.id,
            )
            batch.custom_ids.append(str(item["custom_id"]))
            batch.calls.append(call)
            self.calls.append(call)
        self.batches[batch.id] = batch
        return self._batch_response(request, batch)

    async def _retrieve_batch(self, request: Request) -> Response:
        batch = self._polled_batch(request)
        return batch if isinstance(batch, Response) else self._batch_response(request, batch)

    async def _cancel_batch(self, request: Request) -> Response:
        batch = self._polled_batch(request)
        if isinstance(batch, Response):
            return batch
        # An ended batch is answered as it is; one still in progress had none of its requests
        # answered yet (they are answered all at once, at the end), so all will be canceled.
        if batch.status == "in_progress":
            batch.status, batch.cancel_requested = "canceling", True
            batch.cancel_initiated_at = time.time()
        return self._batch_response(request, batch)

    async def _batch_results(self, request: Request) -> Response:
        batch = self._polled_batch(request)
        if isinstance(batch, Response):
            return batch
        if batch.status != "ended":
            message = f"batch {batch.id} is still {batch.status}: results come once it has ended"
            return self._error(400, message=message)
        lines = "".join(json.dumps(line) + "\n" for line in batch.results)
        headers = {"request-id": self._new_id("req_fake")}
        return Response(lines, 200, headers, media_type="application/x-jsonl")

    def _polled_batch(self, request: Request) -> Batch | Response:
        """The batch a request names, brought up to date; or the error answer."""
        call: Call = request.scope[_CALL_KEY]
        if self.api_key is not None and not _authorised(call.headers, self.api_key):
            return self._error(401)
        batch = self.batches.get(request.path_params["batch_id"])
        if batch is None:
            return self._error(404)
        self._settle(batch)
        return batch

    def _settle(self, batch: Batch) -> None:
        """End a batch that is due: cancel every request of a canceling one, or answer them."""
        if batch.status == "ended":
            return
        if batch.status == "canceling":
            results: list[dict[str, Any]] = [{"type": "canceled"} for _ in batch.calls]
        elif time.monotonic() - batch.created >= self.batch_seconds:
            # One after the other, each answer begun before the next request is looked at, so
            # requests sharing a cacheable prefix write it once and then read it.
            results = [self._batch_answer(call) for call in batch.calls]
        else:
            return
        batch.results = [
            {"custom_id": custom_id, "result": result}
            for custom_id, result in zip(batch.custom_ids, results, strict=True)
        ]
        batch.status, batch.ended_at = "ended", time.time()

    def _batch_answer(self, call: Call) -> dict[str, Any]:
        """Answer one request of a batch as a non-streamed call: its result object."""
        body: dict[str, Any] = call.body
        call.ended = time.monotonic()
        problem, fault, full = self._plan(call, body)
        if problem is not None:
            call.status = 400
            return {"type": "errored", "error": self._error_body(400, problem)}
        if fault is not None and fault.status is not None:
            call.status = fault.status
            return {"type": "errored", "error": self._error_body(fault.status)}
        model = _model(body)
        prompt, cache_write = self._prompt_usage(body, model)
        if call.kind in ("outline", "quiz"):
            message = self._tool_message(body, call, model, fault, prompt)
        else:
            rest = full[len(call.prefill or "") :]
            text, stop_reason = _cut(rest, body.get("max_tokens"), fault)
            call.sent_text, call.stop_reason = text, stop_reason
            message = self._text_message(model, text, stop_reason, prompt)
        call.status = 200
        self._begin(call, _Answer(message["usage"], cache_write))
        return {"type": "succeeded", "message": message}

    def _batch_response(self, request: Request, batch: Batch) -> Response:
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        for line in batch.results:
            counts[line["result"]["type"]] += 1
        counts["processing"] = len(batch.calls) - len(batch.results)
        results_url = None
        if batch.status == "ended":
            results_url = f"{str(request.base_url).rstrip('/')}/v1/messages/batches/{batch.id}"
            results_url += "/results"
        body = {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": batch.status,
            "request_counts": counts,
            "created_at": _rfc3339(batch.created_at),
            "expires_at": _rfc3339(batch.created_at + BATCH_LIFETIME),
            "ended_at": _date(batch.ended_at),
            "cancel_initiated_at": _date(batch.cancel_initiated_at),
            "archived_at": None,
            "results_url": results_url,
        }
        return JSONResponse(body, 200, {"request-id": self._new_id("req_fake")})

    def _error(
        self, status: int, headers: dict[str, str] | None = None, message: str | None = None
    ) -> Response:
        body = self._error_body(status, message)
        return JSONResponse(body, status, {"request-id": body["request_id"], **(headers or {})})

    def _error_body(self, status: int, message: str | None = None) -> dict[str, Any]:
        text = message or f"fake {status}"
        error = {"type": _ERROR_TYPES.get(status, "api_error"), "message": text}
        return {"type": "error", "error": error, "request_id": self._new_id("req_fake")}

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"


def _prompt(body: dict[str, Any]) -> str:
    """The text of the first user message, whether it is a string or a list of blocks."""
    messages = [m for m in _messages_of(body) if m.get("role", "user") == "user"]
    return _text_of(messages[0].get("content", "")) if messages else ""


def _prefill(body: dict[str, Any]) -> str | None:
    """The text of a final assistant turn (the answer so far, to continue), if there is one."""
    messages = _messages_of(body)
    if len(messages) < 2 or messages[-1].get("role") != "assistant":
        return None
    return _text_of(messages[-1].get("content", ""), sep="")


def _messages_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def _text_of(content: object, sep: str = "\n") -> str:
    """A message's text, whether its content is a string or a list of blocks."""
    if isinstance(content, list):
        return sep.join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)


def _request_problem(body: dict[str, Any], full: str, prefill: str | None) -> str | None:
    """What the real API would refuse (400) in a lesson request, or None if it is fine."""
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        return f"max_tokens: must be a positive integer, not {max_tokens!r}"
    if prefill is None:
        return None
    if prefill != prefill.rstrip():
        return "final assistant content cannot end with trailing whitespace"
    if not full.startswith(prefill):
        pairs = enumerate(zip(full, prefill, strict=False))
        at = next((i for i, (a, b) in pairs if a != b), len(full))
        return (
            "fake: the assistant prefill is not a prefix of this lesson's text "
            f"(they differ from character {at}: {prefill[at : at + 20]!r} "
            f"instead of {full[at : at + 20]!r})"
        )
    return None


def _cut(text: str, max_tokens: object, fault: Fault | None) -> tuple[str, str]:
    """The part of `text` one call sends, and its stop reason."""
    stop_reason = "end_turn"
    if fault is not None and fault.stop_reason is not None:
        text, stop_reason = text[: int(len(text) * fault.cut)], fault.stop_reason
    if isinstance(max_tokens, int) and len(text) > max_tokens * CHARS_PER_TOKEN:
        text, stop_reason = text[: max_tokens * CHARS_PER_TOKEN], "max_tokens"
    return text, stop_reason


def _classify(body: dict[str, Any]) -> tuple[CallKind, str]:
    """Quiz calls force QUIZ_TOOL, other calls with tools are outlines, the rest lessons."""
    prompt = _prompt(body)
    if body.get("tools") and _forced_tool(body) != QUIZ_TOOL:
        topic = _TOPIC.search(prompt)
        return "outline", topic[1] if topic else "Untitled topic"
    lesson = _LESSON.search(prompt)
    kind: CallKind = "quiz" if body.get("tools") else "lesson"
    return kind, lesson[1] if lesson else "Untitled lesson"


def _forced_tool(body: dict[str, Any]) -> str:
    """The tool tool_choice names, else the first tool's name."""
    choice = body.get("tool_choice") or {}
    if isinstance(choice, dict) and choice.get("type") == "tool":
        return str(choice.get("name"))
    tools = body.get("tools") or [{}]
    return str(tools[0].get("name", "record_outline"))


def _authorised(headers: dict[str, str], key: str) -> bool:
    # The SDK sends a Bearer token; older clients and curl users send x-api-key.
    return headers.get("authorization") == f"Bearer {key}" or headers.get("x-api-key") == key


async def _pause(request: Request, seconds: float) -> bool:
    """Sleep, but stop early if the client hangs up; True when the client is still there."""
    if seconds <= 0:
        return True
    try:
        async with asyncio.timeout(seconds):
            # The body is already read, so the next message is the disconnect.
            while (await request.receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return True
    return False


def _gone(call: Call) -> Response:
    call.aborted = True
    return Response(status_code=CLIENT_GONE)  # uvicorn drops it: nobody is listening


def _default_outline(topic: str, count: int) -> dict[str, Any]:
    lessons = []
    for i in range(1, count + 1):
        angle = _ANGLES[(i - 1) % len(_ANGLES)].format(topic)
        lessons.append({"title": f"Lesson {i}: {angle}", "description": f"{angle}, step by step."})
    return {
        "title": f"{topic}: a practical course",
        "description": f"A short course that takes you from zero to confident with {topic}.",
        "lessons": lessons,
    }


def _default_quiz(title: str) -> dict[str, Any]:
    """Four questions on `title`, four choices each; where the right one sits varies by title."""
    first = zlib.crc32(title.encode())
    questions = []
    for i, (ask, right, wrong) in enumerate(_QUIZ_ITEMS):
        answer = (first + i) % 4
        choices = list(wrong)
        choices.insert(answer, right)
        questions.append(
            {
                "question": ask.format(title),
                "choices": choices,
                "answer": answer,
                "explanation": f"The lesson on {title} says: {right.lower()}.",
            }
        )
    return {"questions": questions}


def _lesson_markdown(title: str) -> str:
    return (
        f"# {title}\n\n"
        f"This lesson walks through {title} with small, concrete examples. "
        "Read it once, then try each idea yourself before moving on.\n\n"
        "- Start from the simplest working case.\n"
        "- Change one thing at a time and watch what happens.\n"
        "- Write down what surprised you.\n"
    )


def _deltas(text: str) -> list[str]:
    """Split `text` as the API streams it: pieces of a few characters to a few words.

    Deterministic (seeded by the text); 1 to MAX_DELTA characters each, most of them ending
    at the end of a word, like tokens that carry their leading space (" word").
    """
    rng = random.Random(zlib.crc32(text.encode()))
    pieces: list[str] = []
    start = 0
    while start < len(text):
        want = start + min(MAX_DELTA, 1 + int(rng.expovariate(1 / 6)))
        end = min(want, len(text))
        if rng.random() < 0.8:
            limit = min(start + MAX_DELTA, len(text))
            ends = [j for j in range(start + 1, limit + 1) if _word_ends_at(text, j)]
            end = min(ends, key=lambda j: abs(j - want), default=end)
        pieces.append(text[start:end])
        start = end
    return pieces


def _word_ends_at(text: str, index: int) -> bool:
    return index == len(text) or (text[index].isspace() and not text[index - 1].isspace())


def prompt_tokens(body: dict[str, Any]) -> tuple[int, int]:
    """A Messages request's input tokens as the fake counts them: (all, cacheable prefix).

    The input is the tools (each as compact JSON without its cache_control), then the system
    text (a string, or each block's text), then each message's content (a string, or each
    block's text; a tool_use block counts its input as compact JSON, a tool_result block its
    content's text, other blocks nothing). Each figure is ceil(characters / CHARS_PER_TOKEN).
    The cacheable prefix runs up to and including the last block carrying cache_control (the
    last block of all with a top-level cache_control); 0 without any.
    """
    parts = _parts(body)
    end, _ = _breakpoint(body, parts)
    return _tokens(sum(p.chars for p in parts)), _tokens(sum(p.chars for p in parts[:end]))


def cache_minimum(model: str) -> int:
    """The shortest prefix, in tokens, that `model` caches (see CACHE_MINIMUMS)."""
    return next(
        (n for prefix, n in CACHE_MINIMUMS if model.startswith(prefix)), DEFAULT_CACHE_MINIMUM
    )


@dataclass(frozen=True)
class _Part:
    """One piece of a request's input, in the order the API caches it."""

    canonical: Any  # what must be the same, byte for byte, for a cache hit
    chars: int
    cache_control: dict[str, Any] | None


def _parts(body: dict[str, Any]) -> list[_Part]:
    parts: list[_Part] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict):
            bare = _bare(tool)
            parts.append(_Part(["tool", bare], len(_compact(bare)), _cache_control(tool)))
    for block in _blocks(body.get("system")):
        parts.append(
            _Part(["system", _bare(block)], len(_block_text(block)), _cache_control(block))
        )
    for message in _messages_of(body):
        role = str(message.get("role", "user"))
        for block in _blocks(message.get("content")):
            canonical = ["message", role, _bare(block)]
            parts.append(_Part(canonical, len(_block_text(block)), _cache_control(block)))
    return parts


def _breakpoint(body: dict[str, Any], parts: list[_Part]) -> tuple[int, dict[str, Any] | None]:
    """How many parts the cacheable prefix holds, and the cache_control that ends it."""
    end, control = 0, None
    for index, part in enumerate(parts, start=1):
        if part.cache_control is not None:
            end, control = index, part.cache_control
    top = body.get("cache_control")
    if isinstance(top, dict) and parts and end < len(parts):
        end, control = len(parts), top  # automatic caching: a breakpoint on the last block
    return end, control


def _prompt_cache(
    body: dict[str, Any], model: str, cache_ttl: float
) -> tuple[int, int, str | None, float]:
    """(input tokens, prefix tokens, cache key, ttl); the key is None when nothing caches."""
    parts = _parts(body)
    end, control = _breakpoint(body, parts)
    total = _tokens(sum(p.chars for p in parts))
    prefix = _tokens(sum(p.chars for p in parts[:end]))
    if control is None or prefix < cache_minimum(model):
        return total, 0, None, cache_ttl
    canonical = _compact([model, [p.canonical for p in parts[:end]]], sort_keys=True)
    key = hashlib.sha256(canonical.encode()).hexdigest()
    return total, prefix, key, LONG_CACHE_TTL if control.get("ttl") == "1h" else cache_ttl


def _blocks(content: object) -> list[dict[str, Any]]:
    """Content as a list of blocks: a string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def _block_text(block: dict[str, Any]) -> str:
    """The text a block puts before the model, as the fake counts it."""
    text = block.get("text")
    if isinstance(text, str):
        return text
    if block.get("type") == "tool_use":
        return _compact(block.get("input", {}))
    if block.get("type") == "tool_result":
        return "".join(_block_text(b) for b in _blocks(block.get("content")))
    return ""


def _bare(block: dict[str, Any]) -> dict[str, Any]:
    """A block or tool without its cache_control, which is a marker, not content."""
    return {k: v for k, v in block.items() if k != "cache_control"}


def _cache_control(block: dict[str, Any]) -> dict[str, Any] | None:
    control = block.get("cache_control")
    return control if isinstance(control, dict) else None


def _compact(value: object, sort_keys: bool = False) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=sort_keys)


def _tokens(chars: int) -> int:
    return math.ceil(chars / CHARS_PER_TOKEN)


def _model(body: dict[str, Any]) -> str:
    return str(body.get("model", "claude-fake"))


def _batch_requests(body: object) -> tuple[list[dict[str, Any]], str | None]:
    """A batch creation's requests, or what the real API would refuse in it."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return [], "requests: a non-empty list of {custom_id, params} is required"
    seen: set[str] = set()
    for index, item in enumerate(requests):
        if not isinstance(item, dict) or not isinstance(item.get("params"), dict):
            return [], f"requests.{index}: an object with custom_id and params is required"
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
            return [], f"requests.{index}.custom_id: 1 to 64 of a-z, A-Z, 0-9, _ and -"
        if custom_id in seen:
            return [], f"requests.{index}.custom_id: {custom_id!r} is used twice in this batch"
        seen.add(custom_id)
    return requests, None


def _rfc3339(seconds: float) -> str:
    stamp = datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _date(seconds: float | None) -> str | None:
    return None if seconds is None else _rfc3339(seconds)


def _output_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _sse(event: str, data: dict[str, Any]) -> bytes:
    # The SDK skips events without an `event:` line, so every event names itself.
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def main(argv: list[str] | None = None) -> None:
    """Run the fake standalone, for manual tries and benchmarks in another process."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--lesson-delay", type=float, default=0.0, help="seconds per lesson")
    parser.add_argument("--outline-delay", type=float, default=0.0, help="seconds per outline")
    parser.add_argument("--quiz-delay", type=float, default=0.0, help="seconds per quiz")
    parser.add_argument(
        "--first-token-delay",
        type=float,
        default=0.0,
        help="seconds from a lesson stream's start to its first text delta",
    )
    parser.add_argument(
        "--delta-gap",
        type=float,
        default=None,
        help="seconds between a lesson stream's text deltas (default: spread --lesson-delay)",
    )
    parser.add_argument("--default-lessons", type=int, default=5)
    parser.add_argument(
        "--requests-per-minute",
        type=int,
        default=None,
        help="answer 429 beyond this rate (a token bucket of this size; default: unlimited)",
    )
    parser.add_argument(
        "--batch-seconds",
        type=float,
        default=DEFAULT_BATCH_SECONDS,
        help="seconds from a message batch's creation to its end",
    )
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="empty: accept any key")
    args = parser.parse_args(argv)
    fake = FakeAnthropic(
        api_key=args.api_key or None,
        lesson_delay=args.lesson_delay,
        outline_delay=args.outline_delay,
        quiz_delay=args.quiz_delay,
        first_token_delay=args.first_token_delay,
        delta_gap=args.delta_gap,
        default_lessons=args.default_lessons,
        requests_per_minute=args.requests_per_minute,
        batch_seconds=args.batch_seconds,
        host=args.host,
        port=args.port,
    )
    sock = fake._bind()
    print(fake.base_url, flush=True)
    # The plain Server here: standalone, Ctrl-C and SIGTERM should stop it.
    uvicorn.Server(fake._config()).run(sockets=[sock])


if __name__ == "__main__":
    main()
