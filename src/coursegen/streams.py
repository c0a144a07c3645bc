"""Server-Sent Events: every stream is read from the event log, in commit order."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette import EventSourceResponse
from starlette.requests import Request

from coursegen.errors import NotFound
from coursegen.events import TERMINAL_JOB_STATUSES, Event, encode_data
from coursegen.services import Services, services_of
from coursegen.store import EVENT_PAGE
from coursegen.validation import parse_cursor, parse_job_id

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
    first: Event | None = None
    if cursor is None:
        found = await services.store.job_snapshot(job_id)
        if found is None:
            raise NotFound("no such job")
        snapshot, cursor = found
        first = Event.from_row(
            cursor, job_id, snapshot["job"]["course_id"], "snapshot", encode_data(snapshot)
        )
        status = snapshot["job"]["status"]
    else:
        progress = await services.store.get_progress(job_id)
        if progress is None:
            raise NotFound("no such job")
        status = progress["status"]
    ended = status in TERMINAL_JOB_STATUSES
    return _response(services, follow(services, cursor, job_id, first, ended))


async def all_events(request: Request) -> EventSourceResponse:
    """Every job's events, for a page that watches many courses on one connection."""
    services = services_of(request)
    cursor = parse_cursor(request)
    if cursor is None:
        cursor = services.broker.last_id
    return _response(services, follow(services, cursor, None, None, False))


async def follow(
    services: Services, cursor: int, job_id: str | None, first: Event | None, ended: bool
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
            yield first.frame
        # Every event of interest with an id up to `position` has been sent.
        position = cursor
        while True:
            horizon = broker.last_id
            batch = broker.since(position, job_id)
            from_log = batch is None
            if batch is None:  # older than the broker's window: read the log
                batch = await store.events_after(position, job_id)
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
