"""What model calls cost: a price table per model, built in and extended from a JSON file.

Prices are US dollars per million tokens. `cost` computes unrounded floats; rounding to
6 decimals happens where a usage record becomes JSON (`Usage.to_json`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from coursegen.domain import Usage
from coursegen.settings import SettingsError

PER_MILLION = 1_000_000

# Anthropic's standard prompt-caching multipliers of the base input price, used as the
# defaults for a model a price file adds: https://platform.claude.com/docs/en/build-with-claude/prompt-caching
# ("5-minute cache write tokens are 1.25 times the base input tokens price; 1-hour cache
# write tokens are 2 times ...; cache read tokens are 0.1 times ..."). Some models read
# the cache cheaper (Opus 5.5, Sonnet 5.5, Fable 5.1): the built-in table lists them as
# published. The Batch API halves every price: .../build-with-claude/batch-processing.
CACHE_WRITE_FACTOR = 1.25
CACHE_WRITE_1H_FACTOR = 2.0
CACHE_READ_FACTOR = 0.1
BATCH_FACTOR = 0.5


@dataclass(frozen=True, slots=True)
class Price:
    """One model's prices in USD per million tokens; `batch` multiplies all of a batch call."""

    input: float
    output: float
    cache_write: float  # a 5-minute cache write: the only kind coursegen makes
    cache_read: float
    cache_write_1h: float | None
    batch: float = BATCH_FACTOR


def _row(
    input: float, cache_write: float, cache_write_1h: float, cache_read: float, output: float
) -> Price:
    """A price in the column order of Anthropic's pricing table, to check it at a glance."""
    return Price(input, output, cache_write, cache_read, cache_write_1h)


class Prices(Mapping[str, Price]):
    """An immutable table of model id -> Price that prices a call's usage."""

    def __init__(self, table: Mapping[str, Price]) -> None:
        self._table: Mapping[str, Price] = MappingProxyType(dict(table))

    def __getitem__(self, model: str) -> Price:
        return self._table[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __repr__(self) -> str:
        return f"Prices({dict(self._table)!r})"

    def lookup(self, model: str) -> Price | None:
        """The price of `model`, by its exact id or by the alias of a dated snapshot id."""
        price = self._table.get(model)
        if price is None:
            # Models before the 4.6 generation have snapshot ids with a date suffix
            # (claude-haiku-4-5-20251001) and a dateless alias that the table lists
            # (claude-haiku-4-5); from 4.6 on the id itself is dateless.
            # https://platform.claude.com/docs/en/about-claude/models/model-ids-and-versions
            dated = _DATED_ID.fullmatch(model)
            if dated:
                price = self._table.get(dated["alias"])
        return price

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float | None:
        """What `usage` costs in USD on `model`, or None when the model has no price."""
        price = self.lookup(model)
        if price is None:
            return None
        total = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_creation_input_tokens * price.cache_write
            + usage.cache_read_input_tokens * price.cache_read
        ) / PER_MILLION
        return total * price.batch if batch else total

    def priced(self, model: str, usage: Usage, *, batch: bool = False) -> Usage:
        """`usage` with its `cost_usd` set (None for an unknown model; tokens kept)."""
        return dataclasses.replace(usage, cost_usd=self.cost(model, usage, batch=batch))


_DATED_ID = re.compile(r"(?P<alias>.+)-(?P<date>\d{8})")

