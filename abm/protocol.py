"""Protocol formulas: small pure functions, the arithmetic of Aave/Compound-style lending, Uniswap-v2 AMMs and
the market's price-impact paths (docs/model.md).

Everything stateful in the package (the pool, the margin engine, the market, the liquidators) calls these; nothing
here keeps state. Every function broadcasts over numpy arrays and also accepts plain floats (returning numpy
scalars). Units are given per argument. Invalid arguments raise `ValueError` naming the argument.

Each formula exists once. Hot paths whose arguments are valid by construction pass `check=False`, which skips the
argument checks (and the conversion to arrays) but runs the same expression.
"""

from __future__ import annotations

import numpy as np
from numba import njit, vectorize
from numpy.typing import ArrayLike, NDArray

from abm.numerics import row_sums, scale_columns

SECONDS_PER_YEAR = 365.0 * 24.0 * 3600.0

FloatArray = NDArray[np.float64]


def _as_float(name: str, value: ArrayLike, *, nonnegative: bool = False) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name} must not be NaN")
    if nonnegative and np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0 (got {np.min(arr)!r})")
    return arr


def _check_fraction(name: str, arr: FloatArray, *, lo_open: bool = False, hi_open: bool = False) -> None:
    lo_bad = arr <= 0 if lo_open else arr < 0
    hi_bad = arr >= 1 if hi_open else arr > 1
    if np.any(lo_bad | hi_bad):
        lo, hi = ("(" if lo_open else "["), (")" if hi_open else "]")
        bad = arr[lo_bad | hi_bad] if arr.ndim else arr
        raise ValueError(f"{name} must be in {lo}0, 1{hi} (got {np.ravel(bad)[0]!r})")


def _check_positive(**values: FloatArray) -> None:
    for name, arr in values.items():
        if np.any(arr <= 0):
            raise ValueError(f"{name} must be > 0 (got {np.min(arr)!r})")


# --- interest rates (docs/model.md, "The lending pool") ---------------------------------------------------------


def utilisation(cash: ArrayLike, borrows: ArrayLike, *, check: bool = True) -> FloatArray:
    """Share of a reserve that is lent out: borrows / (cash + borrows), 0 when both are 0.

    cash: tokens idle in the reserve. borrows: tokens owed to it (principal plus accrued interest). Returns a
    fraction in [0, 1].
    """
    c, b = cash, borrows
    if check:
        c = _as_float("cash", cash, nonnegative=True)
        b = _as_float("borrows", borrows, nonnegative=True)
    return np.asarray(_utilisation_each(c, b))


def reserve_utilisation(cash: float, borrows: float) -> float:
    """`utilisation` of one reserve (tokens in, a fraction out): the formula's one writing, which `utilisation`
    applies elementwise and the pool's compiled rates (`abm.lending.pool.reserve_rates`) inline."""
    total = cash + borrows
    return borrows / total if total > 0 else 0.0


def borrow_rate(
    utilisation: ArrayLike,
    base: ArrayLike,
    slope1: ArrayLike,
    slope2: ArrayLike,
    optimal: ArrayLike,
    *,
    check: bool = True,
) -> FloatArray:
    """Kinked ("jump rate") annual borrow rate, as Aave v3's DefaultReserveInterestRateStrategy.

    r(U) = base + slope1 * U / U*                          for U <= U*
    r(U) = base + slope1 + slope2 * (U - U*) / (1 - U*)    for U > U*
    All rates per year (0.05 = 5%/yr); utilisation and optimal (U*) are fractions, optimal in (0, 1).
    """
    u, b, s1, s2, opt = utilisation, base, slope1, slope2, optimal
    if check:
        u = _as_float("utilisation", utilisation)
        _check_fraction("utilisation", u)
        b = _as_float("base", base, nonnegative=True)
        s1 = _as_float("slope1", slope1, nonnegative=True)
        s2 = _as_float("slope2", slope2, nonnegative=True)
        opt = _as_float("optimal", optimal)
        _check_fraction("optimal", opt, lo_open=True, hi_open=True)
    return np.asarray(_borrow_rate_each(u, b, s1, s2, opt))


def kinked_borrow_rate(utilisation: float, base: float, slope1: float, slope2: float, optimal: float) -> float:
    """`borrow_rate` at one utilisation (fractions in, per year out): the kink's one writing, applied elementwise
    by `borrow_rate` and inlined in the pool's compiled rates. A NaN utilisation takes the upper branch."""
    if utilisation <= optimal:
        return base + slope1 * utilisation / optimal
    return base + slope1 + slope2 * (utilisation - optimal) / (1.0 - optimal)


def supply_rate(
    borrow_rate: ArrayLike, utilisation: ArrayLike, reserve_factor: ArrayLike, *, check: bool = True
) -> FloatArray:
    """Annual rate earned by suppliers: borrow_rate * U * (1 - reserve_factor).

    borrow_rate: per year. utilisation, reserve_factor: fractions in [0, 1].
    """
    r, u, rf = borrow_rate, utilisation, reserve_factor
    if check:
        r = _as_float("borrow_rate", borrow_rate, nonnegative=True)
        u = _as_float("utilisation", utilisation)
        _check_fraction("utilisation", u)
        rf = _as_float("reserve_factor", reserve_factor)
        _check_fraction("reserve_factor", rf)
    return np.asarray(_supply_rate_each(r, u, rf))[()]


def supplier_rate(borrow_rate: float, utilisation: float, reserve_factor: float) -> float:
    """`supply_rate` of one reserve (per year): the formula's one writing, applied elementwise by `supply_rate`
    and inlined in the pool's compiled rates."""
    return borrow_rate * utilisation * (1.0 - reserve_factor)


# the three rate formulas above as numpy ufuncs (elementwise, broadcasting) and as inlinable compiled functions
_utilisation_each = vectorize(["float64(float64, float64)"], cache=True)(reserve_utilisation)
_borrow_rate_each = vectorize(["float64(float64, float64, float64, float64, float64)"], cache=True)(kinked_borrow_rate)
_supply_rate_each = vectorize(["float64(float64, float64, float64)"], cache=True)(supplier_rate)
compiled_reserve_utilisation = njit(inline="always")(reserve_utilisation)
compiled_kinked_borrow_rate = njit(inline="always")(kinked_borrow_rate)
compiled_supplier_rate = njit(inline="always")(supplier_rate)


def per_step_rate(annual_rate: ArrayLike, step_seconds: float, *, check: bool = True) -> FloatArray:
    """Simple-interest rate for one step: annual_rate * step_seconds / seconds_per_year (Aave's linear accrual)."""
    r = annual_rate
    if check:
        r = _as_float("annual_rate", annual_rate, nonnegative=True)
        if step_seconds <= 0:
            raise ValueError(f"step_seconds must be > 0 (got {step_seconds!r})")
    return r * (step_seconds / SECONDS_PER_YEAR)


# --- health and liquidation (docs/model.md, "Health and liquidation") ------------------------------------------


def health_factor(
    collateral_usd: ArrayLike, liquidation_threshold: ArrayLike, debt_usd: ArrayLike, *, check: bool = True
) -> FloatArray:
    """Health factor HF = sum_i collateral_usd_i * LT_i / debt_usd; inf where debt is 0.

    collateral_usd: USD value of each collateral asset, assets on the last axis (shape (..., A)).
    liquidation_threshold: fractions, broadcast against collateral_usd (shape (A,) usually).
    debt_usd: total debt in USD, shape (...) (sum over debt assets already taken), or (..., A) which is summed.
    An account is liquidatable when HF < 1.
    """
    if check:
        collateral_usd = _as_float("collateral_usd", collateral_usd, nonnegative=True)
        liquidation_threshold = _as_float("liquidation_threshold", liquidation_threshold)
        _check_fraction("liquidation_threshold", liquidation_threshold)
        debt_usd = _as_float("debt_usd", debt_usd, nonnegative=True)
    c, lt, d = np.asarray(collateral_usd), np.asarray(liquidation_threshold), np.asarray(debt_usd)
    weighted = row_sums(scale_columns(c, lt))
    if d.ndim > 0 and d.shape == c.shape:
        d = row_sums(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, weighted / np.where(d > 0, d, 1.0), np.inf)


