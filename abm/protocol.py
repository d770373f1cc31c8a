"""Protocol formulas: small pure functions, the arithmetic of Aave/Compound-style lending and Uniswap-v2 AMMs.

Everything stateful in the package (the pool, the margin engine, the market, the liquidators) calls these; nothing
here keeps state. Every function broadcasts over numpy arrays and also accepts plain floats (returning numpy
scalars). Units are given per argument. Invalid arguments raise `ValueError` naming the argument.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

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


# --- interest rates (SPEC 3.3) ------------------------------------------------------------------------------


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


# --- health and liquidation (SPEC 3.5, 3.6) ------------------------------------------------------------------


def health_factor(collateral_usd: ArrayLike, liquidation_threshold: ArrayLike, debt_usd: ArrayLike) -> FloatArray:
    """Health factor HF = sum_i collateral_usd_i * LT_i / debt_usd; inf where debt is 0.

    collateral_usd: USD value of each collateral asset, assets on the last axis (shape (..., A)).
    liquidation_threshold: fractions, broadcast against collateral_usd (shape (A,) usually).
    debt_usd: total debt in USD, shape (...) (sum over debt assets already taken), or (..., A) which is summed.
    An account is liquidatable when HF < 1.
    """
    c = _as_float("collateral_usd", collateral_usd, nonnegative=True)
    lt = _as_float("liquidation_threshold", liquidation_threshold)
    _check_fraction("liquidation_threshold", lt)
    d = _as_float("debt_usd", debt_usd, nonnegative=True)
    return _health_factor(c, lt, d)


# Unchecked cores of the checked public functions, for the model's hot paths (arguments already float64 and
# valid). They are the same formulas with the same floating-point operations, so results are bit-identical.


def _health_factor(c: FloatArray, lt: FloatArray, d: FloatArray) -> FloatArray:
    """`health_factor` without argument checks: c and d float64 arrays, lt broadcastable to c."""
    weighted = _row_sums(_scale_columns(c, lt))
    if d.ndim == c.ndim and d.ndim > 0 and d.shape[-1] == c.shape[-1] and d.shape == c.shape:
        d = _row_sums(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        hf = np.where(d > 0, weighted / np.where(d > 0, d, 1.0), np.inf)
    return hf


_ROW_SUMS_EXACT: list[bool] = []  # filled on first use: does `_row_sums` reproduce np.sum(x, axis=-1) bit for bit?


def _row_sums(x: FloatArray) -> FloatArray:
    """`np.sum(x, axis=-1)`, bit for bit, but much faster for a tall 2-d array with few columns (one row per
    account, one column per asset), where numpy's reduction loops over rows one tiny row at a time.

    numpy adds fewer than 8 numbers left to right from 0.0, and 8 to 15 numbers as
    ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)), then the rest in order, added to 0.0 (pairwise summation):
    here the same additions run as whole-column vector operations. A self-check against np.sum on first use
    falls back to np.sum for good if this numpy sums otherwise.
    """
    if x.ndim != 2 or not 0 < x.shape[1] < 16 or x.dtype != np.float64:
        return np.sum(x, axis=-1)
    if not _ROW_SUMS_EXACT:
        _ROW_SUMS_EXACT.append(_row_sums_self_check())
    if not _ROW_SUMS_EXACT[0]:
        return np.sum(x, axis=-1)
    return _column_adds(x)


def _scale_columns(x: FloatArray, v: FloatArray) -> FloatArray:
    """`x * v` for a tall 2-d x (rows x k) and v of shape (k,), bit for bit (the same multiplications), column by
    column: numpy broadcasting v runs its inner loop over just k numbers per row, several times slower."""
    if not isinstance(v, np.ndarray) or x.ndim != 2 or v.shape != x.shape[1:]:
        return x * v
    if x.dtype != np.float64 or v.dtype != np.float64:
        return x * v
    out = np.empty(x.shape)
    for j in range(x.shape[1]):
        np.multiply(x[:, j], v[j], out=out[:, j])
    return out


def _column_adds(x: FloatArray) -> FloatArray:
    c = [x[:, j] for j in range(x.shape[1])]
    if len(c) < 8:
        out = c[0] + 0.0
        for col in c[1:]:
            out += col
        return out
    out = ((c[0] + c[1]) + (c[2] + c[3])) + ((c[4] + c[5]) + (c[6] + c[7]))
    for col in c[8:]:
        out += col
    out += 0.0
    return out


def _row_sums_self_check() -> bool:
    rng = np.random.default_rng(12345)
    for width in range(1, 16):
        x = rng.standard_normal((257, width)) * 10.0 ** rng.integers(-12, 12, size=(257, width))
        x[rng.random(x.shape) < 0.3] = 0.0
        x[rng.random(x.shape) < 0.05] = -0.0
        x[-1] = -0.0
        want, got = np.sum(x, axis=-1), _column_adds(x)
        if want.shape != got.shape or not np.array_equal(want.view(np.int64), got.view(np.int64)):
            return False
    return True


def _health_factor_one(collateral_usd: FloatArray, liquidation_threshold: FloatArray, debt_usd: float) -> float:
    """`health_factor` of one account, unchecked: collateral_usd (A,) float64, debt_usd the total (USD)."""
    weighted = np.sum(collateral_usd * liquidation_threshold, axis=-1)
    return float(weighted / debt_usd) if debt_usd > 0 else float("inf")


def _close_factor(hf: float, default: float, full_below: float) -> float:
    """`close_factor` of one health factor, unchecked."""
    return 0.0 if hf >= 1.0 else (1.0 if hf < full_below else float(default))


def _collateral_seized(repaid: Any, debt_price: Any, collateral_price: Any, bonus: Any) -> Any:
    """`collateral_seized`, unchecked (floats or float64 arrays)."""
    return repaid * debt_price / collateral_price * (1.0 + bonus)


def _repay_for_seizure(seized: Any, debt_price: Any, collateral_price: Any, bonus: Any) -> Any:
    """`repay_for_seizure`, unchecked (floats or float64 arrays)."""
    return seized * collateral_price / (debt_price * (1.0 + bonus))


def borrow_power_usd(collateral_usd: ArrayLike, ltv: ArrayLike) -> FloatArray:
    """Maximum debt in USD the collateral supports when borrowing: sum_i collateral_usd_i * ltv_i (last axis)."""
    c = _as_float("collateral_usd", collateral_usd, nonnegative=True)
    lv = _as_float("ltv", ltv)
    _check_fraction("ltv", lv)
    return np.sum(c * lv, axis=-1)


def close_factor(health_factor: ArrayLike, default: float = 0.5, full_below: float = 0.95) -> FloatArray:
    """Fraction of an account's debt one liquidation may repay.

    `default` (0.5 in Aave v2/v3) while HF >= full_below (0.95, Aave v3's CLOSE_FACTOR_HF_THRESHOLD); 1.0 below.
    Accounts with HF >= 1 are not liquidatable: 0. health_factor is dimensionless.
    """
    hf = _as_float("health_factor", health_factor)
    if not 0 < default <= 1:
        raise ValueError(f"default must be in (0, 1] (got {default!r})")
    if not 0 < full_below <= 1:
        raise ValueError(f"full_below must be in (0, 1] (got {full_below!r})")
    return np.where(hf >= 1.0, 0.0, np.where(hf < full_below, 1.0, default))  # as _close_factor


def collateral_seized(
    repaid: ArrayLike, debt_price: ArrayLike, collateral_price: ArrayLike, bonus: ArrayLike
) -> FloatArray:
    """Collateral tokens a liquidator receives for repaying `repaid` debt tokens.

    seized = repaid * debt_price / collateral_price * (1 + bonus). Prices in USD per token (oracle prices);
    bonus is a fraction (0.05 = 5%). The caller caps the result by the collateral the account holds.
    """
    r = _as_float("repaid", repaid, nonnegative=True)
    pd_ = _as_float("debt_price", debt_price)
    pc = _as_float("collateral_price", collateral_price)
    b = _as_float("bonus", bonus, nonnegative=True)
    if np.any(pd_ <= 0):
        raise ValueError("debt_price must be > 0")
    if np.any(pc <= 0):
        raise ValueError("collateral_price must be > 0")
    return _collateral_seized(r, pd_, pc, b)


def repay_for_seizure(
    seized: ArrayLike, debt_price: ArrayLike, collateral_price: ArrayLike, bonus: ArrayLike
) -> FloatArray:
    """Inverse of `collateral_seized`: debt tokens that buy `seized` collateral tokens at the bonus.

    Used when the collateral held caps the seizure (Aave then reduces the repaid amount to match).
    """
    s = _as_float("seized", seized, nonnegative=True)
    pd_ = _as_float("debt_price", debt_price)
    pc = _as_float("collateral_price", collateral_price)
    b = _as_float("bonus", bonus, nonnegative=True)
    if np.any(pd_ <= 0) or np.any(pc <= 0):
        raise ValueError("debt_price and collateral_price must be > 0")
    return _repay_for_seizure(s, pd_, pc, b)


def liquidation_price(
    collateral_tokens: ArrayLike, debt_usd: ArrayLike, liquidation_threshold: ArrayLike
) -> FloatArray:
    """Collateral price (USD per token) at which a single-collateral account's HF equals 1.

    price = debt_usd / (collateral_tokens * LT); inf-free: 0 where there is no debt, inf with no collateral.
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


def _check_amm(amount_name: str, amount: ArrayLike, reserve_in: ArrayLike, reserve_out: ArrayLike, fee: float):
    a = _as_float(amount_name, amount, nonnegative=True)
    rin = _as_float("reserve_in", reserve_in)
    rout = _as_float("reserve_out", reserve_out)
    if np.any(rin <= 0):
        raise ValueError(f"reserve_in must be > 0 (got {np.min(rin)!r})")
    if np.any(rout <= 0):
        raise ValueError(f"reserve_out must be > 0 (got {np.min(rout)!r})")
    if not 0 <= fee < 1:
        raise ValueError(f"fee must be in [0, 1) (got {fee!r})")
    return a, rin, rout


def amm_amount_out(
    amount_in: ArrayLike, reserve_in: ArrayLike, reserve_out: ArrayLike, fee: float = 0.003
) -> FloatArray:
    """Tokens out of an x*y=k pool for `amount_in` tokens in, the fee taken from the input (Uniswap v2 getAmountOut).

    out = a (1 - fee) R_out / (R_in + a (1 - fee)). Amounts and reserves in tokens; fee a fraction in [0, 1).
    """
    a, rin, rout = _check_amm("amount_in", amount_in, reserve_in, reserve_out, fee)
    return _amm_amount_out(a, rin, rout, fee)


def _amm_amount_out(a: Any, rin: Any, rout: Any, fee: Any) -> Any:
    """`amm_amount_out`, unchecked (floats or float64 arrays)."""
    a_net = a * (1.0 - fee)
    return a_net * rout / (rin + a_net)


def amm_amount_in(
    amount_out: ArrayLike, reserve_in: ArrayLike, reserve_out: ArrayLike, fee: float = 0.003
) -> FloatArray:
    """Tokens that must go into an x*y=k pool to take `amount_out` out (Uniswap v2 getAmountIn, without rounding).

    in = R_in * out / ((R_out - out) (1 - fee)). Requires amount_out < reserve_out.
    """
    o, rin, rout = _check_amm("amount_out", amount_out, reserve_in, reserve_out, fee)
    if np.any(o >= rout):
        raise ValueError("amount_out must be < reserve_out")
    return rin * o / ((rout - o) * (1.0 - fee))


# --- price impact fills (SPEC 3.2) ---------------------------------------------------------------------------
# The impact models move the log market price by m(x) after x USD of signed notional. An order fills along that
# path, so its average price is its notional over the tokens it gets, not the pre-trade price.


def linear_impact_tokens_bought(notional_usd: ArrayLike, price: ArrayLike, depth_usd: ArrayLike) -> FloatArray:
    """Tokens a buy of `notional_usd` gets when log price rises by x / depth_usd along the way (Kyle, linear).

    tokens = depth / price * (1 - exp(-Q / depth)). price in USD/token at the start; depth in USD per unit log-price.
    """
    q = _as_float("notional_usd", notional_usd, nonnegative=True)
    p = _as_float("price", price)
    d = _as_float("depth_usd", depth_usd)
    if np.any(p <= 0) or np.any(d <= 0):
        raise ValueError("price and depth_usd must be > 0")
    return _linear_impact_tokens_bought(q, p, d)


def _linear_impact_tokens_bought(q: Any, p: Any, d: Any) -> Any:
    """`linear_impact_tokens_bought`, unchecked (floats or float64 arrays)."""
    return d / p * -np.expm1(-q / d)


def linear_impact_proceeds(tokens: ArrayLike, price: ArrayLike, depth_usd: ArrayLike) -> FloatArray:
    """USD a sale of `tokens` raises when log price falls by x / depth_usd per USD x sold (Kyle, linear).

    proceeds = depth * ln(1 + tokens * price / depth). Inverse of the buy formula with the sign flipped.
    """
    t = _as_float("tokens", tokens, nonnegative=True)
    p = _as_float("price", price)
    d = _as_float("depth_usd", depth_usd)
    if np.any(p <= 0) or np.any(d <= 0):
        raise ValueError("price and depth_usd must be > 0")
    return _linear_impact_proceeds(t, p, d)


def _linear_impact_proceeds(t: Any, p: Any, d: Any) -> Any:
    """`linear_impact_proceeds`, unchecked (floats or float64 arrays)."""
    return d * np.log1p(t * p / d)


def sqrt_impact(notional_usd: ArrayLike, y: float, sigma_daily: ArrayLike, daily_volume_usd: ArrayLike) -> FloatArray:
    """Log-price impact of the square-root law: Y * sigma_daily * sign(Q) * sqrt(|Q| / daily_volume_usd).

    notional_usd: signed USD (buys > 0). sigma_daily: daily volatility (fraction). daily_volume_usd: USD/day.
    """
    q = _as_float("notional_usd", notional_usd)
    s = _as_float("sigma_daily", sigma_daily, nonnegative=True)
    v = _as_float("daily_volume_usd", daily_volume_usd)
    if np.any(v <= 0):
        raise ValueError("daily_volume_usd must be > 0")
    return y * s * np.sign(q) * np.sqrt(np.abs(q) / v)


def sqrt_impact_tokens_bought(notional_usd: ArrayLike, price: ArrayLike, a: ArrayLike) -> FloatArray:
    """Tokens a buy of Q USD gets along the square-root path m(x) = a sqrt(x), a = Y sigma_daily / sqrt(V).

    tokens = (1/price) * integral_0^Q exp(-a sqrt(x)) dx = (2 / (price a^2)) (1 - exp(-a sqrt Q)(1 + a sqrt Q)).
    """
    q = _as_float("notional_usd", notional_usd, nonnegative=True)
    p = _as_float("price", price)
    aa = _as_float("a", a, nonnegative=True)
    if np.any(p <= 0):
        raise ValueError("price must be > 0")
    z = aa * np.sqrt(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        exact = 2.0 / (p * aa**2) * (-np.expm1(-z) - z * np.exp(-z))
    return np.where(z > 1e-6, exact, q / p * (1.0 - 2.0 * z / 3.0))


def sqrt_impact_proceeds(tokens: ArrayLike, price: ArrayLike, a: ArrayLike) -> FloatArray:
    """USD a sale of `tokens` raises along the square-root path m(x) = -a sqrt(x) (x = USD sold so far).

    Solves tokens = (1/price) * integral_0^Q exp(a sqrt(x)) dx for Q by Newton's method (monotone, convex).
    """
    t = _as_float("tokens", tokens, nonnegative=True)
    p = _as_float("price", price)
    aa = np.broadcast_to(_as_float("a", a, nonnegative=True), np.broadcast(t, p).shape)
    if np.any(p <= 0):
        raise ValueError("price must be > 0")
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
