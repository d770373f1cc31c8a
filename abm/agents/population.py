"""Drawing the trader population (docs/model.md, 3.1 Initialisation): equity, categories, assets, base leverage.

All draws come from one generator (the run's population stream), in a fixed order, and none depends on the
leverage settings: the base leverage is drawn as a quantile u in [0, 1) and only then scaled to
[leverage_min, max_leverage] and capped. So changing leverage changes each trader's leverage, not who it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from abm.agents.strategies import STRATEGY_REGISTRY
from abm.config.schema import MARGIN_MODES, RISK_STYLES, STRATEGIES, TraderConfig
from abm.lending.pool import LendingPool


@dataclass(frozen=True)
class Population:
    """Per-trader draws: equity (USD), category codes (indices into the schema's name tuples), direction (+1 long,
    -1 short), risky assets held ((traders, assets per trader), ascending per row), base leverage (exposure /
    equity), the highest leverage the trader ever takes (`leverage_cap`) and the quantile in [0, 1) its base
    leverage was drawn at (`leverage_quantile`: a trader placed on another venue keeps it, under that venue's
    cap)."""

    equity: np.ndarray
    strategy: np.ndarray
    risk: np.ndarray
    mode: np.ndarray
    direction: np.ndarray
    assets: np.ndarray
    base_leverage: np.ndarray
    leverage_cap: np.ndarray
    leverage_quantile: np.ndarray


def draw_population(
    cfg: TraderConfig, n_risky: int, pool: LendingPool, rng: np.random.Generator, daily_vol: np.ndarray
) -> Population:
    """Draw `cfg.n_traders` traders holding `cfg.assets_per_trader` of the `n_risky` risky assets (indices 1..).

    daily_vol: per asset, numeraire first, the daily standard deviation of log returns (the market's calm daily
    volatility), the unit of the opening margin `cfg.liquidation_distance_sigmas`.
    """
    n = cfg.n_traders
    equity = draw_equity(cfg, rng)
    strategy = draw_mix(cfg.strategy_mix, STRATEGIES, n, rng)
    risk = draw_mix(cfg.risk_mix, RISK_STYLES, n, rng)
    mode = draw_mix(cfg.margin_mode_mix, MARGIN_MODES, n, rng)
    assets = draw_assets(n, n_risky, cfg.assets_per_trader, rng)
    quantile = rng.random(n)
    direction = np.array([STRATEGY_REGISTRY[name].direction for name in STRATEGIES])[strategy]
    prudent = risk == RISK_STYLES.index("prudent")
    distance = cfg.liquidation_distance_sigmas * daily_vol[assets].max(axis=1)
    # the cap depends on the trader's assets, side and prudence only: computed once per combination that occurs
    cap = per_combination(
        lambda i: leverage_cap(
            pool, assets[i].tolist(), bool(direction[i] < 0), bool(prudent[i]), cfg.prudent_buffer, float(distance[i])
        ),
        np.column_stack([direction < 0, prudent, assets]),
    )
    leverage = np.minimum(base_leverage(cfg, quantile), cap)
    return Population(equity, strategy, risk, mode, direction, assets, leverage, cap, quantile)


def per_combination(value: Callable[[int], float], keys: np.ndarray) -> np.ndarray:
    """`value(i)` for every row i of `keys` ((rows, columns) of non-negative integers: what the value depends on),
    computed once per distinct row, at the first row that has it, and shared by the rows with the same key."""
    code = np.ravel_multi_index(keys.T.astype(np.int64), keys.max(axis=0).astype(np.int64) + 1)
    if int(code.max()) < 4 * len(code):  # few possible keys (always, in practice): count instead of sorting rows
        # `np.unique(code, return_index=True, return_inverse=True)`: each key's first row, the keys ascending
        first = np.full(int(code.max()) + 1, len(code))
        np.minimum.at(first, code, np.arange(len(code)))
        occurs = first < len(code)
        first, inverse = first[occurs], (np.cumsum(occurs) - 1)[code]
    else:
        _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return np.array([value(int(i)) for i in first.tolist()], dtype=float)[inverse.reshape(-1)]


def base_leverage(cfg: TraderConfig, quantile: np.ndarray) -> np.ndarray:
    """The base leverage at each drawn quantile in [0, 1): uniform on [leverage_min, max_leverage], before caps."""
    return cfg.leverage_min + quantile * (cfg.max_leverage - cfg.leverage_min)


def draw_equity(cfg: TraderConfig, rng: np.random.Generator) -> np.ndarray:
    """Heavy-tailed shares of the traders' total equity (Pareto with the configured tail index), USD.

    No trader holds more than `equity_max_share` of the total (or 2 / n_traders if that is larger), so that a
    small population is not one whale whose rebalancing alone moves the market.
    """
    raw = (1.0 - rng.random(cfg.n_traders)) ** (-1.0 / cfg.equity_tail_alpha)
    share = raw / raw.sum()
    cap = max(cfg.equity_max_share, 2.0 / cfg.n_traders)
    for _ in range(50):  # clip and hand the excess to the others in proportion; converges in a few rounds
        over = share > cap
        if not over.any():
            break
        excess = float((share[over] - cap).sum())
        share[over] = cap
        share[~over] += excess * share[~over] / share[~over].sum()
    return cfg.total_equity_usd * share


def draw_assets(n: int, n_risky: int, per_trader: int, rng: np.random.Generator) -> np.ndarray:
    """Each of n traders' `per_trader` distinct risky assets (indices 1..n_risky, ascending per row), uniform over
    the subsets: the first `per_trader` of a random permutation of the assets, one uniform key per (trader, asset)
    ranked in one pass for the whole population."""
    keys = rng.random((n, n_risky))
    if per_trader == 1:  # the first of the permutation: the smallest key (the first of equal ones, as the stable sort)
        return keys.argmin(axis=1)[:, None] + 1
    chosen = np.argsort(keys, axis=1, kind="stable")[:, :per_trader]
    return np.sort(chosen, axis=1) + 1


def draw_mix(mix: Mapping[str, float], names: tuple[str, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    """n category codes (indices into `names`) drawn with the mix's weights (names missing from it weigh 0)."""
    weights = np.array([mix.get(name, 0.0) for name in names], dtype=float)
    return rng.choice(len(names), size=n, p=weights / weights.sum())


