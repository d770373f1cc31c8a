"""The configuration schema: typed, validated, nested (docs/model.md, 3.2 Input data; docs/calibration.md).

Every field has a unit and a bound. Validation errors become one-line `ConfigError`s naming the field, the value
and the rule (see `abm.config.loader`). Assets are keyed by symbol; `USD` is the numéraire and always present.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from abm.protocol import DUTCH_CURVES

NUMERAIRE = "USD"

# The category names, in one place. The strategy registry (`abm.agents.strategies`) and the impact-model table
# (`abm.market.impact_models`) are keyed by these names, and the model draws its population in this order.
STRATEGIES = ("momentum", "contrarian", "vol_target", "hodl", "short")
RISK_STYLES = ("stubborn", "prudent", "stop_loss")
MARGIN_MODES = ("cross", "isolated", "portfolio")
IMPACT_MODEL_NAMES = ("linear", "sqrt", "cpmm")
LIQUIDATION_MECHANISMS = ("keeper", "english", "dutch")  # liquidators.mechanism

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]
PosInt = Annotated[int, Field(ge=1)]
NonNegInt = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _check_mix(name: str, mix: dict[str, float], allowed: tuple[str, ...]) -> None:
    for key, weight in mix.items():
        if key not in allowed:
            raise ValueError(f"{name}: unknown key '{key}' (valid: {', '.join(allowed)})")
        if weight < 0:
            raise ValueError(f"{name}.{key} = {weight} must be >= 0")
    if sum(mix.values()) <= 0:
        raise ValueError(f"{name} weights must sum to > 0")


class MarketConfig(_Strict):
    """Time step and price-impact settings shared by all assets."""

    step_seconds: PosFloat = Field(60.0, description="length of one step (seconds)")
    impact_half_life_steps: PosFloat = Field(
        120.0, description="half-life of transient impact (steps); inf = permanent impact"
    )
    depth_vol_elasticity: NonNegFloat = Field(
        0.0, description="eta in depth_t = depth_0 (sigma_ref / sigma_t)^eta; 0 = constant depth"
    )
    min_depth_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.25, description="floor on depth thinning: depth never falls below this share of its calm level"
    )
    depth_scale: PosFloat = Field(1.0, description="multiplier on every asset's depth / volume (dimensionless)")
    vol_window_steps: PosInt = Field(
        1440, description="EWMA span for realised volatility (steps); one day, as risk managers' daily estimates"
    )
    correlation: Annotated[float, Field(ge=-0.99, le=0.99)] = Field(
        0.8, description="pairwise correlation of risky assets' fundamental returns"
    )
    sqrt_y: PosFloat = Field(0.7, description="Y prefactor of the square-root impact law (dimensionless)")
    arbitrage_fraction: Fraction = Field(
        0.05, description="cpmm only: share of the AMM-vs-fundamental log gap arbitraged away per step"
    )


class AssetConfig(_Strict):
    """A risky asset: fundamental dynamics, its market's depth and its reserve's risk parameters."""

    price: PosFloat = Field(description="initial fundamental and market price (USD/token)")
    drift: float = Field(0.0, description="mu, annual log drift of the fundamental (per year)")
    volatility: NonNegFloat = Field(0.6, description="sigma, annual volatility of the fundamental (per sqrt year)")
    impact: Literal[IMPACT_MODEL_NAMES] = Field(  # type: ignore[valid-type]  # the names, spelled once above
        "linear", description=f"price-impact model ({', '.join(IMPACT_MODEL_NAMES)})"
    )
    depth_usd: PosFloat = Field(
        2.0e8, description="linear: USD notional that moves log price by 1; cpmm: USD on each side of the AMM"
    )
    daily_volume_usd: PosFloat = Field(5.0e9, description="sqrt: daily traded volume (USD/day)")
    amm_fee: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(0.003, description="cpmm: swap fee (fraction)")


class ReserveConfig(_Strict):
    """Risk and rate parameters of one lending-pool reserve (Aave v3 naming)."""

    ltv: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(0.80, description="max borrow power per USD collateral")
    liquidation_threshold: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.825, description="LT: collateral weight in the health factor (fraction)"
    )
    liquidation_bonus: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.05, description="extra collateral a liquidator receives (fraction of repaid value)"
    )
    reserve_factor: Fraction = Field(0.15, description="share of interest kept as protocol reserves")
    base_rate: NonNegFloat = Field(0.0, description="borrow rate at zero utilisation (per year)")
    slope1: NonNegFloat = Field(0.027, description="rate added from 0 to optimal utilisation (per year)")
    slope2: NonNegFloat = Field(0.80, description="rate added from optimal to full utilisation (per year)")
    optimal_utilisation: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(0.90, description="U*, the kink")
    supply_to_equity: NonNegFloat = Field(
        0.5, description="USD value lenders supply at the start, as a multiple of the traders' total equity"
    )
    outside_rate: NonNegFloat = Field(
        0.0, description="what lenders of this asset earn elsewhere (per year); they chase the better rate"
    )
    collateral_enabled: bool = Field(True, description="whether the asset counts as collateral")
    borrow_enabled: bool = Field(True, description="whether the asset can be borrowed")

    @model_validator(mode="after")
    def _lt_above_ltv(self) -> ReserveConfig:
        if self.liquidation_threshold < self.ltv:
            raise ValueError(f"liquidation_threshold = {self.liquidation_threshold} must be >= ltv = {self.ltv}")
        if self.liquidation_threshold * (1 + self.liquidation_bonus) >= 1.0:
            raise ValueError(
                "liquidation_threshold * (1 + liquidation_bonus) = "
                f"{self.liquidation_threshold * (1 + self.liquidation_bonus):.4f} must be < 1 "
                "(otherwise every liquidation creates bad debt)"
            )
        return self


# Aave v3 USDC on Ethereum, mid-2024 (docs/calibration.md): U* 0.92, slope1 9%, slope2 60%, reserve factor 10%.
STABLECOIN_RESERVE = ReserveConfig(
    ltv=0.75,
    liquidation_threshold=0.78,
    liquidation_bonus=0.045,
    reserve_factor=0.10,
    base_rate=0.0,
    slope1=0.09,
    slope2=0.60,
    optimal_utilisation=0.92,
    supply_to_equity=3.0,
    outside_rate=0.04,
)


class PoolConfig(_Strict):
    """The shared lending pool: close factor and the bad-debt policy; reserves per asset."""

    close_factor: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.5, description="share of debt one liquidation may repay while HF >= close_factor_full_below"
    )
    close_factor_full_below: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.95, description="below this HF a liquidation may repay all debt"
    )
    bad_debt_policy: Literal["socialize", "dilute"] = Field(
        "socialize", description="who bears bad debt beyond the reserves: lenders or newly minted tokens"
    )
    dust_usd: NonNegFloat = Field(1.0, description="collateral below this USD value counts as none (bad debt)")
    reserves: dict[str, ReserveConfig] = Field(
        default_factory=lambda: {NUMERAIRE: STABLECOIN_RESERVE.model_copy(), "ETH": ReserveConfig()},
        description="per asset, USD included; unlisted assets get ReserveConfig() defaults",
    )


class TraderConfig(_Strict):
    """Leveraged traders (docs/model.md, 3.3 Submodels: Traders)."""

    n_traders: PosInt = Field(1000, description="number of LeveragedTrader agents")
    max_leverage: Annotated[float, Field(ge=1.0)] = Field(
        3.0, description="cap on target leverage (exposure / equity); also capped by 1/(1-ltv)"
    )
    leverage_min: Annotated[float, Field(ge=1.0)] = Field(
        1.2, description="lowest base leverage drawn; base leverages are uniform on [leverage_min, max_leverage]"
    )
    strategy_mix: dict[str, NonNegFloat] = Field(
        default_factory=lambda: {"hodl": 0.35, "momentum": 0.2, "contrarian": 0.15, "vol_target": 0.2, "short": 0.1},
        description=f"weights of the strategies ({', '.join(STRATEGIES)}) in the population",
    )
    risk_mix: dict[str, NonNegFloat] = Field(
        default_factory=lambda: {"stubborn": 0.3, "prudent": 0.5, "stop_loss": 0.2},
        description=f"weights of the risk styles ({', '.join(RISK_STYLES)})",
    )
    margin_mode_mix: dict[str, NonNegFloat] = Field(
        default_factory=lambda: {"cross": 1.0}, description=f"weights of the margin modes ({', '.join(MARGIN_MODES)})"
    )
    assets_per_trader: PosInt = Field(1, description="risky assets each trader holds (diversification)")
    total_equity_usd: PosFloat = Field(
        2.0e8, description="traders' combined initial equity (USD); n_traders sets the resolution, not the size"
    )
    equity_max_share: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.01, description="cap on one trader's share of total equity (raised to 2/n_traders for small n)"
    )
    equity_tail_alpha: Annotated[float, Field(gt=1.0)] = Field(
        1.5, description="Pareto tail index of the initial equity distribution (heavy-tailed shares)"
    )
    decision_interval_steps: PosFloat = Field(
        240.0, description="mean steps between a trader's decisions (heterogeneous, lognormal)"
    )
    prudent_buffer: Annotated[float, Field(gt=1.0)] = Field(
        1.15, description="prudent traders deleverage when HF falls below this"
    )
    prudent_target_hf: Annotated[float, Field(gt=1.0)] = Field(1.4, description="HF prudent traders restore")
    stop_loss_drawdown: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.3, description="stop_loss traders close after this equity drawdown (fraction)"
    )
    momentum_lookback_steps: PosInt = Field(60, description="momentum: return lookback (steps)")
    momentum_signal_scale: PosFloat = Field(
        6.0,
        description="momentum: z-score of the lookback return (in realised-volatility units) that takes a trader "
        "from half to 84% of its levered exposure; larger = a gentler response to the trend",
    )
    contrarian_anchor_steps: PosInt = Field(240, description="contrarian: EMA span of the anchor price (steps)")
    contrarian_band: NonNegFloat = Field(0.02, description="contrarian: buy below anchor by this fraction")
    vol_target: PosFloat = Field(0.6, description="vol_target: annual volatility target (per sqrt year)")
    rebalance_tolerance: NonNegFloat = Field(
        0.15, description="no trade while |leverage / target - 1| is below this (fraction)"
    )
    reentry_delay_steps: NonNegInt = Field(
        1440, description="steps a wiped-out or stopped trader waits before trading again"
    )
    reaction_delay_steps: NonNegFloat = Field(
        3.0,
        description="mean steps between a risk alert (HF buffer, stop-loss) and the trader acting on it; each "
        "trader has its own delay (lognormal), so one price move does not make every alerted trader sell at once",
    )
    max_trade_depth_share: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.001,
        description="cap on one trader's trade in one step, as a share of the asset's market depth (USD per unit "
        "log price); a larger rebalance continues over the next steps. 0.001 of the calibrated ETH and BTC depth "
        "is about a fifth of a minute's traded volume, the participation rate of an ordinary execution algorithm",
    )
    liquidation_distance_sigmas: NonNegFloat = Field(
        2.5,
        description="opening margin (daily standard deviations): no trader levers beyond the leverage at which a log "
        "move of this many daily standard deviations of its riskiest asset (its annual volatility / sqrt(365)) "
        "against the position would take its health factor to 1, so that an ordinary day's news liquidates no fresh "
        "position; it binds at opening and on every lever-up (0 = off: only the LTV cap and the prudent buffer)",
    )
    borrow_rate_tolerance: PosFloat = Field(
        0.3,
        description="annual borrow rate above which traders scale their borrowed exposure down in proportion "
        "(target debt x tolerance / rate): a high rate makes borrowers repay",
    )

    @model_validator(mode="after")
    def _mixes(self) -> TraderConfig:
        _check_mix("traders.strategy_mix", self.strategy_mix, STRATEGIES)
        _check_mix("traders.risk_mix", self.risk_mix, RISK_STYLES)
        _check_mix("traders.margin_mode_mix", self.margin_mode_mix, MARGIN_MODES)
        if self.leverage_min > self.max_leverage:
            raise ValueError(
                f"traders.leverage_min = {self.leverage_min} must be <= traders.max_leverage = {self.max_leverage}"
            )
        if self.prudent_target_hf <= self.prudent_buffer:
            raise ValueError("traders.prudent_target_hf must be > traders.prudent_buffer")
        return self


class LiquidatorConfig(_Strict):
    """Liquidation bots (docs/model.md, 3.3 Submodels: Liquidation)."""

    n_liquidators: PosInt = Field(5, description="number of Liquidator agents")
    capital_usd: NonNegFloat = Field(2.0e6, description="USD each liquidator holds to repay debt")
    flash_loans: bool = Field(True, description="flash loans lift the capital limit")
    gas_cost_usd: NonNegFloat = Field(20.0, description="cost of one liquidation transaction (USD)")
    min_profit_usd: NonNegFloat = Field(10.0, description="profit below which a liquidation is skipped (USD)")
    scan_latency_steps: NonNegInt = Field(0, description="steps between an account turning unhealthy and being seen")
    capacity_per_step: NonNegInt = Field(20, description="liquidations one liquidator can land per step (block space)")
    # --- liquidation auctions (docs/model.md, 3.3 Submodels: Liquidation auctions) ---
    mechanism: Literal[LIQUIDATION_MECHANISMS] = Field(  # type: ignore[valid-type]  # the names, spelled once above
        "keeper",
        description="keeper: liquidators repay and seize with the fixed bonus; english / dutch: they kick unhealthy "
        "accounts to Maker-style auctions (auctions.*) whose keepers buy the collateral",
    )


# --- liquidation auctions (docs/model.md, 3.3 Submodels: Liquidation auctions) ---
# Read once, when the run is built (the mechanism and the keepers' funds and habits): a scenario `set` event cannot
# change them. The auction rules, the penalty and the keepers' transactions per step are read every step.
FIXED_AT_BUILD = (
    "liquidators.mechanism",
    "auctions.n_keepers",
    "auctions.keeper_capital_usd",
    "auctions.keeper_gas_budget_usd",
    "auctions.keeper_profit_share",
    "auctions.keeper_funding_rate",
    "auctions.n_zero_bid_keepers",
)


class AuctionConfig(_Strict):
    """Maker-style collateral auctions and their keepers, used when `liquidators.mechanism` is english or dutch
    (Maker's names in brackets; times in steps)."""

    penalty: NonNegFloat = Field(0.13, description="liquidation penalty (chop - 1): tab = debt * (1 + penalty)")
    beg: Annotated[float, Field(ge=1.0)] = Field(1.05, description="English: minimum bid increase, a factor (beg)")
    ttl_steps: PosInt = Field(180, description="English: a standing bid wins after this many steps (ttl)")
    tau_steps: PosInt = Field(2880, description="English: auction length before a restart with no bid (tau)")
    buf: PosFloat = Field(1.30, description="Dutch: start price over the oracle price (buf)")
    curve: Literal[DUTCH_CURVES] = Field(  # type: ignore[valid-type]  # the names, spelled once above
        "stairstep", description="Dutch: price curve (linear, stairstep or exponential decrease)"
    )
    cut: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.99, description="Dutch: price multiplier per drop (stairstep) or per step (exponential) (cut)"
    )
    drop_steps: PosFloat = Field(1.5, description="Dutch: steps between price drops of the stairstep curve (step)")
    duration_steps: PosFloat = Field(120.0, description="Dutch: steps the linear curve takes to reach 0 (tau)")
    tail_steps: PosFloat = Field(140.0, description="Dutch: reset after this many steps (tail)")
    cusp: Fraction = Field(0.40, description="Dutch: reset when the price falls below this share of its start (cusp)")
    chip: NonNegFloat = Field(
        0.001, description="Dutch: keeper incentive per kick or reset, fraction of the tab (chip)"
    )
    tip_usd: NonNegFloat = Field(0.0, description="Dutch: flat keeper incentive per kick or reset, USD (tip)")
    dust_usd: NonNegFloat = Field(0.0, description="Dutch: smallest tab a partial purchase may leave, USD (dust)")
    n_keepers: PosInt = Field(5, description="number of auction keepers")
    keeper_capital_usd: NonNegFloat = Field(2.0e6, description="USD each keeper holds to bid (no flash loans)")
    keeper_gas_budget_usd: NonNegFloat = Field(
        50.0, description="gas a keeper pays per transaction whatever the prize (USD)"
    )
    keeper_profit_share: Fraction = Field(0.5, description="share of the expected profit a keeper will spend on gas")
    keeper_funding_rate: NonNegFloat = Field(0.10, description="a keeper's own cost of funds (per year)")
    keeper_capacity_per_step: PosInt = Field(
        20, description="transactions one keeper can land per step, at most liquidators.capacity_per_step"
    )
    lump: dict[str, PosFloat] = Field(
        default_factory=dict,
        description="English: most tokens of an asset one auction takes (Cat lump), per asset symbol; a larger "
        "collateral is split into several auctions, one kick (transaction) each; assets not listed: the whole "
        "collateral in one auction (Dutch auctions take the whole collateral)",
    )
    n_zero_bid_keepers: NonNegInt = Field(
        0,
        description="keepers besides n_keepers whose software pays any gas: their transactions land whatever the "
        "congestion (keeper_capacity_per_step a step, liquidators.capacity_per_step does not bind), they kick "
        "unhealthy accounts and open every English auction without a bid at the minimum bid, which needs no "
        "capital (they hold none); they never raise a bid",
    )

    @model_validator(mode="after")
    def _times(self) -> AuctionConfig:
        if self.tau_steps < self.ttl_steps:
            raise ValueError(f"auctions.tau_steps = {self.tau_steps} must be >= auctions.ttl_steps = {self.ttl_steps}")
        if self.curve == "linear" and self.cusp == 0 and self.tail_steps >= self.duration_steps:
            raise ValueError(
                f"auctions.tail_steps = {self.tail_steps} must be < auctions.duration_steps = {self.duration_steps} "
                "when auctions.cusp is 0 on the linear curve (else the price sits at 0 with no reset)"
            )
        return self


