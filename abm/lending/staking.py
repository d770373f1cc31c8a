"""Yield-bearing collateral: a liquid-staking token whose exchange rate accrues the staking yield, priced against its
base asset by a constant-product pool (docs/auctions_and_risk.md, "Staking collateral and looping"; formulas in
`abm.protocol`).

The token is wstETH-style: the number of tokens stays, each is worth `exchange_rate` base units at par, and the
rate grows every step. Its market price is the pool's (base units per token); price / exchange_rate below 1 is the
depeg. Minting at the exchange rate is always open, so arbitrage caps the pool price at par from above; redeeming
is open only with `withdrawals_enabled` (it was not in June 2022, before Ethereum's withdrawals), so without it
nothing pulls a discount back. Pool swaps use the model's one constant-product formula (`amm_amount_out`).
"""

from __future__ import annotations

from abm.protocol import (
    amm_amount_in_to_price,
    amm_amount_out,
    looped_liquidation_ratio,
    lst_exchange_rate,
    per_step_rate,
)


class StakingToken:
    """A liquid-staking token and its x*y=k pool against the base asset.

    exchange_rate: base units per token at par (> 0); staking_apr: per year (fraction); step_seconds: one step;
    pool_tokens, pool_base: the pool's reserves (tokens; base units); fee: the pool's swap fee (fraction of the
    input, kept in the pool); supply: tokens outstanding (>= those in the pool).
    """

    def __init__(
        self,
        *,
        exchange_rate: float,
        staking_apr: float,
        step_seconds: float,
        pool_tokens: float,
        pool_base: float,
        fee: float = 0.003,
        supply: float | None = None,
        withdrawals_enabled: bool = False,
    ) -> None:
        rules = [
            ("exchange_rate", exchange_rate > 0, "> 0"),
            ("staking_apr", staking_apr >= 0, ">= 0"),
            ("step_seconds", step_seconds > 0, "> 0"),
            ("pool_tokens", pool_tokens > 0, "> 0"),
            ("pool_base", pool_base > 0, "> 0"),
            ("fee", 0 <= fee < 1, "in [0, 1)"),
            ("supply", supply is None or supply >= pool_tokens, ">= pool_tokens"),
        ]
        values = locals()
        for name, ok, rule in rules:
            if not ok:
                raise ValueError(f"{name} must be {rule} (got {values[name]!r})")
        self.exchange_rate = float(exchange_rate)
        self.staking_apr = float(staking_apr)
        self.step_seconds = float(step_seconds)
        self.pool_tokens = float(pool_tokens)
        self.pool_base = float(pool_base)
        self.fee = float(fee)
        self.supply = float(pool_tokens if supply is None else supply)
        self.withdrawals_enabled = withdrawals_enabled
        self.steps = 0

    # --- value ------------------------------------------------------------------------------------------

    def accrue(self, steps: int = 1) -> float:
        """Accrue `steps` steps of staking yield into the exchange rate (`lst_exchange_rate`); returns the new rate."""
        if steps < 0:
            raise ValueError(f"steps must be >= 0 (got {steps!r})")
        self.exchange_rate = float(lst_exchange_rate(self.exchange_rate, self.staking_apr, steps, self.step_seconds))
        self.steps += steps
        return self.exchange_rate

    @property
    def yield_per_step(self) -> float:
        """Fraction the exchange rate grows by each step."""
        return float(per_step_rate(self.staking_apr, self.step_seconds))

    @property
    def price(self) -> float:
        """The pool's marginal price: base units per token."""
        return self.pool_base / self.pool_tokens

    @property
    def price_ratio(self) -> float:
        """Market price over the exchange rate: 1 at par, below 1 a discount (the depeg)."""
        return self.price / self.exchange_rate

    @property
    def backing(self) -> float:
        """Base units the outstanding tokens are worth at par: supply * exchange_rate."""
        return self.supply * self.exchange_rate

    # --- the pool -------------------------------------------------------------------------------------

    def quote_sell(self, tokens: float) -> float:
        """Base units selling `tokens` into the pool would raise now (nothing changes)."""
        return float(amm_amount_out(tokens, self.pool_tokens, self.pool_base, self.fee))

    def sell(self, tokens: float) -> float:
        """Sell `tokens` into the pool; returns the base units received."""
        out = self.quote_sell(tokens)
        self.pool_tokens += tokens
        self.pool_base -= out
        return out

    def buy(self, base: float) -> float:
        """Buy tokens from the pool with `base` base units; returns the tokens received."""
        out = float(amm_amount_out(base, self.pool_base, self.pool_tokens, self.fee))
        self.pool_base += base
        self.pool_tokens -= out
        return out

    def tokens_to_depeg(self, target_ratio: float) -> float:
        """Tokens that must be sold into the pool to take `price_ratio` down to `target_ratio` (0 if it is there)."""
        if not target_ratio > 0:
            raise ValueError(f"target_ratio must be > 0 (got {target_ratio!r})")
        return float(
            amm_amount_in_to_price(self.pool_tokens, self.pool_base, target_ratio * self.exchange_rate, self.fee)
        )

    def tokens_to_liquidate(self, leverage: float, liquidation_threshold: float) -> float:
        """Tokens that must be sold into the pool before accounts looped to `leverage` (built at the present price
        ratio, with base-asset debt) reach HF = 1 under `liquidation_threshold` (`looped_liquidation_ratio`)."""
        ratio = float(looped_liquidation_ratio(leverage, liquidation_threshold)) * self.price_ratio
        return self.tokens_to_depeg(ratio)

    # --- minting, redeeming and arbitrage -------------------------------------------------------------------

    def mint(self, base: float) -> float:
        """Stake `base` base units for new tokens at the exchange rate; returns the tokens minted."""
        if base < 0:
            raise ValueError(f"base must be >= 0 (got {base!r})")
        tokens = base / self.exchange_rate
        self.supply += tokens
        return tokens

    def redeem(self, tokens: float) -> float:
        """Redeem `tokens` for base units at the exchange rate; only with withdrawals enabled."""
        if not self.withdrawals_enabled:
            raise ValueError("redeem needs withdrawals_enabled (the staking contract's withdrawals are closed)")
        if not 0 <= tokens <= self.supply - self.pool_tokens:
            raise ValueError(f"tokens must be in [0, supply outside the pool] (got {tokens!r})")
        self.supply -= tokens
        return tokens * self.exchange_rate

    def arbitrage(self) -> float:
        """Close the gap between the pool price and the exchange rate where the open routes allow: above par, mint
        at the rate and sell into the pool; below par with withdrawals enabled, buy from the pool and redeem.
        Returns the tokens that moved through the pool (> 0 sold into it, < 0 bought from it)."""
        if self.price > self.exchange_rate:
            tokens = self.tokens_to_depeg(1.0)
            self.mint(tokens * self.exchange_rate)
            self.sell(tokens)
            return tokens
        if self.withdrawals_enabled and self.price < self.exchange_rate:
            # buying tokens raises their price: sell base into the pool until a token costs the exchange rate
            base = float(amm_amount_in_to_price(self.pool_base, self.pool_tokens, 1.0 / self.exchange_rate, self.fee))
            tokens = self.buy(base)
            self.redeem(tokens)
            return -tokens
        return 0.0