def borrow_power_usd(collateral_usd: ArrayLike, ltv: ArrayLike) -> FloatArray:
    """Maximum debt in USD the collateral supports when borrowing: sum_i collateral_usd_i * ltv_i (last axis)."""
    c = _as_float("collateral_usd", collateral_usd, nonnegative=True)
    lv = _as_float("ltv", ltv)
    _check_fraction("ltv", lv)
    return np.sum(c * lv, axis=-1)


def close_factor(
    health_factor: ArrayLike, default: float = 0.5, full_below: float = 0.95, *, check: bool = True
) -> FloatArray:
    """Fraction of an account's debt one liquidation may repay.

    `default` (0.5 in Aave v2/v3) while HF >= full_below (0.95, Aave v3's CLOSE_FACTOR_HF_THRESHOLD); 1.0 below.
    Accounts with HF >= 1 are not liquidatable: 0. health_factor is dimensionless.
    """
    if check:
        health_factor = _as_float("health_factor", health_factor)
        if not 0 < default <= 1:
            raise ValueError(f"default must be in (0, 1] (got {default!r})")
        if not 0 < full_below <= 1:
            raise ValueError(f"full_below must be in (0, 1] (got {full_below!r})")
    with np.errstate(invalid="ignore"):  # a NaN health compared in compiled code raises the invalid flag
        return np.asarray(_close_factor_each(health_factor, default, full_below))


def account_close_factor(health_factor: float, default: float, full_below: float) -> float:
    """`close_factor` of one account: the rule's one writing, applied elementwise by `close_factor` and inlined in
    the margin engine's compiled liquidation plans. A NaN health factor gets `default`."""
    if health_factor >= 1.0:
        return 0.0
    if health_factor < full_below:
        return 1.0
    return default


def collateral_seized(
    repaid: ArrayLike, debt_price: ArrayLike, collateral_price: ArrayLike, bonus: ArrayLike, *, check: bool = True
) -> FloatArray:
    """Collateral tokens a liquidator receives for repaying `repaid` debt tokens.

    seized = repaid * debt_price / collateral_price * (1 + bonus). Prices in USD per token (oracle prices);
    bonus is a fraction (0.05 = 5%). The caller caps the result by the collateral the account holds.
    """
    if check:
        repaid = _as_float("repaid", repaid, nonnegative=True)
        debt_price, collateral_price = (
            _as_float("debt_price", debt_price),
            _as_float("collateral_price", collateral_price),
        )
        _check_positive(debt_price=debt_price, collateral_price=collateral_price)
        bonus = _as_float("bonus", bonus, nonnegative=True)
    return seized_for_repaid(repaid, debt_price, collateral_price, bonus)  # type: ignore[arg-type]


def seized_for_repaid(repaid: float, debt_price: float, collateral_price: float, bonus: float) -> float:
    """`collateral_seized` without the checks (floats, or arrays alike): the formula's one writing, which the
    margin engine's compiled liquidation plans inline."""
    return repaid * debt_price / collateral_price * (1.0 + bonus)


def repay_for_seizure(
    seized: ArrayLike, debt_price: ArrayLike, collateral_price: ArrayLike, bonus: ArrayLike, *, check: bool = True
) -> FloatArray:
    """Inverse of `collateral_seized`: debt tokens that buy `seized` collateral tokens at the bonus.

    Used when the collateral held caps the seizure (Aave then reduces the repaid amount to match).
    """
    if check:
        seized = _as_float("seized", seized, nonnegative=True)
        debt_price, collateral_price = (
            _as_float("debt_price", debt_price),
            _as_float("collateral_price", collateral_price),
        )
        _check_positive(debt_price=debt_price, collateral_price=collateral_price)
        bonus = _as_float("bonus", bonus, nonnegative=True)
    return repaid_for_seized(seized, debt_price, collateral_price, bonus)  # type: ignore[arg-type]


def repaid_for_seized(seized: float, debt_price: float, collateral_price: float, bonus: float) -> float:
    """`repay_for_seizure` without the checks (floats, or arrays alike): the formula's one writing, which the
    margin engine's compiled liquidation plans inline."""
    return seized * collateral_price / (debt_price * (1.0 + bonus))


# the liquidation formulas above as a numpy ufunc (the close factor's branches) and as inlinable compiled functions
_close_factor_each = vectorize(["float64(float64, float64, float64)"], cache=True)(account_close_factor)
compiled_close_factor = njit(inline="always")(account_close_factor)
compiled_seized_for_repaid = njit(inline="always")(seized_for_repaid)
compiled_repaid_for_seized = njit(inline="always")(repaid_for_seized)


def liquidation_price(
    collateral_tokens: ArrayLike, debt_usd: ArrayLike, liquidation_threshold: ArrayLike
) -> FloatArray:
    """Collateral price (USD per token) at which a single-collateral account's HF equals 1.

    price = debt_usd / (collateral_tokens * LT); 0 where there is no debt, inf with debt but no collateral.
    """
    c = _as_float("collateral_tokens", collateral_tokens, nonnegative=True)
    d = _as_float("debt_usd", debt_usd, nonnegative=True)
    lt = _as_float("liquidation_threshold", liquidation_threshold)
    _check_fraction("liquidation_threshold", lt, lo_open=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, np.where(c > 0, d / np.where(c > 0, c * lt, 1.0), np.inf), 0.0)


def max_leverage(ltv: ArrayLike) -> FloatArray:
    """Largest leverage (exposure / equity) that looping collateral at loan-to-value `ltv` allows: 1 / (1 - ltv)."""
    lv = _as_float("ltv", ltv)
    _check_fraction("ltv", lv, hi_open=True)
    return 1.0 / (1.0 - lv)


# --- constant-product AMM (Uniswap v2 semantics, floats) -----------------------------------------------------


