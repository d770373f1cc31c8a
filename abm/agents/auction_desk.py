"""The liquidation-auction desk: Maker-style collateral auctions wired into the model when `liquidators.mechanism`
is "english" or "dutch" (docs/model.md, 3.3 Submodels: Liquidation auctions).

The liquidators kick (Maker's `bark`) instead of liquidating with the fixed bonus: an unhealthy account's largest
collateral asset (all of it: the lot) and its USD debt in proportion to that asset's share of its collateral
(the whole vault when it holds one asset) leave the account (`MarginEngine.grab`); the auction must raise the tab,
debt x (1 + penalty). The `AuctionHouse` runs the auctions and its keepers bid with their own capital; every lot a
keeper wins is sold into the market at once under the kick's liquidation event (so forced selling moves the price
and the cascade graph sees it). Proceeds repay the pool (beyond the debt: the penalty, to the reserves); tokens
the auction does not need go back to the owner's wallet; debt an auction leaves unpaid is written off through the
pool's one waterfall (`LendingPool.write_off`). Accounts whose largest debt is not USD (shorts) have no Maker
counterpart and are liquidated with the fixed bonus as before.

Congestion reaches keepers through the liquidators' settings, which scenario `set` events change: every
transaction pays `liquidators.gas_cost_usd`, and a keeper lands at most `liquidators.capacity_per_step` of them a
step (the block space any bot gets). Keepers pay gas from outside the model (like the gas itself, it never enters
the model's ledgers); their auction capital and the collateral they hold are in `holdings`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from abm.lending.auctions import AuctionHouse, AuctionKeepers, AuctionParams, Settlement
from abm.lending.margin import LiquidationPlan
from abm.protocol import cat_bite_lot

if TYPE_CHECKING:
    from abm.agents.liquidator import Liquidator
    from abm.config import ModelConfig
    from abm.model import ReflexivityModel

# The auctions' random stream (keepers' order, whether a transaction lands): a child of the run's SeedSequence with
# its own spawn key, so the model's five streams (children 0-4) draw exactly what they drew without auctions.
AUCTION_STREAM_KEY = 7
MIN_GAS_USD = 1e-6  # the house needs gas > 0; a scenario may set gas to 0
ZERO_BID_KICKER = -1  # the liquidator id booked on a kick by a zero-bid keeper (not one of the Liquidator agents)

# The per-auction table (`RunResult.auctions`, auctions.parquet): one row per kicked auction, live ones at the end
# of the run with NaN settlement columns. USD; tokens of `asset`; prices USD/token.
AUCTION_COLUMNS = [
    "auction_id",
    "event_id",  # the kick's liquidation event
    "mechanism",
    "account",
    "owner",
    "asset",
    "kick_step",
    "settle_step",  # NaN while live at the end of the run
    "debt_usd",  # debt moved off the account at the kick
    "tab",  # debt x (1 + penalty)
    "raised",
    "lot",
    "sold",
    "returned",
    "clearing_price",  # raised / sold
    "market_price",  # at settlement, before that step's keeper sales (live auctions: at the end of the run)
    "unpaid",  # tab - raised
    "bad_debt_usd",  # debt the auction left unpaid, written off
    "shortfall_usd",  # min(bad_debt_usd, discount_usd): the bad debt a sale at market value would have repaid
    "discount_usd",  # market value of the tokens sold - raised
    "zero_bid",
    "winner",  # the keeper that got the lot (Dutch: the last taker); -1 if none. Index >= auctions.n_keepers:
    # a zero-bid keeper
    "resets",
    "incentives_usd",
]


def auction_params(config: ModelConfig) -> AuctionParams:
    """The house's parameters from the configuration (`auctions.*`, `liquidators.mechanism`)."""
    a = config.auctions
    return AuctionParams(
        mechanism=config.liquidators.mechanism,
        step_seconds=config.market.step_seconds,
        beg=a.beg,
        ttl_steps=a.ttl_steps,
        tau_steps=a.tau_steps,
        buf=a.buf,
        curve=a.curve,
        cut=a.cut,
        drop_steps=a.drop_steps,
        duration_steps=a.duration_steps,
        tail_steps=a.tail_steps,
        cusp=a.cusp,
        chip=a.chip,
        tip_usd=a.tip_usd,
        dust_usd=a.dust_usd,
    )


