"""Providers: the Claude provider through the real SDK against the fake, and the demo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from coursegen.domain import DEFAULT_OPTIONS, CourseOutline, LessonPlan, ModelCall, Outline, Usage
from coursegen.errors import ProviderError
from coursegen.providers import Provider, make_provider
from coursegen.providers.anthropic_api import OUTLINE_TOOL, AnthropicProvider
from coursegen.providers.base import LessonTooLong, RateLimited, parse_outline
from coursegen.providers.demo import DemoProvider
from coursegen.settings import Settings, SettingsError
from coursegen_dev.fake_anthropic import FakeAnthropic
from tests.conftest import API_KEY
from tests.helpers import free_port

OUTLINE = Outline(
    "Sourdough", "Bread.", (LessonPlan("Starter", "Feed it."), LessonPlan("Bake", "Heat it."))
)


@pytest.fixture
def engine() -> str:
    """Providers talk to the model, not the database: one engine is enough."""
    return "sqlite"


async def write(
    provider: Provider,
    topic: str,
    outline: Outline,
    index: int,
    calls: list[ModelCall] | None = None,
) -> str:
    """A lesson's whole text, as its pieces arrive; each report of a call goes to `calls`."""
    pieces: list[str] = []
    reports: list[ModelCall] = [] if calls is None else calls
    await provider.write_lesson(brief(topic, outline), index, pieces.append, reports.append)
    return "".join(pieces)


def brief(topic: str, outline: Outline) -> CourseOutline:
    """What a provider is given of a course."""
    return CourseOutline(topic, outline, tuple(range(len(outline.lessons))))


def usage_json(usage: Usage) -> dict[str, int]:
    """A usage as the fake reports it (tokens, no price)."""
    return {k: v for k, v in usage.to_json().items() if k != "cost_usd"}


@pytest.fixture
async def claude(fake: FakeAnthropic, settings: Settings) -> AsyncIterator[AnthropicProvider]:
    provider = AnthropicProvider(
        settings.replace(max_retries=2), api_key=API_KEY, base_url=fake.base_url
    )
    yield provider
    await provider.aclose()


async def test_outline_is_a_forced_tool_call_with_a_schema(
    claude: AnthropicProvider, fake: FakeAnthropic
) -> None:
    outline = (await claude.generate_outline("Sourdough baking", 4, DEFAULT_OPTIONS)).outline
    assert len(outline.lessons) == 4
    body = fake.outline_calls()[0].body
    assert body["tool_choice"] == {"type": "tool", "name": OUTLINE_TOOL}
    schema = body["tools"][0]["input_schema"]
    assert schema["required"] == ["title", "description", "lessons"]
    assert schema["properties"]["lessons"]["items"]["required"] == ["title", "description"]
    assert "Topic: Sourdough baking" in body["messages"][0]["content"]
    assert "exactly 4" in body["messages"][0]["content"]


async def test_the_sdk_reads_key_and_base_url_from_the_environment(
    fake: FakeAnthropic, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.base_url)
    provider = make_provider(settings)
    try:
        assert provider.name == "anthropic"
        outline = (await provider.generate_outline("Knitting", 2, DEFAULT_OPTIONS)).outline
        text = await write(provider, "Knitting", outline, 1)
    finally:
        await provider.aclose()
    assert "Lesson 2" in text
    assert fake.calls[0].headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 401}, "the model provider rejected the API key (401); check ANTHROPIC_API_KEY"),
        ({"status": 403}, "the API key may not use model claude-test (403)"),
        ({"status": 404}, "does not know model claude-test (404); check COURSEGEN_MODEL"),
        (
            {"status": 500, "times": None, "headers": {"retry-after-ms": "1"}},
            "failed (500, 3 attempts)",
        ),
        (
            {"status": 529, "times": None, "headers": {"retry-after-ms": "1"}},
            "overloaded (529, 3 attempts)",
        ),
    ],
)
async def test_lesson_failures_read_as_actions(
    claude: AnthropicProvider, fake: FakeAnthropic, fault: dict[str, Any], expected: str
) -> None:
    fake.add_fault(kind="lesson", **fault)
    with pytest.raises(ProviderError) as caught:
        await write(claude, "Sourdough", OUTLINE, 0)
    assert expected in caught.value.message
    assert API_KEY not in caught.value.message


