"""Fundamental value paths: correlated geometric Brownian motion plus scripted shocks and CSV replays
(docs/model.md, 3.3 Submodels: Fundamentals)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from abm.config.schema import ModelConfig, ReplayEvent, ShockEvent
from abm.errors import UserInputError
from abm.protocol import SECONDS_PER_YEAR, per_step_rate, spread_shock


def read_replay_csv(path: str | Path) -> np.ndarray:
    """Prices (USD/token) from a CSV with a `price` column (and optionally `step`, which must be 0, 1, 2, ...)."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "price" not in reader.fieldnames:
                raise UserInputError(f"replay file '{p}': needs a 'price' column (found {reader.fieldnames})")
            prices = []
            for line_no, row in enumerate(reader, start=2):
                try:
                    value = float(row["price"])
                except (TypeError, ValueError):
                    raise UserInputError(
                        f"replay file '{p}' line {line_no}: price {row['price']!r} is not a number"
                    ) from None
                if not np.isfinite(value) or value <= 0:
                    raise UserInputError(f"replay file '{p}' line {line_no}: price {value!r} must be > 0 and finite")
                prices.append(value)
    except FileNotFoundError:
        raise UserInputError(f"replay file '{p}' does not exist") from None
    if len(prices) < 2:
        raise UserInputError(f"replay file '{p}': needs at least 2 prices (found {len(prices)})")
    return np.asarray(prices)


class Fundamentals:
    """Log fundamental prices of the risky assets (column 0, the numéraire, stays at log 1 = 0).

    Each step: log f += (mu - sigma^2 / 2) dt + sigma sqrt(dt) z with z ~ N(0, C), C the configured constant
    correlation; plus scripted shocks (a total return spread evenly in log terms over their duration); replayed
    assets follow their CSV path (relative to its first price) instead of the GBM.
    """

    def __init__(self, config: ModelConfig, rng: np.random.Generator) -> None:
        self.rng = rng
        self.symbols = config.symbols
        self.n_assets = len(self.symbols)
        # a staked token (lst.*, listed last) has no news of its own: it follows its base (`derive`)
        self.staked = self.symbols.index(config.lst.symbol) if config.lst.enabled else None
        self.n_drawn = self.n_assets - 1 - (self.staked is not None)  # assets with their own news, 1..n_drawn
        if self.staked is not None:
            self.staked_base = self.symbols.index(config.lst.base)
            self.staking_growth = float(np.log1p(per_step_rate(config.lst.staking_apr, config.market.step_seconds)))
        assets = [config.assets[s] for s in self.symbols[1 : 1 + self.n_drawn]]
        self.dt = config.market.step_seconds / SECONDS_PER_YEAR  # years per step
        sigma = np.array([a.volatility for a in assets])
        mu = np.array([a.drift for a in assets])
        self.sigma = sigma
        self.drift_per_step = (mu - 0.5 * sigma**2) * self.dt
        self.sigma_per_step = sigma * np.sqrt(self.dt)  # the news' standard deviation per step (log units)
        k = len(assets)
        corr = np.full((k, k), config.market.correlation) + (1 - config.market.correlation) * np.eye(k)
        self.chol = np.linalg.cholesky(corr)  # the config bounds keep C positive definite for k >= 1 and rho > -1/(k-1)
        self.log_f = np.zeros(self.n_assets)
        self.log_f[1:] = np.log([config.assets[s].price for s in self.symbols[1:]])
        self.scheduled: dict[int, np.ndarray] = {}
        self.replay: dict[int, np.ndarray] = {}  # step -> (asset index, log value) overrides
        for ev in config.scenario.events:
            if isinstance(ev, ShockEvent):
                per_step = spread_shock(ev.size, ev.duration)
                idx = self.symbols.index(ev.asset)
                for t in range(ev.start, ev.start + ev.duration):
                    self.scheduled.setdefault(t, np.zeros(self.n_assets))[idx] += per_step
            elif isinstance(ev, ReplayEvent):
                self._add_replay(ev)
        self.replay_assets = np.zeros(self.n_assets, dtype=bool)

    def _add_replay(self, ev: ReplayEvent) -> None:
        prices = read_replay_csv(ev.path)
        idx = self.symbols.index(ev.asset)
        log_rel = np.diff(np.log(prices))
        for i, r in enumerate(log_rel):
            self.replay.setdefault(ev.start + i + 1, np.full(self.n_assets, np.nan))[idx] = r

    def prehistory(self, steps: int) -> np.ndarray:
        """(steps + 1, assets) log fundamental path of the `steps` steps before step 0, ending at today's prices.

        Correlated GBM only (no shocks or replays): the ordinary news before the run, drawn from the news stream
        before any step's news, so every run with the same seed has the same pre-history and the same path after.
        """
        z = self.rng.standard_normal((steps, self.n_drawn)) @ self.chol.T
        d = np.zeros((steps, self.n_assets))
        d[:, 1 : 1 + self.n_drawn] = self.drift_per_step + self.sigma_per_step * z
        self.derive(d.T)
        back = np.concatenate([np.cumsum(d[::-1], axis=0)[::-1], np.zeros((1, self.n_assets))])
        return self.log_f - back

    def step(self, t: int) -> np.ndarray:
        """Advance to step t; return the change of log fundamental per asset (column 0 is 0)."""
        z = self.chol @ self.rng.standard_normal(self.n_drawn)
        d = np.zeros(self.n_assets)
        d[1 : 1 + self.n_drawn] = self.drift_per_step + self.sigma_per_step * z
        override = self.replay.get(t)
        if override is not None:
            mask = ~np.isnan(override)
            d[mask] = override[mask]
        self.derive(d)
        shock = self.scheduled.get(t)
        if shock is not None:
            d += shock
        self.log_f += d
        return d

    def derive(self, d: np.ndarray) -> None:
        """Set the staked token's log move (row `staked` of `d`, assets first) to its base's plus the staking
        yield: f_token = f_base x exchange rate x peg, the peg moving only by scripted shocks added after this."""
        if self.staked is not None:
            d[self.staked] = d[self.staked_base] + self.staking_growth

    @property
    def prices(self) -> np.ndarray:
        """Fundamental prices (USD/token), numéraire first."""
        return np.exp(self.log_f)
