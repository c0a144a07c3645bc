"""The throttle: a FIFO concurrency limit that halves on 429s and climbs back (AIMD)."""

from __future__ import annotations

import asyncio

import pytest

from coursegen.throttle import DEFAULT_PAUSE, MAX_PAUSE, Throttle, Ticket


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(5):
        await asyncio.sleep(0)


def waiting(throttle: Throttle, count: int) -> list[asyncio.Task[Ticket]]:
    return [asyncio.create_task(throttle.acquire()) for _ in range(count)]


async def grants_in_order(tasks: list[asyncio.Task[Ticket]]) -> list[int]:
    await settle()
    return [k for k, task in enumerate(tasks) if task.done()]


async def test_no_more_slots_than_the_limit() -> None:
    throttle = Throttle(2)
    first, second = await throttle.acquire(), await throttle.acquire()
    third = asyncio.create_task(throttle.acquire())
    await settle()
    assert not third.done()
    assert throttle.in_use == 2
    throttle.release(first)
    ticket = await asyncio.wait_for(third, 1)
    assert throttle.in_use == 2
    throttle.release(second)
    throttle.release(ticket)
    throttle.release(ticket)  # a second release gives nothing back twice
    assert throttle.in_use == 0


async def test_waiters_are_served_in_order() -> None:
    throttle = Throttle(1)
    held = await throttle.acquire()
    order: list[int] = []

    async def take(k: int) -> None:
        ticket = await throttle.acquire()
        order.append(k)
        await asyncio.sleep(0)
        throttle.release(ticket)

    tasks = [asyncio.create_task(take(k)) for k in range(5)]
    await settle()
    # A newcomer finds the slot taken by the queue, not free to grab.
    late = asyncio.create_task(take(99))
    throttle.release(held)
    await asyncio.wait_for(asyncio.gather(*tasks, late), 1)
    assert order == [0, 1, 2, 3, 4, 99]


async def test_a_cancelled_waiter_takes_no_slot_and_blocks_no_one() -> None:
    throttle = Throttle(1)
    held = await throttle.acquire()
    first, second = waiting(throttle, 2)
    await settle()
    first.cancel()
    await settle()
    throttle.release(held)
    ticket = await asyncio.wait_for(second, 1)
    assert first.cancelled()
    throttle.release(ticket)
    assert throttle.in_use == 0


async def test_a_waiter_cancelled_as_its_slot_arrives_gives_it_back() -> None:
    throttle = Throttle(1)
    held = await throttle.acquire()
    first, second = waiting(throttle, 2)
    await settle()
    throttle.release(held)  # hands the slot to `first`, which has not run yet
    first.cancel()
    ticket = await asyncio.wait_for(second, 1)
    assert first.cancelled()
    assert throttle.in_use == 1
    throttle.release(ticket)
    assert throttle.in_use == 0


async def test_a_burst_of_429s_from_calls_in_flight_halves_once() -> None:
    throttle = Throttle(8, clock=FakeClock())
    tickets = [await throttle.acquire() for _ in range(8)]
    for ticket in tickets:
        throttle.rate_limited(ticket, retry_after=0)
    assert throttle.effective == 4
    for ticket in tickets:
        throttle.release(ticket)
    # A call sent under the new limit that is rate limited again is a new episode.
    again = await throttle.acquire()
    throttle.rate_limited(again, retry_after=0)
    assert throttle.effective == 2
    throttle.rate_limited(tickets[0], retry_after=0)
    assert throttle.effective == 2


async def test_never_below_one() -> None:
    throttle = Throttle(3, clock=FakeClock())
    for _ in range(4):
        ticket = await throttle.acquire()
        throttle.rate_limited(ticket, retry_after=0)
        throttle.release(ticket)
    assert throttle.effective == 1
    assert (await throttle.acquire()) is not None


