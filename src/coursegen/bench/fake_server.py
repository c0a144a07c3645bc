"""The fake Messages API in a process of its own, with gates and a record of every call."""

# Run by the bench as `python -m coursegen.bench.fake_server --api-key K`. It prints
# `{"ready": base_url}`, then one JSON line per finished call (wall-clock start and end,
# kind, topic, lesson position). It reads JSON commands on stdin, one a line, and
# acknowledges each: `delays` sets the lesson and outline latency, `gate` holds the lesson
# calls of topics starting with a prefix, `open` lets them through (at most one per
# `spacing` seconds, so that completions are spread evenly). It exits when stdin closes.
# Its own process keeps its CPU off the clients' event loop; the bench pins it beside them.

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from coursegen.fake_anthropic import CLIENT_GONE, FakeAnthropic

INFO_KEY = "coursegen.bench.call"
_LESSON_TOPIC = re.compile(r"\(topic: (.*)\)\.$", re.MULTILINE)
_LESSON_PLACE = re.compile(r"^Lesson (\d+) of \d+:", re.MULTILINE)
_OUTLINE_TOPIC = re.compile(r"^Topic: (.*)$", re.MULTILINE)


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
    """The test fake, plus gates and a line on stdout for every call it finishes."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gates: dict[str, Gate] = {}

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
        elif kind != "ping":
            raise ValueError(f"unknown command {kind!r}")
        return {}


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
