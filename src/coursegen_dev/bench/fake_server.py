"""The fake Messages API in a process of its own, with gates and a record of every call."""

# Run by the bench as `python -m coursegen_dev.bench.fake_server --api-key K`. It prints
# `{"ready": base_url}`, then one JSON line per finished call (wall-clock start and end,
# kind, topic, lesson position). It reads JSON commands on stdin, one a line, and
# acknowledges each: `delays` sets the lesson and outline latency, `gate` holds the lesson
# calls of topics starting with a prefix (a stream once it has sent `message_start`, before
# its first text: the service starts a course's other lessons only once its first call
# has begun), `open` lets them through (at most one per
# `spacing` seconds, so that completions are spread evenly), `stream` shapes the lesson
# text and its deltas (see `StreamShape`) and can have the deltas of some topics' calls
# stamped, `begins` has it also print a line as each lesson call arrives (model, topic,
# position, wall clock; before any gate). It exits when stdin closes. Its own process
# keeps its CPU off the clients' event loop; the bench pins it beside them.

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import json
import random
import re
import sys
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from coursegen_dev.bench.fake_control import StreamShape
from coursegen_dev.fake_anthropic import (
    _ANSWER_KEY,
    _CALL_KEY,
    CLIENT_GONE,
    DEFAULT_BATCH_SECONDS,
    QUIZ_TOOL,
    USAGE_FIELDS,
    Call,
    FakeAnthropic,
    _Answer,
    _deltas,
    _forced_tool,
    _output_tokens,
    _pause,
    _sse,
)

INFO_KEY = "coursegen_dev.bench.call"
# The gate a lesson stream waits at once it has begun.
GATE_KEY = "coursegen_dev.bench.gate"
# A lesson call names its topic in its system prompt (the course block of the cached
# prefix, `Topic: ...`); older prompts had it in the user turn (`(topic: ...).`).
_LESSON_TOPIC = re.compile(r"\(topic: (.*)\)\.$", re.MULTILINE)
_LESSON_PLACE = re.compile(r"^Lesson (\d+) of \d+:", re.MULTILINE)
_TOPIC_LINE = re.compile(r"^Topic: (.*)$", re.MULTILINE)
# The one request that is not a Messages call but takes from the request bucket.
_BATCH_CREATE = "/v1/messages/batches"
_WORD_END = re.compile(r"\S(?=\s|$)")
# Prose for the lessons the bench shapes (any words do: only their lengths matter).
_WORDS = (
    "the", "a", "an", "of", "to", "in", "and", "or", "for", "with", "as", "by", "on", "from",
    "that", "this", "each", "every", "one", "two", "model", "lesson", "learner", "example",
    "function", "value", "list", "loop", "state", "result", "error", "test", "step", "idea",
    "simple", "small", "clear", "careful", "first", "next", "last", "change", "write", "read",
    "run", "check", "compare", "explain", "build", "keep", "return", "call", "case", "rule",
    "pattern", "reason", "before", "after", "while", "because",
)  # fmt: skip