async def test_an_unticketed_429_halves_unless_one_just_did() -> None:
    clock = FakeClock()
    throttle = Throttle(8, clock=clock)
    throttle.rate_limited(None, retry_after=0)
    assert throttle.effective == 4
    clock.advance(0.5)
    throttle.rate_limited(None, retry_after=0)
    assert throttle.effective == 4
    clock.advance(1.0)
    throttle.rate_limited(None, retry_after=0)
    assert throttle.effective == 2


async def test_lowering_the_limit_below_the_slots_held_cancels_nothing() -> None:
    throttle = Throttle(4, clock=FakeClock())
    tickets = [await throttle.acquire() for _ in range(4)]
    throttle.rate_limited(tickets[0], retry_after=0)
    assert (throttle.effective, throttle.in_use) == (2, 4)
    later = asyncio.create_task(throttle.acquire())
    throttle.release(tickets[0])
    throttle.release(tickets[1])
    await settle()
    assert not later.done()  # 2 held, 2 allowed
    throttle.release(tickets[2])
    throttle.release(await asyncio.wait_for(later, 1))
    throttle.release(tickets[3])


async def test_no_slot_is_handed_out_before_retry_after() -> None:
    loop = asyncio.get_running_loop()
    throttle = Throttle(2)
    ticket = await throttle.acquire()
    throttle.rate_limited(ticket, retry_after=0.4)
    pause_ends = throttle.paused_until
    throttle.release(ticket)
    granted_at: list[float] = []

    async def take() -> None:
        throttle.release(await throttle.acquire())
        granted_at.append(loop.time())

    # Free slots, no queue: the pause alone holds them back.
    waiters = [asyncio.create_task(take()) for _ in range(2)]
    await asyncio.sleep(0.1)
    assert not any(waiter.done() for waiter in waiters)
    await asyncio.wait_for(asyncio.gather(*waiters), 5)
    assert min(granted_at) >= pause_ends
    assert throttle.paused_until == 0.0


async def test_a_longer_retry_after_extends_the_pause_and_a_shorter_one_does_not() -> None:
    clock = FakeClock()
    throttle = Throttle(4, clock=clock)
    throttle.rate_limited(None, retry_after=30)
    throttle.rate_limited(None, retry_after=5)
    assert throttle.paused_until == clock.now + 30
    throttle.rate_limited(None, retry_after=45)
    assert throttle.paused_until == clock.now + 45


async def test_without_retry_after_the_pause_doubles_per_episode_until_a_success() -> None:
    clock = FakeClock()
    throttle = Throttle(4, clock=clock)

    async def rate_limited_anew() -> float:
        clock.advance(MAX_PAUSE + 1)  # past any pause, so acquire() does not wait
        ticket = await throttle.acquire()
        throttle.rate_limited(ticket, retry_after=None)
        throttle.release(ticket)
        return throttle.paused_until - clock.now

    assert [await rate_limited_anew() for _ in range(3)] == [1, 2, 4]
    # The rest of a burst sent before that decrease shares its pause, not doubling it.
    old = Ticket(0)
    throttle.rate_limited(old, retry_after=None)
    assert throttle.paused_until - clock.now == 4
    assert [await rate_limited_anew() for _ in range(5)] == [8, 16, 32, MAX_PAUSE, MAX_PAUSE]
    clock.advance(MAX_PAUSE + 1)
    ticket = await throttle.acquire()
    throttle.succeeded(ticket)
    throttle.release(ticket)
    assert await rate_limited_anew() == DEFAULT_PAUSE


async def finish(throttle: Throttle, count: int) -> None:
    """Run `count` calls through the throttle that all succeed."""
    for _ in range(count):
        ticket = await throttle.acquire()
        throttle.succeeded(ticket)
        throttle.release(ticket)