def leverage_cap(
    pool: LendingPool,
    assets: list[int],
    short: bool,
    prudent: bool,
    prudent_buffer: float,
    liquidation_distance: float = 0.0,
) -> float:
    """Highest leverage (exposure / equity, dimensionless) a trader takes, at opening and whenever it levers up.

    Three limits, the lowest binding: what the pool's LTVs allow, with a 5% margin so positions start healthy; for
    a prudent trader, 10% above its health-factor buffer `prudent_buffer` (else it would sell again at once); and
    the opening margin: a position whose liquidation is at least `liquidation_distance` away, a log price move
    against it (dimensionless; the model passes a number of daily standard deviations), i.e. health factor
    >= exp(liquidation_distance). 0 turns the opening margin off.
    """
    ltv = pool.ltv[0] if short else float(min(pool.ltv[a] for a in assets))
    cap = 0.95 * (ltv / (1.0 - ltv) if short else 1.0 / (1.0 - ltv))
    lt = pool.liquidation_threshold[0] if short else float(min(pool.liquidation_threshold[a] for a in assets))
    if prudent:
        cap = min(cap, leverage_at_health(1.1 * prudent_buffer, lt, short))
    if liquidation_distance > 0:
        cap = min(cap, leverage_at_health(float(np.exp(liquidation_distance)), lt, short))
    return float(cap)


def leverage_at_health(health_factor: float, liquidation_threshold: float, short: bool) -> float:
    """Leverage (exposure / equity) of a fresh position whose health factor is `health_factor` (> the liquidation
    threshold LT, a fraction). Long (collateral L, debt L - 1, in equity units): HF = L LT / (L - 1), so
    L = HF / (HF - LT); short (USD collateral 1 + L, debt L): HF = (1 + L) LT / L, so L = LT / (HF - LT).
    A log move of d against the position divides its health factor by exp(d)."""
    lt = liquidation_threshold
    return (lt if short else health_factor) / (health_factor - lt)


def perp_leverage_cap(
    initial_margin_rate: float,
    maintenance_margin_rate: float,
    short: bool,
    prudent: bool,
    prudent_buffer: float,
    liquidation_distance: float = 0.0,
) -> float:
    """Highest leverage (notional / equity, dimensionless) a trader takes in a perpetual, the analogue of
    `leverage_cap`: what the initial margin allows (rate of the smallest tier), with a 5% margin; for a prudent
    trader, equity at 1.1 x `prudent_buffer` times the maintenance margin; and the opening margin: a log move of
    `liquidation_distance` against the position leaves equity at least the maintenance margin (long:
    1/L >= 1 - e^-d + m e^-d; short: 1/L >= e^d - 1 + m e^d). Rates are fractions of notional."""
    m = maintenance_margin_rate
    cap = 0.95 / initial_margin_rate
    if prudent:
        cap = min(cap, 1.0 / (1.1 * prudent_buffer * m))
    if liquidation_distance > 0:
        d = liquidation_distance
        loss = (np.exp(d) - 1.0 + m * np.exp(d)) if short else (1.0 - np.exp(-d) + m * np.exp(-d))
        cap = min(cap, 1.0 / float(loss))
    return float(cap)
