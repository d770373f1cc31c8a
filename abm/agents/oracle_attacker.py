"""OracleAttacker: pushes the market an oracle reads until the oracle posts a false low price, liquidates the accounts
that fall below HF = 1 before anyone else, and covers its short with the collateral it seized (docs/model.md, 3.3
Submodels: Adversaries).

The strategy (one, documented): at `attacker.start_step` it fixes its target, `attacker.push` below the oracle price
then, and sells the asset short (tokens borrowed outside the model, `abm.agents.adversary`) to bring the market to
the target and hold it there, re-selling each step against the impact's relaxation, until the oracle posts the
target (to within the updaters' `oracles.deviation_threshold`, below which they do not post again before their
heartbeat): the updaters read the market `oracles.latency_steps` late and average it over `oracles.twap_window_steps`,
so a longer window means a longer hold and more tokens sold (`protocol.hold_cost`, `protocol.oracle_attack_capital`).
If it controls `attacker.corrupt_updaters` of the asset's updaters, they post its target every step; the pool
uses the median of the updaters' posts, so this moves the oracle only while the corrupted posts are at least half
of them (then it does not trade the market at all). From the step it starts it acts as a liquidator with priority
(it knows where its push is going; it runs in the liquidation phase before the liquidation bots, and under a TWAP
the oracle passes accounts' liquidation prices on its way to the target): it repays, from its USD, a close-factor
share of the debt of every long account of the asset whose HF fell below 1 (up to `attacker.capacity_per_step` a
step), receiving the collateral with the bonus at the false oracle price, so worth (1 + bonus) e^push per dollar repaid at
the true price (`protocol.liquidation_gain`). When no account is left to liquidate it buys back whatever its seized
tokens do not cover and returns the borrowed tokens. It attacks once; if the oracle has not reached the target
after `attacker.max_steps` it gives up and buys back.

With a thin oracle venue for its asset (`oracle_venue.enabled`, `abm.market.venue`) it manipulates the venue, not
the deep market the traders use: it pushes the venue to the target and holds it there against arbitrage (paying
`protocol.venue_hold_cost`), which moves the oracle while the venue's readers and its corrupted updaters are more
than half of the asset's updaters; if they are not, the median follows the deep market and it stands down at its
start (its break-even cost is then that of pushing the deep market, `hold_cost`). It covers by buying back on the
venue up to the market price and the rest in the market.

A rational attacker (`attacker.rational`) prices the attack at its start with the break-even ledger
(`price_the_attack`: the gain of liquidating the exposed accounts at the target, the cost of holding the push under
this defence) and attacks only if the gain exceeds the cost by `attacker.min_edge` (`protocol.attack_pays`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from abm.agents.adversary import Adversary
from abm.agents.hunter import liquidation_prices
from abm.protocol import (
    attack_pays,
    hold_cost,
    linear_push_tokens,
    liquidation_gain,
    oracle_attack_capital,
    oracle_attack_hold_steps,
    venue_hold_cost,
)

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

WAITING, PUSH, LANDED, DONE = "waiting", "push", "landed", "done"
# how it moves the median: its corrupted updaters alone, the thin oracle venue (with them), the deep market; or not
CORRUPT, VENUE, MARKET, NONE = "corrupt", "venue", "market", "none"


def attack_route(n_updaters: int, corrupt_updaters: int, venue_readers: int | None) -> str:
    """How an oracle attacker moves the median of `n_updaters` posts: its corrupted updaters when they are more than
    half of them (CORRUPT); else, with a thin oracle venue that `venue_readers` of them read (None: no venue), the
    venue when its readers and the corrupted updaters (the first slots) together are (VENUE; NONE if they are not:
    it manipulates the venue only); else the deep market (MARKET)."""
    if 2 * corrupt_updaters > n_updaters:
        return CORRUPT
    if venue_readers is None:
        return MARKET
    votes = min(n_updaters, corrupt_updaters + venue_readers)
    return VENUE if 2 * votes > n_updaters else NONE


class OracleAttacker(Adversary):
    """The oracle attacker (docs/model.md, 3.3 Submodels: Adversaries). state: waiting (before its start step),
    push, landed (the oracle shows the target: liquidating), done. target: the oracle price it aims at (USD/token)."""

    def __init__(self, model: ReflexivityModel, holder: int) -> None:
        cfg = model.config.attacker
        super().__init__(model, holder, cfg.budget_usd, cfg.gas_cost_usd)
        self.asset = model.symbols.index(cfg.asset)
        self.state = WAITING
        self.target = 0.0
        self.since = 0
        self.landed_step = -1
        self.n_liquidations = 0
        venue = model.oracle_venue
        self.venue = venue if venue is not None and venue.asset == self.asset else None
        self.route = self.choose_route()
        # the attack priced at its start by the linear-market formulas (USD): what holding the push costs under this
        # defence, the capital it ties up, and what liquidating the accounts it exposes would gain
        self.expected_cost_usd = 0.0
        self.expected_capital_usd = 0.0
        self.expected_gain_usd = 0.0
        self.attacked = False  # whether it started the attack (set at its start step)

    def post_oracle(self) -> None:
        """Phase 2, after the honest updaters: the corrupted updaters (the first slots) post the target."""
        m = self.model
        if self.state in (PUSH, LANDED):
            for slot in range(m.config.attacker.corrupt_updaters):
                m.oracle.post(slot, self.asset, self.target, m.steps)

    def trade(self) -> None:
        """Phase 5, after the traders: start, push toward the target, or hold it while liquidating."""
        m = self.model
        t, cfg, a = m.steps, m.config.attacker, self.asset
        if self.state == WAITING and t >= cfg.start_step:
            self.reference = m.market.prices.copy()
            self.target = float(m.oracle.prices[a]) * (1.0 - cfg.push)
            self.state, self.since = PUSH, t
            self.price_the_attack()
            # NONE: the median reads the deep market and the venue cannot move it; a rational attacker also stands
            # down when the priced gain does not exceed the priced cost by its edge
            self.attacked = self.route != NONE and (not cfg.rational or self.attack_pays())
            if not self.attacked:
                self.state = DONE
                return
            self.post_oracle()  # its corrupted updaters post from the step it starts
        if self.state == PUSH:
            # landed once the oracle is within the updaters' deviation threshold of the target: an updater whose
            # TWAP has crept the rest of the way posts again only at its heartbeat, which it would wait for in vain
            if m.oracle.prices[a] <= self.target * (1.0 + m.config.oracles.deviation_threshold + 1e-9):
                self.state, self.landed_step = LANDED, t
            elif t - self.since >= cfg.max_steps:
                self._finish()
                return
        if self.state in (PUSH, LANDED) and self.route in (VENUE, MARKET):
            self.push_to(a, self.target, self.venue.market if self.route == VENUE and self.venue else None)

    def choose_route(self) -> str:
        """How it moves the median (`attack_route`)."""
        cfg = self.model.config
        readers = None if self.venue is None else cfg.oracles.n_updaters - self.venue.first_reader
        return attack_route(cfg.oracles.n_updaters, cfg.attacker.corrupt_updaters, readers)

    def price_the_attack(self) -> None:
        """The break-even ledger at the start (docs/model.md, 3.3 Submodels: Adversaries): with the market at the
        reference and its depth now, the push's hold under this defence (`oracle_attack_hold_steps`; one more step
        with several updaters, whose latencies differ by up to one) gives `hold_cost` and `oracle_attack_capital`
        (both 0 when its corrupted updaters control the median), and each long account of the asset whose
        liquidation price lies between the target and the oracle now adds `liquidation_gain` on a close-factor
        share of its debt. The attack pays while the gain exceeds the cost."""
        m, a = self.model, self.asset
        ocfg = m.config.oracles
        oracle = m.oracle.prices
        push = float(np.log(oracle[a] / self.target))
        hold = oracle_attack_hold_steps(ocfg.twap_window_steps, ocfg.latency_steps + (ocfg.n_updaters > 1))
        if self.route == VENUE and self.venue is not None:  # the venue's hold against arbitrage, covered at market
            depth, f = self.venue.depth(), m.config.oracle_venue.arbitrage_fraction
            self.expected_cost_usd = float(venue_hold_cost(push, depth, hold, f))
            self.expected_capital_usd = float(oracle_attack_capital(push, depth, hold, 1.0 - f))
        elif self.route in (MARKET, NONE):  # NONE: what the defence leaves it, pushing the deep market
            depth, decay = m.market.effective_depth_of(a), float(m.market.decay[a])
            self.expected_cost_usd = float(hold_cost(push, depth, hold, decay))
            self.expected_capital_usd = float(oracle_attack_capital(push, depth, hold, decay))
        price = liquidation_prices(m.engine, oracle, a)
        engine = m.engine
        long = engine.collateral[: engine.n, a] * m.pool.liquidation_threshold[a] > engine.debt_tokens()[:, a]
        exposed = long & np.isfinite(price) & (price >= self.target) & (price < oracle[a])
        repaid = m.pool.close_factor_default * engine.debt_tokens()[exposed, 0]
        self.expected_gain_usd = float(liquidation_gain(repaid, float(m.pool.liquidation_bonus[a]), push).sum())

    def attack_pays(self) -> bool:
        """Whether the attack priced at its start (`price_the_attack`) is worth starting: the priced gain exceeds
        the priced cost by `attacker.min_edge` (`protocol.attack_pays`)."""
        return bool(attack_pays(self.expected_gain_usd, self.expected_cost_usd, self.model.config.attacker.min_edge))

    def liquidate(self) -> None:
        """Phase 7, before the liquidation bots: liquidate the asset's long accounts below HF = 1 at the false
        oracle price, keeping the seized collateral, from the step its push begins (under a TWAP the oracle passes
        accounts' liquidation prices on its way to the target, and the bots would take them); once the oracle has
        reached the target and none is left, cover and stop."""
        m = self.model
        if self.state not in (PUSH, LANDED):
            return
        cfg, a, me = m.config.attacker, self.asset, self.holder
        done = 0
        for acct in m.liquidation_candidates(0):
            if done >= cfg.capacity_per_step:
                break
            plan = m.engine.plan_liquidation(int(acct), m.oracle.prices)
            if plan is None or plan.debt_asset != 0 or plan.collateral_asset != a:
                continue
            if plan.repay + self.gas_cost_usd > m.wallets.balance(me, 0):
                continue
            event_id = m.attribution.next_event_id()
            m.engine.liquidate(int(acct), plan, me)
            self.gain_usd += plan.seize * float(self.reference[a]) - plan.repay
            self.pay_gas()
            m.attribution.record(event_id, int(acct), self.unique_id, plan)
            self.n_liquidations += 1
            done += 1
        if self.state == LANDED and done == 0 and m.steps > self.landed_step:
            self._finish()

    def _finish(self) -> None:
        if self.route == VENUE:
            self.cover_on_venue()
        self.cover(self.asset)
        self.state = DONE

    def cover_on_venue(self) -> None:
        """Buy back on the thin venue what it still owes, up to the tokens that lift the venue to the market price
        (cheaper there than in the market); `cover` buys the rest in the market."""
        m, a, me = self.model, self.asset, self.holder
        venue = self.venue
        assert venue is not None
        owe = float(self.short[a]) - m.wallets.balance(me, a)
        price, market_price = venue.price(), m.market.price(a)
        if owe <= 0 or price >= market_price:
            return
        tokens = min(owe, float(linear_push_tokens(np.log(market_price / price), market_price, venue.depth())))
        cost = venue.market.quote_cost(a, tokens)
        if not (np.isfinite(cost) and cost <= m.wallets.balance(me, 0)):
            return
        venue.market.buy_exact(a, tokens, "disc", step=m.steps)
        m.wallets.debit(me, 0, cost)
        m.wallets.credit(me, a, tokens)
        self.cost_usd += cost - tokens * float(self.reference[a])
