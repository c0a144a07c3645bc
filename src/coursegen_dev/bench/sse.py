"""A lean SSE client: raw non-blocking sockets, chunked decoding, kernel arrival stamps."""

# Each socket asks the kernel to stamp received data (SO_TIMESTAMPNS, CLOCK_REALTIME), so
# a frame's arrival time is when its last byte reached this host's TCP stack, not when
# this process's event loop got round to reading it: a busy client cannot inflate the
# latency it measures.

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; Python does not export it
_CMSG_SPACE = socket.CMSG_SPACE(16)
_FRAME_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE event as received: arrival (wall clock, kernel stamp) and its raw lines."""

    arrival: float
    raw: bytes

    def parsed(self) -> tuple[int, str, Any]:
        """(id, event type, decoded JSON data)."""
        event_id, kind, data = 0, "message", b""
        for line in self.raw.split(b"\r\n"):
            if line.startswith(b"id: "):
                event_id = int(line[4:])
            elif line.startswith(b"event: "):
                kind = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        return event_id, kind, json.loads(data) if data else None


class SseStream:
    """One GET of an event stream; frames are kept with their arrival stamps."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        on_frame: Callable[[Frame], None] | None = None,
        *,
        keep: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.frames: list[Frame] = []  # with `keep` False, only `on_frame` sees them
        self._keep = keep
        self.pings = 0
        self.status = 0
        self.error: str | None = None
        self.stamped = False  # whether the kernel stamped the data (else time.time())
        self._on_frame = on_frame
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.opened: asyncio.Future[None] = loop.create_future()
        self.first: asyncio.Future[None] = loop.create_future()
        self.ended: asyncio.Future[None] = loop.create_future()
        self._sock: socket.socket | None = None
        self._raw = bytearray()
        self._text = bytearray()
        self._in_body = False
        self._chunk_left = -1  # -1: a chunk-size line is next; -2: the CRLF after a chunk

    async def connect(self) -> None:
        """Connect and send the request; frames then arrive in the background."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock = sock
        try:
            await self._loop.sock_connect(sock, (self.host, self.port))
            request = (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Accept: text/event-stream\r\nCache-Control: no-cache\r\n{self._headers}\r\n"
            )
            await self._loop.sock_sendall(sock, request.encode())
        except OSError as exc:
            self._finish(f"connect: {exc}")
            raise
        self._loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        """Hang up (a FIN, like a browser tab closing)."""
        self._finish(None)

    def events(self) -> list[tuple[float, int, str, Any]]:
        """(arrival, id, type, data) of every frame received."""
        return [(f.arrival, *f.parsed()) for f in self.frames]

    def _readable(self) -> None:
        assert self._sock is not None
        try:
            data, ancillary, _, _ = self._sock.recvmsg(65536, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._finish(f"recv: {exc}")
            return
        if not data:
            self._finish(None if self._in_body else "closed before answering")
            return
        arrival = 0.0
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                seconds, nanos = struct.unpack_from("qq", payload)
                arrival = seconds + nanos / 1e9
                self.stamped = True
        self._feed(data, arrival or time.time())

    def _feed(self, data: bytes, arrival: float) -> None:
        if self.ended.done():
            return
        raw = self._raw
        raw += data
        if not self._in_body:
            end = raw.find(_FRAME_END)
            if end < 0:
                return
            head = bytes(raw[:end]).decode("latin-1").split("\r\n")
            del raw[: end + 4]
            self.status = int(head[0].split()[1])
            self._in_body = True
            if not self.opened.done():
                self.opened.set_result(None)
            chunked = any(
                line.lower().startswith("transfer-encoding:") and "chunked" in line.lower()
                for line in head[1:]
            )
            if self.status != 200 or not chunked:
                self._finish(f"status {self.status}")
                return
        last = False
        while raw:
            if self._chunk_left == -1:
                line_end = raw.find(b"\r\n")
                if line_end < 0:
                    break
                size = int(bytes(raw[:line_end]).split(b";")[0], 16)
                del raw[: line_end + 2]
                if size == 0:
                    last = True
                    break
                self._chunk_left = size
            elif self._chunk_left == -2:
                if len(raw) < 2:
                    break
                del raw[:2]
                self._chunk_left = -1
            else:
                take = min(self._chunk_left, len(raw))
                self._text += raw[:take]
                del raw[:take]
                self._chunk_left -= take
                if self._chunk_left == 0:
                    self._chunk_left = -2
        # Frames completed by this read carry its stamp, the stream's last ones included.
        self._split_frames(arrival)
        if last:
            self._finish(None)

    def _split_frames(self, arrival: float) -> None:
        text = self._text
        while (end := text.find(_FRAME_END)) >= 0:
            raw = bytes(text[:end])
            del text[: end + 4]
            if raw.startswith(b":"):
                self.pings += 1
                continue
            frame = Frame(arrival, raw)
            if self._keep:
                self.frames.append(frame)
            if not self.first.done():
                self.first.set_result(None)
            if self._on_frame is not None:
                self._on_frame(frame)

    def _finish(self, error: str | None) -> None:
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if error and self.error is None:
            self.error = error
        for future in (self.opened, self.first, self.ended):
            if not future.done():
                future.set_result(None)


async def open_streams(
    host: str, port: int, path: str, count: int, *, parallel: int = 100, first: bool = True
) -> list[SseStream]:
    """Open `count` streams, `parallel` at a time; each is ready at its first frame (or head)."""
    streams: list[SseStream] = []
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate:
            stream = SseStream(host, port, path)
            streams.append(stream)
            await stream.connect()
            await asyncio.wait_for(stream.first if first else stream.opened, 60)

    await asyncio.gather(*(one() for _ in range(count)))
    failed = [s.error for s in streams if s.error]
    if failed:
        raise RuntimeError(f"{len(failed)} of {count} streams failed: {failed[0]}")
    return streams
