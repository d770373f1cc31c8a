"""ReflexivityModel: the Mesa model that wires the market, the pool, the margin engine and the agents
(docs/model.md, 1.3 Process overview and scheduling).

One step is `market.step_seconds` of time and runs eight phases in order: exogenous moves, oracles, interest,
lenders, traders, health, liquidators, resolution. With `perps.enabled` the perpetual venue (`abm.perps.PerpVenue`,
docs/perps.md) runs inside these phases (see `ReflexivityModel.step`); without it nothing of it is built and a run is
bit for bit what it was before the venue existed. Randomness comes from five generators spawned from the run's
seed, one per purpose (news, population, decision clocks, activation order, venue choice), so that runs with the
same seed share their news whatever the other parameters are (common random numbers).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mesa
import numpy as np

from abm.agents import BasisTrader, Lender, LeveragedTrader, Liquidator, OracleUpdater, PerpTrader
from abm.agents.auction_desk import AuctionDesk
from abm.agents.batched import batched_trader_phase
from abm.agents.book import TraderBook
from abm.agents.decisions import genesis_leverages
from abm.agents.hunter import LiquidationHunter
from abm.agents.lender import LenderSentiment, LenderView, act_in_turn, parity_supply
from abm.agents.looper import LoopingTrader, looper_leverages
from abm.agents.oracle_attacker import OracleAttacker
from abm.agents.population import base_leverage, draw_population, per_combination, perp_leverage_cap
from abm.agents.registry import collector_paused
from abm.agents.risk_manager import RiskManager
from abm.agents.trader import new_traders, open_genesis_positions
from abm.config import ModelConfig
from abm.config.schema import MARGIN_MODES, RISK_STYLES, SetEvent
from abm.invariants import Ledgers, check_invariants
from abm.lending import LendingPool, MarginEngine, Wallets
from abm.market import Fundamentals, Market, OracleBoard
from abm.market.history import PriceHistory
from abm.market.venue import OracleVenue
from abm.numerics import row_sums
from abm.perps import PerpVenue
from abm.recording.attribution import AttributionLedger
from abm.recording.baseline import BaselineCrossings
from abm.recording.distress import EquitySnapshot, equity_snapshot
from abm.recording.recorder import StepRecorder


def overrides_from_keywords(params: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword parameters to dotted names: `traders__max_leverage=5` -> `traders.max_leverage`.

    This is how `mesa.batch_run` (which passes parameters as keywords) sweeps dotted configuration names.
    """
    return {key.replace("__", "."): value for key, value in params.items()}


@dataclass(frozen=True)
class RandomStreams:
    """Independent generators spawned from one seed, one per source of randomness (common random numbers):
    news (fundamentals), population (equity, categories, assets, base leverage, oracle jitter), clocks (decision
    intervals and times), activation (the order agents act in) and venue (which traders hold perpetuals: a
    stream of its own, so turning the venue on moves nobody's other draws). Children of one SeedSequence do not
    depend on how many are spawned, so the first four are what they were before the venue stream existed."""

    news: np.random.Generator
    population: np.random.Generator
    clocks: np.random.Generator
    activation: np.random.Generator
    venue: np.random.Generator

    @classmethod
    def from_seed(cls, seed: int) -> RandomStreams:
        return cls(*(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)))


