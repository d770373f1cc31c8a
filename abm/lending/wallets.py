"""Free token balances of every holder (traders, liquidators, lenders): one (holders x assets) array."""

from __future__ import annotations

import numpy as np

from abm.errors import InvariantError

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

    def balance(self, holder: int, asset: int) -> float:
        return float(self.balances[holder, asset])
