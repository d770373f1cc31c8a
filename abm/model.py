"""ReflexivityModel: the Mesa model that wires the market, the pool, the margin engine and the agents (SPEC 1.3).

One step is `market.step_seconds` of time and runs eight phases in order: exogenous moves, oracles, interest,
lenders, traders, health, liquidators, resolution. Within a phase agents act in a random order drawn from the
model's seeded generators, so a configuration and a seed fix the whole run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import mesa
import numpy as np

from abm.agents import Lender, LeveragedTrader, Liquidator, OracleUpdater
from abm.agents.lender import LenderView
from abm.config import ModelConfig
from abm.config.schema import SetEvent
from abm.contagion.attribution import Attribution, EventLosses, WindowAttribution, health_sensitivity
from abm.contagion.distress import equity_snapshot
from abm.invariants import Ledgers, check_invariants
from abm.lending import LendingPool, MarginEngine, Wallets
from abm.market import Fundamentals, Market, OracleBoard
from abm.observation import StepRecorder
from abm.protocol import _row_sums

STRATEGY_ORDER = ("momentum", "contrarian", "vol_target", "hodl", "short")
RISK_ORDER = ("stubborn", "prudent", "stop_loss")
MODE_ORDER = ("cross", "isolated", "portfolio")


def overrides_from_keywords(params: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword parameters to dotted names: `traders__max_leverage=5` -> `traders.max_leverage`.

    This is how `mesa.batch_run` (which passes parameters as keywords) sweeps dotted configuration names.
    """
    return {key.replace("__", "."): value for key, value in params.items()}


class _ImpactLog:
    """A numpy mirror of `Market.liq_impacts` (event id, step, asset, dm), extended as the list grows, so a
    liquidation's attribution window is array slices rather than a Python loop over every earlier impact."""

    def __init__(self) -> None:
        self.n = 0
        self.event = np.zeros(256, dtype=np.int64)
        self.step = np.zeros(256, dtype=np.int64)
        self.asset = np.zeros(256, dtype=np.int64)
        self.dm = np.zeros(256)

    def sync(self, impacts: list[tuple[int, int, int, float]]) -> None:
        new = len(impacts) - self.n
        if new <= 0:
            return
        if len(impacts) > len(self.dm):
            size = max(len(impacts), 2 * len(self.dm))
            for name in ("event", "step", "asset", "dm"):
                old = getattr(self, name)
                grown = np.zeros(size, dtype=old.dtype)
                grown[: self.n] = old[: self.n]
                setattr(self, name, grown)
        ev, st, asset, dm = zip(*impacts[self.n :], strict=True)
        end = self.n + new
        self.event[self.n : end] = ev
        self.step[self.n : end] = st
        self.asset[self.n : end] = asset
        self.dm[self.n : end] = dm
        self.n = end


