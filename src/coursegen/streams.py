"""Server-Sent Events: every stream is read from the event log, in commit order."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request

from coursegen.api import lesson_json
from coursegen.domain import Lesson, LessonStatus
from coursegen.drafts import Reader
from coursegen.errors import NotFound
from coursegen.events import Frame, Subscription, encode_data
from coursegen.services import Services, services_of
from coursegen.store import EVENT_PAGE
from coursegen.validation import parse_cursor, parse_id, parse_job_id

SEND_TIMEOUT_SECONDS = 10
SHUTDOWN_GRACE_SECONDS = 1
PING = b": ping\r\n\r\n"  # a comment line: EventSource ignores it, proxies see traffic


def _response(services: Services, stream: AsyncIterator[bytes]) -> EventSourceResponse:
    # On shutdown sse-starlette sets `streams_closing`; the app then closes the broker,
    # every stream ends by itself and its response finishes cleanly within the grace.
    return EventSourceResponse(
        stream,
        ping=0,  # follow() sends its own
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"Cache-Control": "no-cache"},
        shutdown_event=services.streams_closing,
        shutdown_grace_period=SHUTDOWN_GRACE_SECONDS,
    )


async def job_events(request: Request) -> EventSourceResponse:
    """One job's events: a snapshot (or the missed events), then live ones, until it ends."""
    services = services_of(request)
    job_id = parse_job_id(request.path_params["job_id"])
    cursor = parse_cursor(request)
    first: bytes | None = None
    if cursor is None:
        snapshot = await services.store.job_snapshot(job_id)
        if snapshot is None:
            raise NotFound("no such job")
        cursor = snapshot.newest_event_id
        first = _frame("snapshot", snapshot.to_json(), id=cursor)
        status = snapshot.job.status
    else:
        progress = await services.store.get_progress(job_id)
        if progress is None:
            raise NotFound("no such job")
        status = progress.status
    return _response(services, follow(services, cursor, job_id, first, status.finished))


async def all_events(request: Request) -> EventSourceResponse:
    """Every job's events, for a page that watches many courses on one connection."""
    services = services_of(request)
    cursor = parse_cursor(request)
    if cursor is None:
        cursor = services.broker.last_id
    return _response(services, follow(services, cursor, None, None, False))


async def follow(
    services: Services, cursor: int, job_id: str | None, first: bytes | None, ended: bool
) -> AsyncIterator[bytes]:
    """Send every event after `cursor` exactly once, in order, then wait for more.

    `ended` is whether the job (if one is followed) is in a terminal status as far as
    the events sent so far tell; the stream closes once that is so and none are left.
    The stream sends its own pings, rather than sse-starlette's ping task: one task
    fewer for each of thousands of open streams.
    """
    broker, store = services.broker, services.store
    subscription = broker.subscribe(job_id, services.settings.ping_interval)
    try:
        if first is not None:
            yield first
        # Every event of interest with an id up to `position` has been sent.
        position = cursor
        while True:
            horizon = broker.last_id
            batch = broker.since(position, job_id)
            from_log = batch is None
            if batch is None:  # older than the broker's window: read the log
                batch = [Frame.of(e) for e in await store.events_after(position, job_id)]
            if batch:
                # One write for what one commit (or one page of the log) holds.
                yield batch[0].frame if len(batch) == 1 else b"".join(e.frame for e in batch)
                if job_id is not None:
                    for event in batch:
                        if event.type == "job":
                            ended = event.ends_job
            if from_log and len(batch) == EVENT_PAGE:
                position = batch[-1].id
                continue
            position = max(position, horizon, batch[-1].id if batch else 0)
            if from_log:
                continue  # the log was read at leisure: look at the window again
            if ended or broker.closed:
                return
            await subscription.wait()
            if subscription.ping_due:
                subscription.ping_due = False
                yield PING
    finally:
        subscription.close()


TERMINAL_LESSON_STATUSES = frozenset(s.value for s in LessonStatus if s.finished)
# A lesson the database calls `generating` before its draft appears here (the claim
# has committed, its call has not begun): read again this many times, then trust it.
_SNAPSHOT_READS = 5
# How often a stream reads the text of a lesson that another node writes, should its
# chunks not arrive: that node stores its text once a second.
REMOTE_POLL = 1.0