async def test_one_step_up_per_window_of_successes_never_above_the_limit() -> None:
    clock = FakeClock()
    throttle = Throttle(6, clock=clock)
    ticket = await throttle.acquire()
    throttle.rate_limited(ticket, retry_after=0)
    throttle.release(ticket)
    throttle.rate_limited(None, retry_after=0)  # within the grace: still 3
    clock.advance(2)
    throttle.rate_limited(None, retry_after=0)
    assert throttle.effective == 1
    steps = []
    for window in (1, 2, 3, 4, 5):
        await finish(throttle, window - 1)
        steps.append(throttle.effective)
        await finish(throttle, 1)
        steps.append(throttle.effective)
    assert steps == [1, 2, 2, 3, 3, 4, 4, 5, 5, 6]
    await finish(throttle, 50)
    assert throttle.effective == 6


async def test_a_429_restarts_the_window() -> None:
    throttle = Throttle(8, clock=FakeClock())
    ticket = await throttle.acquire()
    throttle.rate_limited(ticket, retry_after=0)
    throttle.release(ticket)
    assert throttle.effective == 4
    await finish(throttle, 3)
    throttle.rate_limited(ticket, retry_after=0)  # an old ticket: no halving, but no credit
    await finish(throttle, 3)
    assert throttle.effective == 4
    await finish(throttle, 1)
    assert throttle.effective == 5


async def test_successes_of_calls_sent_before_the_decrease_do_not_count() -> None:
    throttle = Throttle(4, clock=FakeClock())
    tickets = [await throttle.acquire() for _ in range(4)]
    throttle.rate_limited(tickets[0], retry_after=0)
    assert throttle.effective == 2
    for ticket in tickets[1:]:
        throttle.succeeded(ticket)
        throttle.release(ticket)
    throttle.release(tickets[0])
    assert throttle.effective == 2
    ticket = await throttle.acquire()
    throttle.succeeded(ticket)
    throttle.succeeded(ticket)  # one call, one success
    throttle.release(ticket)
    assert throttle.effective == 2
    await finish(throttle, 1)
    assert throttle.effective == 3


async def test_snapshot_for_health() -> None:
    clock = FakeClock()
    throttle = Throttle(4, clock=clock)
    assert throttle.snapshot() == {
        "effective_concurrency": 4,
        "limit": 4,
        "in_use": 0,
        "paused_for_seconds": 0,
    }
    ticket = await throttle.acquire()
    throttle.rate_limited(ticket, retry_after=12.5)
    clock.advance(2)
    assert throttle.snapshot() == {
        "effective_concurrency": 2,
        "limit": 4,
        "in_use": 1,
        "paused_for_seconds": 10.5,
    }
    clock.advance(11)
    assert throttle.snapshot()["paused_for_seconds"] == 0
    assert throttle.paused_until == 0.0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Throttle(0)


async def test_work_against_a_provider_that_allows_k_settles_at_k_and_all_completes() -> None:
    allowed, tasks, limit = 3, 80, 12
    throttle = Throttle(limit)
    running = 0
    rejected = 0
    done: list[int] = []
    # The throttle's limit at each start, once it has first come down to the provider's.
    after_settling: list[int] = []

    async def lesson(k: int) -> None:
        nonlocal running, rejected
        while True:  # a rate limit never fails the lesson: a later call writes it
            ticket = await throttle.acquire()
            try:
                if after_settling or throttle.effective <= allowed:
                    after_settling.append(throttle.effective)
                if running >= allowed:
                    rejected += 1
                    throttle.rate_limited(ticket, retry_after=0.01)
                    continue
                running += 1
                try:
                    await asyncio.sleep(0.005)
                finally:
                    running -= 1
                throttle.succeeded(ticket)
                done.append(k)
                return
            finally:
                throttle.release(ticket)

    await asyncio.wait_for(asyncio.gather(*(lesson(k) for k in range(tasks))), 20)
    assert sorted(done) == list(range(tasks))
    assert throttle.in_use == 0
    # Additive increase probes one above what the provider allows, then halves back.
    assert max(after_settling) <= allowed + 1
    assert throttle.effective <= allowed + 1
    # Most calls were let through: the throttle did not keep hammering the provider.
    assert rejected < tasks // 2
