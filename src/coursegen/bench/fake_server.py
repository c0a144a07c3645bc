"""The fake Messages API in a process of its own, with gates and a record of every call."""

# Run by the bench as `python -m coursegen.bench.fake_server --api-key K`. It prints
# `{"ready": base_url}`, then one JSON line per finished call (wall-clock start and end,
# kind, topic, lesson position). It reads JSON commands on stdin, one a line, and
# acknowledges each: `delays` sets the lesson and outline latency, `gate` holds the lesson
# calls of topics starting with a prefix, `open` lets them through (at most one per
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

from coursegen.bench.fake_control import StreamShape
from coursegen.fake_anthropic import (
    _CALL_KEY,
    CLIENT_GONE,
    Call,
    FakeAnthropic,
    _deltas,
    _output_tokens,
    _pause,
    _sse,
)

INFO_KEY = "coursegen.bench.call"
_LESSON_TOPIC = re.compile(r"\(topic: (.*)\)\.$", re.MULTILINE)
_LESSON_PLACE = re.compile(r"^Lesson (\d+) of \d+:", re.MULTILINE)
_OUTLINE_TOPIC = re.compile(r"^Topic: (.*)$", re.MULTILINE)
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
            if gate is not None and not await _through_or_gone(request, gate):
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
        elif kind != "ping":
            raise ValueError(f"unknown command {kind!r}")
        return {}

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
        usage = {"input_tokens": input_tokens, "output_tokens": 1}
        yield _sse(
            "message_start",
            {"type": "message_start", "message": self._message(model, [], None, usage)},
        )
        yield _sse("ping", {"type": "ping"})
        block = {"type": "text", "text": ""}
        yield _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": block},
        )
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
        final = {"output_tokens": _output_tokens(text)}
        yield _sse("message_delta", {"type": "message_delta", "delta": stop, "usage": final})
        call.stop_reason = stop_reason
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
    prompt = str(messages[0].get("content", "")) if isinstance(messages[0], dict) else ""
    if body.get("tools"):
        topic = _OUTLINE_TOPIC.search(prompt)
        return {"kind": "outline", "topic": topic[1] if topic else ""}
    topic = _LESSON_TOPIC.search(prompt)
    place = _LESSON_PLACE.search(prompt)
    return {
        "kind": "lesson",
        "topic": topic[1] if topic else "",
        "position": int(place[1]) if place else 0,
    }


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