@pytest.mark.parametrize("headers", [{"retry-after": "7"}, {"retry-after-ms": "1500"}, {}])
async def test_a_429_is_not_retried_by_the_sdk_and_says_when_to_go_on(
    claude: AnthropicProvider, fake: FakeAnthropic, headers: dict[str, str]
) -> None:
    """The runner owns rate-limit back-off: the SDK's own retries would multiply it."""
    fake.add_fault(kind="lesson", status=429, times=None, headers=headers)
    with pytest.raises(RateLimited) as caught:
        await write(claude, "Sourdough", OUTLINE, 0)
    assert len(fake.lesson_calls()) == 1
    expected = {"retry-after": 7.0, "retry-after-ms": 1.5}
    assert caught.value.retry_after == next((expected[h] for h in headers), None)
    assert "rate limiting this API key (429)" in caught.value.message
    assert API_KEY not in caught.value.message
    # The rate-limit headers of the answer were read.
    assert "requests-remaining" in claude.rate_limits()


async def test_retries_follow_max_retries(claude: AnthropicProvider, fake: FakeAnthropic) -> None:
    fake.add_fault(kind="lesson", status=529, times=1, headers={"retry-after-ms": "1"})
    assert "Starter" in await write(claude, "Sourdough", OUTLINE, 0)
    assert len(fake.lesson_calls()) == 2
    fake.reset()
    fake.add_fault(kind="lesson", status=401, times=None)
    with pytest.raises(ProviderError):
        await write(claude, "Sourdough", OUTLINE, 0)
    assert len(fake.lesson_calls()) == 1  # a rejected key is not retried


async def test_unreachable_provider_says_where_it_tried(settings: Settings) -> None:
    provider = AnthropicProvider(
        settings.replace(max_retries=0), api_key=API_KEY, base_url=f"http://127.0.0.1:{free_port()}"
    )
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.generate_outline("Sourdough", 2, DEFAULT_OPTIONS)
    finally:
        await provider.aclose()
    assert "could not reach the model provider at 127.0.0.1" in caught.value.message


async def test_request_timeout_is_reported_in_seconds(
    fake: FakeAnthropic, settings: Settings
) -> None:
    provider = AnthropicProvider(
        settings.replace(lesson_timeout=0.3), api_key=API_KEY, base_url=fake.base_url
    )
    fake.add_fault(kind="outline", delay=3)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.generate_outline("Sourdough", 2, DEFAULT_OPTIONS)
    finally:
        await provider.aclose()
    assert caught.value.message.startswith("the model provider timed out after 0.3 s")


