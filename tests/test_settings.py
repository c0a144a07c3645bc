"""Settings from the environment and `coursegen serve` flags, in one typed object."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from coursegen.cli import build_parser
from coursegen.settings import DEFAULT_MODEL, SPECS, Settings, SettingsError, settings_table


def test_defaults_match_the_spec() -> None:
    settings = Settings.from_env({})
    assert settings.db_path == Path("coursegen.db")
    assert settings.provider == "demo"
    assert settings.model == DEFAULT_MODEL
    assert (settings.concurrency, settings.max_retries, settings.max_active_jobs) == (4, 2, 20)
    assert (settings.lesson_timeout, settings.demo_delay) == (120.0, 1.5)
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "COURSEGEN_DB": "/tmp/x.db",
            "COURSEGEN_PROVIDER": "anthropic",
            "COURSEGEN_MODEL": "claude-haiku-5-5",
            "COURSEGEN_CONCURRENCY": "7",
            "COURSEGEN_MAX_RETRIES": "0",
            "COURSEGEN_LESSON_TIMEOUT": "30.5",
            "COURSEGEN_MAX_ACTIVE_JOBS": "3",
            "COURSEGEN_DEMO_DELAY": "0",
            "COURSEGEN_HOST": "0.0.0.0",
            "COURSEGEN_PORT": "9000",
        }
    )
    assert settings == Settings(
        db="/tmp/x.db", provider="anthropic", model="claude-haiku-5-5",
        concurrency=7, max_retries=0, lesson_timeout=30.5, max_active_jobs=3, demo_delay=0.0,
        host="0.0.0.0", port=9000,
    )  # fmt: skip


def test_flags_win_over_the_environment() -> None:
    args = build_parser().parse_args(["serve", "--db", "flag.db", "--concurrency", "2"])
    overrides = {spec.field: getattr(args, spec.field, None) for spec in SPECS}
    settings = Settings.from_env(
        {"COURSEGEN_DB": "env.db", "COURSEGEN_CONCURRENCY": "9", "COURSEGEN_MAX_RETRIES": "5"},
        overrides,
    )
    assert (settings.db_path, settings.concurrency, settings.max_retries) == (Path("flag.db"), 2, 5)


def test_an_api_key_chooses_the_anthropic_provider_unless_told_otherwise() -> None:
    assert Settings.from_env({"ANTHROPIC_API_KEY": "sk"}).provider == "anthropic"
    assert (
        Settings.from_env({"ANTHROPIC_API_KEY": "sk", "COURSEGEN_PROVIDER": "demo"}).provider
        == "demo"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COURSEGEN_CONCURRENCY": "0"}, "COURSEGEN_CONCURRENCY must be between 1 and 256"),
        ({"COURSEGEN_CONCURRENCY": "four"}, "COURSEGEN_CONCURRENCY must be a whole number"),
        ({"COURSEGEN_LESSON_TIMEOUT": "-1"}, "COURSEGEN_LESSON_TIMEOUT must be at least"),
        ({"COURSEGEN_LESSON_TIMEOUT": "nan"}, "COURSEGEN_LESSON_TIMEOUT must be at least"),
        ({"COURSEGEN_PROVIDER": "openai"}, "COURSEGEN_PROVIDER must be 'anthropic' or 'demo'"),
        ({"COURSEGEN_PORT": "70000"}, "COURSEGEN_PORT must be between 0 and 65535"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coursegen", *args],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip


def test_serve_help_lists_every_setting() -> None:
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    for spec in SPECS:
        if spec.flag is not None:  # a secret is read from the environment only
            assert spec.flag in result.stdout
            assert spec.env in result.stdout
    assert "--api-token" not in result.stdout


def test_a_bad_flag_or_variable_stops_with_a_clear_message() -> None:
    result = run_cli("serve", "--concurrency", "0")
    assert result.returncode == 2
    assert "between 1 and 256" in result.stderr
    # A bad variable is bad usage as much as a bad flag is (SPEC 12's exit status 2).
    result = run_cli("serve", env={"COURSEGEN_MAX_RETRIES": "lots", "PATH": ""})
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "coursegen: COURSEGEN_MAX_RETRIES must be a whole number, got 'lots'"
    )


def test_the_readme_opens_with_the_two_commands_and_carries_the_settings_table() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    first_block = readme.split("```")[1].strip().splitlines()
    assert [line.split()[0:2] for line in first_block[1:]] == [["make", "run"], ["make", "test"]]
    assert settings_table() in readme


def test_the_database_is_a_sqlite_file_or_a_postgresql_url() -> None:
    assert Settings.from_env({}).engine == "sqlite"
    assert Settings.from_env({"COURSEGEN_DB": "data/courses.db"}).db_path == Path("data/courses.db")
    url = "postgresql://coursegen@db.internal:5432/coursegen"
    settings = Settings.from_env({"COURSEGEN_DB": url})
    assert (settings.engine, settings.db) == ("postgresql", url)
    with pytest.raises(SettingsError, match="a SQLite file or a postgresql:// URL"):
        Settings.from_env({"COURSEGEN_DB": "mysql://x/y"})
