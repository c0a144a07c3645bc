"""A service's HTTP API and its job event stream, with errors a person can act on."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx2

# Usage errors: the exit status of bad input, whether argparse or the service found it.
EXIT_USAGE = 2
EXIT_FAILED = 1
# A stream sends a ping at least every 15 s: three missed ones mean the connection is dead.
STREAM_READ_TIMEOUT = 45.0
REQUEST_TIMEOUT = httpx2.Timeout(30.0, connect=5.0)
# Reconnects in a row (with a growing pause, about 30 s in all) before the client gives up.
RECONNECTS = 8


class ClientError(Exception):
    """Something the person should read on one line; `exit_code` is the command's status."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class NoEventStream(Exception):
    """The service (or a proxy before it) does not answer the job stream as SSE."""


@dataclass(frozen=True)
class Event:
    """One event of a job's stream: its id (the event log's), type and JSON data."""

    id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Download:
    filename: str
    body: bytes


class Remote:
    """The service at `base_url`; `token` goes in every request's Authorization header."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientError(
                f"--server takes a URL such as http://127.0.0.1:8000, got {base_url!r}",
                EXIT_USAGE,
            )
        # What messages show: a password in the URL stays out of them.
        self.base_url = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
        self.base_url = self.base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._has_token = bool(token)
        self._http = httpx2.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=REQUEST_TIMEOUT
        )

    async def __aenter__(self) -> Remote:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "/api/courses/generate", json=body)

    async def course(self, course_id: int) -> dict[str, Any]:
        return await self._json("GET", f"/api/courses/{course_id}")

    async def courses(
        self, *, limit: int | None = None, before: str | None = None, q: str | None = None
    ) -> dict[str, Any]:
        params = {"limit": limit, "before": before, "q": q}
        return await self._json(
            "GET", "/api/courses", params={k: v for k, v in params.items() if v is not None}
        )

    async def health(self) -> dict[str, Any]:
        return await self._json("GET", "/api/health")

    async def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Stop the job; None when it had already ended (the service answers 409)."""
        response = await self._send("POST", f"/api/jobs/{job_id}/cancel")
        if response.status_code == 409:
            return None
        return self._checked(response)

    async def export(self, course_id: int, format_name: str) -> Download:
        response = await self._send("GET", f"/api/courses/{course_id}/export/{format_name}")
        if response.status_code != 200:
            self._checked(response)
        return Download(
            _attachment_name(response.headers.get("content-disposition")), response.content
        )

    async def job_events(self, job_id: str, after: str | None) -> AsyncIterator[Event]:
        """The job's events after the event id `after` (a snapshot first when None), until
        the service closes the stream; a failed or broken connection raises
        httpx2.TransportError, for the caller to reconnect."""
        headers = {"Accept": "text/event-stream"}
        if after:
            headers["Last-Event-ID"] = after
        timeout = httpx2.Timeout(STREAM_READ_TIMEOUT, connect=5.0)
        async with self._http.stream(
            "GET", f"/api/jobs/{job_id}/events", headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
                self._checked(response)
            kind = response.headers.get("content-type", "").partition(";")[0].strip()
            if kind != "text/event-stream":
                raise NoEventStream(kind or "no content type")
            async for sse in httpx2.EventSource(response):
                data = json.loads(sse.data) if sse.data else {}
                yield Event(sse.id, sse.event, data if isinstance(data, dict) else {})

    async def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return self._checked(await self._send(method, path, **kwargs))

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx2.ConnectError as exc:
            raise self._unreachable(exc) from None
        except httpx2.TimeoutException:
            raise ClientError(f"the service at {self.base_url} did not answer in time") from None
        except httpx2.TransportError as exc:
            raise ClientError(f"the connection to {self.base_url} failed: {exc}") from None

    def _unreachable(self, exc: Exception) -> ClientError:
        return ClientError(
            f"cannot reach the service at {self.base_url} ({exc}); is `coursegen serve` "
            "running there? Without --server (and COURSEGEN_SERVER) the command runs "
            "on the local database instead"
        )

    def _checked(self, response: httpx2.Response) -> dict[str, Any]:
        if response.status_code == 401:
            if self._has_token:
                raise ClientError(
                    f"the service at {self.base_url} refused the token: check COURSEGEN_API_TOKEN"
                )
            raise ClientError(
                f"the service at {self.base_url} needs a token: set COURSEGEN_API_TOKEN"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        if response.is_success:
            raise ClientError(f"the service at {self.base_url} did not answer with JSON")
        message = body.get("error") if isinstance(body, dict) else None
        if not isinstance(message, str):
            message = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        # The input was wrong (a bad field, an unknown id), as an argparse error would say.
        usage = response.status_code in (400, 404)
        raise ClientError(message, EXIT_USAGE if usage else EXIT_FAILED)


_FILENAME = re.compile(r'filename="?([^";]+)"?')


def _attachment_name(disposition: str | None) -> str:
    """The download's file name, reduced to its last path part (it names a local file)."""
    found = _FILENAME.search(disposition or "")
    name = found.group(1).replace("\\", "/").rsplit("/", 1)[-1].strip() if found else ""
    return "" if name in ("", ".", "..") else name


async def pause(attempt: int) -> None:
    """Wait before reconnect number `attempt` (from 1): 0.25 s doubling up to 5 s."""
    await asyncio.sleep(min(0.25 * 2 ** (attempt - 1), 5.0))
