"""A fake Anthropic Messages API served over real HTTP on loopback, for tests and benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from typing import Any, Final, Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

CallKind = Literal["outline", "lesson", "other"]
FaultKind = Literal["outline", "lesson", "any"]

DEFAULT_API_KEY: Final = "sk-ant-fake-key"
# Nginx's "client closed request": recorded when the client hung up before any answer.
CLIENT_GONE: Final = 499
# A Fault's `outline` may legitimately be None (a malformed outline), so "unset" needs a sentinel.
UNSET: Final = object()
# The fake's token: output is counted (and `max_tokens` applied) at ~4 characters a token.
CHARS_PER_TOKEN: Final = 4
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
_CALL_KEY: Final = "coursegen.fake_anthropic.call"
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


@dataclass
class Fault:
    """One scripted misbehaviour, applied to the next `times` matching requests."""

    kind: FaultKind = "any"
    match: str | None = None  # lesson calls only: the lesson title must contain this
    times: int | None = 1  # None: forever
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    stream_error: str | None = None
    outline: object = UNSET
    no_tool_call: bool = False
    # Lesson calls only: end early with this stop reason ("max_tokens" or "refusal"), after
    # sending `cut` (a fraction) of the text the call would otherwise have sent.
    stop_reason: str | None = None
    cut: float = 0.5
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("outline", "lesson", "any"):
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
        return self.match is None or (call.kind == "lesson" and self.match in call.title)


@dataclass
class Call:
    """One request the fake received, and what it answered."""

    kind: CallKind
    title: str  # the lesson title or the outline topic
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
        first_token_delay: float = 0.0,
        delta_gap: float | None = None,
        default_lessons: int = 5,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        # A lesson stream waits `first_token_delay` before its first text delta, then
        # `delta_gap` before each next one; with `delta_gap` None, `lesson_delay` is spread
        # evenly over all the deltas instead. All three are read as the stream goes.
        self.lesson_delay = lesson_delay
        self.outline_delay = outline_delay
        self.first_token_delay = first_token_delay
        self.delta_gap = delta_gap
        self.default_lessons = default_lessons
        self.outline: dict[str, Any] | None = None
        self.lesson_text: Callable[[str], str] | None = None
        self.faults: list[Fault] = []
        self.calls: list[Call] = []
        self.in_flight = self.max_in_flight = 0
        self.lessons_in_flight = self.max_lessons_in_flight = 0
        self.host, self.port = host, port
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        self._app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/{path:path}", self._not_found, methods=methods),
            ]
        )

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

    def reset(self) -> None:
        """Forget calls and faults; the maxima restart from what is in flight now."""
        self.calls.clear()
        self.faults.clear()
        self.max_in_flight = self.in_flight
        self.max_lessons_in_flight = self.lessons_in_flight

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
        call.kind = kind  # set after counting so the decrement in __call__ always pairs up
        if self.api_key is not None and not _authorised(call.headers, self.api_key):
            return self._error(401)
        full = ""
        if call.kind == "lesson":
            # Checked before the faults, so that a bad request does not use one up.
            call.prefill = _prefill(body)
            full = self._lesson(call.title)
            problem = _request_problem(body, full, call.prefill)
            if problem is not None:
                return self._error(400, message=problem)
        fault = next((f for f in self.faults if f.matches(call)), None)
        if fault is not None:
            fault.hits += 1
            if not await _pause(request, fault.delay):
                return _gone(call)
            if fault.status is not None:
                return self._error(fault.status, fault.headers)
        headers = {"request-id": self._new_id("req_fake")}
        headers.update(fault.headers if fault else {})
        model = str(body.get("model", "claude-fake"))
        if call.kind == "outline":
            if not await _pause(request, self.outline_delay):
                return _gone(call)
            return JSONResponse(self._outline_message(body, call.title, model, fault), 200, headers)
        # A continuation goes on from where its prefill ends, and answers only the rest.
        text, stop_reason = _cut(full[len(call.prefill or "") :], body.get("max_tokens"), fault)
        input_tokens = _estimate_tokens(body)
        if body.get("stream"):
            stream_error = fault.stream_error if fault else None
            events = self._stream(request, model, text, stop_reason, input_tokens, stream_error)
            headers["cache-control"] = "no-cache"
            return StreamingResponse(events, 200, headers, media_type="text/event-stream")
        # Answered whole after as long as the same answer would take to stream.
        if not await _pause(request, self._stream_seconds(len(_deltas(text)))):
            return _gone(call)
        call.sent_text, call.stop_reason = text, stop_reason
        usage = {"input_tokens": input_tokens, "output_tokens": _output_tokens(text)}
        content = [{"type": "text", "text": text}]
        message = self._message(model, content, stop_reason, usage)
        return JSONResponse(message, 200, headers)

    def _lesson(self, title: str) -> str:
        """The whole text of a lesson; a continuation goes on with the same text."""
        return self.lesson_text(title) if self.lesson_text else _lesson_markdown(title)

    async def _not_found(self, request: Request) -> Response:
        return self._error(404)

    def _outline_message(
        self, body: dict[str, Any], topic: str, model: str, fault: Fault | None
    ) -> dict[str, Any]:
        usage = {"input_tokens": _estimate_tokens(body), "output_tokens": 200}
        if fault is not None and fault.no_tool_call:
            content = [{"type": "text", "text": f"Here is an outline for {topic}, in prose."}]
            return self._message(model, content, "end_turn", usage)
        if fault is not None and fault.outline is not UNSET:
            tool_input: object = fault.outline
        elif self.outline is not None:
            tool_input = self.outline
        else:
            found = _COUNT.search(_prompt(body))
            tool_input = _default_outline(topic, int(found[1]) if found else self.default_lessons)
        block = {
            "type": "tool_use",
            "id": self._new_id("toolu_fake"),
            "name": _forced_tool(body),
            "input": tool_input,
        }
        return self._message(model, [block], "tool_use", usage)

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
        start = self._message(model, [], None, {"input_tokens": input_tokens, "output_tokens": 1})
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
        final_usage = {"output_tokens": _output_tokens(text)}
        yield _sse("message_delta", {"type": "message_delta", "delta": stop, "usage": final_usage})
        call.stop_reason = stop_reason
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

    def _error(
        self, status: int, headers: dict[str, str] | None = None, message: str | None = None
    ) -> Response:
        request_id = self._new_id("req_fake")
        text = message or f"fake {status}"
        error = {"type": _ERROR_TYPES.get(status, "api_error"), "message": text}
        body = {"type": "error", "error": error, "request_id": request_id}
        return JSONResponse(body, status, {"request-id": request_id, **(headers or {})})

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
    """Outline calls carry tools; everything else on /v1/messages is a lesson."""
    prompt = _prompt(body)
    if body.get("tools"):
        topic = _TOPIC.search(prompt)
        return "outline", topic[1] if topic else "Untitled topic"
    lesson = _LESSON.search(prompt)
    return "lesson", lesson[1] if lesson else "Untitled lesson"


def _forced_tool(body: dict[str, Any]) -> str:
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


def _estimate_tokens(value: object) -> int:
    return max(1, len(json.dumps(value)) // CHARS_PER_TOKEN)


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
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="empty: accept any key")
    args = parser.parse_args(argv)
    fake = FakeAnthropic(
        api_key=args.api_key or None,
        lesson_delay=args.lesson_delay,
        outline_delay=args.outline_delay,
        first_token_delay=args.first_token_delay,
        delta_gap=args.delta_gap,
        default_lessons=args.default_lessons,
        host=args.host,
        port=args.port,
    )
    sock = fake._bind()
    print(fake.base_url, flush=True)
    # The plain Server here: standalone, Ctrl-C and SIGTERM should stop it.
    uvicorn.Server(fake._config()).run(sockets=[sock])


if __name__ == "__main__":
    main()
