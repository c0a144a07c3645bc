"""The fake Messages API, exercised only through the real anthropic SDK."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import anthropic
import pytest
from anthropic import AsyncAnthropic

from coursegen.fake_anthropic import FakeAnthropic

KEY = "sk-ant-test-key"
MODEL = "claude-fake-model"
TOOL: anthropic.types.ToolParam = {
    "name": "record_outline",
    "description": "Record the course outline",
    "input_schema": {"type": "object", "properties": {"title": {"type": "string"}}},
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(api_key=KEY) as server:
        yield server


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[AsyncAnthropic]:
    # Retries off by default so each test states the retries it relies on.
    async with AsyncAnthropic(
        api_key=KEY, base_url=fake.base_url, max_retries=0, timeout=5.0
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


async def wait_until(predicate: Callable[[], bool]) -> None:
    # The fake's counters are plain attributes with nothing to await, so poll, for at most 2 s.
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within 2 s")


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
    headers = {"x-api-key": KEY}
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
    await wait_until(lambda: fake.in_flight == 0)
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
    await wait_until(lambda: fake.in_flight == 0)
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
