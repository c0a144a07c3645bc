"""The fake Messages API, exercised only through the real anthropic SDK."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import anthropic
import pytest
from anthropic import AsyncAnthropic
from anthropic.types import (
    MessageParam,
    RawMessageDeltaEvent,
    RawMessageStreamEvent,
    TextBlockParam,
)
from anthropic.types.messages import MessageBatch, batch_create_params

from coursegen_dev.fake_anthropic import FakeAnthropic, cache_minimum, prompt_tokens
from tests.conftest import API_KEY
from tests.helpers import until

MODEL = "claude-fake-model"
TOOL: anthropic.types.ToolParam = {
    "name": "record_outline",
    "description": "Record the course outline",
    "input_schema": {"type": "object", "properties": {"title": {"type": "string"}}},
}
# A lesson long enough for many deltas and several max_tokens cuts, with runs of white space
# and non-ASCII text.
LONG = (
    "## Streaming, for real\n\n"
    "A model writes its answer a token at a time, and the API sends each piece as soon as "
    "it exists. Some pieces are a single character; others hold a few short words.\n\n"
    "### Worked example\n\n"
    "```python\nfor event in stream:\n    print(event.delta.text, end='')\n```\n\n"
    "- A naïve client waits for the whole answer — a café owner would call that slow.\n"
    "- A careful one shows each piece as it arrives.\n\n"
    "### Exercise\n\n"
    "Cut an answer at the token limit, then ask for the rest by sending the partial text "
    "back as the start of the assistant's turn. Join the two and compare.\n\n"
    "### Summary\n\n"
    "Stream early, join carefully, and never trust a stop reason you did not check.\n"
)


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[AsyncAnthropic]:
    # Retries off by default so each test states the retries it relies on.
    async with AsyncAnthropic(
        api_key=API_KEY, base_url=fake.base_url, max_retries=0, timeout=5.0
    ) as sdk:
        yield sdk


async def outline(client: AsyncAnthropic, prompt: str) -> anthropic.types.Message:
    return await client.messages.create(
        model=MODEL,
        max_tokens=1000,
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "record_outline"},
        messages=[{"role": "user", "content": prompt}],
    )


async def stream_lesson(client: AsyncAnthropic, title: str, k: int = 1) -> str:
    prompt = f"Topic: Testing\nLesson {k} of 3: {title}\nWrite the lesson."
    async with client.messages.stream(
        model=MODEL, max_tokens=1000, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "end_turn"
    block = final.content[0]
    assert block.type == "text"
    return block.text


def tool_input(message: anthropic.types.Message) -> Any:
    block = message.content[0]
    assert block.type == "tool_use"
    return block.input


async def test_outline_is_a_forced_tool_call_with_the_requested_count(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    message = await outline(client, "Topic: Rust lifetimes\nLessons: exactly 3")
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "record_outline" and block.id.startswith("toolu_fake_")
    assert message.stop_reason == "tool_use" and message.model == MODEL
    titles = [lesson["title"] for lesson in tool_input(message)["lessons"]]
    assert len(titles) == len(set(titles)) == 3
    assert all("Rust lifetimes" in title for title in titles)
    [call] = fake.outline_calls()
    assert (call.title, call.status, call.body["tool_choice"]["name"]) == (
        "Rust lifetimes",
        200,
        "record_outline",
    )


async def test_outline_without_a_count_uses_default_lessons(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    assert len(tool_input(await outline(client, "Topic: Git"))["lessons"]) == 5
    fake.default_lessons = 2
    assert len(tool_input(await outline(client, "Topic: Git"))["lessons"]) == 2
    fake.outline = {"title": "Fixed", "lessons": []}
    assert tool_input(await outline(client, "Topic: Git")) == fake.outline


async def test_streamed_lesson_is_markdown_for_its_title(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    text = await stream_lesson(client, "Lesson 2: Testing in practice", k=2)
    assert text.startswith("# Lesson 2: Testing in practice\n")
    assert "\n- " in text
    [call] = fake.lesson_calls("Testing in practice")
    assert call.body["stream"] is True and call.status == 200 and not call.aborted


async def test_non_streaming_lesson_and_lesson_text_knob(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    message = await client.messages.create(
        model=MODEL,
        max_tokens=1000,
        messages=[{"role": "user", "content": "Lesson 1 of 1: Intro"}],
    )
    assert message.content[0].type == "text" and "# Intro" in message.content[0].text
    fake.lesson_text = lambda title: f"<script>alert('{title}')</script>"
    assert await stream_lesson(client, "Hostile") == "<script>alert('Hostile')</script>"


async def test_wrong_key_is_a_single_authentication_error(fake: FakeAnthropic) -> None:
    async with AsyncAnthropic(api_key="wrong", base_url=fake.base_url) as bad:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await stream_lesson(bad, "Intro")
    assert caught.value.type == "authentication_error"
    assert [c.status for c in fake.calls] == [401]
    # x-api-key is accepted as well as the SDK's Bearer header.
    headers = {"x-api-key": API_KEY}
    async with AsyncAnthropic(
        api_key="wrong", base_url=fake.base_url, default_headers=headers
    ) as ok:
        assert "# Intro" in await stream_lesson(ok, "Intro")


async def test_rate_limit_is_retried_then_raised(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.add_fault(status=429, times=None, headers={"retry-after-ms": "10"})
    with pytest.raises(anthropic.RateLimitError) as caught:
        await outline(client.with_options(max_retries=2), "Topic: Git")
    assert caught.value.request_id is not None and caught.value.request_id.startswith("req_fake_")
    assert [c.status for c in fake.calls] == [429, 429, 429]


async def test_overloaded_once_then_success(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fault = fake.add_fault(kind="lesson", status=529, headers={"retry-after-ms": "10"})
    assert "# Intro" in await stream_lesson(client.with_options(max_retries=2), "Intro")
    assert [c.status for c in fake.calls] == [529, 200]
    assert [c.headers["x-stainless-retry-count"] for c in fake.calls] == ["0", "1"]
    assert fault.spent and fault.hits == 1


async def test_stall_past_the_client_timeout(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.add_fault(kind="outline", delay=30.0)
    with pytest.raises(anthropic.APITimeoutError):
        await outline(client.with_options(timeout=0.2), "Topic: Git")
    # The fake notices the hang-up instead of sleeping on, so teardown stays fast.
    await until(lambda: fake.in_flight == 0)
    [call] = fake.calls
    assert call.aborted and call.ended is not None


async def test_mid_stream_error_is_not_retried(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.add_fault(kind="lesson", stream_error="overloaded_error")
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.with_options(max_retries=2).messages.stream(
            model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Lesson 1 of 1: X"}]
        ) as stream:
            async for text in stream.text_stream:
                received.append(text)
    assert caught.value.type == "overloaded_error" and caught.value.status_code == 200
    assert received and received[0].startswith("# X")
    assert len(fake.calls) == 1


async def test_malformed_outline_and_missing_tool_call(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.add_fault(kind="outline", outline={"title": 7, "lessons": "none"})
    fake.add_fault(kind="outline", no_tool_call=True)
    assert tool_input(await outline(client, "Topic: Git")) == {"title": 7, "lessons": "none"}
    message = await outline(client, "Topic: Git")
    assert [b.type for b in message.content] == ["text"] and message.stop_reason == "end_turn"
    assert len(tool_input(await outline(client, "Topic: Git"))["lessons"]) == 5


async def test_match_targets_one_lesson_only(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.add_fault(match="Lesson 2", status=500, times=None)
    await outline(client, "Topic: Git")
    assert "# Lesson 1: A" in await stream_lesson(client, "Lesson 1: A", k=1)
    with pytest.raises(anthropic.InternalServerError):
        await stream_lesson(client, "Lesson 2: B", k=2)
    assert "# Lesson 3: C" in await stream_lesson(client, "Lesson 3: C", k=3)
    assert [c.status for c in fake.calls] == [200, 200, 500, 200]


async def test_concurrent_lessons_are_counted(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.lesson_delay = 0.2
    await outline(client, "Topic: Git")
    texts = await asyncio.gather(*(stream_lesson(client, f"L{k}", k) for k in (1, 2, 3)))
    assert [t.splitlines()[0] for t in texts] == ["# L1", "# L2", "# L3"]
    assert fake.max_lessons_in_flight == 3 and fake.max_in_flight == 3
    assert fake.in_flight == fake.lessons_in_flight == 0
    fake.reset()
    assert (fake.calls, fake.faults, fake.max_in_flight, fake.max_lessons_in_flight) == (
        [],
        [],
        0,
        0,
    )


async def test_abandoned_stream_leaves_nothing_in_flight(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_delay = 0.8  # spread over eight chunks
    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Lesson 1 of 1: Slow"}]
    ) as stream:
        async for _ in stream.text_stream:
            fake.lesson_delay = 30.0  # the next chunk would take seconds
            break
    await until(lambda: fake.in_flight == 0)
    assert fake.lessons_in_flight == 0
    [call] = fake.lesson_calls()
    assert call.status == 200 and call.aborted


async def test_unknown_path_is_an_anthropic_404(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await client.models.retrieve("claude-x")
    assert caught.value.type == "not_found_error"
    [call] = fake.calls
    assert (call.kind, call.status, call.path) == ("other", 404, "/v1/models/claude-x")


def lesson_messages(title: str, prefill: str | None = None) -> list[MessageParam]:
    prompt = f"Topic: Testing\nLesson 1 of 1: {title}\nWrite the lesson."
    messages: list[MessageParam] = [{"role": "user", "content": prompt}]
    if prefill is not None:
        messages.append({"role": "assistant", "content": prefill})
    return messages


Timed = list[tuple[float, RawMessageStreamEvent]]


async def raw_events(
    client: AsyncAnthropic, messages: list[MessageParam], max_tokens: int = 1000
) -> Timed:
    """Every event of a raw stream (`create(stream=True)`), with when it arrived."""
    stream = await client.messages.create(
        model=MODEL, max_tokens=max_tokens, messages=messages, stream=True
    )
    async with stream:
        return [(time.monotonic(), event) async for event in stream]


def text_deltas(events: Timed) -> list[str]:
    return [
        e.delta.text
        for _, e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]


def delta_times(events: Timed) -> list[float]:
    return [t for t, e in events if e.type == "content_block_delta"]


def message_delta(events: Timed) -> RawMessageDeltaEvent:
    [delta] = [e for _, e in events if e.type == "message_delta"]
    return delta


async def test_stream_sends_many_varied_deltas_that_join_to_the_text(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    events = await raw_events(client, lesson_messages("Varied"))
    types = [e.type for _, e in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = text_deltas(events)
    assert "".join(deltas) == LONG
    sizes = [len(d) for d in deltas]
    assert len(deltas) >= len(LONG) / 12
    assert max(sizes) <= 24 and min(sizes) <= 3 and len(set(sizes)) >= 8
    # Most pieces end where a word ends, so the next one starts with white space.
    word_ends = sum(1 for d in deltas[1:] if d[0].isspace())
    assert word_ends >= len(deltas) / 2
    # The split is deterministic: the same text streams the same way every time.
    assert text_deltas(await raw_events(client, lesson_messages("Varied"))) == deltas
    calls = fake.lesson_calls("Varied")
    assert [(c.sent_text, c.stop_reason, c.prefill) for c in calls] == [
        (LONG, "end_turn", None)
    ] * 2
    # A short default lesson is streamed in many small pieces too.
    fake.lesson_text = None
    async with client.messages.stream(
        model=MODEL, max_tokens=1000, messages=lesson_messages("Short")
    ) as stream:
        pieces = [text async for text in stream.text_stream]
    assert "".join(pieces).startswith("# Short\n") and len(pieces) >= 20


async def test_stream_usage(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.lesson_text = lambda title: LONG
    events = await raw_events(client, lesson_messages("Usage"))
    start = events[0][1]
    assert start.type == "message_start"
    usage = start.message.usage
    assert usage.input_tokens > 10 and usage.output_tokens == 1
    assert usage.cache_creation_input_tokens == 0 and usage.cache_read_input_tokens == 0
    assert message_delta(events).usage.output_tokens == math.ceil(len(LONG) / 4)
    async with client.messages.stream(
        model=MODEL, max_tokens=1000, messages=lesson_messages("Usage")
    ) as stream:
        final = await stream.get_final_message()
    assert final.usage.input_tokens == usage.input_tokens
    assert final.usage.output_tokens == math.ceil(len(LONG) / 4)
    assert final.usage.cache_read_input_tokens == 0


async def test_first_token_delay_comes_between_message_start_and_the_first_delta(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.first_token_delay = 0.5
    fake.delta_gap = 0.0
    fake.lesson_delay = 30.0  # ignored: delta_gap is set
    began = time.monotonic()
    events = await raw_events(client, lesson_messages("Waiting"))
    started = next(t for t, e in events if e.type == "message_start")
    times = delta_times(events)
    assert times[0] - started >= 0.3  # the wait is after message_start, before any text
    assert times[-1] - began < 3.0  # lesson_delay (30 s) did not apply
    assert len(times) >= 20


async def test_delta_gap_spaces_the_deltas_and_is_read_per_delta(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_text = lambda title: "Short and sweet, in a handful of pieces."
    fake.delta_gap = 0.05
    began = time.monotonic()
    events = await raw_events(client, lesson_messages("Gapped"))
    times = delta_times(events)
    count = len(times)
    assert count >= 4
    assert times[-1] - began >= 0.9 * 0.05 * (count - 1)
    # Slowed down mid-stream: the deltas after the next one wait the new gap.
    fake.delta_gap = 0.01
    stream = await client.messages.create(
        model=MODEL, max_tokens=1000, messages=lesson_messages("Gapped"), stream=True
    )
    began = time.monotonic()
    async with stream:
        async for event in stream:
            if event.type == "content_block_delta":
                fake.delta_gap = 0.1
    assert time.monotonic() - began >= 0.9 * 0.1 * (count - 2)


async def test_lesson_delay_is_spread_over_the_deltas_after_the_first_token_delay(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.first_token_delay = 0.2
    fake.lesson_delay = 0.3
    began = time.monotonic()
    events = await raw_events(client, lesson_messages("Spread"))
    times = delta_times(events)
    assert times[0] - began >= 0.2
    assert times[-1] - began >= 0.45
    assert times[-1] - times[0] >= 0.1  # spread out, not all at the end


async def test_max_tokens_cuts_and_continuations_join_to_the_text(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    text, stops = "", list[str | None]()
    while not stops or stops[-1] == "max_tokens":
        # The API refuses a prefill that ends in white space, so it is stripped; the
        # continuation then starts with that white space.
        prefill = text.rstrip() if text else None
        events = await raw_events(client, lesson_messages("Cut", prefill), max_tokens=40)
        sent = "".join(text_deltas(events))
        assert len(sent) <= 40 * 4
        final = message_delta(events)
        assert final.usage.output_tokens == max(1, math.ceil(len(sent) / 4))
        stops.append(final.delta.stop_reason)
        text = (prefill or "") + sent
    assert text == LONG
    assert stops == ["max_tokens"] * (len(stops) - 1) + ["end_turn"]
    assert len(stops) >= math.ceil(len(LONG) / 160)
    calls = fake.lesson_calls("Cut")
    assert [c.stop_reason for c in calls] == stops
    assert calls[0].prefill is None and all(c.prefill for c in calls[1:])
    assert all(LONG.startswith((c.prefill or "") + c.sent_text) for c in calls)


async def test_non_streamed_cut_then_streamed_continuation_with_text_blocks(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    first = await client.messages.create(
        model=MODEL, max_tokens=30, messages=lesson_messages("Blocks")
    )
    assert first.content[0].type == "text"
    head = first.content[0].text
    assert head == LONG[:120] and first.stop_reason == "max_tokens"
    assert first.usage.output_tokens == 30
    prefill = head.rstrip()
    [user] = lesson_messages("Blocks")
    messages: list[MessageParam] = [
        user,
        {"role": "assistant", "content": [{"type": "text", "text": prefill}]},
    ]
    async with client.messages.stream(model=MODEL, max_tokens=1000, messages=messages) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "text"
    assert prefill + final.content[0].text == LONG and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == math.ceil((len(LONG) - len(prefill)) / 4)
    assert [c.prefill for c in fake.lesson_calls("Blocks")] == [None, prefill]


async def test_a_bad_prefill_is_an_invalid_request(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_text = lambda title: f"# {title}\n\nThe body of the lesson."
    fault = fake.add_fault(kind="lesson", status=529)
    bad = {
        "trailing white space": "# A\n\nThe ",
        "not a prefix": "# A\n\nThe end",
        "another lesson's text": "# B\n\nThe",
    }
    for reason, prefill in bad.items():
        with pytest.raises(anthropic.BadRequestError) as caught:
            await raw_events(client, lesson_messages("A", prefill))
        assert caught.value.type == "invalid_request_error", reason
    messages = [str(c.body["messages"][-1]["content"]) for c in fake.calls]
    assert messages == list(bad.values())
    assert [c.status for c in fake.calls] == [400, 400, 400]
    assert fault.hits == 0  # a refused request does not use up a fault


async def test_refusal_and_max_tokens_faults(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.lesson_text = lambda title: LONG
    refusal = fake.add_fault(stop_reason="refusal", cut=0.25, match="Risky")
    await outline(client, "Topic: Git")
    assert refusal.hits == 0  # an outline call does not use up a lesson's stop_reason fault
    async with client.messages.stream(
        model=MODEL, max_tokens=1000, messages=lesson_messages("Risky")
    ) as stream:
        final = await stream.get_final_message()
    assert final.content[0].type == "text"
    assert final.content[0].text == LONG[: int(len(LONG) * 0.25)]
    assert final.stop_reason == "refusal"
    assert final.stop_details is not None and final.stop_details.type == "refusal"
    # times=1: the next call is answered whole.
    events = await raw_events(client, lesson_messages("Risky"))
    assert "".join(text_deltas(events)) == LONG
    assert message_delta(events).delta.stop_reason == "end_turn"
    # A forced max_tokens stop, non-streamed, on a continuation: a fraction of the rest.
    fake.add_fault(kind="lesson", stop_reason="max_tokens", cut=0.5)
    message = await client.messages.create(
        model=MODEL, max_tokens=1000, messages=lesson_messages("Risky", LONG[:100])
    )
    rest = LONG[100:]
    assert message.content[0].type == "text"
    assert message.content[0].text == rest[: len(rest) // 2]
    assert message.stop_reason == "max_tokens"
    calls = fake.lesson_calls("Risky")
    assert [c.stop_reason for c in calls] == ["refusal", "end_turn", "max_tokens"]
    with pytest.raises(ValueError, match="stop_reason"):
        fake.add_fault(stop_reason="end_turn")
    with pytest.raises(ValueError, match="cut"):
        fake.add_fault(stop_reason="refusal", cut=1.5)


async def test_client_gone_mid_stream_marks_the_call_aborted(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    fake.delta_gap = 0.01
    received: list[str] = []
    stream = await client.messages.create(
        model=MODEL, max_tokens=1000, messages=lesson_messages("Gone"), stream=True
    )
    async with stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                received.append(event.delta.text)
                if len(received) == 3:
                    fake.delta_gap = 30.0  # the next delta would take half a minute
                    break
    # The fake stops sleeping when the client hangs up, well within wait_until's 2 s.
    await until(lambda: fake.in_flight == 0)
    [call] = fake.lesson_calls("Gone")
    assert call.aborted and call.status == 200 and call.stop_reason is None
    assert call.sent_text.startswith("".join(received)) and len(call.sent_text) < len(LONG)
    assert LONG.startswith(call.sent_text)


async def test_client_gone_before_the_first_token(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.first_token_delay = 30.0
    stream = await client.messages.create(
        model=MODEL, max_tokens=1000, messages=lesson_messages("Never"), stream=True
    )
    async with stream:
        async for event in stream:
            assert event.type in ("message_start", "content_block_start")
            if event.type == "content_block_start":
                break
    await until(lambda: fake.in_flight == 0)
    [call] = fake.lesson_calls("Never")
    assert call.aborted and call.sent_text == "" and call.stop_reason is None


# --- Usage, as the fake counts it: ceil(characters / 4) of the text a request carries. ---


def usage_of(usage: Any) -> dict[str, int]:
    """The four figures of an SDK usage object, as a plain dict like `Call.usage`."""
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
    }


def compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def test_usage_is_counted_from_the_text_of_the_request(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_text = lambda title: "x" * 38  # ceil(38 / 4) = 10 output tokens
    # A system string (400 characters) and a user string (20): 420 / 4 = 105 input tokens.
    message = await client.messages.create(
        model=MODEL,
        max_tokens=1000,
        system="abcd" * 100,
        messages=[{"role": "user", "content": "Lesson 1 of 1: Intro"}],
    )
    expected = {
        "input_tokens": 105,
        "output_tokens": 10,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert usage_of(message.usage) == expected
    [call] = fake.lesson_calls("Intro")
    assert call.usage == expected
    # Block lists count each block's text: 10 + 11 + 21 = 42 characters, 11 tokens.
    system: list[TextBlockParam] = [
        {"type": "text", "text": "a" * 10},
        {"type": "text", "text": "b" * 11},
    ]
    content: list[TextBlockParam] = [{"type": "text", "text": "Lesson 1 of 2: Blocks"}]
    messages: list[MessageParam] = [{"role": "user", "content": content}]
    stream = await client.messages.create(
        model=MODEL, max_tokens=1000, system=system, messages=messages, stream=True
    )
    async with stream:
        events = [event async for event in stream]
    start = events[0]
    assert start.type == "message_start"
    assert usage_of(start.message.usage) == {**expected, "input_tokens": 11, "output_tokens": 1}
    delta = next(e for e in events if e.type == "message_delta")
    # message_delta repeats the input and cache figures, cumulative like output_tokens.
    assert usage_of(delta.usage) == {**expected, "input_tokens": 11}
    [blocks] = fake.lesson_calls("Blocks")  # a block-list prompt is still a lesson call
    assert blocks.usage == {**expected, "input_tokens": 11}
    # An outline call counts its tools as compact JSON, and answers its tool input's JSON.
    answer = await outline(client, "Topic: Git")
    assert answer.usage.input_tokens == math.ceil((len(compact(TOOL)) + len("Topic: Git")) / 4)
    assert answer.usage.output_tokens == math.ceil(len(compact(tool_input(answer))) / 4)
    assert fake.outline_calls()[0].usage == usage_of(answer.usage)
    assert fake.reported_usage() == {
        "input_tokens": 105 + 11 + answer.usage.input_tokens,
        "output_tokens": 10 + 10 + answer.usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


async def test_prompt_tokens_documents_the_rule() -> None:
    tool = {**TOOL, "cache_control": {"type": "ephemeral"}}
    body = {
        "tools": [tool],
        "system": "s" * 7,
        "messages": [
            {"role": "user", "content": "u" * 9},
            {"role": "assistant", "content": [{"type": "tool_use", "input": {"a": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "content": "r" * 5}]},
        ],
    }
    tool_chars = len(compact(TOOL))  # the tool without its cache_control
    total = tool_chars + 7 + 9 + len('{"a":1}') + 5
    assert prompt_tokens(body) == (math.ceil(total / 4), math.ceil(tool_chars / 4))
    # A top-level cache_control puts the breakpoint on the last block of all.
    assert prompt_tokens({**body, "cache_control": {"type": "ephemeral"}}) == (
        math.ceil(total / 4),
        math.ceil(total / 4),
    )
    assert prompt_tokens({"messages": []}) == (0, 0)


async def test_usage_of_a_stream_the_client_left_is_its_start_usage(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.lesson_text = lambda title: LONG
    fake.delta_gap = 0.01
    stream = await client.messages.create(
        model=MODEL, max_tokens=1000, messages=lesson_messages("Left"), stream=True
    )
    async with stream:
        async for event in stream:
            if event.type == "content_block_delta":
                fake.delta_gap = 30.0
                break
    await until(lambda: fake.in_flight == 0)
    [call] = fake.lesson_calls("Left")
    assert call.aborted and call.usage is not None
    assert call.usage["output_tokens"] == 1 and call.usage["input_tokens"] > 10
    # A call refused before its answer began reported nothing.
    fake.add_fault(kind="lesson", status=500)
    with pytest.raises(anthropic.InternalServerError):
        await stream_lesson(client, "Refused")
    assert fake.lesson_calls("Refused")[0].usage is None


# --- Prompt caching ---

# Over 1,024 tokens together (the minimum for unknown models), and the same for every lesson.
GUIDELINES = "Write short, concrete lessons with one worked example each. " * 60
COURSE = "Course: Testing asynchronous Python services, for working engineers. " * 20
PREFIX = math.ceil((len(GUIDELINES) + len(COURSE)) / 4)
CC: dict[str, Any] = {"cache_control": {"type": "ephemeral"}}


def cached_lesson(k: int, ttl: str | None = None) -> dict[str, Any]:
    """A lesson request as the service sends it: the course block carries cache_control."""
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl is not None:
        control["ttl"] = ttl
    prompt = f"Lesson {k} of 3: Part {k}\nWrite the lesson."
    return {
        "model": MODEL,
        "max_tokens": 1000,
        "system": [
            {"type": "text", "text": GUIDELINES},
            {"type": "text", "text": COURSE, "cache_control": control},
        ],
        "messages": [{"role": "user", "content": prompt}],
    }


async def test_cache_write_then_read(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    assert PREFIX >= 1024
    first = await client.messages.create(**cached_lesson(1))
    assert first.usage.cache_creation_input_tokens == PREFIX
    assert first.usage.cache_read_input_tokens == 0
    assert fake.cache_entries == 1
    # Another lesson of the course, streamed: the same prefix is read, the rest is input.
    async with client.messages.stream(**cached_lesson(2)) as stream:
        final = await stream.get_final_message()
    total = prompt_tokens(cached_lesson(2))[0]
    assert usage_of(final.usage) == {
        "input_tokens": total - PREFIX,
        "output_tokens": final.usage.output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": PREFIX,
    }
    reads = [(c.usage or {}).get("cache_read_input_tokens") for c in fake.lesson_calls()]
    assert reads == [0, PREFIX]
    # The key is the model and the prefix: another model writes its own entry.
    other = await client.messages.create(**{**cached_lesson(3), "model": "claude-sonnet-4-6"})
    assert other.usage.cache_creation_input_tokens == PREFIX
    assert fake.cache_entries == 2
    fake.clear_cache()
    assert fake.cache_entries == 0


async def test_no_caching_below_the_model_minimum(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    short = {**cached_lesson(1), "system": [{"type": "text", "text": "Be brief.", **CC}]}
    for _ in range(2):
        message = await client.messages.create(**short)
        assert message.usage.cache_creation_input_tokens == 0
        assert message.usage.cache_read_input_tokens == 0
        assert message.usage.input_tokens == prompt_tokens(short)[0]
    assert fake.cache_entries == 0
    # About 2,200 tokens: enough for Opus 4.1 (1,024), not for Haiku 4.5 (4,096).
    big = {**cached_lesson(1), "system": [{"type": "text", "text": "word " * 1760, **CC}]}
    opus = await client.messages.create(**{**big, "model": "claude-opus-4-1-20250805"})
    haiku = await client.messages.create(**{**big, "model": "claude-haiku-4-5"})
    assert opus.usage.cache_creation_input_tokens == 2200
    assert haiku.usage.cache_creation_input_tokens == 0
    assert haiku.usage.input_tokens == prompt_tokens(big)[0]
    assert [cache_minimum(m) for m in ("claude-opus-4-5", "claude-3-5-haiku", "x")] == [
        4096,
        2048,
        1024,
    ]


async def test_cache_entries_expire_after_the_ttl(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.cache_ttl = 0.2
    await client.messages.create(**cached_lesson(1))
    read = await client.messages.create(**cached_lesson(2))
    assert read.usage.cache_read_input_tokens == PREFIX  # a read refreshes the expiry
    await asyncio.sleep(0.3)
    assert fake.cache_entries == 0
    again = await client.messages.create(**cached_lesson(3))
    assert again.usage.cache_creation_input_tokens == PREFIX
    # A one-hour breakpoint does not follow the five-minute knob.
    fake.cache_ttl = 0.0
    fake.clear_cache()
    await client.messages.create(**cached_lesson(1, ttl="1h"))
    hour = await client.messages.create(**cached_lesson(2, ttl="1h"))
    assert hour.usage.cache_read_input_tokens == PREFIX
    assert [(c.usage or {}).get("cache_creation_input_tokens") for c in fake.calls] == [
        PREFIX,
        0,
        PREFIX,
        PREFIX,
        0,
    ]


async def test_calls_started_together_all_write(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    # Answered after 0.3 s: the entry is readable only once an answer has begun.
    fake.lesson_delay = 0.3
    both = await asyncio.gather(*(client.messages.create(**cached_lesson(k)) for k in (1, 2)))
    assert [m.usage.cache_creation_input_tokens for m in both] == [PREFIX, PREFIX]
    assert [m.usage.cache_read_input_tokens for m in both] == [0, 0]
    assert fake.cache_entries == 1
    later = await client.messages.create(**cached_lesson(3))
    assert later.usage.cache_read_input_tokens == PREFIX


# --- Rate limits ---

RATE_HEADERS = [
    f"anthropic-ratelimit-{kind}-{what}"
    for kind in ("requests", "input-tokens", "output-tokens")
    for what in ("limit", "remaining", "reset")
]


async def test_rate_limit_headers_without_a_limit(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=lesson_messages("Headers")
    )
    assert all(name in raw.headers for name in RATE_HEADERS)
    assert int(raw.headers["anthropic-ratelimit-requests-limit"]) >= 1_000_000
    datetime.fromisoformat(raw.headers["anthropic-ratelimit-requests-reset"])
    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=lesson_messages("Headers")
    ) as stream:
        await stream.get_final_message()
    assert all(name in stream.response.headers for name in RATE_HEADERS)


async def test_an_empty_bucket_is_a_429_with_retry_after(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.requests_per_minute = 2
    remaining = []
    for _ in range(2):
        raw = await client.messages.with_raw_response.create(
            model=MODEL, max_tokens=100, messages=lesson_messages("Limited")
        )
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "2"
        remaining.append(raw.headers["anthropic-ratelimit-requests-remaining"])
    assert remaining == ["1", "0"]
    with pytest.raises(anthropic.RateLimitError) as caught:
        await stream_lesson(client, "Limited")
    headers = caught.value.response.headers
    assert caught.value.type == "rate_limit_error"
    assert 29 <= int(headers["retry-after"]) <= 30  # one request every 30 s
    assert all(name in headers for name in RATE_HEADERS)
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert [c.status for c in fake.calls] == [200, 200, 429]
    assert fake.lesson_calls()[-1].usage is None
    with pytest.raises(ValueError, match="requests_per_minute"):
        fake.requests_per_minute = 0


async def test_the_bucket_refills_and_the_sdk_recovers(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.requests_per_minute = 60  # 60 at once, then one a second
    await asyncio.gather(*(outline(client, "Topic: Git") for _ in range(60)))
    with pytest.raises(anthropic.RateLimitError) as caught:
        await outline(client, "Topic: Git")
    assert caught.value.response.headers["retry-after"] == "1"
    # The SDK waits the retry-after second; the refused request took nothing, so it passes.
    began = time.monotonic()
    await outline(client.with_options(max_retries=1), "Topic: Git")
    assert time.monotonic() - began >= 0.9
    assert [c.status for c in fake.calls[60:]] == [429, 429, 200]


# --- Message Batches ---


def batch_request(custom_id: str, params: dict[str, Any]) -> batch_create_params.Request:
    return {"custom_id": custom_id, "params": params}  # type: ignore[typeddict-item]


async def ended(client: AsyncAnthropic, batch_id: str) -> MessageBatch:
    """Poll a batch as a client would, for at most 3 s."""
    for _ in range(60):
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        await asyncio.sleep(0.05)
    raise AssertionError("the batch did not end within 3 s")


async def test_batch_create_retrieve_results(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.batch_seconds = 0.3
    fake.add_fault(match="Part 2", stop_reason="max_tokens", cut=0.5)
    fake.add_fault(match="Part 3", status=529)
    outline_params = {
        "model": MODEL,
        "max_tokens": 1000,
        "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": "record_outline"},
        "messages": [{"role": "user", "content": "Topic: Git\nLessons: 2"}],
    }
    requests = [batch_request(f"lesson-{k}", cached_lesson(k)) for k in (1, 2, 3)]
    requests.append(batch_request("outline", outline_params))
    created = await client.messages.batches.create(requests=requests)
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress" and created.results_url is None
    assert created.request_counts.processing == 4 and created.ended_at is None
    record = fake.batches[created.id]
    assert [c.batch_id for c in record.calls] == [created.id] * 4
    assert [c.kind for c in record.calls] == ["lesson", "lesson", "lesson", "outline"]
    assert all(c.path == "/v1/messages/batches" and c in fake.calls for c in record.calls)
    assert (await client.messages.batches.retrieve(created.id)).processing_status == ("in_progress")
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        await client.messages.batches.results(created.id)
    batch = await ended(client, created.id)
    assert batch.ended_at is not None and batch.results_url is not None
    assert batch.results_url.endswith(f"/v1/messages/batches/{created.id}/results")
    counts = batch.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (0, 3, 1)
    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    assert list(results) == ["lesson-1", "lesson-2", "lesson-3", "outline"]
    one, two, three, plan = results.values()
    assert one.type == "succeeded" and two.type == "succeeded" and plan.type == "succeeded"
    assert three.type == "errored" and three.error.error.type == "overloaded_error"
    text = one.message.content[0]
    assert text.type == "text" and text.text.startswith("# Part 1\n")
    assert one.message.stop_reason == "end_turn" and two.message.stop_reason == "max_tokens"
    assert len(tool_input(plan.message)["lessons"]) == 2
    # Answered one after the other: the first request writes the course prefix, the next reads.
    assert one.message.usage.cache_creation_input_tokens == PREFIX
    assert two.message.usage.cache_read_input_tokens == PREFIX
    assert one.message.usage.input_tokens == prompt_tokens(cached_lesson(1))[0] - PREFIX
    assert record.calls[0].usage == usage_of(one.message.usage)
    assert record.calls[1].usage == usage_of(two.message.usage)
    assert [c.status for c in record.calls] == [200, 200, 529, 200]
    assert record.result_types() == {
        "lesson-1": "succeeded",
        "lesson-2": "succeeded",
        "lesson-3": "errored",
        "outline": "succeeded",
    }


async def test_batch_cancel(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fake.batch_seconds = 30.0
    requests = [batch_request(f"l{k}", cached_lesson(k)) for k in (1, 2)]
    created = await client.messages.batches.create(requests=requests)
    canceling = await client.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert fake.batches[created.id].cancel_requested
    batch = await client.messages.batches.retrieve(created.id)
    assert batch.processing_status == "ended" and batch.request_counts.canceled == 2
    results = [r async for r in await client.messages.batches.results(created.id)]
    assert [(r.custom_id, r.result.type) for r in results] == [
        ("l1", "canceled"),
        ("l2", "canceled"),
    ]
    assert [c.status for c in fake.batches[created.id].calls] == [0, 0]
    assert fake.reported_usage()["cache_creation_input_tokens"] == 0
    # Cancelling an ended batch changes nothing.
    assert (await client.messages.batches.cancel(created.id)).processing_status == "ended"


async def test_batch_errors(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve("msgbatch_missing")
    twice = [batch_request("same", cached_lesson(1)), batch_request("same", cached_lesson(2))]
    with pytest.raises(anthropic.BadRequestError, match="twice"):
        await client.messages.batches.create(requests=twice)
    # Creating a batch takes a request from the bucket like a Messages call.
    fake.requests_per_minute = 1
    await client.messages.batches.create(requests=[batch_request("a", cached_lesson(1))])
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.batches.create(requests=[batch_request("b", cached_lesson(1))])


# --- Quizzes ---

QUIZ_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "questions": {
            "type": "array",
            "minItems": 3,
            "maxItems": 5,
            "items": {
                "type": "object",
                "properties": {
                    "question": {"type": "string"},
                    "choices": {
                        "type": "array",
                        "minItems": 2,
                        "maxItems": 6,
                        "items": {"type": "string"},
                    },
                    "answer": {"type": "integer", "minimum": 0},
                    "explanation": {"type": "string"},
                },
                "required": ["question", "choices", "answer", "explanation"],
            },
        }
    },
    "required": ["questions"],
}
QUIZ_TOOL: dict[str, Any] = {
    "name": "record_lesson_quiz",
    "description": "Record the lesson's quiz",
    "input_schema": QUIZ_SCHEMA,
}


def quiz_params(k: int, title: str, **extra: Any) -> dict[str, Any]:
    """A quiz request as the service sends it: a forced tool and the cached course prefix."""
    prompt = f"Lesson {k} of 3: {title}\n\n# {title}\n\nSome text.\n\nWrite a quiz on it."
    return {
        "model": MODEL,
        "max_tokens": 2000,
        "tools": [QUIZ_TOOL],
        "tool_choice": {"type": "tool", "name": "record_lesson_quiz"},
        "system": [
            {"type": "text", "text": GUIDELINES},
            {"type": "text", "text": COURSE, **CC},
        ],
        "messages": [{"role": "user", "content": prompt}],
        **extra,
    }


async def quiz(client: AsyncAnthropic, title: str, k: int = 1) -> anthropic.types.Message:
    return await client.messages.create(**quiz_params(k, title))


def assert_valid_quiz(value: Any) -> None:
    """What QUIZ_SCHEMA asks, plus an answer that indexes its choices."""
    assert isinstance(value, dict) and isinstance(value["questions"], list)
    assert 3 <= len(value["questions"]) <= 5
    for item in value["questions"]:
        assert set(item) == {"question", "choices", "answer", "explanation"}
        assert isinstance(item["question"], str) and isinstance(item["explanation"], str)
        choices = item["choices"]
        assert 2 <= len(choices) <= 6 and all(isinstance(c, str) for c in choices)
        assert type(item["answer"]) is int and 0 <= item["answer"] < len(choices)


async def test_quiz_call_is_classified_and_answered_with_a_valid_quiz(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    message = await quiz(client, "Pytest fixtures", k=2)
    block = message.content[0]
    assert block.type == "tool_use" and block.name == "record_lesson_quiz"
    assert message.stop_reason == "tool_use"
    answer = tool_input(message)
    assert_valid_quiz(answer)
    questions = answer["questions"]
    assert len(questions) == 4 and all(len(q["choices"]) == 4 for q in questions)
    assert sorted(q["answer"] for q in questions) == [0, 1, 2, 3]
    assert all("Pytest fixtures" in q["question"] for q in questions)
    # The same for the same title, another for another.
    assert tool_input(await quiz(client, "Pytest fixtures")) == answer
    assert tool_input(await quiz(client, "Mocking")) != answer
    assert [c.title for c in fake.quiz_calls()] == ["Pytest fixtures"] * 2 + ["Mocking"]
    assert [c.title for c in fake.quiz_calls("Mock")] == ["Mocking"]
    assert fake.lesson_calls() == fake.outline_calls() == []
    # Usage and caching as for any call: the first writes the course prefix, the next read it.
    prefix = math.ceil((len(compact(QUIZ_TOOL)) + len(GUIDELINES) + len(COURSE)) / 4)
    reads = [(c.usage or {}).get("cache_read_input_tokens") for c in fake.quiz_calls()]
    assert message.usage.cache_creation_input_tokens == prefix and reads == [0, prefix, prefix]
    assert message.usage.output_tokens == math.ceil(len(compact(answer)) / 4)


async def test_quiz_knob_and_quiz_faults(fake: FakeAnthropic, client: AsyncAnthropic) -> None:
    fixed = {"questions": [{"question": "Q?", "choices": ["a", "b"], "answer": 1}] * 3}
    fake.quiz = fixed
    bad = [
        {"questions": fixed["questions"][:2]},  # too few questions
        {"questions": [{**fixed["questions"][0], "answer": 9}] * 3},  # answer out of range
        {"questions": [{"question": "Q?", "choices": ["a", "b"]}] * 3},  # no answer
        {"questions": [{"question": "Q?", "choices": [1, 2], "answer": 0}] * 3},
        None,
    ]
    for value in bad:
        fake.add_fault(kind="quiz", quiz=value)
    fake.add_fault(kind="quiz", no_tool_call=True)
    for value in bad:
        assert tool_input(await quiz(client, "Intro")) == value
    prose = await quiz(client, "Intro")
    assert [b.type for b in prose.content] == ["text"] and prose.stop_reason == "end_turn"
    assert tool_input(await quiz(client, "Intro")) == fixed
    fake.quiz = None
    assert_valid_quiz(tool_input(await quiz(client, "Intro")))
    assert all(f.spent for f in fake.faults)


async def test_quiz_and_lesson_faults_do_not_cross(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    on_quizzes = fake.add_fault(kind="quiz", status=500, times=None)
    # A quiz fault with kind "any" still waits for a quiz call.
    carrying = fake.add_fault(quiz={"questions": []})
    assert "# Intro" in await stream_lesson(client, "Intro")
    await outline(client, "Topic: Git")
    with pytest.raises(anthropic.InternalServerError):
        await quiz(client, "Intro")
    assert (on_quizzes.hits, carrying.hits) == (1, 0)
    fake.faults.clear()
    on_lessons = fake.add_fault(kind="lesson", status=500, times=None)
    assert_valid_quiz(tool_input(await quiz(client, "Intro")))
    with pytest.raises(anthropic.InternalServerError):
        await stream_lesson(client, "Intro")
    assert on_lessons.hits == 1
    # `match` picks quiz calls by their lesson title, as it does lesson calls.
    fake.faults.clear()
    fake.add_fault(kind="quiz", match="Part 2", status=529, times=None)
    assert_valid_quiz(tool_input(await quiz(client, "Part 1", k=1)))
    with pytest.raises(anthropic.APIStatusError) as caught:
        await quiz(client, "Part 2", k=2)
    assert caught.value.status_code == 529
    assert "# Part 2" in await stream_lesson(client, "Part 2", k=2)


async def test_quizzes_in_flight_are_counted_apart_from_lessons(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.quiz_delay = fake.lesson_delay = 0.2
    await asyncio.gather(quiz(client, "A"), quiz(client, "B"), stream_lesson(client, "C"))
    assert (fake.max_quizzes_in_flight, fake.max_lessons_in_flight, fake.max_in_flight) == (2, 1, 3)
    assert fake.quizzes_in_flight == fake.lessons_in_flight == fake.in_flight == 0
    fake.reset()
    assert fake.max_quizzes_in_flight == 0


async def test_a_streamed_quiz_sends_its_input_as_json_deltas(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    expected = tool_input(await quiz(client, "Streams"))
    stream = await client.messages.create(**quiz_params(1, "Streams", stream=True))
    async with stream:
        events = [event async for event in stream]
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert len(deltas) > 1 and all(d.type == "input_json_delta" for d in deltas)
    joined = "".join(d.partial_json for d in deltas if d.type == "input_json_delta")
    assert json.loads(joined) == expected
    async with client.messages.stream(**quiz_params(1, "Streams")) as helper:
        final = await helper.get_final_message()
    assert final.stop_reason == "tool_use" and tool_input(final) == expected
    assert fake.quiz_calls()[-1].usage == usage_of(final.usage)


async def test_a_quiz_inside_a_batch_is_answered(
    fake: FakeAnthropic, client: AsyncAnthropic
) -> None:
    fake.batch_seconds = 0.0
    fake.add_fault(kind="quiz", match="Part 2", quiz={"questions": "none"})
    requests = [batch_request("lesson-1", cached_lesson(1))]
    requests += [batch_request(f"quiz-{k}", quiz_params(k, f"Part {k}")) for k in (1, 2)]
    created = await client.messages.batches.create(requests=requests)
    assert [c.kind for c in fake.batches[created.id].calls] == ["lesson", "quiz", "quiz"]
    await ended(client, created.id)
    lines = await client.messages.batches.results(created.id)
    results = {r.custom_id: r.result async for r in lines}
    good, bad = results["quiz-1"], results["quiz-2"]
    assert good.type == "succeeded" and bad.type == "succeeded"
    assert tool_input(good.message) == tool_input(await quiz(client, "Part 1"))
    assert tool_input(bad.message) == {"questions": "none"}
    assert [c.status for c in fake.quiz_calls()] == [200, 200, 200]
    assert fake.quiz_calls("Part 1")[0].usage == usage_of(good.message.usage)