class LenderConfig(_Strict):
    """Suppliers of the pool's liquidity (docs/model.md, 3.3 Submodels: Lenders)."""

    n_lenders: PosInt = Field(10, description="number of Lender agents (initial supply split among them)")
    rate_sensitivity: NonNegFloat = Field(
        0.05, description="share of funds moved per day per 1%/yr gap between supply and outside rate"
    )
    rate_gap_band: NonNegFloat = Field(
        0.01,
        description="no-move band on the rate gap (per year): lenders move no funds while |supply rate - outside "
        "rate| is within it, and only the part of the gap beyond it drives their moves; moving funds has costs "
        "(gas, time), so small rate wiggles as borrowers trade leave the supply alone",
    )
    panic_bad_debt_ratio: NonNegFloat = Field(
        0.02,
        description="lenders run while the share of supply recently lost to bad debt (a decaying stock) exceeds this",
    )
    panic_half_life_steps: PosFloat = Field(
        360.0, description="half-life of lenders' fear of bad debt (steps): a run ends as the news ages"
    )
    run_fraction: Fraction = Field(0.2, description="share of a lender's supply it tries to withdraw per run step")


class OracleConfig(_Strict):
    """Oracle updaters (docs/model.md, 3.3 Submodels: Oracles), the same settings for every risky asset."""

    n_updaters: PosInt = Field(1, description="updaters per asset; the pool uses the median of their posts")
    latency_steps: NonNegInt = Field(1, description="age of the market price an updater observes (steps)")
    deviation_threshold: NonNegFloat = Field(0.005, description="post when |observed/last - 1| >= this")
    heartbeat_steps: PosInt = Field(60, description="post at least this often (steps)")
    twap_window_steps: PosInt = Field(1, description="observe a TWAP over this many steps (1 = spot)")


