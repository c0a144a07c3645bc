"""Model providers: Claude through the official SDK, or the offline demo."""

from __future__ import annotations

from coursegen.domain import LessonPlan, Outline
from coursegen.providers.base import Provider
from coursegen.settings import Settings

__all__ = ["LessonPlan", "Outline", "Provider", "make_provider"]


def make_provider(settings: Settings) -> Provider:
    """The provider the settings name."""
    if settings.provider == "anthropic":
        from coursegen.providers.anthropic_api import AnthropicProvider

        return AnthropicProvider(settings)
    from coursegen.providers.demo import DemoProvider

    return DemoProvider(settings.demo_delay)
