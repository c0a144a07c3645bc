"""A concurrency limit that backs off when the model provider rate-limits (AIMD).

It stands where a semaphore would: `acquire()` hands out a `Ticket` (a slot) and
`release()` returns it. The runner also reports each call's outcome: a 429 halves
the effective concurrency for every job at once and pauses all starts until the
provider's `retry-after`; each window of successes raises it again by one, never
above the configured limit. The ticket remembers when it was issued, so the burst
of 429s that answers calls sent under the old limit halves it only once, as TCP
halves its window once per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections import deque
from collections.abc import Callable

# The pause after a 429 that names no `retry-after`; doubled for each further
# congestion episode with no success between, up to the cap.
DEFAULT_PAUSE = 1.0
MAX_PAUSE = 60.0
# A 429 reported without a ticket (e.g. seen by another node) cannot be placed before
# or after the last decrease; within this long of it, it is taken as the same episode.
UNTICKETED_GRACE = 1.0


class Ticket:
    """One slot, held from `Throttle.acquire()` until `Throttle.release()`."""

    __slots__ = ("_counted", "_epoch", "_released")

    def __init__(self, epoch: int) -> None:
        # The number of decreases before this ticket was issued: a call sent under
        # an older limit says nothing about the current one.
        self._epoch = epoch
        self._released = False
        self._counted = False

    def __repr__(self) -> str:
        state = "released" if self._released else "held"
        return f"<Ticket epoch={self._epoch} {state}>"


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class Throttle:
    """Bounds the calls in flight at `effective`, between 1 and `limit`, waiters FIFO."""

    def __init__(self, limit: int, *, clock: Callable[[], float] | None = None) -> None:
        if limit < 1:
            raise ValueError(f"a throttle's limit must be at least 1, not {limit}")
        self.limit = limit
        self._clock = clock or _loop_time
        self._effective = limit
        self._in_use = 0
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[Ticket]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        # Bumped by every decrease; tickets carry the value they were issued under.
        self._epoch = 0
        self._decreased_at: float | None = None
        self._window = 0  # current successes since the last change of `effective`
        self._backoff = 0.0  # the headerless pause of the current episode; 0: none yet

    @property
    def effective(self) -> int:
        return self._effective

    @property
    def in_use(self) -> int:
        return self._in_use

    @property
    def paused_until(self) -> float:
        until = self._paused_until
        return until if until > self._clock() else 0.0

    async def acquire(self) -> Ticket:
        """Wait for a free slot, in turn, outside any pause; the slot is the ticket's."""
        if self._can_start() and not any(not w.done() for w in self._waiters):
            return self._issue()
        waiter: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._wake()  # arms the timer that ends a pause, if one holds this waiter
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled after the ticket was handed over but before this task ran
            # again: the slot must go back, or it would leak.
            if waiter.done() and not waiter.cancelled():
                self.release(waiter.result())
            raise
        finally:
            with contextlib.suppress(ValueError):  # _wake() may have dropped it already
                self._waiters.remove(waiter)
            # A cancelled head of the queue must not hold back the ones behind it.
            self._wake()

    def release(self, ticket: Ticket) -> None:
        """Give the slot back; releasing a ticket twice is a no-op, so `finally` may."""
        if ticket._released:
            return
        ticket._released = True
        self._in_use -= 1
        self._wake()

    def succeeded(self, ticket: Ticket) -> None:
        """A call finished without a rate limit; a window of them raises the limit by one."""
        if ticket._counted or ticket._epoch != self._epoch:
            # Sent before the last decrease: it tells nothing about the lowered limit.
            return
        ticket._counted = True
        self._backoff = 0.0
        if self._effective >= self.limit:
            self._window = 0
            return
        self._window += 1
        if self._window >= self._effective:
            self._effective += 1
            self._window = 0
            self._wake()

    def rate_limited(self, ticket: Ticket | None, retry_after: float | None) -> None:
        """A call got a 429: halve once per episode and pause every start.

        `ticket` is the call's (it stays held until released), or None for a 429 seen
        elsewhere; `retry_after` is the provider's header in seconds, if it sent one.
        """
        now = self._clock()
        if ticket is None:
            new_episode = self._decreased_at is None or now - self._decreased_at >= UNTICKETED_GRACE
        else:
            new_episode = ticket._epoch == self._epoch
        self._window = 0
        if new_episode:
            self._epoch += 1
            self._decreased_at = now
            self._effective = max(1, self._effective // 2)
            self._backoff = DEFAULT_PAUSE if not self._backoff else self._backoff * 2
            self._backoff = min(MAX_PAUSE, self._backoff)
        if retry_after is not None and math.isfinite(retry_after):
            pause = max(0.0, retry_after)
        else:
            # The calls of one burst share the episode's pause rather than doubling it.
            pause = self._backoff or DEFAULT_PAUSE
        self._paused_until = max(self._paused_until, now + pause)
        self._wake()

    def snapshot(self) -> dict[str, int | float]:
        """The state for `/api/health`."""
        return {
            "effective_concurrency": self._effective,
            "limit": self.limit,
            "in_use": self._in_use,
            "paused_for_seconds": round(max(0.0, self._paused_until - self._clock()), 3),
        }

    # -- internals ------------------------------------------------------------------------

    def _can_start(self) -> bool:
        return self._in_use < self._effective and self._clock() >= self._paused_until

    def _issue(self) -> Ticket:
        self._in_use += 1
        return Ticket(self._epoch)

    def _wake(self) -> None:
        """Hand slots to waiters in order while allowed; arm a timer if a pause holds them."""
        while self._waiters:
            head = self._waiters[0]
            if head.done():  # cancelled: its acquire() is unwinding
                self._waiters.popleft()
                continue
            if not self._can_start():
                break
            self._waiters.popleft()
            # Handed over directly, so no later arrival can take the slot first.
            head.set_result(self._issue())
        if self._waiters and self._timer is None:
            delay = self._paused_until - self._clock()
            if delay > 0:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(delay, self._pause_ended)

    def _pause_ended(self) -> None:
        # If the pause was extended meanwhile, _wake() arms a new timer for the rest.
        self._timer = None
        self._wake()
