"""LoopingTrader: levers a liquid-staking token against its base asset (docs/model.md, 3.3 Submodels: Staking
collateral and looping).

A looper deposits the staked token, borrows the base asset at the token's LTV, buys more of the token and
redeposits it, n times: leverage 1 + ltv + ... + ltv^n (`abm.protocol.loop_leverage`). A flash loan does the whole
loop in one transaction, so the model builds the end state at once (`MarginEngine.lever_loop`): collateral worth
`lst.loop_leverage` times the looper's equity, debt of the base asset worth the rest. Its debt is in the base asset,
so the base asset's price cancels out of its health factor and only the token's price in base terms (the peg)
matters (`abm.protocol.looped_health_factor`). Loopers then hold the loop through the run, earning the staking
yield over the borrow rate: they neither top up nor unwind, so what happens to them is the liquidators' doing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from abm.protocol import loops_for_leverage

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


def looper_leverages(loop_leverage: float, spread: float, n_loopers: int) -> np.ndarray:
    """Each looper's leverage: evenly spaced on loop_leverage x [1 - spread, 1 + spread] (mean loop_leverage),
    floored at 1 (no loop); all at loop_leverage with no spread or one looper."""
    if n_loopers <= 1 or spread == 0:
        return np.full(n_loopers, float(loop_leverage))
    return np.maximum(loop_leverage * np.linspace(1.0 - spread, 1.0 + spread, n_loopers), 1.0)


class LoopingTrader(mesa.Agent):
    """A looper. holder: its wallet row; token, base: asset indices of the staked token and of its base; account:
    its one (cross) lending account."""

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, holder: int, token: int, base: int) -> None:
        super().__init__(model)
        self.holder = holder
        self.token = token
        self.base = base
        self.account = model.engine.open_account(holder, "cross")

    def loops(self, leverage: float) -> int:
        """Deposit-borrow-buy rounds a loop without a flash loan would need to reach `leverage`."""
        return int(loops_for_leverage(leverage, float(self.model.pool.ltv[self.token])))

    def open_genesis(self, equity_usd: float, leverage: float) -> bool:
        """Fund `equity_usd` from the outside world and loop it to `leverage` (collateral / equity) at the
        fundamentals (a position that exists before the run). Returns whether the pool lent the base asset."""
        m = self.model
        m.wallets.fund_from_world(m.market, self.holder, 0, equity_usd)
        oracle = m.oracle.prices
        borrow = (leverage - 1.0) * equity_usd / float(np.exp(m.fundamentals.log_f[self.base]))
        return m.engine.lever_loop(self.account, self.token, self.base, borrow, equity_usd, oracle, m.steps, True)

    def leverage(self, prices: np.ndarray) -> float:
        """Collateral value over equity (USD at `prices`); NaN without equity."""
        engine = self.model.engine
        coll = float(engine.collateral[self.account] @ prices)
        equity = float(engine.account_equity(prices, [self.account])[0])
        return coll / equity if equity > 0 else float("nan")