async def lesson_events(request: Request) -> EventSourceResponse:
    """One lesson as it is written: a snapshot, its text chunks and status, until it ends.

    Every connection starts with a fresh snapshot (a cursor is checked, not used): the
    snapshot's text plus the chunks after it are exactly the lesson's text.
    """
    services = services_of(request)
    lesson_id = parse_id(request.path_params["id"])
    parse_cursor(request)
    job_id = await services.store.lesson_job(lesson_id)
    if job_id is None:
        raise NotFound("no such lesson")
    subscription = services.broker.subscribe(job_id, services.settings.ping_interval)
    reader = services.drafts.watch(lesson_id, subscription.wake)
    try:
        position = services.broker.last_id  # the lesson's status events after this are sent
        snapshot = await _lesson_snapshot(services, reader)
        if snapshot is None:
            raise NotFound("no such lesson")
    except BaseException:
        services.drafts.unwatch(reader)
        subscription.close()
        raise
    stream = follow_lesson(services, subscription, reader, job_id, position, snapshot)
    return _response(services, stream)


async def _lesson_snapshot(services: Services, reader: Reader) -> dict[str, Any] | None:
    """The lesson now, its text taken from its draft where this process writes it.

    From the moment of the snapshot, the reader gets every later chunk of that draft.
    """
    lesson: Lesson | None = None
    for _ in range(_SNAPSHOT_READS):
        lesson = await services.store.get_lesson(reader.lesson_id)
        if lesson is None:
            return None
        draft = services.drafts.get(reader.lesson_id)
        if draft is not None and draft.attempt >= lesson.attempt:
            text = draft.attach(reader)
            lesson = dataclasses.replace(
                lesson,
                content=text,
                content_status=LessonStatus.GENERATING,
                content_error=None,
                attempt=draft.attempt,
            )
            break
        if lesson.content_status is not LessonStatus.GENERATING or services.store.shared:
            # Finished, or (on a shared database) written by another node: the stream
            # follows its text through the database.
            reader.start_over()
            break
        await asyncio.sleep(0.01)
    else:
        reader.start_over()
    assert lesson is not None
    return {"lesson": lesson_json(lesson), "attempt": lesson.attempt}


async def follow_lesson(
    services: Services,
    subscription: Subscription,
    reader: Reader,
    job_id: str,
    position: int,
    snapshot: dict[str, Any] | None,
) -> AsyncIterator[bytes]:
    """Send the snapshot, then chunks and the lesson's status events in order, until it ends."""
    broker, store = services.broker, services.store
    lesson_id = reader.lesson_id
    # Being written elsewhere (another node): its attempt and the text sent of it.
    remote: tuple[int, str] | None = None
    read_at = 0.0  # when the database was last read for it
    try:
        while True:
            if reader.restarted:  # a new attempt: start over from it
                # The status changes so far are in the snapshot: none of them after it.
                position = max(position, broker.last_id)
                snapshot = await _lesson_snapshot(services, reader)
                if snapshot is None:
                    return  # the lesson was deleted
            if snapshot is not None:
                yield _frame("snapshot", snapshot)
                lesson = snapshot["lesson"]
                status = lesson["content_status"]
                remote = None
                if status == LessonStatus.GENERATING and reader.draft is None:
                    remote = (snapshot["attempt"], lesson["content"] or "")
                    read_at = time.monotonic()
                    await store.want_text(lesson_id)
                snapshot = None
                if status in TERMINAL_LESSON_STATUSES:
                    return
            batch = broker.since(position, job_id)
            if batch is None:
                batch = [Frame.of(e) for e in await store.events_after(position, job_id)]
            # Chunks first: every chunk that precedes a status change in this batch was
            # handed over before that change committed, so before the batch was read.
            out = [reader.take()]
            if remote is not None:
                # Written on another node: its chunks come by NOTIFY; the database (where
                # its writer stores the text once a second, and the final text with the
                # status change that ends it) covers a lost one and the very end.
                remote, chunks, newer = _received(lesson_id, remote, reader.take_remote())
                out.extend(chunks)
                now = time.monotonic()
                if not newer and (now >= read_at + REMOTE_POLL or _ends(batch, lesson_id)):
                    read_at = now
                    grown = await _grown(services, lesson_id, remote)
                    if grown is None:
                        newer = True
                    else:
                        remote, chunk = grown
                        out.append(chunk)
                if newer:  # another attempt began: start over from it
                    if any(out):
                        yield b"".join(out)
                    reader.restarted = True
                    continue
            else:
                reader.take_remote()  # not following another node's writing: not ours
            ended = started_elsewhere = False
            for event in batch:
                position = event.id
                if event.type != "lesson":
                    continue
                data = json.loads(event.data)
                if data["lesson_id"] == lesson_id:
                    out.append(event.frame)
                    ended = data["content_status"] in TERMINAL_LESSON_STATUSES
                    started_elsewhere = (
                        data["content_status"] == LessonStatus.GENERATING
                        and reader.draft is None
                        and remote is None
                    )
            if any(out):
                yield b"".join(out)
            if ended or broker.closed:
                return
            if started_elsewhere:
                # Claimed by another node (here, its draft would have restarted us):
                # follow its text from a snapshot of the database.
                reader.restarted = True
            if len(batch) == EVENT_PAGE or reader.restarted:
                continue
            if remote is None:
                await subscription.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(REMOTE_POLL):
                        await subscription.wait()
            if subscription.ping_due:
                subscription.ping_due = False
                yield PING
    finally:
        services.drafts.unwatch(reader)
        subscription.close()


