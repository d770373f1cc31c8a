"""Accounting invariants (docs/model.md, 5 Invariants), cheap enough to check after every step in debug mode.

- conservation: per asset, tokens in wallets + accounts' collateral + pool cash + the perp venue (USD only) + the
  outside market are constant (a staked token of `lst.*` is one more asset column: what the outside world minted
  to the model equals what wallets, accounts and the pool hold);
- pool identity: cash + borrows = supplied + reserves per reserve; the pool's scaled borrows equal the sum of
  the accounts' scaled debts;
- no negative balance anywhere; prices finite and positive; no NaN health factor;
- with the perpetual venue (docs/perps.md, "The ledger, and why the book is a row"): its zero-sum identity, open
  interest long == short per asset, its book's market ledger equal to the book row, a non-negative insurance fund
  (`PerpVenue.check_ledger`), and finite positive mark prices;
- the thin oracle venue (`oracle_venue.*`) is one more side of the outside world in conservation, with a
  non-negative inventory and finite positive prices;
- adversaries (hunters, the oracle attacker) are holders with wallet rows like any other; the tokens they borrowed
  from the outside world to sell short are finite and non-negative.
A violation raises `InvariantError` naming the step, the ledger and the amounts.

Tolerances are relative to the tokens inside the model (wallets, collateral, pool cash; the larger of the amount at
the start and now), never to the outside world's vast inventory, and never to a reserve's current size alone: a
reserve that has been emptied keeps float residue of the amounts it once carried, and a leak of a few dollars must
still show. (The pool checks also allow the same fraction of the reserve's own size, since borrowed tokens may have
left the model.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from abm.errors import InvariantError

if TYPE_CHECKING:
    from abm.model import ReflexivityModel
    from abm.perps import PerpVenue

# Float residue allowed, as a fraction of the in-model holdings of the asset: ~1e7 operations' worth of rounding.
RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Ledgers:
    """Token holdings (tokens per asset) of every ledger in the model."""

    wallets: np.ndarray
    collateral: np.ndarray
    pool_cash: np.ndarray
    market: np.ndarray  # the outside world's net change since the start (`Market.world_net`)
    perps: np.ndarray  # USD held by the perpetual venue (numéraire column; zeros without the venue)
    auctions: np.ndarray  # lots in auction escrow and what auction keepers hold (zeros without auctions)

    @classmethod
    def of(cls, model: ReflexivityModel) -> Ledgers:
        engine = model.engine
        perps = np.zeros(len(model.symbols))
        if model.perps is not None:
            perps[0] = perp_venue_usd(model.perps)
        return cls(
            wallets=model.wallets.balances.sum(axis=0),
            collateral=engine.collateral[: engine.n].sum(axis=0),
            pool_cash=model.pool.cash.copy(),
            market=model.market.world_net + oracle_venue_tokens(model),
            perps=perps,
            auctions=model.auctions.holdings() if model.auctions is not None else np.zeros(len(model.symbols)),
        )

    def inside(self) -> np.ndarray:
        """Tokens per asset held inside the model: wallets, accounts' collateral, pool cash and the perp venue."""
        return self.wallets + self.collateral + self.pool_cash + self.perps + self.auctions

    def totals(self) -> np.ndarray:
        """Tokens per asset over every ledger, the world counted by its change: constant while tokens are conserved."""
        return self.inside() + self.market


def oracle_venue_tokens(model: ReflexivityModel) -> np.ndarray:
    """Tokens per asset the thin oracle venue's side of the outside world has gained since the start (zeros without
    the venue, `abm.market.venue`): what the attacker sold into it less what it bought back there."""
    venue = getattr(model, "oracle_venue", None)
    return venue.market.world_net.copy() if venue is not None else np.zeros(len(model.symbols))


def perp_venue_usd(venue: PerpVenue) -> float:
    """USD the perpetual venue holds: every row's equity at mark (accounts, the vault, and the book's, which is
    what the outside world's market makers have won or lost against it), plus its fee revenue and insurance fund,
    less its bad debt. By the venue's zero-sum identity this equals what came in (accounts' net deposits from
    their owners' wallets, the fund and the vault's capital from the outside world), so the token ledgers close."""
    n = venue.n
    mark = venue.mark_prices()
    equity = venue.cash[:n].sum() + venue.margin[:n].sum() + float((venue.size[:n] * (mark - venue.entry[:n])).sum())
    return float(equity + venue.fee_revenue + venue.insurance_fund - venue.bad_debt)


def tolerance(model: ReflexivityModel, ledgers: Ledgers | None = None) -> np.ndarray:
    """Absolute float residue allowed per asset (tokens): `RELATIVE_TOLERANCE` of the in-model holdings."""
    now = (ledgers or Ledgers.of(model)).inside()
    return RELATIVE_TOLERANCE * np.maximum(np.maximum(model.initial_ledgers.inside(), np.abs(now)), 1.0)