class AuctionDesk:
    """The model's side of the auctions: kicks, the keepers' market trades, and the booking of every settlement.

    Per auction (arrays indexed by the house's auction id): its kick's event id and events-table row, the scaled
    USD debt still owed, and how much of its proceeds and returned collateral has been booked."""

    def __init__(self, model: ReflexivityModel) -> None:
        self.model = model
        cfg = model.config
        a = cfg.auctions
        # the default keepers, then the zero-bid keepers (no capital; they pay any gas, so congestion never binds)
        n, z = a.n_keepers, a.n_zero_bid_keepers
        keepers = AuctionKeepers(
            capital_usd=np.r_[np.full(n, a.keeper_capital_usd), np.zeros(z)],
            gas_budget_usd=np.full(n + z, a.keeper_gas_budget_usd),
            profit_share=np.full(n + z, a.keeper_profit_share),
            funding_rate=np.full(n + z, a.keeper_funding_rate),
            capacity_per_step=np.r_[
                np.full(n, min(a.keeper_capacity_per_step, cfg.liquidators.capacity_per_step)),
                np.full(z, a.keeper_capacity_per_step),
            ],
            n_assets=len(model.symbols),
            zero_bid=np.r_[np.zeros(n, dtype=bool), np.ones(z, dtype=bool)],
        )
        model.market.pay_out(0, float(keepers.capital_usd.sum()))  # the keepers' capital comes from the world
        seq = np.random.SeedSequence(model.seed, spawn_key=(AUCTION_STREAM_KEY,))
        self.house = AuctionHouse(auction_params(cfg), keepers, np.random.default_rng(seq))
        self._auction_config = cfg.auctions
        self.penalty = a.penalty
        self._lump = np.array([a.lump.get(sym, np.inf) for sym in model.symbols])  # tokens per auction (inf: all)
        self._default = ~keepers.zero_bid
        self.event_id = np.zeros(64, dtype=np.int64)
        self.event_row = np.zeros(64, dtype=np.int64)
        self.scaled_debt = np.zeros(64)  # USD debt (scaled by the pool's borrow index) each auction still owes
        self.debt_usd = np.zeros(64)  # at the kick
        self.booked_raised = np.zeros(64)  # USD of its proceeds already paid to the pool
        self.booked_returned = np.zeros(64)  # tokens already given back to the owner
        self.bad_debt = np.zeros(64)
        self._fills_done = 0
        self.rows: list[dict[str, Any]] = []  # settled auctions, for the table

    # --- kicking (the liquidators' turn) -------------------------------------------------------------------

    def work(self, liquidator: Liquidator, candidates: np.ndarray, capacity: int) -> None:
        """`liquidator`'s turn: kick the candidates (largest debt first) that an auction can take and liquidate the
        rest with the fixed bonus if that pays, up to `capacity` transactions."""
        m = self.model
        done = 0
        for acct in candidates.tolist():
            if done >= capacity:
                break
            if self.kick(liquidator, int(acct)):
                done += 1
                continue
            plan = m.engine.plan_liquidation(int(acct), m.oracle.prices)  # None: healthy again
            quote = liquidator.quote(plan) if plan is not None else None
            if plan is not None and quote is not None:
                liquidator.execute(int(acct), plan, quote)
                done += 1

    def kick(self, liquidator: Liquidator | None, acct: int) -> bool:
        """Kick `acct` to an auction if it is unhealthy, its largest debt is USD and its largest collateral a risky
        asset (at oracle prices); book the kick as a liquidation event (of `liquidator`, or of a zero-bid keeper if
        None). English auctions take at most `auctions.lump` tokens (Cat's bite), so a large collateral takes
        several kicks. Returns whether it did."""
        m = self.model
        engine, pool, oracle = m.engine, m.pool, m.oracle.prices
        hf = engine.account_health(acct, oracle)
        if not hf < 1.0:
            return False
        debt = engine.debt_tokens(acct)
        coll_usd = engine.collateral[acct] * oracle * pool.collateral_enabled
        if debt[0] <= 0 or int(np.argmax(debt * oracle)) != 0 or coll_usd.max() <= 0:
            return False
        k = int(np.argmax(coll_usd))
        if k == 0:
            return False
        share = float(coll_usd[k] / coll_usd.sum())
        lump = self._lump[k] if self.house.params.mechanism == "english" else np.inf
        tokens, share = cat_bite_lot(float(engine.collateral[acct, k]), min(share, 1.0), float(lump))
        lot, scaled = engine.grab(acct, k, share, tokens)
        debt_tokens = scaled * float(pool.borrow_index[0])
        auction_id = self.house.kick(
            m.steps, acct, int(engine.owner[acct]), k, lot, debt_tokens * (1.0 + self.penalty), float(oracle[k])
        )
        self._grow(auction_id + 1)
        event_id = m.attribution.next_event_id()
        plan = LiquidationPlan(0, k, debt_tokens, lot, hf)
        if liquidator is not None:
            liquidator.book(event_id, acct, plan, profit_usd=0.0)
        else:
            m.attribution.record(event_id, acct, ZERO_BID_KICKER, plan)
        self.event_id[auction_id] = event_id
        self.event_row[auction_id] = len(m.recorder.events) - 1
        self.scaled_debt[auction_id] = scaled
        self.debt_usd[auction_id] = debt_tokens
        return True

    def _grow(self, n: int) -> None:
        if n <= len(self.event_id):
            return
        size = max(n, 2 * len(self.event_id))
        for name in ("event_id", "event_row", "scaled_debt", "debt_usd", "booked_raised", "booked_returned"):
            old = getattr(self, name)
            grown = np.zeros(size, dtype=old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)
        bad = np.zeros(size)
        bad[: len(self.bad_debt)] = self.bad_debt
        self.bad_debt = bad

    # --- the auctions' step (after the liquidators) ---------------------------------------------------------

    def step(self) -> None:
        """Advance every auction one step at the going gas and block space; sell what keepers won, pay the pool,
        return collateral, and write off what settled auctions left unpaid."""
        m = self.model
        cfg = m.config
        house = self.house
        if cfg.auctions is not self._auction_config:  # a scenario `set` event changed the auction parameters
            house.params = auction_params(cfg)
            self.penalty = cfg.auctions.penalty
            self._lump = np.array([cfg.auctions.lump.get(sym, np.inf) for sym in m.symbols])
            self._auction_config = cfg.auctions
        # congestion (liquidators.capacity_per_step) binds the default keepers only
        house.keepers.capacity_per_step[self._default] = min(
            cfg.auctions.keeper_capacity_per_step, cfg.liquidators.capacity_per_step
        )
        house.keepers.capacity_per_step[~self._default] = cfg.auctions.keeper_capacity_per_step
        self._zero_bid_kicks()
        if not house.live:
            return
        gas = max(cfg.liquidators.gas_cost_usd, MIN_GAS_USD)
        settled = house.step(m.steps, m.oracle.prices, m.market.prices, gas, self._quote_sell)
        self._sell_fills()
        for a in house.live.values():
            self._book(a.auction_id, a.raised, a.returned, a.owner, a.asset)
        for s in settled:
            self._book(s.auction_id, s.raised_usd, s.returned_tokens, s.owner, s.asset)
            self._settle(s)

    def _zero_bid_kicks(self) -> None:
        """The zero-bid keepers kick too, whatever the congestion: each kicks the liquidatable accounts (largest
        debt first, one kick per account) up to its transactions per step, after the liquidators' turn."""
        m = self.model
        for _ in range(int((~self._default).sum())):
            candidates = m.liquidation_candidates(m.config.liquidators.scan_latency_steps)
            done = 0
            for acct in candidates.tolist():
                if done >= m.config.auctions.keeper_capacity_per_step:
                    break
                done += int(self.kick(None, int(acct)))

    def _quote_sell(self, asset: int, tokens: float) -> float:
        """The market's impact quote, after the sales of the lots keepers have won so far this step: a keeper
        values a lot at the price the earlier winners' selling left."""
        self._sell_fills()
        return self.model.market.quote_sell(asset, tokens)

    def _sell_fills(self) -> None:
        """Each keeper sells the collateral it won into the market at once, as the fixed-bonus liquidator does."""
        m = self.model
        kp = self.house.keepers
        fills = self.house.fills
        for auction_id, keeper, asset, tokens in fills[self._fills_done :]:
            usd = m.market.sell(asset, tokens, "liq", int(self.event_id[auction_id]), m.steps)
            kp.tokens[keeper, asset] -= tokens
            kp.capital_usd[keeper] += usd
        self._fills_done = len(fills)

    def _book(self, auction_id: int, raised: float, returned: float, owner: int, asset: int) -> None:
        """Pay the pool what the auction raised since the last booking (the debt first, the rest to the reserves)
        and give the owner the collateral it got back since."""
        m = self.model
        pool = m.pool
        new = raised - self.booked_raised[auction_id]
        if new > 0:
            self.booked_raised[auction_id] = raised
            owed = float(self.scaled_debt[auction_id] * pool.borrow_index[0])
            repay = min(new, owed)
            if repay > 0:
                scaled = pool.take_repayment(0, repay)
                left = self.scaled_debt[auction_id] - scaled
                self.scaled_debt[auction_id] = 0.0 if repay >= owed else max(left, 0.0)
            if new > repay:
                pool.take_income(0, new - repay)
        back = returned - self.booked_returned[auction_id]
        if back > 0:
            self.booked_returned[auction_id] = returned
            m.wallets.credit(owner, asset, back)

    def _settle(self, s: Settlement) -> None:
        """Write off the debt a settled auction left unpaid and add its row to the table."""
        m = self.model
        aid = s.auction_id
        scaled = float(self.scaled_debt[aid])
        bad = 0.0
        if scaled > 0:
            self.scaled_debt[aid] = 0.0
            rec = m.pool.write_off(m.steps, s.account, 0, scaled, float(m.oracle.prices[0]), m.market)
            m.recorder.add_write_off(rec, event_row=int(self.event_row[aid]))
            bad = rec.amount_usd
        self.bad_debt[aid] = bad
        self.rows.append(self._row(s, bad))

    def _row(self, s: Settlement, bad_debt: float) -> dict[str, Any]:
        aid = s.auction_id
        return {
            "auction_id": aid,
            "event_id": int(self.event_id[aid]),
            "mechanism": s.mechanism,
            "account": s.account,
            "owner": s.owner,
            "asset": self.model.symbols[s.asset],
            "kick_step": s.start_step,
            "settle_step": s.step,
            "debt_usd": float(self.debt_usd[aid]),
            "tab": s.tab_usd,
            "raised": s.raised_usd,
            "lot": s.lot_tokens,
            "sold": s.sold_tokens,
            "returned": s.returned_tokens,
            "clearing_price": s.clearing_price,
            "market_price": s.market_price,
            "unpaid": s.unpaid_usd,
            "bad_debt_usd": bad_debt,
            "shortfall_usd": min(bad_debt, s.discount_usd),
            "discount_usd": s.discount_usd,
            "zero_bid": bool(s.zero_bid),
            "winner": s.winners[-1] if s.winners else -1,
            "resets": s.resets,
            "incentives_usd": s.incentives_usd,
        }

    # --- ledgers and tables ----------------------------------------------------------------------------------

    def holdings(self) -> np.ndarray:
        """Tokens per asset the auctions hold inside the model: lots in escrow and what keepers hold (the
        collateral they won and have not sold yet, their capital and their escrowed bids in the numéraire)."""
        house = self.house
        out = house.escrow_tokens + house.keepers.tokens.sum(axis=0)
        out[0] += float(house.keepers.capital_usd.sum()) + house.escrow_usd
        return out

    def scaled_debt_total(self) -> float:
        """Scaled USD debt the live auctions still owe the pool (it left the accounts at the kick)."""
        return float(self.scaled_debt.sum())

    def table(self) -> pd.DataFrame:
        """Every auction kicked in the run (`AUCTION_COLUMNS`): settled ones, then those still live."""
        m = self.model
        rows = list(self.rows)
        for a in self.house.live.values():
            aid = a.auction_id
            rows.append(
                {
                    "auction_id": aid,
                    "event_id": int(self.event_id[aid]),
                    "mechanism": a.mechanism,
                    "account": a.account,
                    "owner": a.owner,
                    "asset": m.symbols[a.asset],
                    "kick_step": a.start_step,
                    "settle_step": float("nan"),
                    "debt_usd": float(self.debt_usd[aid]),
                    "tab": a.tab0,
                    "raised": a.raised,
                    "lot": a.lot0,
                    "sold": a.lot0 - a.lot - a.returned,
                    "returned": a.returned,
                    "clearing_price": float("nan"),
                    "market_price": m.market.price(a.asset),
                    "unpaid": float("nan"),
                    "bad_debt_usd": float("nan"),
                    "shortfall_usd": float("nan"),
                    "discount_usd": float("nan"),
                    "zero_bid": False,
                    "winner": a.winners[-1] if a.winners else -1,
                    "resets": a.resets,
                    "incentives_usd": a.incentives_usd,
                }
            )
        return pd.DataFrame(rows, columns=AUCTION_COLUMNS)


