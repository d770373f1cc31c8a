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


def utilisation(cash: ArrayLike, borrows: ArrayLike) -> FloatArray:
    """Share of a reserve that is lent out: borrows / (cash + borrows), 0 when both are 0.

    cash: tokens idle in the reserve. borrows: tokens owed to it (principal plus accrued interest). Returns a
    fraction in [0, 1].
    """
    c = _as_float("cash", cash, nonnegative=True)
    b = _as_float("borrows", borrows, nonnegative=True)
    total = c + b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, b / np.where(total > 0, total, 1.0), 0.0)


def borrow_rate(
    utilisation: ArrayLike, base: ArrayLike, slope1: ArrayLike, slope2: ArrayLike, optimal: ArrayLike
) -> FloatArray:
    """Kinked ("jump rate") annual borrow rate, as Aave v3's DefaultReserveInterestRateStrategy.

    r(U) = base + slope1 * U / U*                          for U <= U*
    r(U) = base + slope1 + slope2 * (U - U*) / (1 - U*)    for U > U*
    All rates per year (0.05 = 5%/yr); utilisation and optimal (U*) are fractions, optimal in (0, 1).
    """
    u = _as_float("utilisation", utilisation)
    _check_fraction("utilisation", u)
    b = _as_float("base", base, nonnegative=True)
    s1 = _as_float("slope1", slope1, nonnegative=True)
    s2 = _as_float("slope2", slope2, nonnegative=True)
    opt = _as_float("optimal", optimal)
    _check_fraction("optimal", opt, lo_open=True, hi_open=True)
    below = b + s1 * u / opt
    above = b + s1 + s2 * (u - opt) / (1.0 - opt)
    return np.where(u <= opt, below, above)


def supply_rate(borrow_rate: ArrayLike, utilisation: ArrayLike, reserve_factor: ArrayLike) -> FloatArray:
    """Annual rate earned by suppliers: borrow_rate * U * (1 - reserve_factor).

    borrow_rate: per year. utilisation, reserve_factor: fractions in [0, 1].
    """
    r = _as_float("borrow_rate", borrow_rate, nonnegative=True)
    u = _as_float("utilisation", utilisation)
    _check_fraction("utilisation", u)
    rf = _as_float("reserve_factor", reserve_factor)
    _check_fraction("reserve_factor", rf)
    return r * u * (1.0 - rf)


def per_step_rate(annual_rate: ArrayLike, step_seconds: float) -> FloatArray:
    """Simple-interest rate for one step: annual_rate * step_seconds / seconds_per_year (Aave's linear accrual)."""
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
    hf = health_factor
    return np.where(np.greater_equal(hf, 1.0), 0.0, np.where(np.less(hf, full_below), 1.0, default))


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
    return repaid * debt_price / collateral_price * (1.0 + bonus)  # type: ignore[operator]


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
    return seized * collateral_price / (debt_price * (1.0 + bonus))  # type: ignore[operator]


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