def check_invariants(model: ReflexivityModel) -> None:
    """Raise `InvariantError` if any invariant (docs/model.md, 5 Invariants) fails at the model's current step."""
    step = model.steps
    symbols = model.symbols
    ledgers = Ledgers.of(model)
    tol = tolerance(model, ledgers)
    totals = ledgers.totals()
    initial = model.initial_ledgers.totals()
    for a in np.flatnonzero(np.abs(totals - initial) > tol):
        raise InvariantError(
            f"step {step}: conservation of {symbols[a]} broken: total {totals[a]!r} vs initial "
            f"{initial[a]!r} (wallets {ledgers.wallets[a]!r}, collateral {ledgers.collateral[a]!r}, "
            f"pool cash {ledgers.pool_cash[a]!r}, outside world's change {ledgers.market[a]!r})"
        )
    pool = model.pool
    gap = pool.identity_gap()
    # borrowed tokens may have left the model (sold to the world), so a reserve can be larger than the holdings
    pool_tol = np.maximum(tol, RELATIVE_TOLERANCE * (np.abs(pool.supplied) + np.abs(pool.reserves)))
    for a in np.flatnonzero(np.abs(gap) > pool_tol):
        raise InvariantError(
            f"step {step}: pool identity of {symbols[a]} broken: cash {pool.cash[a]!r} + borrows "
            f"{pool.borrows[a]!r} != supplied {pool.supplied[a]!r} + reserves {pool.reserves[a]!r}"
        )
    engine = model.engine
    booked = engine.scaled_debt[: engine.n].sum(axis=0)
    if model.auctions is not None:  # a kicked account's USD debt is the auction's until it is repaid or written off
        booked[0] += model.auctions.scaled_debt_total()
        model.auctions.house.check_conservation()
    debt_tol = np.maximum(tol, RELATIVE_TOLERANCE * pool.scaled_borrows)
    for a in np.flatnonzero(np.abs(booked - pool.scaled_borrows) > debt_tol):
        raise InvariantError(
            f"step {step}: debt ledger of {symbols[a]}: accounts owe {booked[a]!r} (scaled), "
            f"pool books {pool.scaled_borrows[a]!r}"
        )
    negatives = {
        "wallets": model.wallets.balances.min(axis=0),
        "collateral": engine.collateral[: engine.n].min(axis=0) if engine.n else np.zeros(len(symbols)),
        "debt": engine.scaled_debt[: engine.n].min(axis=0) if engine.n else np.zeros(len(symbols)),
        "pool cash": pool.cash,
        "pool reserves": pool.reserves,
        "supplier positions": pool.supplier_scaled.min(axis=0),
        "market": model.market.inventory,
        "oracle venue": model.oracle_venue.market.inventory
        if model.oracle_venue is not None
        else np.zeros(len(symbols)),
        "auction keepers": model.auctions.holdings() if model.auctions is not None else np.zeros(len(symbols)),
    }
    for ledger, values in negatives.items():
        for a in np.flatnonzero(values < -tol):
            raise InvariantError(f"step {step}: negative balance in {ledger}: {symbols[a]} = {values[a]!r}")
    for name, prices in (
        ("market", model.market.prices),
        ("oracle", model.oracle.prices),
        ("fundamental", model.fundamentals.prices),
        ("oracle venue", model.oracle_venue.market.prices if model.oracle_venue is not None else model.market.prices),
    ):
        bad = ~np.isfinite(prices) | (prices <= 0)
        if bad.any():
            a = int(np.flatnonzero(bad)[0])
            raise InvariantError(f"step {step}: {name} price of {symbols[a]} is {prices[a]!r}")
    hf = engine.health(model.oracle.prices)
    if np.isnan(hf).any():
        acct = int(np.flatnonzero(np.isnan(hf))[0])
        raise InvariantError(f"step {step}: health factor of account {acct} is NaN")
    # adversaries (docs/model.md, 3.3 Submodels: Adversaries): their wallets are rows of `wallets` (counted above);
    # the tokens they owe the outside world are a claim of the world, never negative, never NaN
    for adversary in [*getattr(model, "hunters", []), *getattr(model, "attackers", [])]:
        owed = adversary.short
        if not (np.all(np.isfinite(owed)) and np.all(owed >= -tol)):
            raise InvariantError(
                f"step {step}: {model.wallets.kinds[adversary.holder]} {adversary.holder} owes the outside world "
                f"{dict(zip(symbols, owed.tolist(), strict=True))!r} tokens (must be finite and >= 0)"
            )
    venue = model.perps
    if venue is not None:
        mark = venue.mark_prices()
        bad = ~np.isfinite(mark) | (mark <= 0)
        if bad.any():
            a = int(np.flatnonzero(bad)[0])
            raise InvariantError(f"step {step}: perp mark price of {symbols[a]} is {mark[a]!r}")
        venue.check_ledger(step)