# The service's own table, checked 2026-12-01 against Anthropic's published pages:
#   pricing table  https://platform.claude.com/docs/en/about-claude/pricing
#   model pages    https://platform.claude.com/docs/en/models/<model>/overview
#   release notes  https://platform.claude.com/docs/en/release-notes/overview
#   lifecycle      https://platform.claude.com/docs/en/about-claude/model-deprecations
# Columns as on the pricing page: input, 5m cache write, 1h cache write, cache read, output.
# Models offered on the Claude API that day whose prices could not all be confirmed are
# left out (their cost is null), as are retired ones; a price file can add them.
BUILT_IN = Prices(
    {
        # Sonnet 5.5 (current; the default model). Cache reads cut from $0.20 to $0.10
        # on 2026-10-07 (release notes); the other prices from its model page.
        "claude-sonnet-5-5": _row(2, 2.50, 4, 0.10, 10),
        # Opus 5.5 (current). Cache reads at 0.05x input, as published.
        "claude-opus-5-5": _row(4, 5, 8, 0.20, 20),
        # Fable 5.1 and Fable 5 (legacy). Fable 5.1 reads the cache at 0.025x input.
        "claude-fable-5-1": _row(10, 12.50, 20, 0.25, 50),
        "claude-fable-5": _row(10, 12.50, 20, 1, 50),
        # Legacy, still offered.
        "claude-opus-5": _row(5, 6.25, 10, 0.50, 25),
        "claude-opus-4-8": _row(5, 6.25, 10, 0.50, 25),
        "claude-opus-4-7": _row(5, 6.25, 10, 0.50, 25),
        "claude-opus-4-6": _row(5, 6.25, 10, 0.50, 25),
        "claude-sonnet-5": _row(2, 2.50, 4, 0.20, 10),
        "claude-sonnet-4-6": _row(3, 3.75, 6, 0.30, 15),
        # Dated snapshots, keyed by their alias: claude-haiku-4-5-20251001 and
        # claude-opus-4-5-20251101 (deprecated, retiring 2027-01-22).
        "claude-haiku-4-5": _row(1, 1.25, 2, 0.10, 5),
        "claude-opus-4-5": _row(5, 6.25, 10, 0.50, 25),
        # The offline demo provider reports tokens that cost nothing.
        "demo": _row(0, 0, 0, 0, 0),
    }
)

_FIELDS = ("input", "output", "cache_write", "cache_write_1h", "cache_read", "batch")


def load_prices(path: Path | None) -> Prices:
    """The built-in prices, with the models of the JSON file at `path` added or overridden.

    Read once at startup, before the event loop serves, so plain blocking I/O is fine.
    """
    if path is None:
        return BUILT_IN
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"price file {path} cannot be read ({exc.strerror or exc}); "
            "fix the path in COURSEGEN_PRICES or unset it to use the built-in prices"
        ) from None
    except UnicodeDecodeError:
        raise SettingsError(f"price file {path} is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"price file {path} is not valid JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}"
        ) from None
    if not isinstance(data, dict):
        raise SettingsError(
            f"price file {path} must hold a JSON object of model ids to prices, like "
            f'{{"claude-sonnet-5-5": {{"input": 2, "output": 10}}}}; it holds '
            f"{_json_type(data)}"
        )
    table = dict(BUILT_IN)
    for model, entry in data.items():
        table[model] = _parse_entry(path, model, entry, BUILT_IN.lookup(model))
    return Prices(table)


def _parse_entry(path: Path, model: str, entry: Any, base: Price | None) -> Price:
    """One model's prices from the file; an override keeps the fields it does not give."""
    where = f"price file {path}, model {model!r}"
    if not model.strip():
        raise SettingsError(f"price file {path} has an empty model id")
    if not isinstance(entry, dict):
        raise SettingsError(
            f"{where}: the prices must be a JSON object like "
            f'{{"input": 3, "output": 15}}, not {_json_type(entry)}'
        )
    values: dict[str, float] = {}
    for key, value in entry.items():
        if key not in _FIELDS:
            raise SettingsError(f"{where}: unknown key {key!r}; the keys are {', '.join(_FIELDS)}")
        values[key] = _number(where, key, value)
    if base is None:
        missing = [key for key in ("input", "output") if key not in values]
        if missing:
            raise SettingsError(
                f"{where}: a model that is not built in needs at least 'input' and "
                f"'output' (US dollars per million tokens); missing {', '.join(missing)}"
            )
        base = Price(
            input=values["input"],
            output=values["output"],
            cache_write=CACHE_WRITE_FACTOR * values["input"],
            cache_read=CACHE_READ_FACTOR * values["input"],
            cache_write_1h=CACHE_WRITE_1H_FACTOR * values["input"],
        )
    return dataclasses.replace(base, **values)


def _number(where: str, key: str, value: Any) -> float:
    # bool is an int to Python, and json reads NaN and Infinity: neither is a price.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SettingsError(f"{where}: {key!r} must be a number, got {json.dumps(value)}")
    if key == "batch":
        if not 0 < value <= 1:
            raise SettingsError(
                f"{where}: 'batch' multiplies every price of a batch call and must be "
                f"more than 0 and at most 1 (0.5 is Anthropic's discount), got {value}"
            )
    elif value < 0:
        raise SettingsError(
            f"{where}: {key!r} must not be negative (US dollars per million tokens), got {value}"
        )
    return float(value)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "an object"
