"""The shared lending pool: one reserve per asset, Aave-style indices, rates, the bad-debt waterfall
(docs/model.md, 3.3 Submodels: Interest, Bad debt).

State per reserve (arrays over assets, numéraire at 0), in tokens of that asset:
- cash: idle tokens; borrows = scaled_borrows * borrow_index; supplied = scaled_supply * supply_index;
- reserves: the protocol's own claim (its insurance fund).
The pool identity cash + borrows = supplied + reserves holds after every operation. Collateral deposited by
accounts is escrowed in the margin engine and never lent out (as in Compound v3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from abm.config.schema import ModelConfig
from abm.errors import InvariantError
from abm.lending.wallets import Wallets
from abm.numerics import running_total
from abm.protocol import (
    compiled_kinked_borrow_rate,
    compiled_reserve_utilisation,
    compiled_supplier_rate,
    per_step_rate,
)


@dataclass(frozen=True)
class WriteOff:
    """One bad-debt write-off and who bore it (tokens of `asset`; USD at the oracle price of the step)."""

    step: int
    account: int
    asset: str
    amount: float
    amount_usd: float
    reserves_usd: float
    lenders_usd: float
    dilution_usd: float


class LendingPool:
    """Reserves, supplier positions (scaled), interest accrual and write-offs."""

    def __init__(self, config: ModelConfig, n_suppliers: int) -> None:
        self.symbols = config.symbols
        n = len(self.symbols)
        self.cash = np.zeros(n)
        self.scaled_borrows = np.zeros(n)
        self.borrow_index = np.ones(n)
        self.scaled_supply = np.zeros(n)
        self.supply_index = np.ones(n)
        self.reserves = np.zeros(n)
        self.supplier_scaled = np.zeros((n_suppliers, n))
        self.bad_debt_tokens = np.zeros(n)  # cumulative, per reserve
        self.bad_debt_usd = 0.0
        self.lender_loss_usd = 0.0
        self.dilution_usd = 0.0
        self.reserves_loss_usd = 0.0
        self.unmet_withdrawals = np.zeros(n)  # tokens requested but not paid (no cash) in the latest lenders' phase
        self.write_offs: list[WriteOff] = []
        self._version = 0
        self._rates_version = -1
        self.params_version = 0  # counts refresh_params calls (caches of derived parameters key on it)
        self.refresh_params(config)

    def refresh_params(self, config: ModelConfig) -> None:
        """(Re)read the reserves' risk and rate parameters."""
        res = [config.reserve(s) for s in self.symbols]
        self.ltv = np.array([r.ltv for r in res])
        self.liquidation_threshold = np.array([r.liquidation_threshold for r in res])
        self.liquidation_bonus = np.array([r.liquidation_bonus for r in res])
        self.reserve_factor = np.array([r.reserve_factor for r in res])
        self.base_rate = np.array([r.base_rate for r in res])
        self.slope1 = np.array([r.slope1 for r in res])
        self.slope2 = np.array([r.slope2 for r in res])
        self.optimal = np.array([r.optimal_utilisation for r in res])
        self.collateral_enabled = np.array([r.collateral_enabled for r in res])
        self.borrow_enabled = np.array([r.borrow_enabled for r in res])
        self.step_seconds = config.market.step_seconds
        self.policy = config.pool.bad_debt_policy
        self.close_factor_default = config.pool.close_factor
        self.close_factor_full_below = config.pool.close_factor_full_below
        self.dust_usd = config.pool.dust_usd
        self._version += 1
        self.params_version += 1

    # --- derived quantities (tokens; rates per year) --------------------------------------------------

    @property
    def borrows(self) -> np.ndarray:
        return self.scaled_borrows * self.borrow_index

    @property
    def supplied(self) -> np.ndarray:
        return self.scaled_supply * self.supply_index

    def rates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(utilisation, borrow rate, supply rate) per reserve; rates per year. Recomputed only after a
        reserve's cash or borrows changed (`_version` counts those changes). The arguments are the pool's own
        float arrays, valid by construction (the parameters were validated with the configuration), so the
        formulas run unchecked and compiled (`reserve_rates`): this runs several times a step."""
        if self._rates_version != self._version:
            self._rates = reserve_rates(
                self.cash,
                self.scaled_borrows,
                self.borrow_index,
                self.base_rate,
                self.slope1,
                self.slope2,
                self.optimal,
                self.reserve_factor,
            )
            self._rates_version = self._version
        return self._rates

    def utilisation(self) -> np.ndarray:
        return self.rates()[0]

    def borrow_rates(self) -> np.ndarray:
        return self.rates()[1]

    def supply_rates(self) -> np.ndarray:
        return self.rates()[2]

    def touch(self) -> None:
        """Note that reserves' cash or supply changed outside the methods here (the lenders' compiled phase): the
        rates are recomputed when next read."""
        self._version += 1

    def supplier_balance(self, supplier: int, asset: int) -> float:
        return float(self.supplier_scaled[supplier, asset] * self.supply_index[asset])

    # --- suppliers ------------------------------------------------------------------------------------

    def supply(self, supplier: int, holder: int, asset: int, amount: float, wallets: Wallets) -> None:
        """Move `amount` tokens from the holder's wallet into the reserve, credited to `supplier`."""
        if amount <= 0:
            return
        wallets.debit(holder, asset, amount)
        supply_tokens(self.cash, self.scaled_supply, self.supplier_scaled, self.supply_index, supplier, asset, amount)
        self._version += 1

    def begin_withdrawals(self) -> None:
        """Start a new round of withdrawal requests: `unmet_withdrawals` counts this round's unpaid requests only
        (a lender asking again next step is the same unmet demand, not more of it)."""
        self.unmet_withdrawals[:] = 0.0

    def withdraw(self, supplier: int, holder: int, asset: int, amount: float, wallets: Wallets) -> float:
        """Withdraw up to `amount` tokens, limited by the supplier's balance and the reserve's cash.

        The part the cash cannot meet is added to `unmet_withdrawals[asset]` (tokens). Returns the tokens withdrawn.
        """
        got = withdraw_tokens(
            self.cash,
            self.scaled_supply,
            self.supplier_scaled,
            self.supply_index,
            self.unmet_withdrawals,
            supplier,
            asset,
            amount,
        )
        if got > 0:
            wallets.credit(holder, asset, got)
            self._version += 1
        return got

    # --- borrowers (called by the margin engine, which keeps each account's scaled debt) --------------

    def lend_out(self, asset: int, amount: float) -> float:
        """Cash leaves the reserve as a loan; returns the scaled debt to book on the account."""
        if amount > self.cash[asset] * (1 + 1e-12):
            raise InvariantError(f"pool {self.symbols[asset]}: loan {amount} exceeds cash {self.cash[asset]}")
        self.cash[asset] = max(self.cash[asset] - amount, 0.0)
        self._version += 1
        scaled = amount / self.borrow_index[asset]
        self.scaled_borrows[asset] += scaled
        return scaled

    def lend_out_many(self, assets: np.ndarray, amounts: np.ndarray) -> np.ndarray:
        """`lend_out` of each loan in order (`amounts[i]` >= 0 tokens of `assets[i]`), in one pass: returns the scaled
        debt of each loan; each reserve's cash and scaled borrows are what the loans one at a time leave, bit for
        bit (each total added up in the loans' order). Raises, changing nothing, if the loans take more than the
        cash."""
        reserves = np.unique(assets).tolist()
        left = self.cash.copy()
        for a in reserves:
            left[a] = running_total(float(self.cash[a]), -amounts[assets == a])
        if (left < 0).any():
            a = int(np.flatnonzero(left < 0)[0])
            raise InvariantError(f"pool {self.symbols[a]}: loans exceed cash {self.cash[a]} by {-left[a]}")
        scaled = amounts / self.borrow_index[assets]
        for a in reserves:
            self.scaled_borrows[a] = running_total(float(self.scaled_borrows[a]), scaled[assets == a])
        self.cash[:] = left
        self._version += 1
        return scaled

    def take_repayment(self, asset: int, amount: float) -> float:
        """Cash comes back; returns the scaled debt to remove from the account."""
        self.cash[asset] += amount
        scaled = amount / self.borrow_index[asset]
        self.scaled_borrows[asset] = max(self.scaled_borrows[asset] - scaled, 0.0)
        self._version += 1
        return scaled

    def take_income(self, asset: int, amount: float) -> None:
        """Tokens the protocol earns (a liquidation auction's penalty, raised beyond the debt) go to the reserves."""
        self.cash[asset] += amount
        self.reserves[asset] += amount
        self._version += 1

    # --- interest -------------------------------------------------------------------------------------

    def accrue(self) -> None:
        """Accrue one step of interest: the borrow index grows by r * dt; the reserve factor goes to reserves."""
        rate = per_step_rate(self.borrow_rates(), self.step_seconds, check=False)  # the pool's own valid rates
        accrue_interest(
            rate,
            self.scaled_borrows,
            self.borrow_index,
            self.reserve_factor,
            self.reserves,
            self.scaled_supply,
            self.supply_index,
        )
        self._version += 1

    # --- bad debt -------------------------------------------------------------------------------------

    def write_off(self, step: int, account: int, asset: int, scaled_debt: float, price: float, market) -> WriteOff:
        """Write off an account's residual debt (scaled) in `asset` through the waterfall (docs/model.md, 3.3 Submodels: Bad debt).

        Reserves first; then `socialize` (haircut the supply index, lenders lose) or `dilute` (the protocol
        sells newly minted governance tokens to the outside market for the asset, lenders whole).
        price: oracle price of the asset (USD/token), for the USD record.
        """
        amount = scaled_debt * self.borrow_index[asset]
        self.scaled_borrows[asset] = max(self.scaled_borrows[asset] - scaled_debt, 0.0)
        from_reserves = min(amount, float(self.reserves[asset]))
        self.reserves[asset] -= from_reserves
        rest = amount - from_reserves
        lenders = dilution = 0.0
        if rest > 0:
            if self.policy == "socialize":
                supplied = float(self.supplied[asset])
                haircut = min(rest / supplied, 1.0) if supplied > 0 else 0.0
                if haircut < 1.0:
                    self.supply_index[asset] *= 1.0 - haircut
                else:  # lenders lost everything: their positions go to 0 and a fresh index keeps the reserve usable
                    self.scaled_supply[asset] = 0.0  # (an index of 0 would make every later supply divide by 0)
                    self.supplier_scaled[:, asset] = 0.0
                    self.supply_index[asset] = 1.0
                lenders = rest
            else:
                market.pay_out(asset, rest)  # bought from the world with minted governance tokens
                self.cash[asset] += rest
                dilution = rest
        self.bad_debt_tokens[asset] += amount
        self._version += 1
        rec = WriteOff(
            step=step,
            account=account,
            asset=self.symbols[asset],
            amount=amount,
            amount_usd=amount * price,
            reserves_usd=from_reserves * price,
            lenders_usd=lenders * price,
            dilution_usd=dilution * price,
        )
        self.bad_debt_usd += rec.amount_usd
        self.lender_loss_usd += rec.lenders_usd
        self.dilution_usd += rec.dilution_usd
        self.reserves_loss_usd += rec.reserves_usd
        self.write_offs.append(rec)
        return rec

    def identity_gap(self) -> np.ndarray:
        """cash + borrows - (supplied + reserves) per reserve (tokens); ~0 always."""
        return self.cash + self.borrows - self.supplied - self.reserves