def auction_metrics(auctions: pd.DataFrame) -> dict[str, Any]:
    """The summary's auction keys from the per-auction table (USD): n_auctions (kicked), auctions_live_at_end,
    auction_bad_debt_usd (debt settled auctions left unpaid, written off), auction_shortfall_usd (the part of it
    that comes from auctions clearing below the collateral's market value: per auction min(bad debt, discount), the
    bad debt a sale at market value would have repaid), auction_discount_usd (market value of the collateral sold
    minus what it raised), auction_zero_bid_share (settled English auctions won at the
    opening bid, over settled auctions; None without any), auction_debt_live_usd (debt of auctions still live
    at the end, neither repaid nor written off) and auction_unbacked_live_usd (the part of it that neither their
    proceeds so far nor their lots at the end's market price cover). All 0 (the share None) without auctions."""
    settled = auctions[auctions["settle_step"].notna()] if len(auctions) else auctions
    live = len(auctions) - len(settled)
    bad = settled["bad_debt_usd"].astype(float) if len(settled) else pd.Series(dtype=float)
    discount = settled["discount_usd"].astype(float) if len(settled) else pd.Series(dtype=float)
    open_ = auctions[auctions["settle_step"].isna()] if live else auctions
    held = open_["lot"] - open_["sold"] - open_["returned"]  # tokens still in escrow
    unbacked = np.maximum(open_["debt_usd"] - open_["raised"] - held * open_["market_price"], 0.0)
    return {
        "n_auctions": len(auctions),
        "auctions_live_at_end": live,
        "auction_bad_debt_usd": float(bad.sum()),
        "auction_shortfall_usd": float(settled["shortfall_usd"].astype(float).sum()) if len(settled) else 0.0,
        "auction_discount_usd": float(discount.sum()),
        "auction_zero_bid_share": float(settled["zero_bid"].astype(bool).mean()) if len(settled) else None,
        "auction_debt_live_usd": float(open_["debt_usd"].sum()) if live else 0.0,
        "auction_unbacked_live_usd": float(unbacked.sum()) if live else 0.0,
    }
