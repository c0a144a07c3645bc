"""The long-lived collaborators one app instance shares, opened and closed by its lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
from starlette.requests import Request

from coursegen.drafts import Drafts
from coursegen.events import Broker
from coursegen.jobs import JobRunner
from coursegen.providers.base import Provider
from coursegen.settings import Settings
from coursegen.store import Store


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    broker: Broker
    provider: Provider
    runner: JobRunner
    drafts: Drafts
    node: str  # this process's name among the nodes sharing a database
    # Set by sse-starlette for every open stream when the server begins to stop.
    streams_closing: anyio.Event


def services_of(request: Request) -> Services:
    services: Services = request.state.services
    return services