class Gate:
    """Holds calls until opened, then lets them through at most one per `spacing` seconds."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._spacing = 0.0
        self._next = 0.0

    def open(self, spacing: float) -> None:
        self._spacing = spacing
        self._next = time.monotonic()
        self._open.set()

    async def through(self) -> None:
        await self._open.wait()
        now = time.monotonic()
        slot = max(self._next, now)
        self._next = slot + self._spacing
        if slot > now:
            await asyncio.sleep(slot - now)


class BenchFake(FakeAnthropic):
    """The test fake, plus gates, shaped lesson streams and a line for every call it ends."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gates: dict[str, Gate] = {}
        self.shape: StreamShape | None = None
        self._texts: dict[str, str] = {}
        # Whether to report each lesson call as it arrives (before any gate), not only its end.
        self.report_begins = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        info: dict[str, Any] = {}
        scope[INFO_KEY] = info

        async def timed(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start":
                info["status"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                info["end"] = time.time()

        await super().__call__(scope, receive, timed)
        if "kind" in info:
            info.setdefault("end", time.time())
            _emit({"call": info})

    async def _messages(self, request: Request) -> Response:
        info: dict[str, Any] = request.scope[INFO_KEY]
        try:
            body = await request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            info.update(_describe(body))
            info["model"] = str(body.get("model", ""))
            if self.report_begins and info["kind"] == "lesson":
                _emit({"began": {**info, "at": time.time()}})
            gate = self._gate_for(info)
            if gate is not None and body.get("stream") is True:
                # Held in the stream once it has begun (see _scheduled); a stream a fault
                # cuts short, or a call refused (429, 400), is not held.
                request.scope[GATE_KEY] = gate
            elif gate is not None and not await _through_or_gone(request, gate):
                return Response(status_code=CLIENT_GONE)
            info["start"] = time.time()
        return await super()._messages(request)

    def _gate_for(self, info: dict[str, Any]) -> Gate | None:
        if info.get("kind") != "lesson":
            return None
        topic = str(info.get("topic", ""))
        return next((g for prefix, g in self.gates.items() if topic.startswith(prefix)), None)

    def command(self, op: dict[str, Any]) -> dict[str, Any]:
        """Apply one command from the bench; the answer goes back with its acknowledgement."""
        kind = op.get("op")
        if kind == "delays":
            self.lesson_delay = float(op.get("lesson", self.lesson_delay))
            self.outline_delay = float(op.get("outline", self.outline_delay))
        elif kind == "gate":
            self.gates[str(op["prefix"])] = Gate()
        elif kind == "open":
            self.gates[str(op["prefix"])].open(float(op.get("spacing", 0.0)))
        elif kind == "stream":
            shape = op.get("shape")
            self.shape = StreamShape(**shape) if shape else None
            self.lesson_text = self._shaped_text if self.shape else None
            self._texts.clear()
        elif kind == "begins":
            self.report_begins = bool(op.get("on", True))
        elif kind == "limits":
            rpm = op.get("requests_per_minute")
            self.requests_per_minute = None if rpm is None else int(rpm)  # a full bucket
            self.batch_seconds = float(op.get("batch_seconds", DEFAULT_BATCH_SECONDS))
        elif kind == "clear_cache":
            self.clear_cache()
        elif kind == "ledger":
            since = op.get("since")
            return self._ledger(None if since is None else int(since))
        elif kind != "ping":
            raise ValueError(f"unknown command {kind!r}")
        return {}

    def _ledger(self, since: int | None) -> dict[str, Any]:
        """The model calls since index `since` of the call record, each with the usage the
        fake reported for it (its last figures: a stream's final ones once it has ended),
        and the 429s; without `since`, only the index to pass next time."""
        answer: dict[str, Any] = {"next": len(self.calls)}
        if since is None:
            return answer
        calls = self.calls[since:]
        answer["calls"] = [_ledger_entry(c) for c in calls if c.kind != "other"]
        answer["requests"] = sum(1 for c in calls if _limited(c))
        answer["rate_limited"] = sum(1 for c in calls if c.status == 429)
        return answer

    def _shaped_text(self, title: str) -> str:
        assert self.shape is not None
        text = self._texts.get(title)
        if text is None:
            text = self._texts[title] = lesson_text(title, self.shape.chars)
        return text

    def _stream(
        self,
        request: Request,
        model: str,
        text: str,
        stop_reason: str,
        input_tokens: int,
        stream_error: str | None,
    ) -> AsyncIterator[bytes]:
        if stream_error is not None or stop_reason == "refusal":
            return super()._stream(request, model, text, stop_reason, input_tokens, stream_error)
        shape = self.shape
        if shape is None:
            # The test fake's deltas and pacing, kept to a schedule (see _scheduled).
            pieces = _deltas(text)
            dues = list(
                itertools.accumulate(self._delta_wait(i, len(pieces)) for i in range(len(pieces)))
            )
            stamp = False
        else:
            pieces = shaped_deltas(text, shape.delta_chars)
            dues = [shape.first_token + i * shape.gap for i in range(len(pieces))]
            topic = str(request.scope[INFO_KEY].get("topic", ""))
            stamp = bool(shape.stamp) and topic.startswith(shape.stamp)
        return self._scheduled(request, model, text, stop_reason, input_tokens, pieces, dues, stamp)

    async def _scheduled(
        self,
        request: Request,
        model: str,
        text: str,
        stop_reason: str,
        input_tokens: int,
        pieces: list[str],
        dues: list[float],
        stamp: bool,
    ) -> AsyncIterator[bytes]:
        """The test fake's events, delta i sent `dues[i]` seconds after the stream began.

        A schedule rather than a sleep before each delta, so that timer lateness (about a
        millisecond a sleep) does not add up: a lesson takes the time it was asked to.
        With `stamp`, the wall clock just after each delta was handed to the socket is
        recorded with the delta's end offset in the answer's text.
        """
        call: Call = request.scope[_CALL_KEY]
        stamps: list[tuple[int, float]] = []
        # The call's input and cache figures, as the test fake's own stream reports them.
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
        # A gated call is held here: begun (billed, its cache entry written), no text yet.
        gate: Gate | None = request.scope.get(GATE_KEY)
        if gate is not None:
            if not await _through_or_gone(request, gate):
                call.aborted = True
                return
            request.scope[INFO_KEY]["start"] = time.time()
        began = time.monotonic()
        end = 0
        for piece, due in zip(pieces, dues, strict=True):
            wait = began + due - time.monotonic()
            if wait <= 0:
                await asyncio.sleep(0)
            elif not await _pause(request, wait):
                call.aborted = True
                return
            delta = {"type": "text_delta", "text": piece}
            yield _sse(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )
            # Resumed once the server has written the event to the socket.
            end += len(piece)
            if stamp:
                stamps.append((end, time.time()))
            call.sent_text += piece
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
        stop = {"stop_reason": stop_reason, "stop_sequence": None}
        # As the real API (and the test fake): the input and cache figures again, cumulative.
        final = {**start["usage"], "output_tokens": _output_tokens(text)}
        yield _sse("message_delta", {"type": "message_delta", "delta": stop, "usage": final})
        call.stop_reason = stop_reason
        call.usage = final
        if stamp:
            request.scope[INFO_KEY]["deltas"] = stamps
        yield _sse("message_stop", {"type": "message_stop"})


def lesson_text(title: str, chars: int) -> str:
    """Markdown of about `chars` characters (headings, lists, prose), the same for a title."""
    rng = random.Random(zlib.crc32(title.encode()))

    def sentence(low: int, high: int) -> str:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(low, high))]
        return " ".join(words).capitalize()

    parts = [f"## {title}\n\n"]
    size = len(parts[0])
    while size < chars:
        roll = rng.random()
        if roll < 0.15:
            block = f"### {sentence(2, 5)}\n\n"
        elif roll < 0.35:
            block = "".join(f"- {sentence(4, 10)}.\n" for _ in range(rng.randint(2, 5))) + "\n"
        else:
            block = " ".join(f"{sentence(6, 18)}." for _ in range(rng.randint(2, 6))) + "\n\n"
        parts.append(block)
        size += len(block)
    return "".join(parts)[:chars].rstrip()


