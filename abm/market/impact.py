"""The outside market: price impact, fills along the impact path, and the market's own token ledger
(docs/model.md, 3.3 Submodels: Price impact).

Market price p_k = f_k * exp(m_k): m_k is the accumulated log impact of every trade, decaying toward 0. How a
trade fills and moves m_k, and how m_k decays, is the asset's impact model (`abm.market.impact_models`, chosen by
name in the configuration); this class keeps the per-asset state and delegates to it. Every trade has this market
as its counterparty, so its ledger (`world_net`, tokens the rest of the world has gained since the start) makes
token conservation checkable.
Impact is recorded per source ('disc' for discretionary trades, 'liq' for liquidation sales, with the event id)
so liquidations' price moves can be attributed (docs/model.md, 4 Contagion and reflexivity measurement).
"""

from __future__ import annotations

import numpy as np

from abm.config.schema import ModelConfig
from abm.errors import InvariantError
from abm.market.impact_models import IMPACT_MODELS, ImpactModel

# The rest of the world's holdings at the start, in USD of value per asset: large enough never to run dry.
WORLD_INVENTORY_USD = 1.0e15


class Market:
    """Per-asset impact state and the market ledger. Arrays are indexed by asset, numéraire (USD) at 0."""

    def __init__(self, config: ModelConfig, log_fundamental: np.ndarray) -> None:
        self.symbols = config.symbols
        n = len(self.symbols)
        self.n_assets = n
        self.impact: list[ImpactModel] = [IMPACT_MODELS["linear"]] * n  # per asset (the numéraire never trades)
        self.m = np.zeros(n)  # accumulated log impact
        self.log_f = log_fundamental.copy()
        # The outside ledger is kept as the world's net change since the start (tokens), not as its 1e15 balance:
        # rounding then stays at the scale of the model's own flows, so conservation can be checked to 1e-9 of
        # the in-model holdings instead of to an ulp of 1e15 per trade.
        self.world_start = np.zeros(n)
        self.world_start[0] = WORLD_INVENTORY_USD
        self.world_start[1:] = WORLD_INVENTORY_USD / np.exp(log_fundamental[1:])
        self.world_net = np.zeros(n)
        self.amm_x = np.zeros(n)  # cpmm: token reserve
        self.amm_y = np.zeros(n)  # cpmm: USD reserve
        self.depth_factor = np.ones(n)  # thinning multiplier on depth (1 = calm)
        self.realised_var = np.zeros(n)  # EWMA of squared per-step log returns
        self.last_log_price = log_fundamental.copy()
        self.dm_step = {"disc": np.zeros(n), "liq": np.zeros(n)}  # impact this step, by source
        self.liq_impacts: list[tuple[int, int, int, float]] = []  # (event_id, step, asset, dm)
        # log impact of liquidation sales still in each price (log units): each sale's dm, decayed like all impact;
        # the market path less this is the path prices would have taken without liquidation sales' impact
        self.liquidation_impact = np.zeros(n)
        self.refresh_params(config)
        self.realised_var = self.sigma_ref**2 / self.steps_per_year  # start at calm, configured volatility
        for k in range(1, n):
            self.impact[k].start(self, k)
        self.log_p = self.log_f.copy()

    def refresh_params(self, config: ModelConfig) -> None:
        """(Re)read parameters from the configuration; called at start and after a scenario `set` event."""
        mkt = config.market
        assets = [config.assets[s] for s in self.symbols[1:]]
        for k, a in enumerate(assets, start=1):
            self.impact[k] = IMPACT_MODELS[a.impact]
        self.depth_usd = np.array([np.inf] + [a.depth_usd * mkt.depth_scale for a in assets])
        self.daily_volume = np.array([np.inf] + [a.daily_volume_usd * mkt.depth_scale for a in assets])
        self.sigma_ref = np.array([0.0] + [a.volatility for a in assets])  # per sqrt year
        self.fee = np.array([0.0] + [a.amm_fee for a in assets])
        steps_per_day = 86400.0 / mkt.step_seconds
        self.steps_per_year = steps_per_day * 365.0
        self.sigma_daily = self.sigma_ref / np.sqrt(365.0)
        self.sqrt_y = mkt.sqrt_y
        self.decay = np.array([1.0] + [self.impact[k].decay(mkt) for k in range(1, self.n_assets)])
        self.eta = mkt.depth_vol_elasticity
        self.min_depth_fraction = mkt.min_depth_fraction
        self.ewma_alpha = 2.0 / (mkt.vol_window_steps + 1.0)

    @property
    def inventory(self) -> np.ndarray:
        """Tokens the rest of the world holds, per asset (a copy; the ledger itself is `world_net`)."""
        return self.world_start + self.world_net

    # --- prices -----------------------------------------------------------------------------------------

    @property
    def prices(self) -> np.ndarray:
        """Market prices (USD/token), numéraire first (always 1)."""
        return np.exp(self.log_p)

    def price(self, k: int) -> float:
        return float(np.exp(self.log_p[k]))

    def learn_volatility(self, log_prices: np.ndarray) -> None:
        """Run the realised-variance EWMA over a past path of log prices ((steps + 1, assets)): the estimate a
        trader holds at the start of the run, from the pre-history."""
        for r in np.diff(log_prices, axis=0):
            self._absorb_return(r)
        self.last_log_price = log_prices[-1].copy()

    def _absorb_return(self, r: np.ndarray) -> None:
        """One step of the realised-variance EWMA with log returns `r` (per asset)."""
        self.realised_var = (1 - self.ewma_alpha) * self.realised_var + self.ewma_alpha * r**2

    def realised_vol(self) -> np.ndarray:
        """Annualised EWMA volatility of market log returns per asset (per sqrt year)."""
        return np.sqrt(self.realised_var * self.steps_per_year)

    def depth(self, k: int) -> float:
        """Linear depth of asset k now: USD per unit of log price, thinned by volatility."""
        return float(self.depth_usd[k] * self.depth_factor[k])

    def sqrt_a(self, k: int) -> float:
        """Square-root law prefactor a = Y sigma_daily / sqrt(daily volume) of asset k now (volume thinned)."""
        volume = self.daily_volume[k] * self.depth_factor[k]
        return float(self.sqrt_y * self.sigma_daily[k] / np.sqrt(volume))

    def effective_depth(self, reference_usd: np.ndarray | None = None) -> np.ndarray:
        """USD notional that moves each asset's log price by 1 now (numéraire: inf). Nonlinear paths give the
        secant depth at `reference_usd` (USD per asset), by default 1% of the daily volume."""
        depth = np.full(self.n_assets, np.inf)
        for k in range(1, self.n_assets):
            depth[k] = self.effective_depth_of(k, None if reference_usd is None else float(reference_usd[k]))
        return depth

    def effective_depth_of(self, k: int, reference_usd: float | None = None) -> float:
        """`effective_depth` of one risky asset k (USD per unit of log price)."""
        return self.impact[k].linear_depth(self, k, reference_usd)

    # --- the step ---------------------------------------------------------------------------------------

    def begin_step(self, log_fundamental: np.ndarray) -> None:
        """Move to the new fundamentals, decay impact (or arbitrage the AMM), thin depth."""
        self.log_f = log_fundamental.copy()
        for src in self.dm_step.values():
            src.fill(0.0)
        for k in range(1, self.n_assets):
            self.impact[k].relax(self, k)
            self.impact[k].sync(self, k)
        self.liquidation_impact *= self.decay
        if self.eta > 0:
            vol = self.realised_vol()
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(vol > self.sigma_ref, self.sigma_ref / vol, 1.0)
            new_factor = np.maximum(np.where(self.sigma_ref > 0, ratio**self.eta, 1.0), self.min_depth_fraction)
            for k in range(1, self.n_assets):
                self.impact[k].thin(self, k, float(new_factor[k] / self.depth_factor[k]))
            self.depth_factor = new_factor

    def end_step(self) -> np.ndarray:
        """Update realised volatility with this step's market return; return the return (log, per asset)."""
        r = self.log_p - self.last_log_price
        self._absorb_return(r)
        self.last_log_price = self.log_p.copy()
        return r

    # --- fills ------------------------------------------------------------------------------------------

    def quote_buy(self, k: int, usd: float) -> float:
        """Tokens `usd` would buy now (no state change)."""
        return self.impact[k].quote_buy(self, k, usd) if usd > 0 else 0.0

    def quote_sell(self, k: int, tokens: float) -> float:
        """USD a sale of `tokens` would raise now (no state change)."""
        return self.impact[k].quote_sell(self, k, tokens) if tokens > 0 else 0.0

    def quote_cost(self, k: int, tokens: float) -> float:
        """USD needed to buy exactly `tokens` now (no state change); inf if the market cannot supply them."""
        return self.impact[k].quote_cost(self, k, tokens) if tokens > 0 else 0.0

    def buy(self, k: int, usd: float, source: str = "disc", event_id: int = -1, step: int = 0) -> float:
        """Spend `usd` on asset k; returns tokens received. Moves the price along the impact path."""
        tokens = self.quote_buy(k, usd)
        if tokens <= 0:
            return 0.0
        self._execute(k, usd_in=usd, tokens_out=tokens, source=source, event_id=event_id, step=step)
        return tokens

    def sell(self, k: int, tokens: float, source: str = "disc", event_id: int = -1, step: int = 0) -> float:
        """Sell `tokens` of asset k; returns USD received."""
        usd = self.quote_sell(k, tokens)
        if usd <= 0:
            return 0.0
        self._execute(k, usd_in=-usd, tokens_out=-tokens, source=source, event_id=event_id, step=step)
        return usd

    def buy_exact(self, k: int, tokens: float, source: str = "disc", event_id: int = -1, step: int = 0) -> float:
        """Buy exactly `tokens` of asset k; returns the USD paid (inf-cost orders raise)."""
        usd = self.quote_cost(k, tokens)
        if not np.isfinite(usd):
            raise ValueError(f"market for {self.symbols[k]} cannot supply {tokens} tokens")
        if usd <= 0:
            return 0.0
        self._execute(k, usd_in=usd, tokens_out=tokens, source=source, event_id=event_id, step=step)
        return usd

    def genesis_quotes(self, assets: np.ndarray, amounts: np.ndarray) -> np.ndarray:
        """Positions that exist before the run are filled at the fundamental with no impact (no state change).

        Per order: `assets` the risky asset; `amounts` > 0 USD spent, returns tokens bought; < 0 -tokens sold,
        returns -USD received.
        """
        price = np.exp(self.log_f)[assets]
        return np.where(amounts >= 0, amounts / price, amounts * price)

    def genesis_quote(self, k: int, amount: float) -> float:
        """`genesis_quotes` of one order."""
        return float(self.genesis_quotes(np.array([k]), np.array([amount], dtype=float))[0])

    def genesis_fills(self, assets: np.ndarray, amounts: np.ndarray) -> np.ndarray:
        """Execute `genesis_quotes` against the market ledger (no price impact), the ledger booked once per asset:
        the world takes the USD paid for the tokens it sells (and pays USD for those it buys)."""
        out = self.genesis_quotes(assets, amounts)
        buy = amounts >= 0
        self.world_net[0] += np.where(buy, amounts, out).sum()  # USD in: spent on a buy, -received on a sale
        self.world_net -= np.bincount(assets, weights=np.where(buy, out, amounts), minlength=self.n_assets)
        return out

    def genesis_trade(self, k: int, amount: float) -> float:
        """`genesis_fills` of one order."""
        return float(self.genesis_fills(np.array([k]), np.array([amount], dtype=float))[0])

    def _execute(self, k: int, usd_in: float, tokens_out: float, source: str, event_id: int, step: int) -> None:
        before = self.log_p[k]
        self.impact[k].execute(self, k, usd_in, tokens_out)
        self.impact[k].sync(self, k)
        self.world_net[0] += usd_in
        self.world_net[k] -= tokens_out
        if self.world_net[0] < -self.world_start[0] or self.world_net[k] < -self.world_start[k]:
            raise InvariantError(f"market ledger: negative inventory after trade in {self.symbols[k]}")
        dm = float(self.log_p[k] - before)
        self.dm_step[source][k] += dm
        if source == "liq":
            self.liq_impacts.append((event_id, step, k, dm))
            self.liquidation_impact[k] += dm

    def pay_out(self, k: int, amount: float) -> None:
        """The rest of the world hands `amount` tokens of asset k into the model (fresh equity, dilution sales)."""
        if amount > self.world_start[k] + self.world_net[k]:
            raise InvariantError(f"market ledger: cannot hand over {amount} {self.symbols[k]}")
        self.world_net[k] -= amount

    def receive(self, k: int, amount: float) -> None:
        """The rest of the world receives `amount` tokens of asset k (gas paid to validators, fees)."""
        self.world_net[k] += amount
