"""Configuration: presets, TOML files, dicts, dotted overrides, and one-line errors naming field, value and rule."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from abm import ModelConfig
from abm.config import preset_descriptions, preset_names
from abm.errors import ConfigError, UserInputError

REQUIRED_PRESETS = ("baseline", "crash", "black_thursday", "leverage_cycle", "contagion")


# --- construction -------------------------------------------------------------------------------------------


def test_from_dict_fills_defaults() -> None:
    config = ModelConfig.from_dict({"steps": 10, "assets": {"ETH": {"price": 2000.0}}})
    assert config.steps == 10
    assert config.symbols == ["USD", "ETH"]
    assert config.assets["ETH"].price == 2000.0
    assert config.assets["ETH"].impact == "linear"  # default
    assert config.reserve("ETH").optimal_utilisation == 0.90  # Aave v3 WETH default
    assert config.reserve("USD").slope1 == 0.09  # Aave v3 USDC default


def test_from_preset_and_base_chain() -> None:
    crash = ModelConfig.from_preset("crash")
    assert crash.name == "crash"
    assert crash.traders.max_leverage == 4.0  # crash's own value
    assert crash.assets["BTC"].price == 60000.0  # inherited from its base, baseline
    assert [ev.asset for ev in crash.scenario.events] == ["ETH", "BTC"]
    black = ModelConfig.from_preset("black_thursday")
    assert black.market.depth_vol_elasticity == 0.5
    assert black.traders.max_leverage == 4.0  # baseline <- crash <- black_thursday


def test_from_toml_with_base_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "my_run.toml"
    path.write_text('base = "baseline"\nsteps = 77\n[traders]\nmax_leverage = 2.5\n', encoding="utf-8")
    config = ModelConfig.from_toml(path, {"traders.n_traders": 12})
    assert config.name == "my_run"
    assert (config.steps, config.traders.max_leverage, config.traders.n_traders) == (77, 2.5, 12)
    assert config.assets["ETH"].depth_usd == 2.0e9  # from the baseline


def test_dotted_overrides() -> None:
    config = ModelConfig.from_preset(
        "baseline",
        {
            "traders.max_leverage": 10,
            "pool.reserves.ETH.ltv": 0.7,
            "market.impact_half_life_steps": math.inf,
            "pool.bad_debt_policy": "dilute",
        },
    )
    assert config.traders.max_leverage == 10
    assert config.reserve("ETH").ltv == 0.7
    assert math.isinf(config.market.impact_half_life_steps)
    assert config.pool.bad_debt_policy == "dilute"
    again = config.with_overrides({"steps": 5})
    assert again.steps == 5 and again.traders.max_leverage == 10
    # a new entry in a free-form table (a new asset) is allowed, and validated
    assert ModelConfig.from_preset("baseline", {"assets.SOL.price": 150.0}).symbols == ["USD", "ETH", "BTC", "SOL"]
    with pytest.raises(ConfigError, match=r"assets\.SOL\.price = -1\.0"):
        ModelConfig.from_preset("baseline", {"assets.SOL.price": -1.0})


# --- unknown names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: ModelConfig.from_preset("baseline", {"traders.max_leverag": 3}),
            "unknown parameter 'traders.max_leverag' (did you mean 'traders.max_leverage'?)",
        ),
        (
            lambda: ModelConfig.from_dict({"traders": {"max_leverag": 3}}),
            "unknown parameter 'traders.max_leverag' (did you mean 'traders.max_leverage'?)",
        ),
        (lambda: ModelConfig.from_dict({"stesp": 3}), "unknown parameter 'stesp' (did you mean 'steps'?)"),
        (lambda: ModelConfig.from_dict({"markt": {}}), "unknown parameter 'markt' (did you mean 'market'?)"),
        (
            lambda: ModelConfig.from_dict({"base": "baseline", "pool": {"reserves": {"BTC": {"ltvv": 0.5}}}}),
            "unknown parameter 'pool.reserves.BTC.ltvv' (did you mean 'pool.reserves.BTC.ltv'?)",
        ),
        (
            lambda: ModelConfig.from_preset("baseline", {"pool.reserves.BTC.ltvv": 0.5}),
            "unknown parameter 'pool.reserves.BTC.ltvv' (did you mean 'pool.reserves.BTC.ltv'?)",
        ),
    ],
)
def test_unknown_key_suggests_the_closest_name(build, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert str(info.value) == message


def test_unknown_preset_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'basline'") as info:
        ModelConfig.from_preset("basline")
    message = str(info.value)
    assert "did you mean 'baseline'" in message
    for name in preset_names():
        assert name in message


def test_config_errors_are_user_input_errors() -> None:
    with pytest.raises(UserInputError):
        ModelConfig.from_dict({"steps": 0})
    assert issubclass(ConfigError, ValueError)


# --- bounds: the message names the field, the value and the rule ---------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (
            {"pool.reserves.ETH.liquidation_threshold": 0.7},
            r"pool\.reserves\.ETH: liquidation_threshold = 0\.7 must be >= ltv = 0\.8",
        ),
        ({"pool.reserves.ETH.optimal_utilisation": 1.0}, r"optimal_utilisation = 1\.0: .*less than 1"),
        ({"pool.reserves.ETH.optimal_utilisation": 0.0}, r"optimal_utilisation = 0\.0: .*greater than 0"),
        ({"assets.ETH.depth_usd": 0.0}, r"assets\.ETH\.depth_usd = 0\.0: .*greater than 0"),
        ({"assets.BTC.depth_usd": -5.0}, r"assets\.BTC\.depth_usd = -5\.0: .*greater than 0"),
        ({"assets.ETH.amm_fee": 1.0}, r"assets\.ETH\.amm_fee = 1\.0: .*less than 1"),
        ({"assets.ETH.amm_fee": -0.1}, r"assets\.ETH\.amm_fee = -0\.1: .*greater than or equal to 0"),
        ({"assets.ETH.price": 0.0}, r"assets\.ETH\.price = 0\.0: .*greater than 0"),
        ({"market.min_depth_fraction": 0.0}, r"market\.min_depth_fraction = 0\.0: .*greater than 0"),
        ({"traders.leverage_min": 5.0}, r"traders\.leverage_min = 5\.0 must be <= traders\.max_leverage = 3\.0"),
        ({"pool.bad_debt_policy": "bail_out"}, r"pool\.bad_debt_policy = 'bail_out': .*'socialize' or 'dilute'"),
        (
            {"pool.reserves.ETH.liquidation_bonus": 0.25},
            r"liquidation_threshold \* \(1 \+ liquidation_bonus\) = 1\.0312 must be < 1",
        ),
        ({"traders.assets_per_trader": 3}, r"traders\.assets_per_trader = 3 must be <= number of assets \(2\)"),
    ],
)
def test_bounds_name_field_value_and_rule(overrides: dict[str, object], pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        ModelConfig.from_preset("baseline", overrides)


def test_bounds_edges_that_are_allowed() -> None:
    config = ModelConfig.from_preset(
        "baseline",
        {
            "assets.ETH.amm_fee": 0.0,  # fee in [0, 1)
            "pool.reserves.ETH.ltv": 0.825,  # LT >= LTV: equality is allowed
            "pool.reserves.ETH.optimal_utilisation": 0.999,
        },
    )
    assert config.reserve("ETH").ltv == config.reserve("ETH").liquidation_threshold


def test_scenario_event_for_an_unknown_asset() -> None:
    events = [{"kind": "shock", "asset": "DOGE", "size": -0.2, "start": 5}]
    with pytest.raises(ConfigError, match=r"scenario\.events\[0\]\.asset = 'DOGE': no such risky asset"):
        ModelConfig.from_preset("baseline", {"scenario.events": events})


# --- files -----------------------------------------------------------------------------------------------------


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("steps = 10\n[traders]\nmax_leverage = = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.toml: malformed TOML: .*line 3"):
        ModelConfig.from_toml(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ModelConfig.from_toml(tmp_path / "nope.toml")


# --- presets ----------------------------------------------------------------------------------------------------


def test_required_presets_exist_with_descriptions() -> None:
    names = preset_names()
    for name in REQUIRED_PRESETS:
        assert name in names
    descriptions = preset_descriptions()
    assert all(descriptions[name] for name in names)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_validates_and_round_trips_through_toml(name: str, tmp_path: Path) -> None:
    config = ModelConfig.from_preset(name)
    assert config.name == name
    text = config.to_toml()
    assert ModelConfig.from_dict(tomllib.loads(text)) == config
    path = tmp_path / "resolved.toml"
    path.write_text(text, encoding="utf-8")
    assert ModelConfig.from_toml(path) == config


def test_round_trip_keeps_infinities_and_overrides() -> None:
    config = ModelConfig.from_preset(
        "crash", {"market.impact_half_life_steps": math.inf, "assets.ETH.impact": "cpmm", "steps": 9}
    )
    back = ModelConfig.from_dict(tomllib.loads(config.to_toml()))
    assert back == config
    assert math.isinf(back.market.impact_half_life_steps)