def shaped_deltas(text: str, mean: int) -> list[str]:
    """Pieces of `text` ending at word ends, each at least `mean` / 2 characters and about
    `mean` plus half a word on average; `mean` 0: the whole text in one piece."""
    if mean <= 0:
        return [text]
    ends = [m.end() for m in _WORD_END.finditer(text)]
    rng = random.Random(zlib.crc32(text.encode()))
    pieces: list[str] = []
    start = 0
    while start < len(text):
        want = start + rng.randint(max(1, mean // 2), max(1, mean * 3 // 2))
        at = bisect.bisect_left(ends, want)
        end = ends[at] if at < len(ends) else len(text)
        pieces.append(text[start:end])
        start = end
    return pieces


def _describe(body: dict[str, Any]) -> dict[str, Any]:
    messages = body.get("messages") or [{}]
    prompt = _text(messages[0].get("content", "")) if isinstance(messages[0], dict) else ""
    if body.get("tools") and _forced_tool(body) != QUIZ_TOOL:
        topic = _TOPIC_LINE.search(prompt)
        return {"kind": "outline", "topic": topic[1] if topic else ""}
    topic = _TOPIC_LINE.search(_text(body.get("system", ""))) or _LESSON_TOPIC.search(prompt)
    place = _LESSON_PLACE.search(prompt)
    return {
        "kind": "quiz" if body.get("tools") else "lesson",  # a quiz names its lesson too
        "topic": topic[1] if topic else "",
        "position": int(place[1]) if place else 0,
    }


def _text(content: object) -> str:
    """A system prompt's or message's text: a string, or its blocks' texts."""
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content)


def _ledger_entry(call: Call) -> dict[str, Any]:
    """One model call for the ledger: what it was, its status and the usage reported."""
    described = _describe(call.body) if isinstance(call.body, dict) else {"kind": call.kind}
    usage = call.usage or {}
    return {
        **described,
        "kind": call.kind,
        "title": call.title,
        "model": str(call.body.get("model", "")) if isinstance(call.body, dict) else "",
        "status": call.status,
        "batch": call.batch_id is not None,
        "aborted": call.aborted,
        "usage": {name: int(usage.get(name, 0)) for name in USAGE_FIELDS},
    }


def _limited(call: Call) -> bool:
    """Whether the request went through the request bucket (a Messages call or a batch
    creation; not a request inside a batch, nor a poll)."""
    if call.batch_id is not None:
        return False
    return call.kind != "other" or call.path == _BATCH_CREATE


async def _through_or_gone(request: Request, gate: Gate) -> bool:
    """Wait at the gate; False if the client hung up first."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    passing = asyncio.ensure_future(gate.through())
    leaving = asyncio.ensure_future(gone())
    done, pending = await asyncio.wait({passing, leaving}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return passing in done


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


async def serve(fake: BenchFake) -> None:
    """Serve until stdin closes, answering the bench's commands."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with fake:
        _emit({"ready": fake.base_url})
        while line := await reader.readline():
            op = json.loads(line)
            try:
                answer = {"ack": op.get("id"), **fake.command(op)}
            except (KeyError, ValueError) as exc:
                answer = {"ack": op.get("id"), "error": str(exc)}
            _emit(answer)


def main() -> None:
    parser = argparse.ArgumentParser(description="The bench's fake Messages API.")
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    asyncio.run(serve(BenchFake(api_key=args.api_key, default_lessons=5)))


if __name__ == "__main__":
    main()
