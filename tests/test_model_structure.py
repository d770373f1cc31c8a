"""How the model is put together: common random numbers, the trader book (one owner per piece of trader state,
one equity formula), the category tables, the seed."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import abm
import abm.model
from abm import ModelConfig, ReflexivityModel
from abm.agents.population import draw_population
from abm.agents.strategies import STRATEGY_REGISTRY
from abm.config.schema import IMPACT_MODEL_NAMES, STRATEGIES
from abm.errors import ConfigError
from abm.lending import LendingPool
from abm.market.impact_models import IMPACT_MODELS
from abm.recording.distress import equity_snapshot

SHORT = 60  # steps


def fundamentals(**overrides: object) -> np.ndarray:
    cfg = ModelConfig.from_preset("crash", {"traders.n_traders": 300, **overrides})
    model = ReflexivityModel(cfg, rng=7, steps=SHORT)
    for _ in range(SHORT):
        model.step()
    ts = model.datacollector.get_model_vars_dataframe()
    return ts[[f"fundamental_{s}" for s in model.symbols[1:]] + ["total_debt_usd"]].to_numpy()


def test_same_seed_same_news_whatever_the_leverage_or_population_size() -> None:
    base = fundamentals()
    for other in (fundamentals(**{"traders.max_leverage": 6.0}), fundamentals(**{"traders.n_traders": 1000})):
        np.testing.assert_array_equal(other[:, :-1], base[:, :-1])  # fundamental_* columns, bit for bit
        assert not np.array_equal(other[:, -1], base[:, -1])  # while the traders' borrowing did differ


def test_population_draws_do_not_depend_on_leverage() -> None:
    draws = []
    for max_leverage in (3.0, 6.0):
        cfg = ModelConfig.from_preset("baseline", {"traders.n_traders": 200, "traders.max_leverage": max_leverage})
        pool = LendingPool(cfg, n_suppliers=1)
        daily_vol = np.array([0.0] + [asset.volatility / np.sqrt(365.0) for asset in cfg.assets.values()])
        draws.append(draw_population(cfg.traders, len(cfg.assets), pool, np.random.default_rng(3), daily_vol))
    low, high = draws
    for name in ("equity", "strategy", "risk", "mode", "direction"):
        np.testing.assert_array_equal(getattr(low, name), getattr(high, name), err_msg=name)
    np.testing.assert_array_equal(low.assets, high.assets)
    # the same quantile of a wider range: never lower, and higher wherever the pool's cap does not bind
    assert (high.base_leverage >= low.base_leverage).all()
    assert (high.base_leverage > low.base_leverage).any()


def stop_loss_model() -> ReflexivityModel:
    cfg = ModelConfig.from_preset(
        "baseline",
        {
            "traders.n_traders": 20,
            "traders.strategy_mix": {"hodl": 1.0},
            "traders.risk_mix": {"stop_loss": 1.0},
            "traders.decision_interval_steps": 1e9,  # clocks never fire: only risk alerts wake traders
            "traders.reentry_delay_steps": 2,
            "traders.reaction_delay_steps": 0.0,  # alerts act in the step they ring
            "assets.ETH.volatility": 0.0,
            "assets.BTC.volatility": 0.0,
        },
    )
    return ReflexivityModel(cfg, rng=1, steps=40)


def test_a_re_entered_stop_loss_trader_is_not_woken_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    model = stop_loss_model()
    trader = model.traders[0]
    woken: list[int] = []
    phase = abm.model.batched_trader_phase

    def counted_phase(m: ReflexivityModel, order: list[int]) -> None:
        woken.extend(model.steps for i in order if i == trader.holder)
        phase(m, order)

    # count the steps the model wakes the trader in; the traders act as usual
    monkeypatch.setattr(abm.model, "batched_trader_phase", counted_phase)
    model.book.peak_equity[0] = 10.0 * trader.equity_usd(model.market.prices)  # as after a large earlier gain
    model.step()  # the drawdown alert wakes it: it stops out
    assert not trader.has_position() and trader.out_until > model.steps - 1
    while not trader.has_position():  # the delay passes; the next alert brings it back with fresh equity
        model.step()
        assert model.steps < 20, "the trader never re-entered"
    assert trader.peak_equity == pytest.approx(trader.equity_usd(model.market.prices), rel=0.05)
    reentered = len(woken)
    for _ in range(5):
        model.step()
    assert len(woken) == reentered  # its drawdown counts from the re-entry: no alert rings


def test_one_equity_formula_for_traders_the_alerts_and_the_snapshot() -> None:
    model = ReflexivityModel(ModelConfig.from_preset("crash", {"traders.n_traders": 50}), rng=2, steps=30)
    for _ in range(30):
        model.step()
    prices = model.market.prices
    engine, wallets = model.engine, model.wallets
    by_hand = np.array(
        [
            wallets.balances[i] @ prices
            + sum(
                float(engine.collateral[a] @ prices - engine.debt_tokens(a) @ prices)
                for a in np.flatnonzero(engine.owner[: engine.n] == i)
            )
            for i in range(len(model.traders))
        ]
    )
    np.testing.assert_allclose(model.book.equity(prices), by_hand, rtol=1e-12)
    np.testing.assert_allclose([t.equity_usd(prices) for t in model.traders], by_hand, rtol=1e-12)
    np.testing.assert_allclose(equity_snapshot(engine, model.book, prices).trader_equity, by_hand, rtol=1e-12)


def test_trader_state_has_one_owner() -> None:
    model = ReflexivityModel(ModelConfig.from_preset("baseline", {"traders.n_traders": 10}), rng=0, steps=5)
    trader, book = model.traders[3], model.book
    trader.out_until = 17
    trader.peak_equity = 123.0
    assert (book.out_until[3], book.peak_equity[3]) == (17, 123.0)
    assert trader.strategy == STRATEGIES[book.strategy[3]]
    assert trader.direction == STRATEGY_REGISTRY[trader.strategy].direction


def test_category_tables_agree_with_the_schema() -> None:
    assert set(STRATEGY_REGISTRY) == set(STRATEGIES)
    assert set(IMPACT_MODELS) == set(IMPACT_MODEL_NAMES)
    with pytest.raises(ConfigError, match="unknown key 'carry'"):
        ModelConfig.from_preset("baseline", {"traders.strategy_mix": {"carry": 1.0}})
    with pytest.raises(ConfigError, match="impact"):
        ModelConfig.from_preset("baseline", {"assets.ETH.impact": "quadratic"})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_registered_strategy_trades(strategy: str) -> None:
    cfg = ModelConfig.from_preset(
        "crash",
        {"traders.n_traders": 30, "traders.strategy_mix": {strategy: 1.0}, "traders.decision_interval_steps": 5.0},
    )
    model = ReflexivityModel(cfg, rng=4, steps=20)
    for _ in range(20):
        model.step()
    targets = [t.target_leverage() for t in model.traders]
    assert all(np.isfinite(targets)) and min(targets) >= 1.0
    assert (model.book.direction == STRATEGY_REGISTRY[strategy].direction).all()


def test_the_seed_is_stored_once_as_an_integer() -> None:
    drawn = ReflexivityModel(ModelConfig.from_preset("baseline", {"traders.n_traders": 10}), steps=3)
    assert isinstance(drawn.seed, int)
    again = ReflexivityModel(ModelConfig.from_preset("baseline", {"traders.n_traders": 10}), rng=drawn.seed, steps=3)
    np.testing.assert_array_equal(again.book.initial_equity, drawn.book.initial_equity)
    with pytest.raises(TypeError, match="rng must be an integer seed"):
        ReflexivityModel(preset="baseline", rng=np.random.default_rng(0))  # type: ignore[arg-type]


# the package's layers from the bottom; a module may import (at run time) only from its own layer or below
LAYERS = [
    {"abm.errors", "abm.io", "abm.numerics"},
    {"abm.protocol", "abm.config"},
    {"abm.market", "abm.lending", "abm.perps"},
    {"abm.agents"},
    {"abm.recording", "abm.invariants"},
    {"abm.model"},
]


def layer_of(module: str) -> int | None:
    for rank, names in enumerate(LAYERS):
        if any(module == name or module.startswith(name + ".") for name in names):
            return rank
    return None


def runtime_imports(path: Path) -> list[str]:
    """abm modules `path` imports outside `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("abm"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("abm")]
    return found


def test_nothing_lower_imports_anything_higher() -> None:
    root = Path(abm.__file__).parent
    checked = 0
    for path in sorted(root.rglob("*.py")):
        module = ".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")
        rank = layer_of(module)
        if rank is None:
            continue
        checked += 1
        for imported in runtime_imports(path):
            target = layer_of(imported)
            assert target is not None and target <= rank, f"{module} (layer {rank}) imports {imported}"
    assert checked > 20