class ReflexivityModel(mesa.Model):
    """Leveraged traders, liquidators, lenders and oracle updaters around one lending pool and one market.

    Build from a `ModelConfig`, or a preset name, plus keyword overrides whose names are dotted parameter names
    with `__` for the dots (`traders__max_leverage=5`). `rng` seeds everything (Mesa's convention); `steps`
    overrides the configuration's run length (used for `running` and the data arrays).
    """

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        preset: str | None = None,
        rng: int | None = None,
        steps: int | None = None,
        **params: Any,
    ) -> None:
        super().__init__(rng=rng)
        if config is None:
            config = ModelConfig.from_preset(preset or "baseline")
        elif preset is not None:
            raise ValueError("give either config or preset, not both")
        if params:
            config = config.with_overrides(overrides_from_keywords(params))
        self.config = config
        self.initial_config = config
        self.seed = rng
        self.total_steps = int(steps if steps is not None else config.steps)
        self.symbols = config.symbols
        n_assets = len(self.symbols)
        tcfg, lcfg, qcfg = config.traders, config.liquidators, config.lenders

        # --- the market, the pool, the ledgers -------------------------------------------------------------
        self.fundamentals = Fundamentals(config, self.rng)
        self.market = Market(config, self.fundamentals.log_f)
        n_holders = tcfg.n_traders + lcfg.n_liquidators + qcfg.n_lenders
        self.wallets = Wallets(n_holders, self.symbols)
        self.pool = LendingPool(config, n_suppliers=qcfg.n_lenders)
        self.engine = MarginEngine(self.pool, self.wallets, self.market, capacity=max(16, 2 * tcfg.n_traders))
        self.engine.scenarios = self._portfolio_scenarios()
        self.oracle = OracleBoard(self.fundamentals.prices, config.oracles.n_updaters)
        self.log_price_hist = np.zeros((self.total_steps + 1, n_assets))
        self.log_fund_hist = np.zeros((self.total_steps + 1, n_assets))
        self.log_price_hist[0] = self.market.log_p
        self.log_fund_hist[0] = self.fundamentals.log_f
        self.anchor_log_price = self.market.log_p.copy()  # contrarians' EMA anchor
        self.set_events = [ev for ev in config.scenario.events if isinstance(ev, SetEvent)]

        # --- agents ----------------------------------------------------------------------------------------
        self.traders: list[LeveragedTrader] = []
        self.out_until = np.full(tcfg.n_traders, -1, dtype=np.int64)  # LeveragedTrader.out_until, by trader
        equity = self._draw_equity()
        strategies = self._draw_mix(tcfg.strategy_mix, STRATEGY_ORDER, tcfg.n_traders)
        risks = self._draw_mix(tcfg.risk_mix, RISK_ORDER, tcfg.n_traders)
        modes = self._draw_mix(tcfg.margin_mode_mix, MODE_ORDER, tcfg.n_traders)
        n_risky = n_assets - 1
        for i in range(tcfg.n_traders):
            assets = sorted(1 + self.rng.choice(n_risky, size=tcfg.assets_per_trader, replace=False))
            short = strategies[i] == "short"
            cap = self._leverage_cap(assets, short, prudent=risks[i] == "prudent")
            leverage = float(self.rng.uniform(tcfg.leverage_min, tcfg.max_leverage))
            trader = LeveragedTrader(
                self, i, strategies[i], risks[i], modes[i], [int(a) for a in assets], min(leverage, cap), equity[i]
            )
            self.wallets.kinds[i] = "trader"
            self.traders.append(trader)
        self.liquidators: list[Liquidator] = []
        for j in range(lcfg.n_liquidators):
            holder = tcfg.n_traders + j
            self.wallets.kinds[holder] = "liquidator"
            self.market.pay_out(0, lcfg.capital_usd)
            self.wallets.credit(holder, 0, lcfg.capital_usd)
            self.liquidators.append(Liquidator(self, holder))
        self.lenders: list[Lender] = []
        for j in range(qcfg.n_lenders):
            holder = tcfg.n_traders + lcfg.n_liquidators + j
            self.wallets.kinds[holder] = "lender"
            self.lenders.append(Lender(self, holder, supplier=j))
        self.updaters: list[OracleUpdater] = []
        for a in range(1, n_assets):
            for slot in range(config.oracles.n_updaters):
                jitter = int(self.rng.integers(0, 2)) if config.oracles.n_updaters > 1 else 0
                self.updaters.append(OracleUpdater(self, a, slot, jitter))

        # --- initial state: lenders supply, traders' positions exist before the run --------------------------
        self._seed_liquidity(float(equity.sum()))
        for i in self.rng.permutation(tcfg.n_traders):
            trader = self.traders[int(i)]
            self.wallets.credit(trader.holder, 0, trader.initial_equity)
            self.market.pay_out(0, trader.initial_equity)
            trader.open_positions(trader.initial_equity, self.oracle.prices, genesis=True)
        self.initial_ledgers = Ledgers.of(self)  # the reference for conservation and its tolerances
        self.start_equity = equity_snapshot(self)  # the reference for the run's distress metrics

        # --- clocks and bookkeeping -----------------------------------------------------------------------
        mean = tcfg.decision_interval_steps
        self.decision_interval = mean * self.rng.lognormal(-0.125, 0.5, tcfg.n_traders)  # mean-preserving
        self.next_decision = self.rng.exponential(self.decision_interval)
        self.is_prudent = np.array([t.risk_style == "prudent" for t in self.traders])
        self.is_stop_loss = np.array([t.risk_style == "stop_loss" for t in self.traders])
        self.peak_equity = equity.copy()
        self.last_healthy_step = np.zeros(self.engine.n, dtype=np.int64)
        self.hf = self.engine.health(self.oracle.prices)
        self._candidates: deque[np.ndarray] = deque(maxlen=64)
        self._event_counter = 0
        self._impact_log = _ImpactLog()
        self._decay_pow = np.empty((n_assets, 0))
        self._decay_pow_src = np.empty(0)
        self.recorder = StepRecorder(self)
        self.datacollector = self.recorder.datacollector
        self.datacollector.collect(self)

    # --- set-up helpers ------------------------------------------------------------------------------------

    def _draw_equity(self) -> np.ndarray:
        """Heavy-tailed shares of the traders' total equity (Pareto with the configured tail index), USD.

        No trader holds more than `traders.equity_max_share` of the total (or 2 / n_traders if that is larger),
        so that a small population is not one whale whose rebalancing alone moves the market.
        """
        tcfg = self.config.traders
        raw = (1.0 - self.rng.random(tcfg.n_traders)) ** (-1.0 / tcfg.equity_tail_alpha)
        share = raw / raw.sum()
        cap = max(tcfg.equity_max_share, 2.0 / tcfg.n_traders)
        for _ in range(50):  # clip and hand the excess to the others in proportion; converges in a few rounds
            over = share > cap
            if not over.any():
                break
            excess = float((share[over] - cap).sum())
            share[over] = cap
            share[~over] += excess * share[~over] / share[~over].sum()
        return tcfg.total_equity_usd * share

    def _draw_mix(self, mix: Mapping[str, float], order: tuple[str, ...], n: int) -> list[str]:
        names = [k for k in order if mix.get(k, 0) > 0]
        weights = np.array([mix[k] for k in names], dtype=float)
        picks = self.rng.choice(len(names), size=n, p=weights / weights.sum())
        return [names[int(p)] for p in picks]

    def _leverage_cap(self, assets: list[int], short: bool, prudent: bool) -> float:
        """Highest leverage a trader opens at: what the pool's LTVs allow, with a 5% margin so positions start
        healthy; a prudent trader also starts 10% above its health-factor buffer (else it would sell at once)."""
        pool = self.pool
        ltv = pool.ltv[0] if short else float(min(pool.ltv[a] for a in assets))
        cap = 0.95 * (ltv / (1.0 - ltv) if short else 1.0 / (1.0 - ltv))
        if prudent:
            h = 1.1 * self.config.traders.prudent_buffer
            lt = pool.liquidation_threshold[0] if short else float(min(pool.liquidation_threshold[a] for a in assets))
            # long: HF = L LT / (L - 1) >= h  ->  L <= h / (h - LT)
            # short: HF = (1 + L) LT / L >= h  ->  L <= LT / (h - LT)
            cap = min(cap, (lt if short else h) / (h - lt))
        return cap

    def _seed_liquidity(self, total_equity: float) -> None:
        """Lenders bring each reserve's initial supply (plus a quarter more kept idle) from the outside world."""
        n = len(self.lenders)
        for a, sym in enumerate(self.symbols):
            value = self.config.reserve(sym).supply_to_equity * total_equity
            tokens = value / float(self.fundamentals.prices[a])
            if tokens <= 0:
                continue
            for lender in self.lenders:
                self.market.pay_out(a, 1.25 * tokens / n)
                self.wallets.credit(lender.holder, a, 1.25 * tokens / n)
                self.pool.supply(lender.supplier, lender.holder, a, tokens / n, self.wallets)

    def _portfolio_scenarios(self) -> np.ndarray:
        """Joint price shocks (assets x scenarios) for portfolio margin: each asset alone and all together,
        down and up, by 1 - its liquidation threshold (so a lone long is margined as in cross mode)."""
        lt = self.pool.liquidation_threshold
        n = len(self.symbols)
        shock = np.zeros(n)
        shock[1:] = 1.0 - lt[1:]
        cols = [-shock, shock]
        for k in range(1, n):
            e = np.zeros(n)
            e[k] = shock[k]
            cols += [-e, e]
        return np.stack(cols, axis=1)

    # --- the step ------------------------------------------------------------------------------------------

    def step(self) -> None:
        t = self.steps
        cfg = self.config
        # 1. exogenous: fundamentals and scenario events; impact decays
        self._apply_set_events(t)
        self.fundamentals.step(t)
        self.market.begin_step(self.fundamentals.log_f)
        self.log_fund_hist[t] = self.fundamentals.log_f
        self.log_price_hist[t] = self.market.log_p  # provisional (pre-trade) for oracles observing "now"
        self.recorder.begin_step()
        # 2. oracles
        for i in self.rng.permutation(len(self.updaters)):
            self.updaters[int(i)].step()
        oracle = self.oracle.prices
        # 3. interest
        self.pool.accrue()
        # 4. lenders
        view = LenderView.of(self)
        for i in self.rng.permutation(len(self.lenders)):
            self.lenders[int(i)].step(view)
        # 5. traders whose clocks fire, or whose risk alerts ring
        clock = self.next_decision <= t
        self.next_decision[clock] = t + self.rng.exponential(self.decision_interval[clock])
        active = clock | self._risk_alerts(oracle)
        order = self.rng.permutation(np.flatnonzero(active))
        # a trader still out (stopped or wiped out, waiting to re-enter) returns at once: skip the call. Only a
        # trader's own step changes its out_until, so filtering before the loop changes nothing.
        order = order[self.out_until[order] <= t]
        traders = self.traders
        for i in order.tolist():
            traders[i].step()
        # 6. health: one vectorised pass over every account
        self._health_pass(oracle)
        # 7. liquidators
        for i in self.rng.permutation(len(self.liquidators)):
            self.liquidators[int(i)].step()
        # 8. resolution: bad debt, history, data
        self._resolve_bad_debt(t, oracle)
        self.log_price_hist[t] = self.market.log_p
        alpha = 2.0 / (cfg.traders.contrarian_anchor_steps + 1.0)
        self.anchor_log_price += alpha * (self.market.log_p - self.anchor_log_price)
        self.market.end_step()
        self.recorder.end_step()
        self.datacollector.collect(self)
        if cfg.check_invariants:
            check_invariants(self)
        if self.steps >= self.total_steps:
            self.running = False

    def _apply_set_events(self, t: int) -> None:
        due = {ev.parameter: ev.value for ev in self.set_events if ev.step == t}
        if due:
            self.config = self.config.with_overrides(due)
            self.pool.refresh_params(self.config)
            self.market.refresh_params(self.config)

    def trader_equity(self, account_equity: np.ndarray, prices: np.ndarray) -> np.ndarray:
        """Every trader's equity (USD): its accounts' equity (`account_equity`, USD per account) plus its wallet,
        at `prices` (USD per token)."""
        n_traders = len(self.traders)
        equity = np.bincount(self.engine.owner[: self.engine.n], weights=account_equity, minlength=n_traders)
        return equity + self.wallets.balances[:n_traders] @ prices

    def _risk_alerts(self, oracle: np.ndarray) -> np.ndarray:
        """Traders woken outside their clock: prudent ones under their HF buffer, stop-losses past their drawdown.

        One vectorised pass over accounts (last step's health) and over traders' equity.
        """
        n_traders = len(self.traders)
        owners = self.engine.owner[: self.engine.n]
        worst_hf = np.full(n_traders, np.inf)
        np.minimum.at(worst_hf, owners, self.hf)
        alerts = self.is_prudent & (worst_hf < self.config.traders.prudent_buffer)
        prices = self.market.prices
        coll, debt = self.engine.values(prices)
        equity = self.trader_equity(_row_sums(coll - debt), prices)
        np.maximum(self.peak_equity, equity, out=self.peak_equity)
        drawdown = equity < (1.0 - self.config.traders.stop_loss_drawdown) * self.peak_equity
        return alerts | (self.is_stop_loss & drawdown)

    def _health_pass(self, oracle: np.ndarray) -> None:
        engine = self.engine
        self.hf = engine.health(oracle)
        n = engine.n
        if len(self.last_healthy_step) < n:
            grown = np.full(n, self.steps, dtype=np.int64)
            grown[: len(self.last_healthy_step)] = self.last_healthy_step
            self.last_healthy_step = grown
        healthy = self.hf >= 1.0
        self.last_healthy_step[:n][healthy] = self.steps
        candidates = np.flatnonzero(~healthy)
        if len(candidates):
            debt_usd = _row_sums(engine.scaled_debt[candidates] * self.pool.borrow_index * oracle)
            candidates = candidates[np.argsort(-debt_usd, kind="stable")]  # the largest (most profitable) first
        self._candidates.appendleft(candidates)
        self.recorder.n_liquidatable = len(candidates)

    def liquidation_candidates(self, latency: int) -> np.ndarray:
        """Accounts that were liquidatable `latency` steps ago (what a liquidator with that scan latency sees)."""
        return self._candidates[min(latency, len(self._candidates) - 1)]

    def next_event_id(self) -> int:
        self._event_counter += 1
        return self._event_counter - 1

    def record_liquidation(
        self,
        event_id: int,
        acct: int,
        liquidator: Liquidator,
        debt_asset: int,
        repaid: float,
        coll_asset: int,
        seized: float,
        hf_before: float,
    ) -> None:
        """Record a liquidation event and attribute the account's loss of health to its sources (SPEC 4.2)."""
        oracle = self.oracle.prices
        start = int(self.last_healthy_step[acct])
        # the account's exposure before this liquidation: add back what was just repaid and seized
        coll = self.engine.collateral[acct].copy()
        coll[coll_asset] += seized
        debt = self.engine.debt_tokens(acct).copy()
        debt[debt_asset] += repaid
        w = health_sensitivity(coll * oracle, debt * oracle, self.pool.liquidation_threshold)
        # health is measured at oracle prices, which show the market `lag` steps late: the window of market
        # moves behind the lost health runs from what the oracle showed when the account was last healthy to
        # what it shows now (sales not yet seen by the oracle cannot have caused this liquidation)
        lag = 1 + int(self.config.oracles.latency_steps)
        begin, end = max(start - lag, 0), max(self.steps - lag, 0)
        total = self.log_price_hist[end] - self.log_price_hist[begin]
        exo = self.log_fund_hist[end] - self.log_fund_hist[begin]
        attribution = self._attribute_window(w, total, exo, begin, event_id, end=end)
        self.recorder.add_event(
            event_id=event_id,
            account=acct,
            owner=int(self.engine.owner[acct]),
            liquidator=liquidator.unique_id,
            debt_asset=debt_asset,
            repaid=repaid,
            coll_asset=coll_asset,
            seized=seized,
            hf_before=hf_before,
            attribution=attribution,
        )

    def _attribute_window(
        self, w: np.ndarray, total: np.ndarray, exo: np.ndarray, start: int, event_id: int, end: int | None = None
    ) -> Attribution:
        """`attribute(w, total, exo, events)` over the liquidation impacts of steps start < step <= end (default:
        now; other than event `event_id`'s own), each decayed to `end`: vectorised over the window, with the same
        floating-point operations in the same order as the per-impact loop (so the numbers are bit-identical):

            for ev, step, asset, dm in impacts in the window:  events[ev][asset] += dm * decay[asset] ** (end - step)

        then per event by_event = -(w * move).sum() and liq_total = the events' moves added in order.
        """
        log = self._impact_log
        log.sync(self.market.liq_impacts)
        n = log.n
        end = self.steps if end is None else end
        first = int(np.searchsorted(log.step[:n], start, side="right"))  # = bisect_right on the step
        n = int(np.searchsorted(log.step[:n], end, side="right"))
        first = min(first, n)
        ev = log.event[first:n]
        keep = ev != event_id
        ev, step, asset, dm = ev[keep], log.step[first:n][keep], log.asset[first:n][keep], log.dm[first:n][keep]
        n_assets = len(self.symbols)
        if len(ev) == 0:
            move_sum = np.zeros(n_assets)
            return Attribution(
                exogenous=float(-(w * exo).sum()), other=float(-(w * (total - exo - move_sum)).sum()), by_event={}
            )
        age = end - step
        factor = self._decay_powers(int(age.max()))[asset, age]  # decay[asset] ** age, computed as Python scalars
        contribution = dm * factor
        ids, first_seen, row = np.unique(ev, return_index=True, return_inverse=True)
        order = np.argsort(first_seen, kind="stable")  # rows in order of first appearance (dict insertion order)
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        moves = np.zeros((len(ids), n_assets))
        np.add.at(moves, (rank[row], asset), contribution)  # unbuffered, in order: as the += loop
        by_event = -_row_sums(w * moves)  # each row summed as `(w * move).sum()` sums it
        liq_total = np.zeros(n_assets)
        liq_total += moves.sum(axis=0)  # axis-0 reduction adds rows in order, as `liq_total += move` does
        return WindowAttribution(
            exogenous=float(-(w * exo).sum()),
            other=float(-(w * (total - exo - liq_total)).sum()),
            by_event=EventLosses(ids[order], by_event),  # type: ignore[arg-type]  # a Mapping[int, float]
        )

    def _decay_powers(self, max_age: int) -> np.ndarray:
        """(assets, ages) table of `decay[asset] ** age` for ages 0..max_age (at least), each entry computed as
        the Python scalar power (not numpy's vectorised pow), rebuilt if the market's decay changes."""
        decay = self.market.decay
        table = self._decay_pow
        if table.shape[1] > max_age and np.array_equal(self._decay_pow_src, decay):
            return table
        if not np.array_equal(self._decay_pow_src, decay):
            table = np.empty((len(decay), 0))
            self._decay_pow_src = decay.copy()
        have = table.shape[1]
        size = max(max_age + 1, 2 * have, 64)
        grown = np.empty((len(decay), size))
        grown[:, :have] = table
        for a in range(len(decay)):
            base = decay[a]
            grown[a, have:] = [base**age for age in range(have, size)]
        self._decay_pow = grown
        return grown

    def _resolve_bad_debt(self, t: int, oracle: np.ndarray) -> None:
        for acct in self.engine.insolvent_accounts(oracle):
            for asset in np.flatnonzero(self.engine.scaled_debt[acct] > 0):
                scaled = float(self.engine.scaled_debt[acct, asset])
                self.engine.scaled_debt[acct, asset] = 0.0
                rec = self.pool.write_off(t, int(acct), int(asset), scaled, float(oracle[asset]), self.market)
                self.recorder.add_write_off(rec)