class ReflexivityModel(mesa.Model):
    """Leveraged traders, liquidators, lenders and oracle updaters around one lending pool and one market.

    Build from a `ModelConfig`, or a preset name, plus keyword overrides whose names are dotted parameter names
    with `__` for the dots (`traders__max_leverage=5`). `rng` is the integer seed (Mesa's name for it, which
    `mesa.batch_run` passes; None draws one from the operating system) and is kept as `seed`. `steps` overrides
    the configuration's run length (used for `running` and the data arrays).
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
        if rng is not None and not isinstance(rng, int | np.integer):
            raise TypeError(f"rng must be an integer seed or None (got {type(rng).__name__})")
        seed = int(np.random.SeedSequence().generate_state(1)[0]) if rng is None else int(rng)
        super().__init__(rng=seed)
        self.seed = seed
        if config is None:
            config = ModelConfig.from_preset(preset or "baseline")
        elif preset is not None:
            raise ValueError("give either config or preset, not both")
        if params:
            config = config.with_overrides(overrides_from_keywords(params))
        self.config = config
        self.initial_config = config  # scenario `set` events replace `config`; re-runs start from this
        self.total_steps = int(steps if steps is not None else config.steps)
        self.symbols = config.symbols
        self._read_outside_rates()
        self.streams = RandomStreams.from_seed(seed)
        self._build_market()
        self._build_pool()
        self._build_perps()
        with collector_paused():  # a million traders: the cyclic collector's passes would cost more than the build
            self._build_agents()
        self._open_positions()
        # liquidation auctions (liquidators.mechanism english / dutch); None keeps the fixed-bonus liquidators only
        self.auctions = AuctionDesk(self) if config.liquidators.mechanism != "keeper" else None
        self.initial_ledgers = Ledgers.of(self)  # the reference for conservation and its tolerances
        # the positions at step 0 (tokens, accounts x assets): what a fundamental-only counterfactual starts from
        self.start_collateral = self.engine.collateral[: self.engine.n].copy()
        self.start_debt = self.engine.debt_tokens()[: self.engine.n].copy()
        self.start_equity: EquitySnapshot = equity_snapshot(self.engine, self.book, self.market.prices)
        self._candidates: deque[np.ndarray] = deque(maxlen=64)  # liquidatable accounts, newest first
        self.profit_screen: Any = None  # the liquidators' shared profit screen this step (abm.agents.liquidator)
        self.attribution = AttributionLedger(self)
        self.baseline = BaselineCrossings(self)
        self.hf = self._health_along_paths(self.oracle.prices)  # the reference path and who is below at the start
        self.baseline.new_crossings[:] = 0
        self.recorder = StepRecorder(self)
        self.datacollector = self.recorder.datacollector
        self.datacollector.collect(self)

    # --- builders ------------------------------------------------------------------------------------------

    def _build_market(self) -> None:
        """Fundamentals (the news stream), the market, the oracle board and the price histories."""
        config = self.config
        self.fundamentals = Fundamentals(config, self.streams.news)
        prehistory = self.fundamentals.prehistory(config.start.prehistory_steps)
        self.history = PriceHistory(prehistory, self.total_steps)
        self.market = Market(config, self.fundamentals.log_f)
        self.market.learn_volatility(prehistory)
        self.oracle = OracleBoard(self.fundamentals.prices, config.oracles.n_updaters)
        # a thin venue some oracle updaters read (oracle_venue.enabled); None keeps every updater on the market
        self.oracle_venue = (
            OracleVenue(config, self.market.log_p, prehistory, self.total_steps)
            if config.oracle_venue.enabled
            else None
        )
        self.anchor_log_price = prehistory[0].copy()  # contrarians' EMA anchor, run over the pre-history
        for log_p in prehistory[1:]:
            self._update_anchor(log_p)
        self.set_events = [ev for ev in config.scenario.events if isinstance(ev, SetEvent)]

    def _build_pool(self) -> None:
        """Wallets for every holder (traders, then liquidators, then lenders), the pool and the margin engine."""
        cfg = self.config
        n_holders = (
            cfg.traders.n_traders + cfg.liquidators.n_liquidators + cfg.lenders.n_lenders + cfg.basis_traders.n_traders
        )
        n_holders += cfg.lst.n_loopers if cfg.lst.enabled else 0  # staking: loopers' wallets come last
        n_holders += cfg.hunters.n_hunters + int(cfg.attacker.enabled)  # adversaries: rows after every other holder
        self.wallets = Wallets(n_holders, self.symbols)
        self.pool = LendingPool(cfg, n_suppliers=cfg.lenders.n_lenders)
        self.engine = MarginEngine(self.pool, self.wallets, self.market, capacity=max(16, 2 * cfg.traders.n_traders))

    def _build_perps(self) -> None:
        """The perpetual venue over the risky assets when `perps.enabled` (else `perps` is None): its index starts
        at the oracle prices; the insurance fund and the backstop vault's capital come from the outside world.
        `basis_spot_dm` holds, per asset, the log impact of basis traders' spot trades in the current step."""
        cfg = self.config
        self.perps: PerpVenue | None = None
        self.basis_spot_dm = np.zeros(len(self.symbols))
        self.funding_paid_usd = 0.0  # gross funding paid by the paying positions this step (USD)
        if not cfg.perps.enabled:
            return
        capacity = 2 * (cfg.traders.n_traders + cfg.basis_traders.n_traders) + 8
        self.perps = PerpVenue(cfg, cfg.perps, self.oracle.prices, capacity=capacity)
        self.market.pay_out(0, cfg.perps.insurance_fund_usd + cfg.perps.vault_capital_usd)

    def perp_traders(self, n_traders: int) -> np.ndarray:
        """Which traders hold their exposure in perpetuals (bool per trader): each with probability
        `perps.trader_share`, from the venue stream (no draw at all without the venue)."""
        share = self.config.perps.trader_share if self.perps is not None else 0.0
        if share <= 0:
            return np.zeros(n_traders, dtype=bool)
        return self.streams.venue.random(n_traders) < share

    def _build_agents(self) -> None:
        """The trader book and traders (population stream; clocks stream; venue stream for who trades perps),
        liquidators, lenders, basis traders, oracle updaters. A perp trader keeps its drawn leverage quantile under
        the perp venue's leverage cap (`population.perp_leverage_cap`) instead of the pool's."""
        tcfg, cfg = self.config.traders, self.config
        n_traded = len(self.symbols) - 1 - int(cfg.lst.enabled)  # the staked token (listed last) is the loopers'
        pop = draw_population(tcfg, n_traded, self.pool, self.streams.population, self.market.sigma_daily)
        on_perps = self.perp_traders(tcfg.n_traders)
        leverage, cap = pop.base_leverage, pop.leverage_cap
        if on_perps.any() and self.perps is not None:
            leverage, cap = leverage.copy(), cap.copy()
            imr, mmr = float(self.perps.imr[0]), float(self.perps.mmr[0])
            prudent = pop.risk == RISK_STYLES.index("prudent")
            distance = tcfg.liquidation_distance_sigmas * self.market.sigma_daily[pop.assets].max(axis=1)
            perp_cap = per_combination(  # once per (side, prudence, assets) that occurs
                lambda i: perp_leverage_cap(
                    imr, mmr, bool(pop.direction[i] < 0), bool(prudent[i]), tcfg.prudent_buffer, float(distance[i])
                ),
                np.column_stack([pop.direction < 0, prudent, pop.assets]),
            )
            cap[on_perps] = perp_cap[on_perps]
            leverage[on_perps] = np.minimum(base_leverage(tcfg, pop.leverage_quantile), cap)[on_perps]
        interval = tcfg.decision_interval_steps * self.streams.clocks.lognormal(-0.125, 0.5, tcfg.n_traders)
        self.book = TraderBook(
            self.engine,
            self.wallets,
            strategy=pop.strategy,
            risk=pop.risk,
            mode=pop.mode,
            direction=pop.direction,
            base_leverage=leverage,
            leverage_cap=cap,
            initial_equity=pop.equity,
            decision_interval=interval,
            next_decision=self.streams.clocks.exponential(interval),
            reaction_delay=tcfg.reaction_delay_steps * self.streams.clocks.lognormal(-0.125, 0.5, tcfg.n_traders),
        )
        self.book.perps = self.perps
        # per trader: its assets and (lending traders) its account for each, also kept as arrays for the genesis pass
        self.trader_assets = pop.assets
        self.trader_accounts = self._trader_accounts(pop.mode, pop.assets, on_perps)
        assets, accounts = pop.assets.tolist(), self.trader_accounts.tolist()
        classes: list[type[LeveragedTrader]] = [LeveragedTrader] * tcfg.n_traders
        perp_rows = np.flatnonzero(on_perps).tolist()  # perp traders open their venue accounts themselves
        for i in perp_rows:
            classes[i] = PerpTrader
        self.traders = new_traders(self, classes, assets, accounts, perp_rows)
        holder = tcfg.n_traders
        self.liquidators: list[Liquidator] = []
        for _ in range(cfg.liquidators.n_liquidators):
            self.wallets.fund_from_world(self.market, holder, 0, cfg.liquidators.capital_usd)
            self.liquidators.append(Liquidator(self, holder))
            holder += 1
        self.lenders = [Lender(self, holder + j, supplier=j) for j in range(cfg.lenders.n_lenders)]
        self.lender_sentiment = LenderSentiment(len(self.symbols))
        holder += len(self.lenders)
        n_risky = len(self.symbols) - 1
        self.basis_traders: list[BasisTrader] = []
        for j in range(cfg.basis_traders.n_traders):  # spread over the risky assets in turn
            self.wallets.fund_from_world(self.market, holder + j, 0, cfg.basis_traders.capital_usd)
            self.basis_traders.append(BasisTrader(self, holder + j, 1 + j % n_risky))
        kinds = ["trader"] * tcfg.n_traders + ["liquidator"] * len(self.liquidators) + ["lender"] * len(self.lenders)
        kinds += ["basis trader"] * len(self.basis_traders)
        # staking: loopers (docs/model.md, 3.3 Staking collateral and looping), wallets after the basis traders
        self.loopers: list[LoopingTrader] = []
        self.staked_pair: tuple[int, int] | None = None  # (base, token): swapped in the token's pool
        if cfg.lst.enabled:
            token, base = self.symbols.index(cfg.lst.symbol), self.symbols.index(cfg.lst.base)
            self.staked_pair = (base, token)
            first = holder + len(self.basis_traders)
            self.loopers = [LoopingTrader(self, first + j, token, base) for j in range(cfg.lst.n_loopers)]
            kinds += ["looper"] * len(self.loopers)
        kinds += ["hunter"] * cfg.hunters.n_hunters + ["oracle attacker"] * int(cfg.attacker.enabled)
        self.wallets.kinds[:] = kinds
        n_up = cfg.oracles.n_updaters
        self.updaters = [
            OracleUpdater(self, a, slot, int(self.streams.population.integers(0, 2)) if n_up > 1 else 0)
            for a in range(1, len(self.symbols))
            for slot in range(n_up)
        ]
        # the risk manager (risk_manager.enabled): built only when on, so a run without it is what it always was
        self.risk_manager = RiskManager(self) if cfg.risk_manager.enabled else None
        # adversaries (docs/model.md, 3.3 Submodels: Adversaries): wallet rows after the basis traders', built last
        # so no other agent's id moves; they draw no randomness, so every stream is what it is without them
        holder += len(self.basis_traders) + len(self.loopers)  # after the loopers' wallets too
        self.hunters = [LiquidationHunter(self, holder + j) for j in range(cfg.hunters.n_hunters)]
        holder += len(self.hunters)
        self.attackers = [OracleAttacker(self, holder)] if cfg.attacker.enabled else []

    def _trader_accounts(self, mode: np.ndarray, assets: np.ndarray, on_perps: np.ndarray) -> np.ndarray:
        """The lending accounts of the traders not on perps, opened in one pass in the order (trader by trader) the
        traders would open them one at a time: one per asset (isolated) or one shared; per trader (row), its
        account id for each of its assets (columns of `assets`; -1 for a perp trader)."""
        isolated = mode == MARGIN_MODES.index("isolated")
        n, per_trader = assets.shape
        count = np.where(on_perps, 0, np.where(isolated, per_trader, 1))
        owners = np.repeat(np.arange(n), count)
        ids = self.engine.open_accounts(owners, mode[owners])
        start = np.concatenate(([0], np.cumsum(count)[:-1]))
        column = np.where(isolated[:, None], np.arange(per_trader)[None, :], 0)
        accounts = ids[np.minimum(start[:, None] + column, max(len(ids) - 1, 0))] if len(ids) else np.zeros_like(assets)
        return np.where(on_perps[:, None], -1, accounts)

    def _open_positions(self) -> None:
        """Lenders supply each reserve (plus a quarter more kept idle), traders open their genesis positions at
        the leverage their strategies want given the pre-history (basis traders theirs if funding pays at the
        start), and lenders then bring each reserve with an outside rate to parity (supply rate = outside rate),
        all with tokens from the outside world."""
        total_equity = float(self.book.initial_equity.sum())
        for a, sym in enumerate(self.symbols):
            tokens = self.config.reserve(sym).supply_to_equity * total_equity / float(self.fundamentals.prices[a])
            if tokens <= 0:
                continue
            for lender in self.lenders:
                self.wallets.fund_from_world(self.market, lender.holder, a, 1.25 * tokens / len(self.lenders))
                self.pool.supply(lender.supplier, lender.holder, a, tokens / len(self.lenders), self.wallets)
        # the lending traders' leverages from the state before anyone opens, in one pass (as their decisions); they
        # open in one pass too (`open_genesis_positions`), in activation order; the perp traders one at a time
        lending = self.trader_accounts[:, 0] >= 0  # perp traders hold no lending account
        leverages = np.full(len(self.traders), np.nan)
        leverages[lending] = genesis_leverages(self, np.flatnonzero(lending), self.trader_assets[lending, 0])
        order = self.streams.activation.permutation(len(self.traders))
        for i in order[~lending[order]].tolist():
            trader = self.traders[i]
            self.wallets.fund_from_world(self.market, trader.holder, 0, trader.initial_equity)
            trader.open_positions(trader.initial_equity, self.oracle.prices, genesis=True)
        holders = order[lending[order]]
        if len(holders):
            equity = self.book.initial_equity[holders]
            self.wallets.fund_many_from_world(self.market, holders, 0, equity)
            assets, accounts = self.trader_assets[holders], self.trader_accounts[holders]
            open_genesis_positions(self, holders, assets, accounts, equity, leverages[holders], self.oracle.prices)
        for basis in self.basis_traders:
            basis.open_genesis()
        if self.loopers:  # staking: lenders of the base asset fund the loops (at U*), then the loopers loop
            lst = self.config.lst
            base = self.symbols.index(lst.base)
            leverage = looper_leverages(lst.loop_leverage, lst.leverage_spread, len(self.loopers))
            equity = lst.looper_equity_usd / len(self.loopers)
            borrow = float((leverage - 1.0).sum()) * equity / float(self.fundamentals.prices[base])
            extra = borrow / self.config.reserve(lst.base).optimal_utilisation / len(self.lenders)
            for lender in self.lenders:
                self.wallets.fund_from_world(self.market, lender.holder, base, extra)
                self.pool.supply(lender.supplier, lender.holder, base, extra, self.wallets)
            for looper, lev in zip(self.loopers, leverage.tolist(), strict=True):
                looper.open_genesis(equity, lev)
        target = parity_supply(self.pool, self.outside_rates)
        for a in np.flatnonzero(np.isfinite(target)):
            gap = (float(target[a]) - float(self.pool.supplied[a])) / len(self.lenders)
            for lender in self.lenders:
                if gap > 0:
                    self.wallets.fund_from_world(self.market, lender.holder, int(a), gap)
                    self.pool.supply(lender.supplier, lender.holder, int(a), gap, self.wallets)
                else:
                    self.pool.withdraw(lender.supplier, lender.holder, int(a), -gap, self.wallets)
        self.pool.begin_withdrawals()

    # --- the step ------------------------------------------------------------------------------------------

    def step(self) -> None:
        t = self.steps
        cfg = self.config
        order = self.streams.activation.permutation
        # 1. exogenous: fundamentals and scenario events; impact decays
        self._apply_set_events(t)
        if self.risk_manager is not None:  # moves LTV / LT with the realised volatility up to the last step
            self.risk_manager.step()
        self.fundamentals.step(t)
        self.market.begin_step(self.fundamentals.log_f)
        self.history.record(t, self.market.log_p, self.fundamentals.log_f)  # market provisional (pre-trade)
        if self.oracle_venue is not None:  # the thin venue follows the market; arbitrage closes part of its gap
            self.oracle_venue.begin_step(t, self.market.log_p)
        self.recorder.begin_step()
        # 2. oracles; the perp venue takes the posted oracle prices as its index and its books' impact relaxes
        for i in order(len(self.updaters)):
            self.updaters[i].step()
        for attacker in self.attackers:  # its corrupted updaters post after the honest ones
            attacker.post_oracle()
        oracle = self.oracle.prices
        venue = self.perps
        if venue is not None:
            venue.begin_step(oracle, t)
            self.basis_spot_dm[:] = 0.0
        # 3. interest
        self.pool.accrue()
        # 4. lenders
        self.pool.begin_withdrawals()
        fear = self.lender_sentiment.update(self.pool, cfg.lenders.panic_half_life_steps)
        view = LenderView.of(self, fear)
        act_in_turn(self, [self.lenders[i] for i in order(len(self.lenders))], view)
        # 5. traders whose clocks fire (risk alerts bring a clock forward by the trader's reaction delay), except
        # those still out after a stop or wipe-out
        self.wake_alerted(t)
        due = self.book.clocks_due(t, self.streams.clocks)
        # the lending traders decide together from the state now, then trade in activation order (abm.agents.batched)
        batched_trader_phase(self, order(due[self.book.out_until.take(due) <= t]))
        # basis traders act every step, after the other traders (their positions answer the premium those made)
        if self.basis_traders:
            for i in order(len(self.basis_traders)):
                self.basis_traders[i].step()
        for hunter in self.hunters:  # adversaries trade last, in a fixed order (no draw from the activation stream)
            hunter.step()
        for attacker in self.attackers:
            attacker.trade()
        # 6. health: one vectorised pass over every lending account; then the perp venue samples its premium (and
        # pays funding at the end of a period) and runs its own margin pass, liquidating through its waterfall
        self._health_pass(oracle)
        if venue is not None:
            self._perp_phase(venue, t)
        # 7. liquidators (an oracle attacker, knowing when its push lands, liquidates first)
        for attacker in self.attackers:
            attacker.liquidate()
        for i in order(len(self.liquidators)):
            self.liquidators[i].step()
        if self.auctions is not None:  # the auctions advance after the kicks; keepers sell what they win
            self.auctions.step()
        # 8. resolution: bad debt, history, data
        self._resolve_bad_debt(t, oracle)
        self.history.record(t, self.market.log_p)
        if self.oracle_venue is not None:
            self.oracle_venue.end_step(t)
        self._update_anchor(self.market.log_p)
        self.market.end_step()
        self.baseline.record_impact(t)
        if venue is not None:
            venue.end_step(t)
        self.recorder.end_step()
        self.datacollector.collect(self)
        if cfg.check_invariants:
            check_invariants(self)
        if self.steps >= self.total_steps:
            self.running = False

    def _perp_phase(self, venue: PerpVenue, t: int) -> None:
        """Funding (premium sample; payment at a period's end) and the venue's health pass with its waterfall.
        Books the step's gross funding paid (USD, by every row that paid) in `funding_paid_usd`."""
        paid_before = venue.funding[: venue.n].copy()
        venue.accrue_funding(t)
        self.funding_paid_usd = float(np.clip(paid_before - venue.funding[: venue.n], 0.0, None).sum())
        venue.health_pass(t)

    def _update_anchor(self, log_price: np.ndarray) -> None:
        """One step of the contrarians' EMA anchor (span `traders.contrarian_anchor_steps`) toward `log_price`."""
        alpha = 2.0 / (self.config.traders.contrarian_anchor_steps + 1.0)
        self.anchor_log_price += alpha * (log_price - self.anchor_log_price)

    def _apply_set_events(self, t: int) -> None:
        due = {ev.parameter: ev.value for ev in self.set_events if ev.step == t}
        if due:
            self.change_parameters(due)

    def change_parameters(self, overrides: Mapping[str, Any]) -> None:
        """The one way parameters change during a run (scenario `set` events, the risk manager): a new validated
        configuration with the dotted `overrides`, which the pool and the market then re-read (the margin engine
        follows the pool's `params_version`)."""
        self.config = self.config.with_overrides(overrides)
        self._read_outside_rates()
        self.pool.refresh_params(self.config)
        self.market.refresh_params(self.config)

    def _read_outside_rates(self) -> None:
        """`outside_rates`: the lenders' outside rate per reserve (per year), read from the configuration."""
        self.outside_rates = np.array([self.config.reserve(s).outside_rate for s in self.symbols])

    def wake_alerted(self, t: int) -> int:
        """Wake the traders whose risk alert rings (`TraderBook.wake_alerted`; returns how many): prudent ones whose
        worst account is under their HF buffer (last step's health), stop-losses past their drawdown from their
        peak equity (market prices)."""
        tcfg = self.config.traders
        # basis traders' and loopers' accounts belong to holders after the traders: left out
        return self.book.wake_alerted(self.hf, self.market.prices, t, tcfg.prudent_buffer, tcfg.stop_loss_drawdown)

    def _health_pass(self, oracle: np.ndarray) -> None:
        """Every account's health at oracle prices; the liquidatable ones, largest debt first, join the queue."""
        engine = self.engine
        self.hf = self._health_along_paths(oracle)
        candidates = self.attribution.mark_health(self.hf, self.steps)  # HF < 1, a NaN health too, ascending
        if len(candidates):
            debt_usd = row_sums(engine.scaled_debt[candidates] * self.pool.borrow_index * oracle)
            candidates = candidates[np.argsort(-debt_usd, kind="stable")]  # the largest (most profitable) first
        self._candidates.appendleft(candidates)
        self.profit_screen = None  # a new step: the liquidators screen the new candidates
        self.recorder.n_liquidatable = len(candidates)

    def _health_along_paths(self, oracle: np.ndarray) -> np.ndarray:
        """Every account's health factor at `oracle` (returned) and along the baseline's amplified
        non-liquidation paths (counted as new crossings), in one pass over the book."""
        hf = self.engine.health_along(self.baseline.pass_prices(self.steps, oracle))
        self.baseline.count(hf[1:])
        return hf[0]

    def liquidation_candidates(self, latency: int) -> np.ndarray:
        """Accounts that were liquidatable `latency` steps ago (what a liquidator with that scan latency sees)."""
        return self._candidates[min(latency, len(self._candidates) - 1)]

    def _resolve_bad_debt(self, t: int, oracle: np.ndarray) -> None:
        for acct in self.engine.insolvent_accounts(oracle):
            for asset in np.flatnonzero(self.engine.scaled_debt[acct] > 0):
                scaled = float(self.engine.scaled_debt[acct, asset])
                self.engine.scaled_debt[acct, asset] = 0.0
                rec = self.pool.write_off(t, int(acct), int(asset), scaled, float(oracle[asset]), self.market)
                self.recorder.add_write_off(rec)