# --- rates and interest, compiled: the pool's arrays are a few reserves long, where numpy spends its time in calls --


@njit(cache=True, nogil=True)
def reserve_rates(
    cash: np.ndarray,
    scaled_borrows: np.ndarray,
    borrow_index: np.ndarray,
    base: np.ndarray,
    slope1: np.ndarray,
    slope2: np.ndarray,
    optimal: np.ndarray,
    reserve_factor: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(utilisation, borrow rate, supply rate) of each reserve (fractions; rates per year) from its cash and
    borrows (tokens; borrows = scaled_borrows * borrow_index): `protocol.utilisation`, `protocol.borrow_rate` and
    `protocol.supply_rate`, their one-reserve formulas compiled inline (`protocol.reserve_utilisation`,
    `kinked_borrow_rate`, `supplier_rate`), in one call instead of twenty numpy calls on arrays of a few reserves."""
    n = len(cash)
    u, br, sr = np.empty(n), np.empty(n), np.empty(n)
    for a in range(n):
        u[a] = compiled_reserve_utilisation(cash[a], scaled_borrows[a] * borrow_index[a])
        br[a] = compiled_kinked_borrow_rate(u[a], base[a], slope1[a], slope2[a], optimal[a])
        sr[a] = compiled_supplier_rate(br[a], u[a], reserve_factor[a])
    return u, br, sr


@njit(cache=True, nogil=True)
def accrue_interest(
    rate: np.ndarray,
    scaled_borrows: np.ndarray,
    borrow_index: np.ndarray,
    reserve_factor: np.ndarray,
    reserves: np.ndarray,
    scaled_supply: np.ndarray,
    supply_index: np.ndarray,
) -> None:
    """One step of interest at `rate` (per step, per reserve), in place: the borrow index grows by the rate; of
    the interest (tokens), the reserve factor's share goes to the reserves and the rest grows the supply index,
    or also goes to the reserves where nobody supplies (all withdrew), so the pool identity holds."""
    for a in range(len(rate)):
        interest = scaled_borrows[a] * borrow_index[a] * rate[a]
        borrow_index[a] *= 1.0 + rate[a]
        to_reserves = interest * reserve_factor[a]
        to_suppliers = interest - to_reserves
        reserves[a] += to_reserves
        supplied = scaled_supply[a] * supply_index[a]
        grow = to_suppliers / supplied if supplied > 0 else 0.0
        reserves[a] += 0.0 if supplied > 0 else to_suppliers  # (+ 0.0 kept: it turns a -0.0 into 0.0)
        supply_index[a] *= 1.0 + grow


# --- a supplier's moves, compiled: the pool's methods above and the lenders' phase (abm.agents.lender) run these --


@njit(cache=True, nogil=True)
def supply_tokens(
    cash: np.ndarray,
    scaled_supply: np.ndarray,
    supplier_scaled: np.ndarray,
    supply_index: np.ndarray,
    supplier: int,
    asset: int,
    amount: float,
) -> None:
    """Book `amount` > 0 tokens (already taken from the supplier's wallet) into reserve `asset`'s cash, credited to
    `supplier` as scaled supply (tokens over the supply index)."""
    cash[asset] += amount
    scaled = amount / supply_index[asset]
    scaled_supply[asset] += scaled
    supplier_scaled[supplier, asset] += scaled


@njit(cache=True, nogil=True)
def withdraw_tokens(
    cash: np.ndarray,
    scaled_supply: np.ndarray,
    supplier_scaled: np.ndarray,
    supply_index: np.ndarray,
    unmet_withdrawals: np.ndarray,
    supplier: int,
    asset: int,
    amount: float,
) -> float:
    """Take up to `amount` tokens of reserve `asset` out for `supplier`: at most its balance and the reserve's cash;
    the part of the request the cash cannot meet is added to `unmet_withdrawals[asset]` (tokens). Returns the
    tokens withdrawn, for the caller to credit to the supplier's wallet."""
    balance = supplier_scaled[supplier, asset] * supply_index[asset]
    want = balance if balance < amount else amount
    if want <= 0:
        return 0.0
    got = cash[asset] if cash[asset] < want else want
    unmet_withdrawals[asset] += want - got
    if got <= 0:
        return 0.0
    quotient = got / supply_index[asset]
    scaled = supplier_scaled[supplier, asset] if supplier_scaled[supplier, asset] < quotient else quotient
    supplier_scaled[supplier, asset] -= scaled
    scaled_supply[asset] -= scaled
    cash[asset] -= got
    return got