class ShockEvent(_Strict):
    """A scripted move of one asset's fundamental, spread evenly (in log terms) over `duration` steps."""

    kind: Literal["shock"]
    asset: str
    size: Annotated[float, Field(gt=-1.0)] = Field(description="total return, e.g. -0.25")
    start: PosInt = Field(description="first step of the move (>= 1: step 0 is the initial state)")
    duration: PosInt = 1


class SetEvent(_Strict):
    """A change of one configuration parameter at a step (dotted name, as in overrides)."""

    kind: Literal["set"]
    step: NonNegInt
    parameter: str
    value: float | int | bool | str


class ReplayEvent(_Strict):
    """Replace an asset's fundamental by a recorded path from a CSV file (columns: step, price)."""

    kind: Literal["replay"]
    asset: str
    path: str
    start: NonNegInt = 0


ScenarioEvent = Annotated[ShockEvent | SetEvent | ReplayEvent, Field(discriminator="kind")]


class ScenarioConfig(_Strict):
    """Scripted events (data, never code)."""

    events: list[ScenarioEvent] = Field(default_factory=list)


class ContagionConfig(_Strict):
    """Contagion bookkeeping (docs/model.md, 4 Contagion and reflexivity measurement)."""

    k_strongest: PosInt = Field(5, description="links kept per account in the account-to-account projection")
    endogenous_share: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.5, description="an event is endogenous when liquidation sales caused at least this share of its loss"
    )


