"""Free token balances of every holder (traders, liquidators, lenders): one (holders x assets) array."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from abm.errors import InvariantError


class OutsideWorld(Protocol):
    """The ledger of the rest of the world (`abm.market.Market`): where fresh tokens come from and costs go."""

    def pay_out(self, k: int, amount: float) -> None: ...

    def receive(self, k: int, amount: float) -> None: ...


# Rounding in long chains of float operations can leave -1e-12 where 0 is meant; below this we clamp, above it
# a negative balance is a bug and raises.
NEGATIVE_TOLERANCE = 1e-9


class Wallets:
    """Token balances (tokens) by holder and asset; numéraire in column 0."""

    def __init__(self, n_holders: int, symbols: list[str]) -> None:
        self.symbols = symbols
        self.balances = np.zeros((n_holders, len(symbols)))
        self.kinds: list[str] = [""] * n_holders  # 'trader', 'liquidator', 'lender' (for error messages)

    def credit(self, holder: int, asset: int, amount: float) -> None:
        self.balances[holder, asset] += amount

    def debit(self, holder: int, asset: int, amount: float) -> None:
        """Take `amount` tokens; more than the balance (beyond rounding) is a bug."""
        new = self.balances[holder, asset] - amount
        if new < 0:
            scale = max(1.0, abs(amount))
            if new < -NEGATIVE_TOLERANCE * scale:
                raise InvariantError(
                    f"wallet of {self.kinds[holder] or 'holder'} {holder}: {self.symbols[asset]} balance "
                    f"{self.balances[holder, asset]!r} cannot pay {amount!r}"
                )
            new = 0.0
        self.balances[holder, asset] = new

    def debit_many(self, holders: np.ndarray, asset: int, amounts: np.ndarray) -> None:
        """`debit` of `amounts[i]` tokens from each of `holders` (distinct), in one pass; checked before any changes."""
        new = self.balances[holders, asset] - amounts
        short = new < -NEGATIVE_TOLERANCE * np.maximum(1.0, np.abs(amounts))
        if short.any():
            i = int(np.flatnonzero(short)[0])
            self.debit(int(holders[i]), asset, float(amounts[i]))  # raises with the message naming the holder
        self.balances[holders, asset] = np.where(new < 0, 0.0, new)  # within rounding of 0: 0, as `debit`

    def fund_from_world(self, world: OutsideWorld, holder: int, asset: int, amount: float) -> None:
        """The rest of the world hands `amount` tokens of `asset` to `holder` (fresh equity, capital, flash loans)."""
        world.pay_out(asset, amount)
        self.credit(holder, asset, amount)

    def fund_many_from_world(self, world: OutsideWorld, holders: np.ndarray, asset: int, amounts: np.ndarray) -> None:
        """`fund_from_world` of `amounts[i]` tokens to each of `holders` (distinct): the world hands over the total."""
        world.pay_out(asset, float(amounts.sum()))
        self.balances[holders, asset] += amounts

    def pay_to_world(self, world: OutsideWorld, holder: int, asset: int, amount: float) -> None:
        """`holder` pays `amount` tokens of `asset` out of the model (gas, flash-loan repayment)."""
        self.debit(holder, asset, amount)
        world.receive(asset, amount)

    def balance(self, holder: int, asset: int) -> float:
        return float(self.balances[holder, asset])
