"""The bench's side of the fake Messages API process: start it, steer it, collect its calls."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
from dataclasses import asdict, dataclass
from typing import Any

from coursegen_dev.bench.procs import ProcStats, read_stats, spawned_on


@dataclass(frozen=True, slots=True)
class StreamShape:
    """How the fake streams lessons while it is set (else as the test fake does).

    A lesson is `chars` characters of Markdown (the same text for the same title), in
    deltas of about `delta_chars` + half a word each (0: the whole text in one delta);
    delta i is sent `first_token + i * gap` seconds after the stream begins. The calls
    of topics starting with `stamp` (if not empty) record when each delta was sent.
    """

    chars: int
    delta_chars: int
    first_token: float
    gap: float
    stamp: str = ""


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One call the fake finished: kind, topic, lesson position, wall-clock start and end.

    `deltas` (stamped calls only): (end offset in the answer's text, wall clock just after
    the delta was written to the socket) for each text delta, in order.
    """

    kind: str
    topic: str
    position: int
    start: float
    end: float
    status: int
    deltas: tuple[tuple[int, float], ...] = ()
    model: str = ""


@dataclass(frozen=True, slots=True)
class FakeBegin:
    """A lesson call as it reached the fake (with `begins` on): the model the service
    asked for (a node's name in the cluster scenarios), topic, position, wall clock."""

    model: str
    topic: str
    position: int
    at: float


@dataclass(frozen=True, slots=True)
class FakeUsage:
    """One model call as the fake's ledger has it: what it was and the usage it reported
    (`usage`: input_tokens, output_tokens, cache_creation_input_tokens,
    cache_read_input_tokens; a stream's final figures once it has ended; all 0 for a call
    refused before its answer began). `batch`: a request inside a Message Batch."""

    kind: str
    topic: str
    title: str
    position: int
    model: str
    status: int
    batch: bool
    aborted: bool
    usage: dict[str, int]


@dataclass(frozen=True, slots=True)
class Ledger:
    """The fake's accounting since a mark: the model calls, the requests that reached its
    request bucket (Messages calls and batch creations) and how many it refused (429)."""

    calls: list[FakeUsage]
    requests: int
    rate_limited: int


class FakeProcess:
    """The fake server in its own process (off the clients' event loop)."""

    def __init__(self, proc: asyncio.subprocess.Process, api_key: str) -> None:
        self._proc = proc
        self.api_key = api_key
        self.base_url = ""
        self.calls: list[FakeCall] = []
        self.begins: list[FakeBegin] = []
        self._acks: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = 0
        self._ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, cpus: set[int] | None) -> FakeProcess:
        api_key = f"sk-ant-bench-{secrets.token_hex(8)}"
        with spawned_on(cpus):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "coursegen_dev.bench.fake_server",
                "--api-key",
                api_key,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        fake = cls(proc, api_key)
        fake.base_url = await asyncio.wait_for(asyncio.shield(fake._ready), 20)
        return fake

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stats(self) -> ProcStats:
        return read_stats(self._proc.pid)

    async def command(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one command and wait for its acknowledgement."""
        assert self._proc.stdin is not None
        self._ids += 1
        future = self._acks[self._ids] = asyncio.get_running_loop().create_future()
        self._proc.stdin.write(json.dumps({"op": op, "id": self._ids, **fields}).encode() + b"\n")
        await self._proc.stdin.drain()
        answer: dict[str, Any] = await asyncio.wait_for(future, 10)
        if "error" in answer:
            raise RuntimeError(f"fake: {answer['error']}")
        return answer

    async def delays(self, *, lesson: float, outline: float) -> None:
        await self.command("delays", lesson=lesson, outline=outline)

    async def stream(self, shape: StreamShape | None) -> None:
        """Shape the lesson streams from now on; None: the test fake's own text and deltas."""
        await self.command("stream", shape=asdict(shape) if shape else None)

    async def gate(self, prefix: str) -> None:
        """Hold the lesson calls of every topic that starts with `prefix`."""
        await self.command("gate", prefix=prefix)

    async def open(self, prefix: str, spacing: float = 0.0) -> None:
        """Let the held calls through, at most one every `spacing` seconds from now on."""
        await self.command("open", prefix=prefix, spacing=spacing)

    async def report_begins(self, on: bool) -> None:
        """Record each lesson call as it arrives (in `begins`), not only as it ends."""
        await self.command("begins", on=on)

    async def limits(
        self, *, requests_per_minute: int | None, batch_seconds: float | None = None
    ) -> None:
        """Set the request rate limit (None: unlimited; a number starts a full bucket) and
        how long a Message Batch takes (None: the fake's default)."""
        fields: dict[str, Any] = {"requests_per_minute": requests_per_minute}
        if batch_seconds is not None:
            fields["batch_seconds"] = batch_seconds
        await self.command("limits", **fields)

    async def clear_cache(self) -> None:
        """Forget every prompt-cache entry, as if they had all expired."""
        await self.command("clear_cache")

    async def ledger_mark(self) -> int:
        """A position in the fake's own record of calls, for `ledger`."""
        answer = await self.command("ledger")
        return int(answer["next"])

    async def ledger(self, since: int) -> Ledger:
        """The model calls since `since` (a `ledger_mark`), with the usage each reported."""
        answer = await self.command("ledger", since=since)
        calls = [
            FakeUsage(
                str(c["kind"]),
                str(c.get("topic", "")),
                str(c.get("title", "")),
                int(c.get("position", 0)),
                str(c.get("model", "")),
                int(c["status"]),
                bool(c["batch"]),
                bool(c["aborted"]),
                {k: int(v) for k, v in c["usage"].items()},
            )
            for c in answer["calls"]
        ]
        return Ledger(calls, int(answer["requests"]), int(answer["rate_limited"]))

    def mark(self) -> int:
        """A position in the call record, for `calls_since`."""
        return len(self.calls)

    def calls_since(self, mark: int, kind: str | None = None) -> list[FakeCall]:
        return [c for c in self.calls[mark:] if kind is None or c.kind == kind]

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            record = json.loads(line)
            if "call" in record:
                c = record["call"]
                self.calls.append(
                    FakeCall(
                        c["kind"],
                        c.get("topic", ""),
                        c.get("position", 0),
                        c.get("start", c["end"]),
                        c["end"],
                        c.get("status", 0),
                        tuple((int(e), float(t)) for e, t in c.get("deltas", ())),
                        c.get("model", ""),
                    )
                )
            elif "began" in record:
                b = record["began"]
                self.begins.append(
                    FakeBegin(b.get("model", ""), b.get("topic", ""), b.get("position", 0), b["at"])
                )
            elif "ready" in record:
                self._ready.set_result(record["ready"])
            elif "ack" in record:
                future = self._acks.pop(record["ack"], None)
                if future is not None and not future.done():
                    future.set_result(record)
        if not self._ready.done():
            self._ready.set_exception(RuntimeError("the fake exited before it was ready"))

    async def stop(self) -> None:
        """Close its stdin (it exits), or kill it after a few seconds."""
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 5)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