async def test_a_key_echoed_by_the_provider_is_redacted(
    claude: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.add_fault(kind="lesson", status=400)
    # A provider that echoes the key in its message (some proxies do).
    original = fake._error

    def echoing(status: int, headers: dict[str, str] | None = None) -> Any:
        response = original(status, headers)
        response.body = response.body.replace(b"fake 400", f"bad key {API_KEY}".encode())
        response.headers["content-length"] = str(len(response.body))
        return response

    fake._error = echoing  # type: ignore[method-assign]
    with pytest.raises(ProviderError) as caught:
        await write(claude, "Sourdough", OUTLINE, 0)
    assert "bad key [redacted]" in caught.value.message
    assert API_KEY not in caught.value.message


async def test_without_any_key_the_message_says_what_to_set(
    fake: FakeAnthropic, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    provider = AnthropicProvider(settings, base_url=fake.base_url)
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.generate_outline("Sourdough", 2, DEFAULT_OPTIONS)
    finally:
        await provider.aclose()
    assert "set ANTHROPIC_API_KEY" in caught.value.message


async def test_a_broken_credentials_profile_is_explained(
    fake: FakeAnthropic, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(settings.db_path.parent))  # no profile there
    with pytest.raises(SettingsError, match="the Anthropic credentials could not be loaded"):
        AnthropicProvider(settings, base_url=fake.base_url)


@pytest.mark.parametrize(
    ("data", "requested", "why"),
    [
        (None, None, "not an object"),
        ([], None, "not an object"),
        ({"title": "T", "description": "D"}, None, "no lessons"),
        ({"title": "T", "description": "D", "lessons": []}, None, "no lessons"),
        ({"title": "T", "description": "D", "lessons": "abc"}, None, "no lessons"),
        (
            {"title": "", "description": "D", "lessons": [{"title": "a", "description": "b"}]},
            None,
            "the title",
        ),
        (
            {"title": "T", "description": 3, "lessons": [{"title": "a", "description": "b"}]},
            None,
            "the description",
        ),
        ({"title": "T", "description": "D", "lessons": ["x"]}, None, "lesson 1 is not an object"),
        (
            {"title": "T", "description": "D", "lessons": [{"title": " ", "description": "b"}]},
            None,
            "lesson 1's title",
        ),
        (
            {"title": "T", "description": "D", "lessons": [{"title": "a"}]},
            None,
            "lesson 1's description",
        ),
        (
            {
                "title": "T",
                "description": "D",
                "lessons": [{"title": "a", "description": "b"}] * 31,
            },
            None,
            "31 lessons, more than 30",
        ),
        (
            {
                "title": "x" * 301,
                "description": "D",
                "lessons": [{"title": "a", "description": "b"}],
            },
            None,
            "over 300",
        ),
    ],
)
def test_invalid_outlines_are_rejected_whole(data: object, requested: int | None, why: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_outline(data, requested)
    assert caught.value.message.startswith("the model returned an invalid outline")
    assert why in caught.value.message


def test_outline_counts_and_whitespace() -> None:
    lessons = [{"title": f" L{i}\n", "description": "d"} for i in range(1, 41)]
    outline = parse_outline({"title": " T ", "description": "D", "lessons": lessons}, 5)
    assert [plan.title for plan in outline.lessons] == ["L1", "L2", "L3", "L4", "L5"]
    assert outline.title == "T"
    bad_after_cut = [*lessons[:2], {"title": 1}]
    assert (
        len(parse_outline({"title": "T", "description": "D", "lessons": bad_after_cut}, 2).lessons)
        == 2
    )


async def test_demo_provider_is_deterministic_and_writes_whole_lessons() -> None:
    demo = DemoProvider(delay=0)
    outline = (await demo.generate_outline("Sourdough baking", None, DEFAULT_OPTIONS)).outline
    assert (
        outline == (await demo.generate_outline("Sourdough baking", None, DEFAULT_OPTIONS)).outline
    )
    assert len(outline.lessons) == 6
    assert len({plan.title for plan in outline.lessons}) == 6
    assert len((await demo.generate_outline("Chess", 20, DEFAULT_OPTIONS)).outline.lessons) == 20
    lesson = await write(demo, "Sourdough baking", outline, 2)
    assert lesson == await write(demo, "Sourdough baking", outline, 2)
    assert lesson.startswith(f"## {outline.lessons[2].title}")
    for section in ("### The key ideas", "### A worked example", "### Exercise", "### Summary"):
        assert section in lesson
    assert "Demo content" in lesson
    assert outline.lessons[3].title in lesson  # it points to the next lesson


def test_demo_is_chosen_without_a_key() -> None:
    settings = Settings.from_env({})
    assert settings.provider == "demo"
    assert make_provider(settings).name == "demo"
    assert Settings.from_env({"ANTHROPIC_API_KEY": "k"}).provider == "anthropic"


# -- streaming, continuations and refusals -----------------------------------------------


async def test_a_lesson_streams_in_many_pieces_that_join_to_the_model_text(
    claude: AnthropicProvider, fake: FakeAnthropic
) -> None:
    pieces: list[str] = []
    reports: list[ModelCall] = []
    result = await claude.write_lesson(
        brief("Sourdough", OUTLINE), 0, pieces.append, reports.append
    )
    call = fake.lesson_calls()[0]
    assert call.body["stream"] is True
    # The call is reported when billing starts, then with its final figures.
    assert [r.id for r in reports] == [reports[0].id] * 2
    assert reports[0].usage.output_tokens == 1 and reports[0].stop_reason is None
    assert usage_json(reports[-1].usage) == call.usage
    assert reports[-1].stop_reason == "end_turn" and reports[-1].duration_ms is not None
    assert len(pieces) > 10
    assert "".join(pieces) == call.sent_text.rstrip()
    assert (result.stop_reason, result.calls) == ("end_turn", 1)


async def test_a_cut_off_lesson_is_continued_and_reads_as_one_text(
    claude: AnthropicProvider, fake: FakeAnthropic
) -> None:
    long = "## Starter\n\n" + " ".join(f"Word{i}." for i in range(400)) + "\n\nThe end.\n"
    fake.lesson_text = lambda title: long
    fake.add_fault(kind="lesson", stop_reason="max_tokens", cut=0.4, times=2)
    pieces: list[str] = []
    reports: list[ModelCall] = []
    result = await claude.write_lesson(
        brief("Sourdough", OUTLINE), 0, pieces.append, reports.append
    )
    assert result.calls == 3
    assert "".join(pieces) == long.rstrip()
    calls = fake.lesson_calls()
    assert [c.stop_reason for c in calls] == ["max_tokens", "max_tokens", "end_turn"]
    # Each continuation sends the text so far, without trailing white space, as the
    # start of the assistant's turn; the model's text is never written twice.
    assert calls[0].prefill is None
    assert calls[1].prefill == calls[0].sent_text.rstrip()
    assert calls[2].prefill == (calls[0].sent_text + calls[1].sent_text).rstrip()
    # Every continuation is a call of its own, billed as the fake reported it.
    finals = {r.id: r for r in reports}
    assert [usage_json(r.usage) for r in finals.values()] == [c.usage for c in calls]


async def test_a_lesson_still_cut_off_after_every_continuation_fails_keeping_its_text(
    claude: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.add_fault(kind="lesson", stop_reason="max_tokens", cut=0.3, times=None)
    pieces: list[str] = []
    with pytest.raises(LessonTooLong, match="longer than the model may write at once"):
        await claude.write_lesson(brief("Sourdough", OUTLINE), 0, pieces.append, lambda call: None)
    assert len(fake.lesson_calls()) == 3  # the call and COURSEGEN_MAX_CONTINUATIONS (2)
    assert (
        "".join(pieces)
        and "".join(pieces) == "".join(c.sent_text for c in fake.lesson_calls()).rstrip()
    )


async def test_a_refused_lesson_fails_saying_the_model_declined(
    claude: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.add_fault(kind="lesson", stop_reason="refusal", cut=0.2)
    with pytest.raises(ProviderError, match="the model declined to write this lesson"):
        await write(claude, "Sourdough", OUTLINE, 0)


async def test_an_error_inside_a_started_stream_reads_as_an_action(
    claude: AnthropicProvider, fake: FakeAnthropic
) -> None:
    fake.add_fault(kind="lesson", stream_error="overloaded_error")
    with pytest.raises(ProviderError, match="overloaded while writing the lesson; retry it"):
        await write(claude, "Sourdough", OUTLINE, 0)


async def test_the_demo_provider_streams_a_few_words_at_a_time() -> None:
    demo = DemoProvider(delay=0.2)
    outline = (await demo.generate_outline("Chess", 2, DEFAULT_OPTIONS)).outline
    pieces: list[str] = []
    calls: list[ModelCall] = []
    await demo.write_lesson(brief("Chess", outline), 0, pieces.append, calls.append)
    assert len(pieces) > 50
    assert all(1 <= len(piece.split()) <= 3 for piece in pieces)
    # Its tokens are counted like a model's (~4 characters each), at a price of 0.
    final = calls[-1]
    assert (final.model, final.stop_reason) == ("demo", "end_turn")
    assert final.usage.output_tokens == -(-len("".join(pieces)) // 4)
    assert final.usage.input_tokens > 1000  # the guidelines and the outline