def _ends(batch: list[Frame], lesson_id: int) -> bool:
    """Whether the batch holds the status change that ends the lesson."""
    for event in batch:
        if event.type == "lesson":
            data = json.loads(event.data)
            if (
                data["lesson_id"] == lesson_id
                and data["content_status"] in TERMINAL_LESSON_STATUSES
            ):
                return True
    return False


def _received(
    lesson_id: int, remote: tuple[int, str], chunks: list[tuple[int, int, str]]
) -> tuple[tuple[int, str], list[bytes], bool]:
    """Chunks from the node writing the lesson: what follows on from the text sent (as
    frames), the new (attempt, text), and whether a newer attempt began there."""
    attempt, sent = remote
    frames: list[bytes] = []
    for chunk_attempt, offset, text in chunks:
        if chunk_attempt > attempt:
            return (attempt, sent), frames, True
        end = offset + len(text)
        if chunk_attempt < attempt or offset > len(sent) or end <= len(sent):
            continue  # older, ahead of a gap (the database fills it), or already sent
        new = text[len(sent) - offset :]
        data = {
            "lesson_id": lesson_id,
            "attempt": attempt,
            "offset": len(sent),
            "end": end,
            "text": new,
        }
        frames.append(_frame("text", data))
        sent += new
    return (attempt, sent), frames, False


async def _grown(
    services: Services, lesson_id: int, remote: tuple[int, str]
) -> tuple[tuple[int, str], bytes] | None:
    """What the database holds of a lesson written elsewhere beyond the text already sent:
    the new (attempt, text) and a chunk of the rest (b"" if none), or None if the text
    sent is no longer the start of its text (a new attempt began)."""
    attempt, sent = remote
    lesson = await services.store.get_lesson(lesson_id)
    if lesson is None or lesson.attempt != attempt:
        return None
    text = lesson.content or ""
    if not text.startswith(sent):
        return None
    if len(text) == len(sent):
        return remote, b""
    data = {
        "lesson_id": lesson_id,
        "attempt": attempt,
        "offset": len(sent),
        "end": len(text),
        "text": text[len(sent) :],
    }
    return (attempt, text), _frame("text", data)


def _frame(event: str, data: dict[str, Any], *, id: int | None = None) -> bytes:
    head = "" if id is None else f"id: {id}\r\n"
    return f"{head}event: {event}\r\ndata: {encode_data(data)}\r\n\r\n".encode()
