"""The price table: costs of known usage, the built-in table, and the price file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from coursegen.domain import Usage
from coursegen.prices import BUILT_IN, Price, Prices, load_prices
from coursegen.settings import DEFAULT_MODEL, SettingsError

USAGE = Usage(
    input_tokens=1_000,
    output_tokens=2_000,
    cache_creation_input_tokens=3_000,
    cache_read_input_tokens=4_000,
)


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_cost_on_the_default_model_by_hand() -> None:
    # Sonnet 5.5: $2 input, $10 output, $2.50 5-minute cache write, $0.10 cache read.
    expected = (1_000 * 2 + 2_000 * 10 + 3_000 * 2.50 + 4_000 * 0.10) / 1_000_000
    assert expected == pytest.approx(0.0299)
    assert BUILT_IN.cost(DEFAULT_MODEL, USAGE) == pytest.approx(expected)


def test_batch_halves_every_price() -> None:
    full = BUILT_IN.cost("claude-opus-5-5", USAGE)
    assert full == pytest.approx((1_000 * 4 + 2_000 * 20 + 3_000 * 5 + 4_000 * 0.20) / 1e6)
    assert BUILT_IN.cost("claude-opus-5-5", USAGE, batch=True) == pytest.approx(full / 2)


def test_priced_sets_the_cost_and_keeps_the_tokens() -> None:
    priced = BUILT_IN.priced("claude-haiku-4-5", USAGE)
    assert priced.cost_usd == pytest.approx((1_000 * 1 + 2_000 * 5 + 3_000 * 1.25 + 400) / 1e6)
    assert priced.to_json()["cost_usd"] == 0.01515
    assert (priced.input_tokens, priced.cache_read_input_tokens) == (1_000, 4_000)


def test_unknown_model_has_no_cost_but_keeps_its_tokens() -> None:
    assert BUILT_IN.cost("claude-unknown-9", USAGE) is None
    priced = BUILT_IN.priced("claude-unknown-9", USAGE)
    assert priced == Usage(1_000, 2_000, 3_000, 4_000, None)
    assert priced.to_json()["cost_usd"] is None


def test_the_demo_model_costs_nothing() -> None:
    assert BUILT_IN.priced("demo", USAGE).cost_usd == 0


def test_a_dated_snapshot_id_takes_its_alias_price() -> None:
    assert BUILT_IN.lookup("claude-haiku-4-5-20251001") == BUILT_IN["claude-haiku-4-5"]
    assert BUILT_IN.lookup("claude-opus-4-5-20251101") == BUILT_IN["claude-opus-4-5"]
    # Only a trailing eight-digit date is stripped; a retired alias stays unknown.
    assert BUILT_IN.lookup("claude-opus-4-20250514") is None
    assert BUILT_IN.lookup("claude-sonnet-5-5-1") is None


def test_the_built_in_table_is_immutable_and_complete() -> None:
    assert DEFAULT_MODEL in BUILT_IN
    with pytest.raises(TypeError):
        BUILT_IN["x"] = BUILT_IN["demo"]  # type: ignore[index]
    for model, price in BUILT_IN.items():
        assert price.batch == 0.5, model
        assert price.cache_write_1h is not None, model
        assert min(price.input, price.output, price.cache_write, price.cache_read) >= 0, model


def test_no_file_means_the_built_in_prices() -> None:
    assert load_prices(None) is BUILT_IN


def test_a_file_override_of_one_field_keeps_the_others(tmp_path: Path) -> None:
    prices = load_prices(write(tmp_path, {"claude-sonnet-5-5": {"cache_read": 0.2}}))
    assert prices["claude-sonnet-5-5"] == Price(2, 10, 2.50, 0.2, 4)
    assert prices["claude-opus-5-5"] == BUILT_IN["claude-opus-5-5"]
    assert BUILT_IN["claude-sonnet-5-5"].cache_read == 0.10


def test_a_file_override_of_a_dated_id_inherits_from_its_alias(tmp_path: Path) -> None:
    prices = load_prices(write(tmp_path, {"claude-haiku-4-5-20251001": {"output": 4}}))
    assert prices["claude-haiku-4-5-20251001"] == Price(1, 4, 1.25, 0.10, 2)
    assert prices.lookup("claude-haiku-4-5") == BUILT_IN["claude-haiku-4-5"]


def test_a_new_model_from_the_file_gets_the_default_multipliers(tmp_path: Path) -> None:
    prices = load_prices(write(tmp_path, {"my-model": {"input": 3, "output": 15}}))
    price = prices["my-model"]
    assert (price.input, price.output, price.cache_write, price.cache_write_1h) == (3, 15, 3.75, 6)
    assert (price.cache_read, price.batch) == (pytest.approx(0.3), 0.5)
    assert prices.cost("my-model", USAGE) == pytest.approx(
        (1_000 * 3 + 2_000 * 15 + 3_000 * 3.75 + 4_000 * 0.3) / 1e6
    )
    assert DEFAULT_MODEL in prices


def test_a_new_model_may_give_every_field(tmp_path: Path) -> None:
    entry = {
        "input": 3,
        "output": 15,
        "cache_write": 3.75,
        "cache_read": 0.3,
        "cache_write_1h": 6,
        "batch": 1,
    }
    prices = load_prices(write(tmp_path, {"my-model": entry}))
    assert prices["my-model"] == Price(3, 15, 3.75, 0.3, 6, 1.0)
    assert prices.cost("my-model", USAGE, batch=True) == prices.cost("my-model", USAGE)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", ["not valid JSON", "line 1"]),
        ("[1, 2]", ["must hold a JSON object", "an array"]),
        ('{"m": 3}', ["'m'", "must be a JSON object", "a number"]),
        ('{"claude-sonnet-5-5": {"price": 3}}', ["'claude-sonnet-5-5'", "unknown key 'price'"]),
        ('{"m": {"input": -1, "output": 2}}', ["'m'", "'input' must not be negative"]),
        ('{"m": {"input": "3", "output": 2}}', ["'m'", "'input' must be a number", '"3"']),
        ('{"m": {"input": true, "output": 2}}', ["'input' must be a number", "true"]),
        ('{"m": {"input": NaN, "output": 2}}', ["'input' must be a number", "NaN"]),
        ('{"m": {"input": null, "output": 2}}', ["'input' must be a number", "null"]),
        ('{"m": {"input": 1}}', ["'m'", "not built in", "missing output"]),
        ('{"m": {"input": 1, "output": 2, "batch": 0}}', ["'batch'", "more than 0", "got 0"]),
        ('{"demo": {"batch": 1.5}}', ["'demo'", "'batch'", "at most 1", "got 1.5"]),
        ('{"": {"input": 1, "output": 2}}', ["empty model id"]),
    ],
)
def test_an_invalid_file_names_the_problem(tmp_path: Path, content: str, words: list[str]) -> None:
    path = tmp_path / "prices.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError) as excinfo:
        load_prices(path)
    message = str(excinfo.value)
    for word in [str(path), *words]:
        assert word in message


def test_a_missing_file_names_the_path_and_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"
    with pytest.raises(SettingsError, match="cannot be read") as excinfo:
        load_prices(path)
    assert str(path) in str(excinfo.value)
    assert "COURSEGEN_PRICES" in str(excinfo.value)


def test_prices_compare_by_their_table() -> None:
    assert Prices(dict(BUILT_IN)) == BUILT_IN
    assert len(Prices({})) == 0