class StartConfig(_Strict):
    """How a run's initial state is made (docs/model.md, 3.1 Initialisation)."""

    prehistory_steps: NonNegInt = Field(
        1440,
        description="steps of fundamental-only price history before step 0 (from the news stream); the traders "
        "open at what their strategies want given it, and volatility estimates and anchors start from it",
    )


PERP_MARK_METHODS = ("median", "book")


class MarginTier(_Strict):
    """One row of a perpetual's margin tier table (Binance "Leverage and Margin" brackets; docs/perps.md)."""

    notional_floor_usd: NonNegFloat = Field(description="lowest position notional in this tier (USD)")
    initial_margin_rate: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="initial margin / notional (fraction; 1 / the tier's maximum leverage)"
    )
    maintenance_margin_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        description="maintenance margin / notional (fraction); below it a position is liquidated"
    )


def _default_perp_tiers() -> list[MarginTier]:
    # Hyperliquid's rule (maintenance = half the initial margin at the tier's maximum leverage): 20x, 10x, 5x, 3x
    return [
        MarginTier(notional_floor_usd=0.0, initial_margin_rate=0.05, maintenance_margin_rate=0.025),
        MarginTier(notional_floor_usd=1.0e6, initial_margin_rate=0.10, maintenance_margin_rate=0.05),
        MarginTier(notional_floor_usd=1.0e7, initial_margin_rate=0.20, maintenance_margin_rate=0.10),
        MarginTier(notional_floor_usd=5.0e7, initial_margin_rate=0.34, maintenance_margin_rate=0.17),
    ]


