"""LiquidationHunter: capital that sells a risky asset down to a cluster of liquidation prices, lets the forced sales
of the cascade run, and buys back cheaper (docs/model.md, 3.3 Submodels: Adversaries).

Every few steps an idle hunter reads the lending book: for every account, the price of each risky asset at which
its health factor reaches 1 (`liquidation_prices`, vectorised over the margin engine's arrays), and the USD the
liquidators would sell when it is liquidated (close factor x debt x (1 + bonus)). Pushing the price down to a level
liquidates every long account above it, so each account's liquidation price (less an overshoot) is a candidate
target whose cascade is the sales of all accounts between it and the price now. For each candidate within reach of
its capital it prices the hunt with the linear-market formulas of `abm.protocol`: the gain from buying back after
the cascade (`hunt_gain`) less the cost of holding the push while the oracle catches up (`hold_cost`) and gas;
the densest cluster within reach is the target with the largest expected profit. If that exceeds
`hunters.min_profit_usd` it hunts: it sells short (tokens borrowed outside the model, `abm.agents.adversary`) to
bring the market to the target and holds it there until the oracle posts it, waits while the cascade runs (until
the asset has had no liquidation for `oracles.latency_steps` + 2 steps), then buys all the tokens back.

With `hunters.positions_visible = false` (privacy-preserving margin: accounts proven solvent without being shown)
the hunter sees only what such a pool still publishes: its reserve totals (each asset's collateral and the USD
debt) and the reserves' liquidation thresholds. It credits each asset with the share of the USD debt in proportion
to the asset's share of the risky collateral's value, so it knows the asset's aggregate loan-to-value over its
threshold m, and guesses the spread of the accounts around it with a distribution of fixed shape whose mean is m
(`protocol.guessed_debt_above`). That guess turns into candidate targets (price now x q, for a grid of q) and the
cascade each would set off, and the same planning prices them: it hunts when the guess says a hunt pays, and the
book decides whether it hits. The cryptography is not modelled, only what it hides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from abm.agents.adversary import Adversary
from abm.numerics import row_sums
from abm.protocol import (
    asset_liquidation_price,
    guessed_debt_above,
    hold_cost,
    hunt_gain,
    oracle_attack_hold_steps,
)

if TYPE_CHECKING:
    from abm.lending.margin import MarginEngine
    from abm.model import ReflexivityModel

IDLE, PUSH, WAIT = "idle", "push", "wait"
# The hidden hunter's candidate targets: the price now times q for q = 0.995, 0.99, ..., 0.005 (its guess has no
# accounts to aim at, so it prices a grid as fine as the visible hunter's overshoot).
GUESS_GRID = np.linspace(1.0, 0.0, 201)[1:-1]


def liquidation_prices(engine: MarginEngine, prices: np.ndarray, asset: int) -> np.ndarray:
    """Per account (rows of the engine): the price of `asset` (USD/token) at which its health factor reaches 1 with
    every other price at `prices` (`protocol.asset_liquidation_price`); NaN where no price of the asset does."""
    coll_usd, debt_usd = engine.values(prices)
    lt = np.where(engine.pool.collateral_enabled, engine.pool.liquidation_threshold, 0.0)
    weighted = coll_usd * lt
    w_other = np.maximum(row_sums(weighted) - weighted[:, asset], 0.0)
    d_other = np.maximum(row_sums(debt_usd) - debt_usd[:, asset], 0.0)
    return asset_liquidation_price(
        w_other, d_other, engine.collateral[: engine.n, asset], lt[asset], engine.debt_tokens()[:, asset]
    )


class LiquidationHunter(Adversary):
    """A liquidation hunter (docs/model.md, 3.3 Submodels: Adversaries). state: idle, push (selling the price down
    to `target`), wait (the oracle has posted it; the cascade runs). asset: the asset hunted now."""

    def __init__(self, model: ReflexivityModel, holder: int) -> None:
        cfg = model.config.hunters
        super().__init__(model, holder, cfg.capital_usd, cfg.gas_cost_usd)
        self.state = IDLE
        self.asset = 0
        self.target = 0.0  # the oracle price (USD/token) the hunt aims at
        self.since = 0  # step the current state began
        self.next_look = 0
        self.n_hunts = 0
        self.hunt_liquidations = 0  # liquidations of the hunted asset while it waited
        self.n_hits = 0  # hunts during which at least one account of the hunted asset was liquidated
        self.expected_usd = 0.0  # the expected profits of the hunts it started, summed (its plans' last field)
        self.n_losses = 0  # finished hunts whose mark-to-market profit (equity at the end less at the start) was < 0
        self._liquidations_at_start = 0
        self._equity_at_start = 0.0
        self.quiet_steps = 0  # consecutive steps without a liquidation of the hunted asset
        self._events_seen = 0
        self.last_plan: tuple[int, float, float, float] | None = None  # (asset, target, cascade USD, expected USD)

    # --- reading the book ---------------------------------------------------------------------------------------

    def targets(self, asset: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidate oracle targets for `asset` (USD/token, highest first) and the cascade each would set off (USD
        the liquidators would sell), from the accounts it can see (or its aggregate guess)."""
        m = self.model
        engine, pool, oracle = m.engine, m.pool, m.oracle.prices
        sale = pool.close_factor_default * (1.0 + float(pool.liquidation_bonus[asset]))
        if m.config.hunters.positions_visible:
            price = liquidation_prices(engine, oracle, asset)
            long = (
                engine.collateral[: engine.n, asset] * pool.liquidation_threshold[asset]
                > engine.debt_tokens()[:, asset]
            )
            volume = sale * row_sums(engine.values(oracle)[1])
        else:  # reserve totals only: the guessed spread of the book around its aggregate
            return self.guessed_targets(asset, sale)
        live = long & np.isfinite(price) & (price < oracle[asset])  # healthy long accounts the push would reach
        order = np.argsort(-price[live], kind="stable")
        overshoot = 1.0 - m.config.hunters.overshoot
        return price[live][order] * overshoot, np.cumsum(volume[live][order])

    def guessed_targets(self, asset: int, sale: float) -> tuple[np.ndarray, np.ndarray]:
        """`targets` from the reserve totals alone: the asset's share of the USD debt (its share of the risky
        collateral's value) over its collateral x LT is the aggregate ratio m; a push to the price now x q sets off
        the guessed share of that debt above q (`guessed_debt_above`) x `sale`. Empty when m is not in (0, 1)."""
        m = self.model
        engine, oracle = m.engine, m.oracle.prices
        value = engine.collateral[: engine.n].sum(axis=0) * oracle
        risky = value[1:].sum()
        debt = float(engine.debt_tokens()[:, 0].sum()) * (value[asset] / risky if risky > 0 else 0.0)
        weighted = value[asset] * float(m.pool.liquidation_threshold[asset])
        mean_ratio = debt / weighted if weighted > 0 else 0.0
        if not 0.0 < mean_ratio < 1.0:
            return np.empty(0), np.empty(0)
        cascade = sale * debt * guessed_debt_above(GUESS_GRID, mean_ratio)
        return oracle[asset] * GUESS_GRID * (1.0 - m.config.hunters.overshoot), cascade

    def plan(self) -> tuple[int, float, float, float] | None:
        """The best hunt now: (asset, oracle target, cascade USD, expected profit USD), or None if no target within
        reach of its capital is expected to pay."""
        m = self.model
        cfg, ocfg = m.config.hunters, m.config.oracles
        hold = float(oracle_attack_hold_steps(ocfg.twap_window_steps, ocfg.latency_steps + 1))  # +1: updaters' jitter
        best: tuple[int, float, float, float] | None = None
        for a in range(1, len(m.symbols)):
            target, cascade = self.targets(a)
            if not len(target):
                continue
            price, depth = m.market.price(a), m.market.effective_depth_of(a)
            push = np.log(price / target)
            reach = np.log1p(cfg.capital_usd / depth)  # the push whose tokens' notional is its capital
            ok = (push > 0) & (push <= reach)
            if not ok.any():
                continue
            decay = float(m.market.decay[a])
            expected = hunt_gain(push[ok], cascade[ok], depth) - hold_cost(push[ok], depth, hold, decay)
            expected = expected - (hold + 2.0) * cfg.gas_cost_usd
            i = int(np.argmax(expected))
            if best is None or expected[i] > best[3]:
                best = (a, float(target[ok][i]), float(cascade[ok][i]), float(expected[i]))
        return best

    # --- the step (phase 5, after the traders) ------------------------------------------------------------------

    def step(self) -> None:
        m = self.model
        t, cfg = m.steps, m.config.hunters
        new = self._new_liquidations()
        if self.state == IDLE and t >= self.next_look:
            best = self.plan()
            self.last_plan = best
            if best is not None and best[3] > cfg.min_profit_usd:
                self.asset, self.target = best[0], best[1]
                self.reference = m.market.prices.copy()
                self.state, self.since = PUSH, t
                self.n_hunts += 1
                self.expected_usd += best[3]
                self._liquidations_at_start = self.hunt_liquidations
                self._equity_at_start = self.equity_usd()
            else:
                self.next_look = t + 1
        if self.state == PUSH:
            if m.oracle.prices[self.asset] <= self.target * (1.0 + 1e-9):
                self.state, self.since, self.quiet_steps = WAIT, t, 0
            elif t - self.since >= cfg.max_push_steps:
                self._end_hunt()
                return
            else:
                self.push_to(self.asset, self.target)
                return
        if self.state == WAIT:
            self.hunt_liquidations += new
            self.quiet_steps = 0 if new else self.quiet_steps + 1
            calm = self.quiet_steps >= m.config.oracles.latency_steps + 2
            if calm or t - self.since >= cfg.max_wait_steps:
                self._end_hunt()
            elif m.oracle.prices[self.asset] > self.target:  # the oracle drifted back up: hold the push
                self.push_to(self.asset, self.target)

    def _end_hunt(self) -> None:
        self.n_hits += int(self.hunt_liquidations > self._liquidations_at_start)
        self.cover(self.asset)
        self.n_losses += int(self.equity_usd() < self._equity_at_start)
        self.state = IDLE
        self.next_look = self.model.steps + self.model.config.hunters.cooldown_steps

    def _new_liquidations(self) -> int:
        """Lending liquidations of the hunted asset recorded since its last look (the previous step's)."""
        events = self.model.recorder.events
        symbol = self.model.symbols[self.asset]
        new = sum(1 for e in events[self._events_seen :] if e["collateral_asset"] == symbol)
        self._events_seen = len(events)
        return new
