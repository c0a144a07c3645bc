"""Settings: one declarative list feeds the environment, the command line and the README."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "claude-sonnet-5-5"


class SettingsError(ValueError):
    """A setting has a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to know, read once at the edge."""

    # A SQLite file, or a postgresql:// URL (see `engine`).
    db: str = "coursegen.db"
    provider: str = "demo"
    model: str = DEFAULT_MODEL
    concurrency: int = 4
    max_retries: int = 2
    lesson_timeout: float = 120.0
    max_active_jobs: int = 20
    demo_delay: float = 1.5
    max_continuations: int = 2
    lease_seconds: float = 30.0
    cluster_concurrency: int | None = None
    # A JSON file of model prices adding to or overriding the built-in table.
    prices: Path | None = None
    max_course_cost: float | None = None
    batch_poll: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8000
    api_token: str | None = field(default=None, repr=False)
    # Empty: the defaults (loopback names and the bind host; the service's own origin).
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    # Not in the environment: a knob for tests, which cannot wait 15 s for a ping.
    ping_interval: float = 15.0

    def __post_init__(self) -> None:
        if self.provider not in ("anthropic", "demo"):
            raise SettingsError(f"provider must be 'anthropic' or 'demo', got {self.provider!r}")
        if not self.model.strip():
            raise SettingsError("model must not be empty")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Build settings from environment variables; non-None `overrides` (flags) win."""
        values: dict[str, Any] = {}
        for spec in SPECS:
            raw = environ.get(spec.env, "").strip()
            if raw:
                values[spec.field] = spec.parse(raw, spec.env)
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        if "provider" not in values:
            values["provider"] = "anthropic" if environ.get("ANTHROPIC_API_KEY") else "demo"
        return cls(**values)

    @property
    def engine(self) -> str:
        """`postgresql` for a postgresql:// URL, else `sqlite`."""
        return "postgresql" if _is_postgres_url(self.db) else "sqlite"

    @property
    def db_path(self) -> Path:
        """The SQLite file (the sqlite engine only)."""
        return Path(self.db)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _int(minimum: int, maximum: int) -> Callable[[str, str], int]:
    def parse(raw: str, name: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
        if not minimum <= value <= maximum:
            raise SettingsError(f"{name} must be between {minimum} and {maximum}, got {value}")
        return value

    return parse


def _seconds(minimum: float) -> Callable[[str, str], float]:
    def parse(raw: str, name: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
        if not value >= minimum or value == float("inf"):
            raise SettingsError(f"{name} must be at least {minimum} seconds, got {raw}")
        return value

    return parse


def _text(raw: str, name: str) -> str:
    return raw


def _path(raw: str, name: str) -> Path:
    return Path(raw)


def _dollars(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an amount in US dollars, got {raw!r}") from None
    if not 0 <= value < float("inf"):
        raise SettingsError(f"{name} must be zero or more US dollars, got {raw}")
    return value


def _database(raw: str, name: str) -> str:
    if "://" in raw and not _is_postgres_url(raw):
        raise SettingsError(
            f"{name} must be a SQLite file or a postgresql:// URL, got {raw.split('://')[0]}://"
        )
    return raw


def _is_postgres_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def _hosts(raw: str, name: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for host in hosts:
        if host != "*" and not _HOST.fullmatch(host):
            raise SettingsError(
                f"{name} takes host names separated by commas, such as "
                f"'courses.example.org,*.example.org' (no scheme, port or path); got {host!r}"
            )
    return hosts


def _origins(raw: str, name: str) -> tuple[str, ...]:
    origins = []
    for item in (o.strip() for o in raw.split(",")):
        if not item:
            continue
        origin = normalise_origin(item)
        if origin is None:
            raise SettingsError(
                f"{name} takes origins separated by commas, such as "
                f"'https://courses.example.org' (scheme, host and port only); got {item!r}"
            )
        origins.append(origin)
    return tuple(origins)


_HOST = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\]")
_ORIGIN = re.compile(r"(https?)://([a-z0-9_.-]+|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(raw: str) -> str | None:
    """`scheme://host[:port]` in lower case without a default port, or None if it is not one."""
    found = _ORIGIN.fullmatch(raw.strip().lower().rstrip("/"))
    if found is None:
        return None
    scheme, host, port = found.groups()
    if port is None or int(port) == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{int(port)}"


def _provider(raw: str, name: str) -> str:
    if raw not in ("anthropic", "demo"):
        raise SettingsError(f"{name} must be 'anthropic' or 'demo', got {raw!r}")
    return raw


@dataclass(frozen=True)
class SettingSpec:
    """One setting: its field, environment variable, command-line flag and help."""

    field: str
    env: str
    flag: str | None  # None: environment only (a secret does not belong in argv)
    default: str
    help: str
    parse: Callable[[str, str], Any]


SPECS: tuple[SettingSpec, ...] = (
    SettingSpec("db", "COURSEGEN_DB", "--db", "coursegen.db",
                "SQLite file (created with schema.sql on first start), or a postgresql:// URL "
                "that any number of nodes share", _database),
    SettingSpec("provider", "COURSEGEN_PROVIDER", "--provider",
                "`anthropic` if ANTHROPIC_API_KEY is set, else `demo`",
                "which provider writes the courses: anthropic or demo (offline)", _provider),
    SettingSpec("model", "COURSEGEN_MODEL", "--model", DEFAULT_MODEL,
                "model for outline and lessons", _text),
    SettingSpec("concurrency", "COURSEGEN_CONCURRENCY", "--concurrency", "4",
                "lesson calls in flight, process-wide", _int(1, 256)),
    SettingSpec("max_retries", "COURSEGEN_MAX_RETRIES", "--max-retries", "2",
                "SDK retries on 429/5xx/529 (with its backoff)", _int(0, 10)),
    SettingSpec("lesson_timeout", "COURSEGEN_LESSON_TIMEOUT", "--lesson-timeout", "120",
                "seconds for one lesson call (and for the outline call)", _seconds(0.1)),
    SettingSpec("max_active_jobs", "COURSEGEN_MAX_ACTIVE_JOBS", "--max-active-jobs", "20",
                "running jobs beyond which generate answers 429", _int(1, 100_000)),
    SettingSpec("demo_delay", "COURSEGEN_DEMO_DELAY", "--demo-delay", "1.5",
                "seconds per lesson for the demo provider", _seconds(0.0)),
    SettingSpec("max_continuations", "COURSEGEN_MAX_CONTINUATIONS", "--max-continuations", "2",
                "continuations of a lesson cut off at the model's output limit", _int(0, 10)),
    SettingSpec("lease_seconds", "COURSEGEN_LEASE_SECONDS", "--lease-seconds", "30",
                "PostgreSQL: how long a node's claim on a lesson holds unless renewed; a dead "
                "node's lessons move on after it", _seconds(1.0)),
    SettingSpec("cluster_concurrency", "COURSEGEN_CLUSTER_CONCURRENCY",
                "--cluster-concurrency", "(none)",
                "PostgreSQL: lesson calls in flight across all nodes (one API key's rate "
                "limit); each node stays within COURSEGEN_CONCURRENCY too", _int(1, 100_000)),
    SettingSpec("prices", "COURSEGEN_PRICES", "--prices", "(built-in table)",
                "JSON file of model prices in USD per million tokens, adding to or overriding "
                "the built-in table (see Cost)", _path),
    SettingSpec("max_course_cost", "COURSEGEN_MAX_COURSE_COST", "--max-course-cost", "(none)",
                "USD a course may spend; once reached no call starts for it and its job ends "
                "`error` (retry goes on after the limit is raised)", _dollars),
    SettingSpec("batch_poll", "COURSEGEN_BATCH_POLL", "--batch-poll", "30",
                "seconds between polls of a Message Batch (economy mode)", _seconds(0.05)),
    SettingSpec("host", "COURSEGEN_HOST", "--host", "127.0.0.1",
                "address to listen on; loopback keeps strangers off your API key", _text),
    SettingSpec("port", "COURSEGEN_PORT", "--port", "8000", "port to listen on", _int(0, 65535)),
    SettingSpec("api_token", "COURSEGEN_API_TOKEN", None, "(none)",
                "when set, every /api/ request needs it (bearer header or the page's sign-in)",
                _text),
    SettingSpec("allowed_hosts", "COURSEGEN_ALLOWED_HOSTS", "--allowed-hosts",
                "localhost, 127.0.0.1, [::1] and the bind host",
                "more Host names to serve, comma-separated (`*.example.org` matches "
                "subdomains); others get 400, which stops DNS rebinding", _hosts),
    SettingSpec("allowed_origins", "COURSEGEN_ALLOWED_ORIGINS", "--allowed-origins",
                "the service's own origin",
                "more browser origins that may write and read (CORS), comma-separated, "
                "e.g. `https://lms.example.org`; other sites get 403", _origins),
)  # fmt: skip


def settings_table() -> str:
    """The Markdown table of settings that the README carries (a test keeps them equal)."""
    rows = ["| variable | flag | default | meaning |", "| --- | --- | --- | --- |"]
    for spec in SPECS:
        flag = f"`{spec.flag}`" if spec.flag else "(environment only)"
        rows.append(f"| `{spec.env}` | {flag} | {spec.default} | {spec.help} |")
    return "\n".join(rows)
