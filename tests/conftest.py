"""Shared fixtures: a small hand-wired system (pool, wallets, market, margin engine) without agents."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from abm.config import ModelConfig
from abm.lending import LendingPool, MarginEngine, Wallets
from abm.market import Market


@dataclass
class System:
    """The stateful mechanics of the model wired as `ReflexivityModel` wires them, with no agents.

    Assets are USD (0), ETH (1), BTC (2) as in the baseline preset; prices are the initial fundamentals.
    """

    config: ModelConfig
    pool: LendingPool
    wallets: Wallets
    market: Market
    engine: MarginEngine
    prices: np.ndarray  # oracle prices the protocol checks against (USD/token)

    def fund(self, holder: int, asset: int, amount: float) -> None:
        """Bring tokens in from the outside world (as the model does for initial equity and supply)."""
        self.wallets.fund_from_world(self.market, holder, asset, amount)

    def state(self, market: bool = True) -> dict[str, np.ndarray]:
        """Copies of every piece of state a position change may touch: wallets, accounts, the pool's cash and scaled
        borrows, and (`market`) the market's inventory and impact."""
        eng, pool = self.engine, self.pool
        out = {
            "wallets": self.wallets.balances.copy(),
            "collateral": eng.collateral[: eng.n].copy(),
            "scaled_debt": eng.scaled_debt[: eng.n].copy(),
            "cash": pool.cash.copy(),
            "scaled_borrows": pool.scaled_borrows.copy(),
        }
        if market:
            out.update(inventory=self.market.inventory.copy(), impact=self.market.m.copy())
        return out

    def totals(self) -> np.ndarray:
        """Tokens per asset over every ledger: wallets, accounts' collateral, pool cash, the outside world's change."""
        eng = self.engine
        return (
            self.wallets.balances.sum(axis=0)
            + eng.collateral[: eng.n].sum(axis=0)
            + self.pool.cash
            + self.market.world_net
        )

    def assert_conserved(self, before: np.ndarray) -> None:
        """`totals()` equal `before` to float residue: 1e-12 of the tokens inside the model (the world's change
        starts at 0, so a relative tolerance on the totals themselves would mean nothing)."""
        eng = self.engine
        inside = self.wallets.balances.sum(axis=0) + eng.collateral[: eng.n].sum(axis=0) + self.pool.cash
        np.testing.assert_allclose(self.totals(), before, rtol=0, atol=1e-12 * max(float(inside.max()), 1.0))


SystemFactory = Callable[..., System]


@pytest.fixture
def make_system() -> SystemFactory:
    """Build a `System` from the baseline preset with dotted overrides (make_system({"pool.bad_debt_policy": ...}))
    or from a given `config`."""

    def build(
        overrides: Mapping[str, Any] | None = None,
        n_holders: int = 6,
        n_suppliers: int = 2,
        config: ModelConfig | None = None,
    ) -> System:
        config = config or ModelConfig.from_preset("baseline", overrides)
        prices = np.array([1.0] + [config.assets[s].price for s in config.symbols[1:]])
        market = Market(config, np.log(prices))
        wallets = Wallets(n_holders, config.symbols)
        pool = LendingPool(config, n_suppliers=n_suppliers)
        engine = MarginEngine(pool, wallets, market, capacity=4)
        return System(config, pool, wallets, market, engine, prices.copy())

    return build


@pytest.fixture
def system(make_system: SystemFactory) -> System:
    """The baseline system; holder 0 has supplied 1M USD, 200 ETH and 5 BTC to the pool (supplier 0)."""
    s = make_system()
    for asset, amount in ((0, 1_000_000.0), (1, 200.0), (2, 5.0)):
        s.fund(0, asset, amount)
        s.pool.supply(0, 0, asset, amount, s.wallets)
    return s
