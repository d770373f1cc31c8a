"""Lender: supplies the pool's reserves, chases the supply rate against an outside rate, and runs when frightened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import mesa
import numpy as np

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


class Lender(mesa.Agent):
    """One supplier of every reserve. `holder` is its wallet row; `supplier` its row in the pool's positions."""

    model: ReflexivityModel

    def __init__(self, model: ReflexivityModel, holder: int, supplier: int) -> None:
        super().__init__(model)
        self.holder = holder
        self.supplier = supplier
        self.running = np.zeros(len(model.symbols), dtype=bool)  # per reserve: is this lender running now?

    def step(self, view: LenderView) -> None:
        """Act on the pool as published at the start of the lenders' phase (`view`, the same for every lender)."""
        m = self.model
        cfg = m.config.lenders
        pool = m.pool
        balances = pool.supplier_scaled[self.supplier] * pool.supply_index
        wallets = m.wallets.balances[self.holder]
        self.running = view.panic & (balances > 0)
        for a in np.flatnonzero(self.running):
            pool.withdraw(self.supplier, self.holder, int(a), cfg.run_fraction * balances[a], m.wallets, view.price[a])
        for a in np.flatnonzero(~view.panic & (view.move != 0) & ((balances > 0) | (wallets > 0))):
            move = view.move[a]
            if move > 0:
                amount = min(move * (balances[a] + wallets[a]), wallets[a])
                pool.supply(self.supplier, self.holder, int(a), amount, m.wallets)
            else:
                pool.withdraw(
                    self.supplier, self.holder, int(a), min(-move, 1.0) * balances[a], m.wallets, view.price[a]
                )


@dataclass(frozen=True)
class LenderView:
    """What every lender sees at the start of its phase, per reserve: panic flags, the share of funds to move
    toward the better rate this step (signed), and oracle prices (USD/token)."""

    panic: np.ndarray
    move: np.ndarray
    price: np.ndarray

    @classmethod
    def of(cls, model: ReflexivityModel) -> LenderView:
        cfg = model.config.lenders
        pool = model.pool
        util, _, supply_rate = pool.rates()
        supplied = pool.supplied
        with np.errstate(divide="ignore", invalid="ignore"):
            bad_ratio = np.where(supplied > 0, pool.bad_debt_tokens / (supplied + pool.bad_debt_tokens), 0.0)
        panic = (util > cfg.panic_utilisation) | (bad_ratio > cfg.panic_bad_debt_ratio)
        outside = np.array([model.config.reserve(s).outside_rate for s in model.symbols])
        # a share of funds proportional to the rate gap (in %/yr), per day, scaled to one step
        move = cfg.rate_sensitivity * (supply_rate - outside) * 100.0 * model.config.market.step_seconds / 86400.0
        return cls(panic=panic, move=move, price=model.oracle.prices.copy())