class PerpConfig(_Strict):
    """A perpetual-futures venue, one book per risky asset (docs/perps.md)."""

    enabled: bool = Field(False, description="whether the model runs the perpetual-futures venue")
    depth_scale: PosFloat = Field(1.0, description="depth of each perp book as a multiple of its spot market's depth")
    depth_vol_elasticity: NonNegFloat = Field(
        0.0,
        description="eta of the perp books' depth thinning with their own realised volatility (as "
        "market.depth_vol_elasticity, for the perp books only); 0 = constant depth",
    )
    min_depth_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.25, description="floor on the perp books' depth thinning (share of their calm depth)"
    )
    mark_price: Literal[PERP_MARK_METHODS] = Field(  # type: ignore[valid-type]  # the names, spelled once above
        "median",
        description="mark price: 'median' (Binance: median of funding-basis, moving-basis and book price) "
        "or 'book' (the book price itself)",
    )
    mark_basis_steps: PosInt = Field(3, description="EMA span of the book-minus-index basis in the median mark (steps)")
    funding_interval_steps: PosFloat = Field(
        480.0, description="steps between funding payments, a whole number (480 one-minute steps = Binance's 8 hours)"
    )
    interest_rate: float = Field(0.0001, description="interest component I per funding period (fraction)")
    premium_clamp: NonNegFloat = Field(0.0005, description="clamp c on I - P per funding period (fraction)")
    funding_divisor: Annotated[float, Field(ge=1.0)] = Field(
        1.0,
        description="the formula's rate is divided by this before it is paid (Hyperliquid: 8, an 8-hour rate "
        "paid hourly)",
    )
    funding_cap: PosFloat = Field(
        math.inf, description="cap on |rate paid| per funding period (fraction; Hyperliquid 0.04 per hour); inf = none"
    )
    impact_notional_usd: PosFloat = Field(
        20000.0, description="notional whose average fill gives the impact bid / ask of the premium index (USD)"
    )
    taker_fee: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0005, description="fee on every trade's notional, to the venue (fraction)"
    )
    liquidation_fee: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.005, description="fee on a liquidation's book fill notional, taken from the remaining margin (fraction)"
    )
    surplus_to_insurance: bool = Field(
        True,
        description="margin left after a book liquidation goes to the insurance fund (else it stays with the "
        "trader, as on Hyperliquid)",
    )
    trader_share: Fraction = Field(
        0.0,
        description="share of the leveraged traders who hold their exposure in perpetuals instead of the lending "
        "pool (each trader drawn from the run's venue stream, so the population is the same whatever the share)",
    )
    insurance_fund_usd: NonNegFloat = Field(1.0e6, description="initial insurance fund (USD)")
    vault_capital_usd: NonNegFloat = Field(
        1.0e7, description="initial capital of the backstop liquidity vault that takes over bankrupt positions (USD)"
    )
    tiers: list[MarginTier] = Field(
        default_factory=_default_perp_tiers, description="margin tiers by position notional, floors increasing from 0"
    )

    @model_validator(mode="after")
    def _rules(self) -> PerpConfig:
        interval = self.funding_interval_steps
        if not (math.isfinite(interval) and interval == int(interval)):
            raise ValueError(f"funding_interval_steps = {interval} must be a whole number of steps >= 1")
        if not self.tiers:
            raise ValueError("tiers: at least one margin tier is required")
        if self.tiers[0].notional_floor_usd != 0.0:
            raise ValueError(f"tiers[0].notional_floor_usd = {self.tiers[0].notional_floor_usd} must be 0")
        for i, tier in enumerate(self.tiers):
            if tier.maintenance_margin_rate >= tier.initial_margin_rate:
                raise ValueError(
                    f"tiers[{i}].maintenance_margin_rate = {tier.maintenance_margin_rate} must be < "
                    f"tiers[{i}].initial_margin_rate = {tier.initial_margin_rate}"
                )
            if i == 0:
                continue
            prev = self.tiers[i - 1]
            # floors strictly increasing; rates non-decreasing (a larger position never needs a smaller share)
            for field, op in (
                ("notional_floor_usd", ">"),
                ("initial_margin_rate", ">="),
                ("maintenance_margin_rate", ">="),
            ):
                now, before = getattr(tier, field), getattr(prev, field)
                if now < before or (op == ">" and now == before):
                    raise ValueError(f"tiers[{i}].{field} = {now} must be {op} tiers[{i - 1}].{field} = {before}")
        return self


class BasisTraderConfig(_Strict):
    """Cash-and-carry traders linking the lending pool and the perpetual venue (docs/perps.md): long spot bought
    with a loan from the pool, short the perpetual of the same size, while funding pays for it."""

    n_traders: NonNegInt = Field(0, description="number of BasisTrader agents (0 = none); needs perps.enabled")
    capital_usd: PosFloat = Field(5.0e6, description="USD each basis trader starts with (from the outside world)")
    spot_leverage: Annotated[float, Field(ge=1.0)] = Field(
        2.0, description="spot leg: USD of spot bought per USD of own equity in the lending account (the rest borrowed)"
    )
    perp_leverage: Annotated[float, Field(ge=1.0)] = Field(
        5.0, description="perp leg: notional of the short per USD of margin deposited with the venue"
    )
    entry_funding_apr: float = Field(
        0.15,
        description="enter (build the position) while the funding rate the current premium implies, annualised, "
        "is at least this (per year)",
    )
    exit_funding_apr: float = Field(
        0.05, description="unwind once that annualised funding rate falls below this (per year); < entry"
    )
    min_health: Annotated[float, Field(gt=1.0)] = Field(
        1.2,
        description="unwind when either leg's health falls below this: the lending account's health factor, or "
        "the perp account's equity over its maintenance margin",
    )

    @model_validator(mode="after")
    def _band(self) -> BasisTraderConfig:
        if self.exit_funding_apr >= self.entry_funding_apr:
            raise ValueError(
                f"basis_traders.exit_funding_apr = {self.exit_funding_apr} must be < "
                f"basis_traders.entry_funding_apr = {self.entry_funding_apr}"
            )
        return self


