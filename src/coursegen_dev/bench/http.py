"""A lean HTTP/1.1 keep-alive client on asyncio streams, for JSON calls and pollers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

# uvicorn closes a keep-alive connection after 5 idle seconds; reconnect before that.
IDLE_RECONNECT = 4.0


class HttpError(RuntimeError):
    """An answer with an unexpected status."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpClient:
    """One keep-alive connection; concurrent requests on it wait for each other."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used = 0.0
        self._lock = asyncio.Lock()

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        """Send a request (a JSON body if given) and read the whole answer."""
        payload = b"" if body is None else json.dumps(body).encode()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + payload
        async with self._lock:
            return await self._send(raw)

    async def _send(self, raw: bytes) -> Response:
        for attempt in range(2):
            fresh = await self._connect()
            try:
                return await self._exchange(raw)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if fresh or attempt:
                    raise
        raise AssertionError("unreachable")

    async def get_json(self, path: str) -> Any:
        answer = await self.request("GET", path)
        if answer.status != 200:
            raise HttpError(f"GET {path}: {answer.status} {answer.body[:200]!r}")
        return answer.json()

    async def post_json(
        self, path: str, body: Any, expect: int = 201, headers: dict[str, str] | None = None
    ) -> Any:
        answer = await self.request("POST", path, body, headers)
        if answer.status != expect:
            raise HttpError(f"POST {path}: {answer.status} {answer.body[:200]!r}")
        return answer.json()

    async def _connect(self) -> bool:
        if self._writer is not None and time.monotonic() - self._used > IDLE_RECONNECT:
            await self.close()
        if self._writer is not None:
            return False
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return True

    async def _exchange(self, raw: bytes) -> Response:
        assert self._reader is not None and self._writer is not None
        self._writer.write(raw)
        await self._writer.drain()
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = await self._read_chunked()
        else:
            body = b""
        self._used = time.monotonic()
        if headers.get("connection") == "close":
            await self.close()
        return Response(status, body)

    async def _read_chunked(self) -> bytes:
        assert self._reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self._reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