def _check_amm(
    amount_name: str, amount: ArrayLike, reserve_in: ArrayLike, reserve_out: ArrayLike, fee: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    a = _as_float(amount_name, amount, nonnegative=True)
    rin = _as_float("reserve_in", reserve_in)
    rout = _as_float("reserve_out", reserve_out)
    _check_positive(reserve_in=rin, reserve_out=rout)
    if not 0 <= fee < 1:
        raise ValueError(f"fee must be in [0, 1) (got {fee!r})")
    return a, rin, rout


def amm_amount_out(
    amount_in: ArrayLike, reserve_in: ArrayLike, reserve_out: ArrayLike, fee: float = 0.003, *, check: bool = True
) -> FloatArray:
    """Tokens out of an x*y=k pool for `amount_in` tokens in, the fee taken from the input (Uniswap v2 getAmountOut).

    out = a (1 - fee) R_out / (R_in + a (1 - fee)). Amounts and reserves in tokens; fee a fraction in [0, 1).
    """
    if check:
        amount_in, reserve_in, reserve_out = _check_amm("amount_in", amount_in, reserve_in, reserve_out, fee)
    a_net = amount_in * (1.0 - fee)  # type: ignore[operator]
    return a_net * reserve_out / (reserve_in + a_net)  # type: ignore[operator]


def amm_amount_in(
    amount_out: ArrayLike, reserve_in: ArrayLike, reserve_out: ArrayLike, fee: float = 0.003, *, check: bool = True
) -> FloatArray:
    """Tokens that must go into an x*y=k pool to take `amount_out` out (Uniswap v2 getAmountIn, without rounding).

    in = R_in * out / ((R_out - out) (1 - fee)). Requires amount_out < reserve_out.
    """
    if check:
        amount_out, reserve_in, reserve_out = _check_amm("amount_out", amount_out, reserve_in, reserve_out, fee)
        if np.any(amount_out >= reserve_out):
            raise ValueError("amount_out must be < reserve_out")
    return reserve_in * amount_out / ((reserve_out - amount_out) * (1.0 - fee))  # type: ignore[operator]


# --- price-impact fills (docs/model.md, "The market") ----------------------------------------------------------
# The impact models move the log market price by m(x) after x USD of signed notional. An order fills along that
# path, so its average price is its notional over the tokens it gets, not the pre-trade price.


def _check_fill(amount_name: str, amount: ArrayLike, price: ArrayLike, depth_name: str, depth: ArrayLike):
    q = _as_float(amount_name, amount, nonnegative=True)
    p = _as_float("price", price)
    d = _as_float(depth_name, depth)
    _check_positive(price=p, **{depth_name: d})
    return q, p, d


def linear_impact_tokens_bought(
    notional_usd: ArrayLike, price: ArrayLike, depth_usd: ArrayLike, *, check: bool = True
) -> FloatArray:
    """Tokens a buy of `notional_usd` gets when log price rises by x / depth_usd along the way (Kyle, linear).

    tokens = depth / price * (1 - exp(-Q / depth)). price in USD/token at the start; depth in USD per unit log-price.
    """
    if check:
        notional_usd, price, depth_usd = _check_fill("notional_usd", notional_usd, price, "depth_usd", depth_usd)
    return depth_usd / price * -np.expm1(-notional_usd / depth_usd)  # type: ignore[operator]


def linear_impact_cost(tokens: ArrayLike, price: ArrayLike, depth_usd: ArrayLike, *, check: bool = True) -> FloatArray:
    """USD needed to buy exactly `tokens` along the linear path: -depth * ln(1 - tokens * price / depth).

    Inverse of `linear_impact_tokens_bought`; inf when the path can never supply that many tokens
    (tokens * price >= depth).
    """
    if check:
        tokens, price, depth_usd = _check_fill("tokens", tokens, price, "depth_usd", depth_usd)
    frac = np.asarray(tokens * price / depth_usd)  # type: ignore[operator]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(frac < 1.0, -depth_usd * np.log1p(-np.minimum(frac, 1.0)), np.inf)  # type: ignore[operator]


def linear_impact_proceeds(
    tokens: ArrayLike, price: ArrayLike, depth_usd: ArrayLike, *, check: bool = True
) -> FloatArray:
    """USD a sale of `tokens` raises when log price falls by x / depth_usd per USD x sold (Kyle, linear).

    proceeds = depth * ln(1 + tokens * price / depth). Inverse of the buy formula with the sign flipped.
    """
    if check:
        tokens, price, depth_usd = _check_fill("tokens", tokens, price, "depth_usd", depth_usd)
    return depth_usd * np.log1p(tokens * price / depth_usd)  # type: ignore[operator]


def sqrt_impact(notional_usd: ArrayLike, y: float, sigma_daily: ArrayLike, daily_volume_usd: ArrayLike) -> FloatArray:
    """Log-price impact of the square-root law: Y * sigma_daily * sign(Q) * sqrt(|Q| / daily_volume_usd).

    notional_usd: signed USD (buys > 0). sigma_daily: daily volatility (fraction). daily_volume_usd: USD/day.
    """
    q = _as_float("notional_usd", notional_usd)
    s = _as_float("sigma_daily", sigma_daily, nonnegative=True)
    v = _as_float("daily_volume_usd", daily_volume_usd)
    _check_positive(daily_volume_usd=v)
    return y * s * np.sign(q) * np.sqrt(np.abs(q) / v)


def sqrt_impact_tokens_bought(
    notional_usd: ArrayLike, price: ArrayLike, a: ArrayLike, *, check: bool = True
) -> FloatArray:
    """Tokens a buy of Q USD gets along the square-root path m(x) = a sqrt(x), a = Y sigma_daily / sqrt(V).

    tokens = (1/price) * integral_0^Q exp(-a sqrt(x)) dx = (2 / (price a^2)) (1 - exp(-a sqrt Q)(1 + a sqrt Q)).
    """
    q, p, aa = np.asarray(notional_usd, dtype=float), np.asarray(price, dtype=float), np.asarray(a, dtype=float)
    if check:
        q, p = _as_float("notional_usd", q, nonnegative=True), _as_float("price", p)
        aa = _as_float("a", aa, nonnegative=True)
        _check_positive(price=p)
    z = aa * np.sqrt(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = 2.0 / (p * aa**2) * (-np.expm1(-z) - z * np.exp(-z))
    return np.where(z > 1e-6, exact, q / p * (1.0 - 2.0 * z / 3.0))


def sqrt_impact_proceeds(tokens: ArrayLike, price: ArrayLike, a: ArrayLike, *, check: bool = True) -> FloatArray:
    """USD a sale of `tokens` raises along the square-root path m(x) = -a sqrt(x) (x = USD sold so far).

    Solves tokens = (1/price) * integral_0^Q exp(a sqrt(x)) dx for Q by Newton's method (monotone, convex).
    """
    t, p = np.asarray(tokens, dtype=float), np.asarray(price, dtype=float)
    if check:
        t, p = _as_float("tokens", t, nonnegative=True), _as_float("price", p)
        _check_positive(price=p)
        a = _as_float("a", a, nonnegative=True)
    aa = np.broadcast_to(np.asarray(a, dtype=float), np.broadcast(t, p).shape)
    target = t * p  # = integral_0^Q exp(a sqrt x) dx
    q = target.copy()  # start from the no-impact answer; the integral is >= Q, so Newton walks down monotonically
    for _ in range(60):
        z = aa * np.sqrt(q)
        with np.errstate(divide="ignore", invalid="ignore"):
            integral = np.where(z > 1e-6, 2.0 / aa**2 * (np.expm1(z) * (z - 1.0) + z), q * (1.0 + 2.0 * z / 3.0))
        step = (integral - target) / np.exp(z)
        q = np.maximum(q - step, 0.0)
        if np.all(np.abs(step) <= 1e-12 * np.maximum(target, 1.0)):
            break
    return q


# --- shocks -------------------------------------------------------------------------------------------------


def spread_shock(total_return: float, steps: int) -> float:
    """Per-step log-return that compounds to `total_return` (e.g. -0.25) over `steps` steps."""
    if total_return <= -1:
        raise ValueError(f"total_return must be > -1 (got {total_return!r})")
    if steps < 1:
        raise ValueError(f"steps must be >= 1 (got {steps!r})")
    return float(np.log1p(total_return) / steps)


# --- perpetual futures (docs/perps.md) ----------------------------------------------------------------------
# Linear (USD-margined) perpetuals: one contract is one token of the underlying, prices in USD/token, margins and
# PnL in USD. Sources are named per formula; docs/perps.md lists them.


def _check_side(side: ArrayLike) -> FloatArray:
    s = _as_float("side", side)
    if np.any((s != 1.0) & (s != -1.0)):
        bad = np.ravel(s[(s != 1.0) & (s != -1.0)] if s.ndim else s)[0]
        raise ValueError(f"side must be +1 (long) or -1 (short) (got {bad!r})")
    return s


def premium_index(impact_bid: ArrayLike, impact_ask: ArrayLike, index: ArrayLike, *, check: bool = True) -> FloatArray:
    """Premium of the perpetual's book over the spot index (Binance, Bybit, Hyperliquid funding docs).

    P = [max(0, impact_bid - index) - max(0, index - impact_ask)] / index. impact_bid / impact_ask: average fill
    prices (USD/token) of selling / buying the impact notional into the book; index: spot index price (USD/token).
    Dimensionless: 0 while the index lies inside [impact_bid, impact_ask], positive when the book trades above it.
    """
    if check:
        impact_bid, impact_ask, index = (
            _as_float("impact_bid", impact_bid),
            _as_float("impact_ask", impact_ask),
            _as_float("index", index),
        )
        _check_positive(impact_bid=impact_bid, impact_ask=impact_ask, index=index)
        if np.any(impact_bid > impact_ask):
            raise ValueError("impact_bid must be <= impact_ask (a crossed book has no premium)")
    bid, ask, idx = np.asarray(impact_bid), np.asarray(impact_ask), np.asarray(index)
    return (np.maximum(0.0, bid - idx) - np.maximum(0.0, idx - ask)) / idx


def funding_rate(
    premium: ArrayLike,
    interest: ArrayLike = 0.0001,
    clamp: ArrayLike = 0.0005,
    cap: float | None = None,
    *,
    check: bool = True,
) -> FloatArray:
    """Funding rate for one funding period (fraction of position notional; > 0: longs pay shorts).

    F = P + clamp(I - P, -c, +c) (Binance and Bybit funding-rate docs; Hyperliquid uses the same form), then, if
    `cap` is given, |F| <= cap (Hyperliquid caps the hourly rate at 4%). premium P: the period's average premium
    index; interest I: per period (Binance 0.01% per 8 hours); clamp c >= 0: per period (0.05%).
    """
    if check:
        premium, interest, clamp = (
            _as_float("premium", premium),
            _as_float("interest", interest),
            _as_float("clamp", clamp, nonnegative=True),
        )
        if cap is not None and not cap > 0:
            raise ValueError(f"cap must be > 0 or None (got {cap!r})")
    p = np.asarray(premium)
    rate = p + np.clip(np.asarray(interest) - p, -np.asarray(clamp), np.asarray(clamp))
    return rate if cap is None else np.clip(rate, -cap, cap)


def _check_position(entry: ArrayLike, leverage: ArrayLike, side: ArrayLike) -> tuple[FloatArray, ...]:
    e, lev = _as_float("entry", entry), _as_float("leverage", leverage)
    _check_positive(entry=e, leverage=lev)
    return e, lev, _check_side(side)


def perp_bankruptcy_price(entry: ArrayLike, leverage: ArrayLike, side: ArrayLike, *, check: bool = True) -> FloatArray:
    """Mark price (USD/token) at which an isolated, fee-free position's margin is exactly lost (Bybit, "Bankruptcy
    Price (USDT Contract)"): long entry (1 - 1/L), short entry (1 + 1/L).

    entry: average entry price (USD/token); leverage L = entry notional / isolated margin (> 0); side +1 long, -1
    short. A long at L <= 1 has a price <= 0: it can never go bankrupt.
    """
    if check:
        entry, leverage, side = _check_position(entry, leverage, side)
    return np.asarray(entry) * (1.0 - np.asarray(side) / np.asarray(leverage))


def perp_liquidation_price(
    entry: ArrayLike, leverage: ArrayLike, maintenance_margin_rate: ArrayLike, side: ArrayLike, *, check: bool = True
) -> FloatArray:
    """Mark price (USD/token) at which an isolated, fee-free position's equity falls to its maintenance margin,
    charged on the position's value at that mark price (Binance, "How to Calculate Liquidation Price of USDⓈ-M
    Futures Contracts", isolated mode with zero maintenance amount):

    long: entry (1 - 1/L) / (1 - m); short: entry (1 + 1/L) / (1 + m). m: maintenance margin rate, a fraction in
    [0, 1). Within one margin tier only; a long price <= 0 means the position is never liquidated.
    """
    if check:
        entry, leverage, side = _check_position(entry, leverage, side)
        maintenance_margin_rate = _as_float("maintenance_margin_rate", maintenance_margin_rate)
        _check_fraction("maintenance_margin_rate", maintenance_margin_rate, hi_open=True)
    s, m = np.asarray(side), np.asarray(maintenance_margin_rate)
    return np.asarray(entry) * (1.0 - s / np.asarray(leverage)) / (1.0 - s * m)


def adl_rank(pnl_fraction: ArrayLike, effective_leverage: ArrayLike, *, check: bool = True) -> FloatArray:
    """Auto-deleveraging priority (BitMEX, "Auto-Deleveraging"): higher is deleveraged first.

    rank = pnl_fraction * effective_leverage when pnl_fraction > 0, pnl_fraction / effective_leverage otherwise.
    pnl_fraction: (mark value - entry value) / |entry value| (dimensionless); effective_leverage: |mark value| /
    (mark value - bankrupt value), > 0 (inf for a position with no equity left).
    """
    if check:
        pnl_fraction, effective_leverage = (
            _as_float("pnl_fraction", pnl_fraction),
            _as_float("effective_leverage", effective_leverage),
        )
        _check_positive(effective_leverage=effective_leverage)
    pnl, lev = np.asarray(pnl_fraction), np.asarray(effective_leverage)
    with np.errstate(invalid="ignore"):
        return np.where(pnl > 0, pnl * lev, pnl / lev)


def tier_cumulative_amounts(floors_usd: ArrayLike, rates: ArrayLike) -> FloatArray:
    """Each tier's "maintenance amount" cum_n (USD) that makes a tiered margin continuous in notional (Binance,
    "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"): cum_1 = 0,
    cum_n = floor_n * (rate_n - rate_{n-1}) + cum_{n-1}. floors_usd: each tier's lowest notional (USD), increasing;
    rates: each tier's margin rate (fraction), non-decreasing.
    """
    f, r = _as_float("floors_usd", floors_usd, nonnegative=True), _as_float("rates", rates, nonnegative=True)
    if f.ndim != 1 or f.shape != r.shape or f.size == 0:
        raise ValueError("floors_usd and rates must be 1-d and of one (non-zero) length")
    if np.any(np.diff(f) <= 0):
        raise ValueError("floors_usd must be strictly increasing")
    if np.any(np.diff(r) < 0):
        raise ValueError("rates must be non-decreasing")
    steps = np.concatenate([[0.0], f[1:] * np.diff(r)])
    return np.cumsum(steps)


def tiered_margin(
    notional_usd: ArrayLike, floors_usd: ArrayLike, rates: ArrayLike, cumulative: ArrayLike | None = None
) -> FloatArray:
    """Margin (USD) a position of `notional_usd` needs under a tier table: notional * rate_n - cum_n, n the tier
    whose floor the notional has reached (Binance: "Maintenance Margin = Position Notional * Maintenance Margin
    Rate - Maintenance Amount"). `cumulative` (from `tier_cumulative_amounts`) may be passed to skip recomputing.
    """
    n = np.abs(np.asarray(notional_usd, dtype=np.float64))
    f, r = np.asarray(floors_usd, dtype=np.float64), np.asarray(rates, dtype=np.float64)
    cum = tier_cumulative_amounts(f, r) if cumulative is None else np.asarray(cumulative, dtype=np.float64)
    tier = np.clip(np.searchsorted(f, n, side="right") - 1, 0, f.size - 1)
    return n * r[tier] - cum[tier]


# --- liquidation auctions, adaptive risk parameters, staking collateral -------------------------------------
# Formulas for the auction house (abm/lending/auctions.py), the risk steward (abm/lending/risk_steward.py) and
# staking collateral (abm/lending/staking.py); docs/auctions_and_risk.md, "Liquidation auctions", "Adaptive risk
# parameters" and "Staking collateral and looping". Times are in one unit the caller chooses (Maker's contracts use seconds,
# the model uses steps); prices in USD (or base-asset units) per token.

# Maker's abaci: LinearDecrease, StairstepExponentialDecrease, ExponentialDecrease
DUTCH_CURVES = ("linear", "stairstep", "exponential")


def dutch_auction_price(
    start_price: ArrayLike,
    elapsed: ArrayLike,
    curve: str,
    *,
    duration: float | None = None,
    cut: float | None = None,
    step: float = 1.0,
    check: bool = True,
) -> FloatArray:
    """Price (USD/token) of a descending-price auction `elapsed` time units after it (re)started (Maker
    Liquidations 2.0, `abaci.sol`):

    - linear (LinearDecrease): top (duration - t) / duration, 0 from t = duration on;
    - stairstep (StairstepExponentialDecrease): top cut^floor(t / step), cut the multiplier per drop;
    - exponential (ExponentialDecrease): top cut^t, cut the multiplier per time unit.

    start_price (top): USD/token, > 0; elapsed >= 0, duration > 0 and step > 0 in the same time unit; cut in (0, 1].
    """
    if curve not in DUTCH_CURVES:
        raise ValueError(f"curve must be one of {DUTCH_CURVES} (got {curve!r})")
    if check:
        start_price, elapsed = _as_float("start_price", start_price), _as_float("elapsed", elapsed, nonnegative=True)
        _check_positive(start_price=start_price)
        if curve == "linear" and (duration is None or not duration > 0):
            raise ValueError(f"duration must be > 0 for the linear curve (got {duration!r})")
        if curve != "linear" and (cut is None or not 0 < cut <= 1):
            raise ValueError(f"cut must be in (0, 1] for the {curve} curve (got {cut!r})")
        if curve == "stairstep" and not step > 0:
            raise ValueError(f"step must be > 0 (got {step!r})")
    top, t = np.asarray(start_price, dtype=np.float64), np.asarray(elapsed, dtype=np.float64)
    if curve == "linear":
        return top * np.clip((duration - t) / duration, 0.0, 1.0)  # type: ignore[operator]
    if curve == "stairstep":
        return top * np.power(cut, np.floor(t / step))  # type: ignore[arg-type]
    return top * np.power(cut, t)  # type: ignore[arg-type]


def dutch_auction_needs_reset(
    elapsed: ArrayLike, price: ArrayLike, start_price: ArrayLike, tail: float, cusp: float
) -> NDArray[np.bool_]:
    """Whether a descending-price auction must be reset (Maker Clipper `status`): elapsed > tail or price / top < cusp.

    elapsed and tail in one time unit; price and start_price (top) in USD/token; cusp a fraction in [0, 1] (the
    largest drawdown from top before a reset). A reset restarts the clock and sets a fresh top from the oracle.
    """
    if not tail > 0:
        raise ValueError(f"tail must be > 0 (got {tail!r})")
    if not 0 <= cusp <= 1:
        raise ValueError(f"cusp must be in [0, 1] (got {cusp!r})")
    t = _as_float("elapsed", elapsed, nonnegative=True)
    p, top = _as_float("price", price, nonnegative=True), _as_float("start_price", start_price)
    _check_positive(start_price=top)
    return (t > tail) | (p / top < cusp)


def auction_keeper_incentive(tab: ArrayLike, chip: ArrayLike, tip: ArrayLike) -> FloatArray:
    """USD the protocol pays the keeper that starts (or resets) an auction (Maker Clipper `kick`/`redo`):
    tip + chip * tab. tab: debt the auction must raise (USD); chip: fraction of tab; tip: flat fee (USD)."""
    t = _as_float("tab", tab, nonnegative=True)
    c, f = _as_float("chip", chip, nonnegative=True), _as_float("tip", tip, nonnegative=True)
    return f + c * t


def dutch_auction_take(lot: float, tab: float, price: float, amount: float, dust: float = 0.0) -> tuple[float, float]:
    """(owe, slice) of one purchase from a descending-price auction (Maker Clipper `take`).

    A buyer asks for up to `amount` tokens of the `lot` (tokens) at `price` (USD/token) while `tab` (USD) is still
    to be raised: slice = min(lot, amount), owe = slice * price; if owe > tab the buyer pays the tab only and gets
    tab / price tokens; a partial purchase may not leave a remaining tab below `dust` (USD): owe is then cut to
    tab - dust. Returns owe (USD paid) and slice (tokens received).
    """
    for name, v in (("lot", lot), ("tab", tab), ("amount", amount), ("dust", dust)):
        if not v >= 0:
            raise ValueError(f"{name} must be >= 0 (got {v!r})")
    if not price > 0:
        raise ValueError(f"price must be > 0 (got {price!r})")
    piece = min(lot, amount)
    owe = piece * price
    if owe > tab:
        return tab, tab / price
    if owe < tab and piece < lot and tab - owe < dust:
        if tab <= dust:
            raise ValueError(f"amount must buy the whole lot when tab <= dust (tab {tab!r}, dust {dust!r})")
        owe = tab - dust
        piece = owe / price
    return owe, piece


def english_auction_min_bid(bid: ArrayLike, tab: ArrayLike, beg: float) -> FloatArray:
    """Smallest acceptable next bid (USD) in the tend phase of an English auction (Maker Flipper `tend`).

    A new bid must exceed the current `bid`, be at most `tab`, and be at least beg * bid unless it equals tab:
    min(beg * bid, tab). beg >= 1 is the minimum bid increase as a factor (1.05 = 5%). With no bid yet (bid = 0)
    any positive amount is accepted: the opening that let lone keepers win lots for ~0 DAI on 12-13 March 2020.
    """
    if not beg >= 1:
        raise ValueError(f"beg must be >= 1 (got {beg!r})")
    b, t = _as_float("bid", bid, nonnegative=True), _as_float("tab", tab, nonnegative=True)
    return np.minimum(beg * b, t)


def cat_bite_lot(collateral_tokens: float, collateral_debt_share: float, lump: float) -> tuple[float, float]:
    """One bite of Maker's Cat (Liquidation 1.2): the lot (tokens) one English auction takes and the share of the
    account's USD debt that goes with it, (min(ink, lump), share * lot / ink).

    collateral_tokens ink: the account's tokens of the asset (> 0); collateral_debt_share: the share of the
    account's USD debt that the asset carries (its share of the collateral's value, in (0, 1]); lump: the most
    tokens one auction may take (inf: no cap). A vault larger than lump is split into several auctions, one bite
    (one transaction) each, every bite taking its lot's proportional debt. Example: 120 ETH, share 1, lump 50:
    (50, 5/12), then on the remaining 70 ETH (50, 5/7), then (20, 1).
    """
    if not collateral_tokens > 0:
        raise ValueError(f"collateral_tokens must be > 0 (got {collateral_tokens!r})")
    if not 0 < collateral_debt_share <= 1:
        raise ValueError(f"collateral_debt_share must be in (0, 1] (got {collateral_debt_share!r})")
    if not lump > 0:
        raise ValueError(f"lump must be > 0 (got {lump!r})")
    if lump >= collateral_tokens:
        return collateral_tokens, collateral_debt_share
    return lump, collateral_debt_share * lump / collateral_tokens


def english_auction_max_lot(lot: ArrayLike, beg: float) -> FloatArray:
    """Largest lot (tokens) a dent-phase bid may ask for (Maker Flipper `dent`): beg * new lot <= lot, so lot / beg.

    In the dent phase the bid is fixed at tab and bidders compete by accepting fewer tokens; the tokens given up go
    back to the liquidated owner. beg >= 1 as in `english_auction_min_bid`.
    """
    if not beg >= 1:
        raise ValueError(f"beg must be >= 1 (got {beg!r})")
    return _as_float("lot", lot, nonnegative=True) / beg


def keeper_break_even_bid(
    resale_usd: ArrayLike, gas_usd: ArrayLike, funding_rate: ArrayLike, hold_seconds: ArrayLike
) -> FloatArray:
    """Largest USD amount a keeper can pay now for a lot and still break even: (resale - gas) / (1 + r * h), at
    least 0.

    resale_usd: what selling the lot will raise (USD, after the market impact of the sale); gas_usd: gas of all
    the keeper's transactions for it (USD); funding_rate r: the keeper's own cost of funds (per year, simple
    interest, as the pool's accrual); hold_seconds h: how long the bid is locked before the lot can be sold.
    """
    p = _as_float("resale_usd", resale_usd, nonnegative=True)
    g = _as_float("gas_usd", gas_usd, nonnegative=True)
    r = _as_float("funding_rate", funding_rate, nonnegative=True)
    h = _as_float("hold_seconds", hold_seconds, nonnegative=True)
    return np.maximum(p - g, 0.0) / (1.0 + r * h / SECONDS_PER_YEAR)


def keeper_landing_probability(
    gas_usd: ArrayLike, gas_budget_usd: ArrayLike, profit_usd: ArrayLike, profit_share: ArrayLike
) -> FloatArray:
    """Chance (fraction) that a keeper's transaction lands in the current step: min(1, w / gas), w = max(budget,
    share * profit).

    gas_usd: what a transaction must pay to be included now (USD, > 0; it rises with congestion); gas_budget_usd:
    the most the keeper's software pays regardless of the prize (USD); profit_share: the fraction of the expected
    profit (USD) it will spend on gas. Keepers with a fixed budget (share 0, as the default keepers of March 2020)
    drop out as gas rises; those that price gas against the prize keep landing on large lots.
    """
    g = _as_float("gas_usd", gas_usd)
    _check_positive(gas_usd=g)
    budget = _as_float("gas_budget_usd", gas_budget_usd, nonnegative=True)
    share = _as_float("profit_share", profit_share)
    _check_fraction("profit_share", share)
    willing = np.maximum(budget, share * np.maximum(_as_float("profit_usd", profit_usd), 0.0))
    return np.minimum(willing / g, 1.0)


# --- adaptive risk parameters (docs/model.md, "Adaptive risk parameters") --------------------------------------------------


def ewma_variance(variance: ArrayLike, log_return: ArrayLike, half_life_steps: float) -> FloatArray:
    """One step of an exponentially weighted variance of one-step log returns: lam v + (1 - lam) r^2, with
    lam = 0.5 ** (1 / half_life_steps), so a return's weight halves every `half_life_steps` steps.

    variance: per step (log-return units squared, >= 0); log_return: one step's log price change; half_life_steps:
    > 0 (steps). Annualise with sqrt(variance * steps per year).
    """
    v = _as_float("variance", variance, nonnegative=True)
    r = _as_float("log_return", log_return)
    if not half_life_steps > 0:
        raise ValueError(f"half_life_steps must be > 0 (got {half_life_steps!r})")
    lam = 0.5 ** (1.0 / half_life_steps)
    return lam * v + (1.0 - lam) * r * r


def volatility_liquidation_threshold(
    realised_vol: ArrayLike, bonus: ArrayLike, k_sigma: float, horizon_days: float
) -> FloatArray:
    """Liquidation threshold (fraction) at which a k-sigma fall over the liquidation horizon still leaves collateral
    worth the debt plus the liquidator's bonus: LT* = exp(-k sigma sqrt(h)) / (1 + bonus).

    An account at HF = 1 has debt = LT * collateral; after a log-price fall of k sigma sqrt(h) its collateral
    covers debt * (1 + bonus) exactly. realised_vol sigma: per sqrt year (> 0); h = horizon_days / 365; bonus: a
    fraction. LT* (1 + bonus) < 1 for any positive move, Aave's PoolConfigurator rule (threshold x bonus <= 100%).
    """
    s = _as_float("realised_vol", realised_vol)
    _check_positive(realised_vol=s)
    b = _as_float("bonus", bonus, nonnegative=True)
    if not k_sigma > 0:
        raise ValueError(f"k_sigma must be > 0 (got {k_sigma!r})")
    if not horizon_days > 0:
        raise ValueError(f"horizon_days must be > 0 (got {horizon_days!r})")
    return np.exp(-k_sigma * s * np.sqrt(horizon_days / 365.0)) / (1.0 + b)


def steward_update(
    current_ltv: ArrayLike,
    current_lt: ArrayLike,
    realised_vol: ArrayLike,
    bonus: ArrayLike,
    *,
    k_sigma: float = 3.0,
    horizon_days: float = 1.0,
    max_change: float = 0.005,
    ltv_gap: ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """One risk-steward update of (LTV, LT) per reserve toward the volatility target, each moved by at most
    `max_change` (absolute fraction; Aave's Risk Steward: 50 bps per update for LTV, LT and bonus).

    Target LT* = `volatility_liquidation_threshold`; target LTV* = LT* - gap, gap = `ltv_gap` (fraction, > 0) or
    each reserve's current LT - LTV. Both are then capped to current +- max_change. Returns (ltv, lt). A reserve
    that starts valid stays valid, 0 < ltv < lt and lt (1 + bonus) < 1 (Aave's PoolConfigurator rules): moving
    toward targets a positive gap apart, with one cap for both, neither parameter overtakes the other, and LT only
    rises toward a target below 1 / (1 + bonus). current_ltv, current_lt: fractions with 0 < ltv < lt and
    lt (1 + bonus) < 1; realised_vol: per sqrt year (> 0); bonus: fraction.
    """
    ltv, lt = _as_float("current_ltv", current_ltv), _as_float("current_lt", current_lt)
    _check_fraction("current_ltv", ltv, lo_open=True, hi_open=True)
    _check_fraction("current_lt", lt, lo_open=True, hi_open=True)
    b = _as_float("bonus", bonus, nonnegative=True)
    if np.any(ltv >= lt):
        raise ValueError(f"current_ltv must be < current_lt (got {np.ravel(ltv)[0]!r} >= {np.ravel(lt)[0]!r})")
    if np.any(lt * (1.0 + b) >= 1.0):
        raise ValueError(f"current_lt * (1 + bonus) must be < 1 (got {np.max(lt * (1.0 + b))!r})")
    if not 0 < max_change < 1:
        raise ValueError(f"max_change must be in (0, 1) (got {max_change!r})")
    gap = lt - ltv if ltv_gap is None else _as_float("ltv_gap", ltv_gap)
    _check_positive(ltv_gap=gap)
    lt_target = volatility_liquidation_threshold(realised_vol, b, k_sigma, horizon_days)
    ltv_target = np.maximum(lt_target - gap, 0.0)
    new_lt = np.clip(lt_target, lt - max_change, lt + max_change)
    new_ltv = np.clip(ltv_target, ltv - max_change, ltv + max_change)
    # the steward never sets a parameter to 0 (Aave's Risk Steward refuses to): an LTV that would reach 0 stays put
    new_ltv = np.where(new_ltv > 0, new_ltv, ltv)
    return new_ltv, new_lt


# --- staking collateral and looping (docs/auctions_and_risk.md, "Staking collateral and looping") ---------------------------


def loop_leverage(ltv: ArrayLike, n_loops: ArrayLike) -> FloatArray:
    """Leverage (collateral value / equity) after depositing, then `n_loops` times borrowing at `ltv`, buying the
    collateral and redepositing it: 1 + ltv + ... + ltv^n = (1 - ltv^(n+1)) / (1 - ltv).

    ltv: fraction in [0, 1); n_loops: integer >= 0, or inf for the limit `max_leverage(ltv)` = 1 / (1 - ltv).
    Buying at the price the oracle values it at (no slippage, no fees).
    """
    lv = _as_float("ltv", ltv)
    _check_fraction("ltv", lv, hi_open=True)
    n = _as_float("n_loops", n_loops, nonnegative=True)
    if np.any(np.isfinite(n) & (n != np.floor(n))):
        raise ValueError(f"n_loops must be a whole number (got {np.ravel(n)[np.ravel(n != np.floor(n))][0]!r})")
    return max_leverage(lv) * (1.0 - np.power(lv, n + 1.0))


def loops_for_leverage(target_leverage: ArrayLike, ltv: ArrayLike) -> NDArray[np.int64]:
    """Fewest loops n with `loop_leverage(ltv, n)` >= target: n = ceil(ln(1 - T (1 - ltv)) / ln ltv) - 1, 0 for T <= 1.

    target_leverage T >= 1 and below the limit 1 / (1 - ltv); ltv: fraction in (0, 1).
    """
    t = _as_float("target_leverage", target_leverage)
    lv = _as_float("ltv", ltv)
    _check_fraction("ltv", lv, lo_open=True, hi_open=True)
    if np.any(t < 1):
        raise ValueError(f"target_leverage must be >= 1 (got {np.min(t)!r})")
    limit = max_leverage(lv)
    if np.any(t >= limit):
        raise ValueError(f"target_leverage must be < 1 / (1 - ltv) = {np.min(limit)!r} (got {np.max(t)!r})")
    # the 1e-12 keeps a target reached exactly (in exact arithmetic) from costing one more loop to float rounding
    n = np.ceil(np.log1p(-t * (1.0 - lv)) / np.log(lv) - 1e-12) - 1.0
    return np.maximum(n, 0.0).astype(np.int64)


def lst_exchange_rate(
    initial_rate: ArrayLike, staking_apr: ArrayLike, steps: ArrayLike, step_seconds: float
) -> FloatArray:
    """Base-asset units one liquid-staking token is worth after `steps` steps of accrual: r0 (1 + apr dt)^steps,
    dt = step_seconds / seconds_per_year (each step compounds the per-step yield, as `per_step_rate`).

    initial_rate r0: base units per token (> 0; wstETH-style, the token count stays and the rate grows);
    staking_apr: per year (fraction); steps >= 0.
    """
    r0 = _as_float("initial_rate", initial_rate)
    _check_positive(initial_rate=r0)
    n = _as_float("steps", steps, nonnegative=True)
    return r0 * np.power(1.0 + per_step_rate(staking_apr, step_seconds), n)


def looped_health_factor(price_ratio: ArrayLike, leverage: ArrayLike, liquidation_threshold: ArrayLike) -> FloatArray:
    """Health factor of a looped account (staking-token collateral, base-asset debt) when the token's price in the
    base asset is `price_ratio` times what it was when the loop was built: HF = ratio * L * LT / (L - 1).

    Collateral L E and debt (L - 1) E in base units at the start (E the equity, L = leverage > 1); the base-asset
    debt does not move with the base price, so only the ratio (the depeg) matters. Interest and staking yield
    between the start and now are left out. liquidation_threshold: fraction.
    """
    r = _as_float("price_ratio", price_ratio, nonnegative=True)
    lev = _as_float("leverage", leverage)
    if np.any(lev <= 1):
        raise ValueError(f"leverage must be > 1 (got {np.min(lev)!r})")
    lt = _as_float("liquidation_threshold", liquidation_threshold)
    _check_fraction("liquidation_threshold", lt, lo_open=True)
    return r * lev * lt / (lev - 1.0)


def looped_liquidation_ratio(leverage: ArrayLike, liquidation_threshold: ArrayLike) -> FloatArray:
    """Staking-token price ratio (now / at the loop's start) at which a looped account reaches HF = 1:
    (L - 1) / (L LT). At the loop limit L = 1 / (1 - ltv) this is ltv / LT. leverage > 1; LT: fraction."""
    lev = _as_float("leverage", leverage)
    if np.any(lev <= 1):
        raise ValueError(f"leverage must be > 1 (got {np.min(lev)!r})")
    lt = _as_float("liquidation_threshold", liquidation_threshold)
    _check_fraction("liquidation_threshold", lt, lo_open=True)
    return (lev - 1.0) / (lev * lt)


def amm_amount_in_to_price(
    reserve_in: ArrayLike, reserve_out: ArrayLike, target_price: ArrayLike, fee: float = 0.003
) -> FloatArray:
    """Tokens to sell into an x*y=k pool (Uniswap v2 semantics, fee kept in the pool) to bring its price
    reserve_out / reserve_in down to `target_price`; 0 if the price is already at or below it.

    After selling a, with g = 1 - fee, the reserves are (x + a, x y / (x + g a)) (from `amm_amount_out`), so a
    solves g a^2 + x (1 + g) a + x^2 - x y / p = 0. Reserves in tokens; target_price in out-tokens per in-token.
    """
    x, y = _as_float("reserve_in", reserve_in), _as_float("reserve_out", reserve_out)
    p = _as_float("target_price", target_price)
    _check_positive(reserve_in=x, reserve_out=y, target_price=p)
    if not 0 <= fee < 1:
        raise ValueError(f"fee must be in [0, 1) (got {fee!r})")
    g = 1.0 - fee
    c = x * x - x * y / p
    a = (-x * (1.0 + g) + np.sqrt((x * (1.0 + g)) ** 2 - 4.0 * g * c)) / (2.0 * g)
    return np.where(c < 0, a, 0.0)


# --- adversaries: liquidation hunting and oracle manipulation (docs/model.md, 3.3 Submodels: Adversaries) ------
# Costs below are for the linear log-impact path (`linear_impact_proceeds`): a sale raising S USD lowers the log
# price by S / depth, a buy spending B raises it by B / depth, and impact relaxes by the factor `decay` per step.


def asset_liquidation_price(
    weighted_other_usd: ArrayLike,
    debt_other_usd: ArrayLike,
    collateral_tokens: ArrayLike,
    liquidation_threshold: ArrayLike,
    debt_tokens: ArrayLike,
) -> FloatArray:
    """Price of one asset (USD per token) at which an account's HF reaches 1, every other price held fixed.

    HF(p) = (W + c LT p) / (D + d p) = 1 gives p* = (D - W) / (c LT - d). weighted_other_usd W: sum of the other
    collateral's USD value times its LT; debt_other_usd D: the other debt (USD); c: the asset's collateral tokens;
    d: the asset's debt tokens. Where c LT > d (net long) the account is liquidated when the price falls to p*;
    where c LT < d (net short) when it rises to p*. NaN where c LT = d (the price does not move HF) and where p*
    <= 0 (no price of the asset liquidates it).
    """
    w = _as_float("weighted_other_usd", weighted_other_usd, nonnegative=True)
    dv = _as_float("debt_other_usd", debt_other_usd, nonnegative=True)
    c = _as_float("collateral_tokens", collateral_tokens, nonnegative=True)
    lt = _as_float("liquidation_threshold", liquidation_threshold)
    _check_fraction("liquidation_threshold", lt)
    d = _as_float("debt_tokens", debt_tokens, nonnegative=True)
    slope = c * lt - d
    with np.errstate(divide="ignore", invalid="ignore"):
        p = (dv - w) / np.where(slope != 0, slope, np.nan)
    return np.where(p > 0, p, np.nan)


def linear_push_tokens(push_log: ArrayLike, price: ArrayLike, depth_usd: ArrayLike) -> FloatArray:
    """Tokens to sell to lower the log price by `push_log` (> 0) along the linear path: depth / price (e^push - 1)
    (the inverse of `linear_impact_proceeds`, whose proceeds are depth * push_log). price: USD/token; depth: USD per
    unit of log price."""
    x = _as_float("push_log", push_log, nonnegative=True)
    p, dep = _as_float("price", price), _as_float("depth_usd", depth_usd)
    _check_positive(price=p, depth_usd=dep)
    return dep / p * np.expm1(x)


def hold_cost(push_log: ArrayLike, depth_usd: ArrayLike, hold_steps: ArrayLike, decay: ArrayLike) -> FloatArray:
    """USD lost by holding a price push of `push_log` (log, > 0) for `hold_steps` steps and then buying back all
    the tokens sold, in a linear market whose impact relaxes by the factor `decay` (0 < decay <= 1) per step.

    The push itself round-trips at no cost (sold down and bought back up the same path). Each step the relaxation
    lifts the log price by push (1 - decay), so the seller sells depth push (1 - decay) more to hold it; over h steps
    that is E = depth h push (1 - decay) of proceeds, and buying everything back from the held level costs
    -depth ln(e^-push - h push (1 - decay)). The loss is -depth [ln(1 - h push (1 - decay) e^push) + h push
    (1 - decay)] ~ depth h push^2 (1 - decay) for small moves; inf once the market could not sell back that many
    tokens. USD; depth in USD per unit of log price.
    """
    x = _as_float("push_log", push_log, nonnegative=True)
    dep = _as_float("depth_usd", depth_usd)
    h = _as_float("hold_steps", hold_steps, nonnegative=True)
    dec = _as_float("decay", decay)
    _check_positive(depth_usd=dep, decay=dec)
    leak = h * x * (1.0 - dec)
    arg = leak * np.exp(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(arg < 1.0, -dep * (np.log1p(-np.minimum(arg, 1.0)) + leak), np.inf)


def hunt_gain(push_log: ArrayLike, cascade_usd: ArrayLike, depth_usd: ArrayLike) -> FloatArray:
    """USD a hunter gains from a cascade: it sold down by `push_log` (tokens x with x p / depth = e^push - 1), forced
    sales of `cascade_usd` then lowered the log price by cascade / depth more, and it buys its x tokens back from
    there. In the linear market this is depth ln(1 + (e^push - 1)(1 - e^(-cascade / depth))): 0 without a cascade,
    rising with both the push and the cascade. USD; depth in USD per unit of log price."""
    x = _as_float("push_log", push_log, nonnegative=True)
    v = _as_float("cascade_usd", cascade_usd, nonnegative=True)
    dep = _as_float("depth_usd", depth_usd)
    _check_positive(depth_usd=dep)
    return dep * np.log1p(np.expm1(x) * -np.expm1(-v / dep))


def guessed_debt_above(ratio: ArrayLike, mean_ratio: ArrayLike) -> FloatArray:
    """Share of a reserve's debt held by accounts whose loan-to-value over liquidation threshold (LTV / LT, so HF =
    1 / ratio) exceeds `ratio`, guessed from the aggregate alone (what a pool with private positions still shows).

    The guess: the collateral's ratios r are spread on [0, 1] with density alpha r^(alpha - 1), alpha = m / (1 - m),
    whose collateral-weighted mean is the aggregate m = total debt / (total collateral x LT) (`mean_ratio`, in
    (0, 1)); m = 1/2 is uniform, a larger m piles the collateral near r = 1. Debt is r x LT x collateral, so the
    share of it above `ratio` is 1 - ratio^(alpha + 1). Pushing a price down by the factor q liquidates the accounts
    with r > q, so this is the guessed share of the book a push to q sets off. Dimensionless; ratio in [0, 1].
    """
    q = _as_float("ratio", ratio)
    _check_fraction("ratio", q)
    m = _as_float("mean_ratio", mean_ratio)
    _check_fraction("mean_ratio", m, lo_open=True, hi_open=True)
    return 1.0 - q ** (m / (1.0 - m) + 1.0)


def liquidation_gain(repaid_usd: ArrayLike, bonus: ArrayLike, push_log: ArrayLike) -> FloatArray:
    """USD a liquidator gains, valued at the true (pre-attack) price, from repaying `repaid_usd` of debt when the
    oracle shows the collateral `push_log` (log) below it: the seizure is repaid (1 + bonus) at the oracle price, so
    worth repaid (1 + bonus) e^push at the true one; the gain is repaid ((1 + bonus) e^push - 1)."""
    r = _as_float("repaid_usd", repaid_usd, nonnegative=True)
    b = _as_float("bonus", bonus, nonnegative=True)
    x = _as_float("push_log", push_log, nonnegative=True)
    return r * ((1.0 + b) * np.exp(x) - 1.0)


def attack_pays(gain_usd: ArrayLike, cost_usd: ArrayLike, min_edge: ArrayLike) -> NDArray[np.bool_]:
    """Whether an attack priced at `gain_usd` against `cost_usd` (USD, both >= 0) is worth starting for an attacker
    who asks an edge of `min_edge` (fraction of the cost, >= 0): gain > cost (1 + edge). Strict, so an attack that
    gains nothing is not started even when it costs nothing."""
    g = _as_float("gain_usd", gain_usd, nonnegative=True)
    c = _as_float("cost_usd", cost_usd, nonnegative=True)
    e = _as_float("min_edge", min_edge, nonnegative=True)
    return g > c * (1.0 + e)


def oracle_attack_hold_steps(twap_window: ArrayLike, latency: ArrayLike) -> FloatArray:
    """Steps an attacker must hold the market down for an oracle to post it: the TWAP window (the arithmetic mean
    reaches the pushed level once the whole window lies after the push), plus the updater's latency, plus the step
    between a price and the updaters' next reading of it. Steps."""
    w = _as_float("twap_window", twap_window, nonnegative=True)
    lat = _as_float("latency", latency, nonnegative=True)
    return w + lat + 1.0


def oracle_attack_capital(
    push_log: ArrayLike, depth_usd: ArrayLike, hold_steps: ArrayLike, decay: ArrayLike
) -> FloatArray:
    """USD notional (at the pre-attack price) of the tokens an attacker sells to push the log price by `push_log`
    and hold it `hold_steps` steps against the relaxation `decay` per step: depth (e^push - 1 + h push (1 - decay)
    e^push). The budget below which the attack cannot be carried out (linear market, nobody else trading)."""
    x = _as_float("push_log", push_log, nonnegative=True)
    dep = _as_float("depth_usd", depth_usd)
    h = _as_float("hold_steps", hold_steps, nonnegative=True)
    dec = _as_float("decay", decay)
    _check_positive(depth_usd=dep, decay=dec)
    return dep * (np.expm1(x) + h * x * (1.0 - dec) * np.exp(x))


def venue_hold_cost(
    push_log: ArrayLike, depth_usd: ArrayLike, hold_steps: ArrayLike, arbitrage_fraction: ArrayLike
) -> FloatArray:
    """USD lost by holding a thin venue's price `push_log` (log, > 0) below the deep market's for `hold_steps`
    steps while arbitrage closes the share `arbitrage_fraction` (f) of the log gap each step, then covering: the
    linear venue (depth in USD per unit of log price) is bought back up to the market price and the rest of the
    tokens at the market price (the deep market's own impact neglected).

    The push round-trips at no cost (sold down and bought back up the same path: depth push each way). Each held
    step arbitrage lifts the log price by push f; re-selling to the push raises depth push f USD for depth e^push
    (1 - e^(-push f)) / price tokens, which cost depth e^push (1 - e^(-push f)) to buy back at the market price.
    The loss is depth h [e^push (1 - e^(-push f)) - push f] ~ depth h push^2 f (1 - f / 2) for small pushes:
    linear in the hold, so in the TWAP window the oracle averages over. USD.
    """
    x = _as_float("push_log", push_log, nonnegative=True)
    dep = _as_float("depth_usd", depth_usd)
    h = _as_float("hold_steps", hold_steps, nonnegative=True)
    f = _as_float("arbitrage_fraction", arbitrage_fraction)
    _check_fraction("arbitrage_fraction", f)
    _check_positive(depth_usd=dep)
    return dep * h * (np.exp(x) * -np.expm1(-x * f) - x * f)