_STEWARDED = ("ltv", "liquidation_threshold")  # the reserve parameters the risk manager moves


class RiskManagerConfig(_Strict):
    """The risk manager: each collateral reserve's LTV and liquidation threshold follow the volatility of its feed
    (vol_feed) in bounded steps (docs/model.md, 3.3 Submodels: Adaptive risk parameters)."""

    enabled: bool = Field(False, description="whether a RiskManager moves the risky reserves' LTV and LT")
    cadence_steps: PosInt = Field(
        4320,
        description="least steps between two changes of one reserve's parameters (Aave Risk Stewards' minDelay: "
        "3 days = 4320 one-minute steps); the manager watches volatility every step",
    )
    k_sigma: PosFloat = Field(
        3.0, description="target: an account at HF 1 still covers debt plus bonus after a fall of k_sigma sigmas"
    )
    horizon_days: PosFloat = Field(1.0, description="target: the horizon of that fall (days)")
    max_change: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.005,
        description="largest change of LTV and of LT per update (absolute fraction; Aave Risk Stewards: 50 bps)",
    )
    max_cut: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.10, description="bound: LTV and LT never more than this below their configured values (absolute fraction)"
    )
    max_raise: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0,
        description="bound: LTV and LT never more than this above their configured values (absolute fraction; "
        "0 = the configured parameters are a ceiling, the manager only tightens)",
    )
    vol_feed: Literal["realised", "market", "oracle"] = Field(
        "market",
        description="the volatility the manager reads: 'market' / 'oracle' = its own EWMA of one-step log returns of "
        "the market / the oracle price with half-life vol_half_life_steps (a risk oracle's high-frequency feed); "
        "'realised' = the market's EWMA (market.vol_window_steps, the one traders and depth use), which shows a "
        "fast crash minutes late",
    )
    vol_half_life_steps: PosFloat = Field(
        5.0, description="half-life of the manager's own feed (steps; only with vol_feed 'market' or 'oracle')"
    )

    @model_validator(mode="after")
    def _room(self) -> RiskManagerConfig:
        if self.enabled and self.max_cut == 0 and self.max_raise == 0:
            raise ValueError(
                "max_cut = 0 and max_raise = 0: the manager could never move a parameter (give one of them > 0)"
            )
        return self


# --- staking collateral and looping (docs/model.md, 3.3 Submodels: Staking collateral and looping) ---------------


class StakingConfig(_Strict):
    """A liquid-staking token (stETH-like) used as collateral for loans of its base asset, and looping traders who
    lever it (docs/model.md, 3.3 Submodels: Staking collateral and looping). The token is one more risky asset,
    listed last in `assets`, with its own market; its fundamental is the base's times the exchange rate times a
    peg factor (a scripted shock on the token's asset is a shock to the peg)."""

    enabled: bool = Field(False, description="whether the staked token is wired in (its asset, its loopers)")
    symbol: str = Field("stETH", description="the staked token's asset (listed last in `assets`)")
    base: str = Field("ETH", description="the asset it is staked from and that loopers borrow")
    staking_apr: NonNegFloat = Field(0.04, description="staking yield accruing into the exchange rate (per year)")
    exchange_rate: PosFloat = Field(
        1.0, description="base units one token is worth at par at step 0 (the token's price / the base's price)"
    )
    loop_leverage: Annotated[float, Field(ge=1.0)] = Field(
        4.0,
        description="looping traders' leverage (staked collateral / equity), < 1 / (1 - ltv) of the token's reserve",
    )
    leverage_spread: Annotated[float, Field(ge=0.0, lt=1.0)] = Field(
        0.0,
        description="loopers' leverages are evenly spaced on loop_leverage x [1 - spread, 1 + spread] (mean "
        "loop_leverage, never below 1); 0 = all at loop_leverage",
    )
    n_loopers: NonNegInt = Field(50, description="number of LoopingTrader agents (equal shares of the equity)")
    looper_equity_usd: PosFloat = Field(2.0e8, description="loopers' combined equity (USD)")


def _check_staking(config: ModelConfig) -> None:
    """Cross-checks of `lst.*` against the assets, the reserves and the scenario (only when enabled)."""
    lst = config.lst
    if not lst.enabled:
        return
    names = list(config.assets)
    if lst.symbol not in names or names[-1] != lst.symbol:
        raise ValueError(f"lst.symbol = '{lst.symbol}' must be the last asset in assets (assets: {', '.join(names)})")
    if lst.base not in names[:-1]:
        raise ValueError(f"lst.base = '{lst.base}' must be another risky asset (assets: {', '.join(names)})")
    par = config.assets[lst.base].price * lst.exchange_rate
    if not math.isclose(config.assets[lst.symbol].price, par, rel_tol=1e-9):
        raise ValueError(
            f"assets.{lst.symbol}.price = {config.assets[lst.symbol].price} must equal assets.{lst.base}.price x "
            f"lst.exchange_rate = {par} (the token starts at par)"
        )
    ltv = config.reserve(lst.symbol).ltv
    top = lst.loop_leverage * (1.0 + lst.leverage_spread) if lst.n_loopers > 1 else lst.loop_leverage
    if lst.n_loopers > 0 and not top < 1.0 / (1.0 - ltv):
        raise ValueError(
            f"lst.loop_leverage x (1 + lst.leverage_spread) = {top:.4g} must be < 1 / (1 - ltv) = "
            f"{1.0 / (1.0 - ltv):.4g} (pool.reserves.{lst.symbol}.ltv = {ltv})"
        )
    if not config.reserve(lst.base).borrow_enabled or not config.reserve(lst.symbol).collateral_enabled:
        raise ValueError(f"lst: pool.reserves.{lst.base} must be borrowable and {lst.symbol} collateral")
    if config.traders.assets_per_trader > len(names) - 1:
        raise ValueError(
            f"traders.assets_per_trader = {config.traders.assets_per_trader} must be <= {len(names) - 1} "
            f"(the risky assets other than the staked token {lst.symbol})"
        )
    for i, ev in enumerate(config.scenario.events):
        if isinstance(ev, ReplayEvent) and ev.asset == lst.symbol:
            raise ValueError(f"scenario.events[{i}]: {lst.symbol} cannot be replayed (its path follows {lst.base})")


# --- end staking -------------------------------------------------------------------------------------------------


# --- adversaries (docs/model.md, 3.3 Submodels: Adversaries) -------------------------------------------------


class HunterConfig(_Strict):
    """Liquidation hunters: capital that sells a risky asset down to a cluster of liquidation prices, lets the forced
    sales run, and buys back cheaper (docs/model.md, 3.3 Submodels: Adversaries)."""

    n_hunters: NonNegInt = Field(0, description="number of LiquidationHunter agents (0 = none)")
    capital_usd: PosFloat = Field(
        3.0e8,
        description="USD each hunter holds; its short (tokens borrowed outside the model) is at most this notional",
    )
    positions_visible: bool = Field(
        True,
        description="true: hunters read every account's liquidation price; false (privacy-preserving margin): only "
        "the pool's public reserve totals and thresholds, from which they guess the accounts' spread",
    )
    min_profit_usd: NonNegFloat = Field(
        1.0e5, description="a hunt starts only if its expected profit exceeds this (USD)"
    )
    gas_cost_usd: NonNegFloat = Field(20.0, description="cost of one of its transactions (USD)")
    overshoot: Annotated[float, Field(ge=0.0, lt=0.5)] = Field(
        0.005, description="push the price this fraction below the cluster, so the oracle's reading clears it"
    )
    max_push_steps: PosInt = Field(30, description="give up and buy back when the oracle has not reached the target")
    max_wait_steps: PosInt = Field(30, description="buy back at the latest this many steps after the oracle reached it")
    cooldown_steps: NonNegInt = Field(60, description="steps a hunter waits after a hunt before looking again")


class AttackerConfig(_Strict):
    """An oracle attacker: it pushes the market the oracle reads (and optionally corrupts some of the asset's
    updaters) until the oracle shows `push` below the pre-attack price, liquidates the accounts that fall below
    HF = 1 first, and covers its short with the seized collateral (docs/model.md, 3.3 Submodels: Adversaries)."""

    enabled: bool = Field(False, description="whether the model runs the OracleAttacker")
    asset: str = Field("ETH", description="the risky asset whose oracle it attacks")
    budget_usd: PosFloat = Field(
        2.0e8, description="USD it holds: repays the liquidated debt, and bounds its short's notional at the start"
    )
    push: Annotated[float, Field(gt=0.0, lt=0.9)] = Field(
        0.1, description="how far below the pre-attack oracle price it drives the oracle (fraction)"
    )
    start_step: NonNegInt = Field(60, description="the step the attack begins")
    max_steps: PosInt = Field(240, description="steps it keeps pushing before it gives up and buys back")
    corrupt_updaters: NonNegInt = Field(
        0, description="how many of the asset's updaters it controls: they post its target (the median defends)"
    )
    gas_cost_usd: NonNegFloat = Field(20.0, description="cost of one of its transactions (USD)")
    capacity_per_step: PosInt = Field(50, description="liquidations it can land per step")
    rational: bool = Field(
        False,
        description="whether it prices the attack at its start and attacks only if the priced gain exceeds the"
        " priced cost by min_edge (off: it attacks whenever its route can move the median)",
    )
    min_edge: NonNegFloat = Field(
        0.0, description="the edge a rational attacker asks: it attacks if priced gain > priced cost (1 + min_edge)"
    )


class OracleVenueConfig(_Strict):
    """A thin venue for one risky asset that some of its oracle updaters read, apart from the deep market the traders
    use: its log price is the market's plus its own log impact, which arbitrage closes by a share each step (docs/
    model.md, 3.3 Submodels: Oracles). The oracle attacker pushes it instead of the market."""

    enabled: bool = Field(
        False, description="whether the asset's oracle reads a thin venue (off: every updater reads the market)"
    )
    asset: str = Field("ETH", description="the risky asset the venue trades")
    depth_usd: PosFloat = Field(
        2.0e7, description="the venue's linear depth: USD notional that moves its log price by 1 (not depth-scaled)"
    )
    arbitrage_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.5, description="share of the venue-vs-market log gap arbitrage closes per step"
    )
    readers: PosInt = Field(
        1, description="how many of the asset's updaters read the venue (the last slots); the others read the market"
    )


class ModelConfig(_Strict):
    """The whole model configuration. Build with `from_preset`, `from_toml`, `from_dict`; see `abm.config`."""

    name: str = Field("custom", description="preset or experiment name (for reports)")
    description: str = Field("", description="one line on what the configuration is for")
    steps: PosInt = Field(1440, description="default run length (steps)")
    check_invariants: bool = Field(False, description="check every invariant after every step (debug)")
    market: MarketConfig = Field(default_factory=MarketConfig)
    assets: dict[str, AssetConfig] = Field(default_factory=lambda: {"ETH": AssetConfig(price=3000.0)})
    pool: PoolConfig = Field(default_factory=PoolConfig)
    traders: TraderConfig = Field(default_factory=TraderConfig)
    liquidators: LiquidatorConfig = Field(default_factory=LiquidatorConfig)
    auctions: AuctionConfig = Field(default_factory=AuctionConfig)
    lenders: LenderConfig = Field(default_factory=LenderConfig)
    oracles: OracleConfig = Field(default_factory=OracleConfig)
    scenario: ScenarioConfig = Field(default_factory=ScenarioConfig)
    contagion: ContagionConfig = Field(default_factory=ContagionConfig)
    start: StartConfig = Field(default_factory=StartConfig)
    perps: PerpConfig = Field(default_factory=PerpConfig)
    basis_traders: BasisTraderConfig = Field(default_factory=BasisTraderConfig)
    risk_manager: RiskManagerConfig = Field(default_factory=RiskManagerConfig)
    lst: StakingConfig = Field(default_factory=StakingConfig)
    hunters: HunterConfig = Field(default_factory=HunterConfig)
    attacker: AttackerConfig = Field(default_factory=AttackerConfig)
    oracle_venue: OracleVenueConfig = Field(default_factory=OracleVenueConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> ModelConfig:
        if not self.assets:
            raise ValueError("assets: at least one risky asset is required")
        if NUMERAIRE in self.assets:
            raise ValueError(f"assets: '{NUMERAIRE}' is the numéraire, not a risky asset")
        symbols = [NUMERAIRE, *self.assets]
        for sym in self.pool.reserves:
            if sym not in symbols:
                raise ValueError(f"pool.reserves.{sym}: no such asset (assets: {', '.join(symbols)})")
        if self.traders.assets_per_trader > len(self.assets):
            raise ValueError(
                f"traders.assets_per_trader = {self.traders.assets_per_trader} must be <= number of assets "
                f"({len(self.assets)})"
            )
        for i, ev in enumerate(self.scenario.events):
            asset = getattr(ev, "asset", None)
            if asset is not None and asset not in self.assets:
                raise ValueError(f"scenario.events[{i}].asset = '{asset}': no such risky asset")
        for sym in self.auctions.lump:  # liquidation auctions: Cat's lump is per collateral asset
            if sym not in self.assets:
                raise ValueError(f"auctions.lump.{sym}: no such risky asset (assets: {', '.join(self.assets)})")
        if not self.perps.enabled:
            if self.perps.trader_share > 0:
                raise ValueError(f"perps.trader_share = {self.perps.trader_share} needs perps.enabled = true")
            if self.basis_traders.n_traders > 0:
                raise ValueError(
                    f"basis_traders.n_traders = {self.basis_traders.n_traders} needs perps.enabled = true "
                    "(a basis trader shorts the perpetual)"
                )
        if self.attacker.enabled:  # adversaries (docs/model.md, 3.3 Submodels: Adversaries)
            if self.attacker.asset not in self.assets:
                raise ValueError(f"attacker.asset = '{self.attacker.asset}': no such risky asset")
            if self.attacker.corrupt_updaters > self.oracles.n_updaters:
                raise ValueError(
                    f"attacker.corrupt_updaters = {self.attacker.corrupt_updaters} must be <= oracles.n_updaters = "
                    f"{self.oracles.n_updaters}"
                )
        if self.oracle_venue.enabled:  # a thin oracle venue (docs/model.md, 3.3 Submodels: Oracles)
            if self.oracle_venue.asset not in self.assets:
                raise ValueError(f"oracle_venue.asset = '{self.oracle_venue.asset}': no such risky asset")
            if self.oracle_venue.readers > self.oracles.n_updaters:
                raise ValueError(
                    f"oracle_venue.readers = {self.oracle_venue.readers} must be <= oracles.n_updaters = "
                    f"{self.oracles.n_updaters}"
                )
        if math.isnan(self.market.impact_half_life_steps):
            raise ValueError("market.impact_half_life_steps must not be NaN")
        if self.risk_manager.enabled:  # one owner for a risky reserve's LTV and LT during a run
            for i, ev in enumerate(self.scenario.events):
                parts = getattr(ev, "parameter", "").split(".")
                if parts[:2] == ["pool", "reserves"] and parts[2:3] != [NUMERAIRE] and parts[-1] in _STEWARDED:
                    raise ValueError(
                        f"scenario.events[{i}].parameter = '{ev.parameter}': the risk manager moves the risky "
                        "reserves' LTV and liquidation threshold (risk_manager.enabled = true); a set event cannot "
                        "change them too"
                    )
        _check_staking(self)
        return self

    @property
    def symbols(self) -> list[str]:
        """All asset symbols, numéraire first (the column order of every per-asset array)."""
        return [NUMERAIRE, *self.assets]

    def reserve(self, symbol: str) -> ReserveConfig:
        """Reserve parameters for `symbol` (defaults where the configuration does not list it)."""
        return self.pool.reserves.get(symbol) or ReserveConfig()

    # Constructors live in abm.config.loader (which imports this module), hence the local imports.

    @classmethod
    def from_preset(cls, name: str, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
        """A named preset (`abm presets` lists them), with optional dotted overrides."""
        from abm.config import loader

        return loader.from_preset(name, overrides)

    @classmethod
    def from_toml(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
        """A TOML file (it may name a `base` preset), with optional dotted overrides."""
        from abm.config import loader

        return loader.from_toml(path, overrides)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> ModelConfig:
        """A nested dict (it may name a `base` preset), with optional dotted overrides."""
        from abm.config import loader

        return loader.build(data, overrides)

    def with_overrides(self, overrides: Mapping[str, Any]) -> ModelConfig:
        """A copy with dotted overrides applied, everything validated again."""
        from abm.config import loader

        return loader.with_overrides(self, overrides)

    def to_toml(self) -> str:
        """The full resolved configuration as TOML text (enough to re-run)."""
        from abm.config import loader

        return loader.to_toml(self)
