"""Compiled passes over the account book (numba): each reads every account's row once.

The margin engine's state is tall and narrow (one row per account, a few assets per row), where numpy spends its
time in per-call overhead and short inner loops; these loops do the same arithmetic in one pass. Float operations
follow numpy's order for the same formulas (products element by element, sums over an account's assets left to
right, as numpy adds fewer than 8 numbers and as `abm.numerics.row_sums` adds its columns), so a result does not
depend on which of the two computed it; no fast-math, so every operation rounds as IEEE 754 prescribes and results
are the same in every process.

Compiled once per machine and cached on disk (`cache=True`). Each kernel is called with one signature (float64 and
int64 arrays in C order): numba's on-disk index numbers a function's specialisations as processes add them, and
two processes adding different ones at the same moment can cross them, so nothing here is specialised per call
(on the number of assets, say).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from abm.protocol import compiled_close_factor, compiled_repaid_for_seized, compiled_seized_for_repaid

ACCOUNT_BLOCK = 256
"""Accounts per block of a pass that works on a block's columns (`_block_columns`): 256 accounts' few assets fit in
the L1 cache with room to spare."""


@njit(inline="always")
def _block_columns(rows: np.ndarray, start: int, count: int, out: np.ndarray) -> np.ndarray:
    """Rows start .. start + count - 1 of an (accounts, assets) array copied into the first `count` columns of `out`
    ((assets, ACCOUNT_BLOCK)); returns `out.T`, indexed [account in the block, asset] as the book is. In the copy
    consecutive accounts sit next to each other, so a loop over a block's accounts doing the per-account arithmetic
    of a loop over the book's rows is one the compiler vectorises (the same operations, so the same results)."""
    for i in range(count):
        for j in range(rows.shape[1]):
            out[j, i] = rows[start + i, j]
    return out.T


@njit(cache=True, nogil=True)
def health_factors(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    collateral_prices: np.ndarray,
    debt_prices: np.ndarray,
) -> np.ndarray:
    """Health factor of every account (rows of `collateral`, `scaled_debt`) along several price vectors at once.

    collateral, scaled_debt: (accounts, assets), tokens and debt tokens over the borrow index.
    liquidation_threshold: (assets,) fractions (0 where an asset is not collateral).
    collateral_prices: (paths, assets) USD/token; debt_prices: (paths, assets) USD per scaled debt token (the
    borrow index times the price). Returns (paths, accounts): HF = sum_i (c_i p_i) LT_i / sum_j d_j q_j, inf
    without debt (`protocol.health_factor`, cross and isolated margin).
    """
    n, n_assets = collateral.shape
    n_paths = collateral_prices.shape[0]
    out = np.empty((n_paths, n))
    coll_block, debt_block = np.empty((n_assets, ACCOUNT_BLOCK)), np.empty((n_assets, ACCOUNT_BLOCK))
    # a block of accounts at a time, read from the book once; paths outside, the block's accounts inside (the
    # division per account and path is most of the work: vectorised, 1.8 times faster at 10,000 accounts)
    for start in range(0, n, ACCOUNT_BLOCK):
        count = min(ACCOUNT_BLOCK, n - start)
        coll = _block_columns(collateral, start, count, coll_block)
        debt = _block_columns(scaled_debt, start, count, debt_block)
        for k in range(n_paths):
            row, prices, owed_prices = out[k, start : start + count], collateral_prices[k], debt_prices[k]
            if n_assets == 3:  # the usual book (USD, ETH, BTC): with the count a constant the compiler unrolls the sums
                for i in range(count):
                    row[i] = _account_health(coll, debt, liquidation_threshold, prices, owed_prices, i, 3)
            else:
                for i in range(count):
                    row[i] = _account_health(coll, debt, liquidation_threshold, prices, owed_prices, i, n_assets)
    return out


@njit(inline="always")
def _account_health(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    liquidation_threshold: np.ndarray,
    prices: np.ndarray,
    debt_prices: np.ndarray,
    i: int,
    n_assets: int,
) -> float:
    """Health factor of account `i` at one price vector (`health_factors`), over its first `n_assets` assets."""
    weighted = (collateral[i, 0] * prices[0]) * liquidation_threshold[0]
    owed = scaled_debt[i, 0] * debt_prices[0]
    for j in range(1, n_assets):
        weighted += (collateral[i, j] * prices[j]) * liquidation_threshold[j]
        owed += scaled_debt[i, j] * debt_prices[j]
    return weighted / owed if owed > 0 else np.inf


@njit(cache=True, nogil=True)
def mark_positions(
    health: np.ndarray,
    step: int,
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    pass_collateral: np.ndarray,
    pass_scaled_debt: np.ndarray,
    last_healthy_step: np.ndarray,
    position_step: np.ndarray,
) -> np.ndarray:
    """One health pass's bookkeeping, in place, from every account's `health` factor: `last_healthy_step` = step
    where healthy (HF >= 1); for the rows of the pass copies (`pass_collateral`, `pass_scaled_debt`: the positions
    the last pass saw), the rows whose collateral or scaled debt differ from the copy in any column (exact
    comparison: a NaN always differs) get position_step = step and are copied. Returns the accounts not healthy
    (a NaN health among them), ascending."""
    unhealthy = np.empty(len(health), dtype=np.int64)
    count = 0
    for i in range(len(health)):
        if health[i] >= 1.0:
            last_healthy_step[i] = step
        else:
            unhealthy[count] = i
            count += 1
    n_assets = pass_collateral.shape[1]
    for i in range(pass_collateral.shape[0]):
        changed = False
        for j in range(n_assets):
            if collateral[i, j] != pass_collateral[i, j] or scaled_debt[i, j] != pass_scaled_debt[i, j]:
                changed = True
                break
        if changed:
            position_step[i] = step
            for j in range(n_assets):
                pass_collateral[i, j] = collateral[i, j]
                pass_scaled_debt[i, j] = scaled_debt[i, j]
    return unhealthy[:count].copy()  # not a view: the candidates are kept for the liquidators' scan latency


@njit(cache=True, nogil=True)
def account_values(
    collateral: np.ndarray, scaled_debt: np.ndarray, prices: np.ndarray, debt_prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Every account's collateral and debt in USD (two arrays, one number per account): sum_i c_i p_i and
    sum_j d_j q_j (q: the borrow index times the price, USD per scaled debt token)."""
    n = collateral.shape[0]
    coll = np.empty(n)
    debt = np.empty(n)
    for i in range(n):
        coll[i], debt[i] = _account_values(collateral, scaled_debt, prices, debt_prices, i, collateral.shape[1])
    return coll, debt


@njit(inline="always")
def _account_values(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    prices: np.ndarray,
    debt_prices: np.ndarray,
    i: int,
    n_assets: int,
) -> tuple[float, float]:
    """Account `i`'s collateral and debt in USD (`account_values`), over its first `n_assets` assets."""
    c = collateral[i, 0] * prices[0]
    d = scaled_debt[i, 0] * debt_prices[0]
    for j in range(1, n_assets):
        c += collateral[i, j] * prices[j]
        d += scaled_debt[i, j] * debt_prices[j]
    return c, d


@njit(cache=True, nogil=True)
def insolvent_rows(
    collateral: np.ndarray, scaled_debt: np.ndarray, prices: np.ndarray, debt_prices: np.ndarray, dust_usd: float
) -> np.ndarray:
    """Accounts (ids, ascending) with debt but collateral worth less than `dust_usd` (USD), values as
    `account_values` computes them."""
    found = np.empty(collateral.shape[0], dtype=np.int64)
    count = 0
    if collateral.shape[1] == 3:  # the usual book: `_account_values`' sums over a constant count of assets, unrolled
        for i in range(collateral.shape[0]):
            c, d = _account_values(collateral, scaled_debt, prices, debt_prices, i, 3)
            if d > 0 and c < dust_usd:
                found[count] = i
                count += 1
    else:
        for i in range(collateral.shape[0]):
            c, d = _account_values(collateral, scaled_debt, prices, debt_prices, i, collateral.shape[1])
            if d > 0 and c < dust_usd:
                found[count] = i
                count += 1
    return found[:count].copy()


# numpy's pairwise summation (`pairwise_sum` in its loops_utils.h.src): fewer than 8 numbers left to right; up to
# PAIRWISE_BLOCK numbers in 8 interleaved partial sums; more: the two halves (split at a multiple of 8) summed apart
PAIRWISE_BLOCK = 128


@njit(cache=True, nogil=True)
def book_totals(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    prices: np.ndarray,
    debt_prices: np.ndarray,
    owners: np.ndarray,
    n_owners: int,
) -> tuple[float, float, np.ndarray]:
    """The book's total collateral and debt in USD, and which owners 0..n_owners-1 have an account in use (the
    recorder's book-wide columns, in one call).

    The totals are `(collateral * prices).sum()` and `(scaled_debt * debt_prices).sum()` bit for bit (q as in
    `account_values`), without the two (accounts, assets) products: each product is made as numpy makes it and
    added in numpy's pairwise order over the flattened array (one pairwise sum over all of it, added to 0.0,
    numpy's starting value). An account is in use when it holds any collateral or owes any debt (NaN counts as
    held; bool per owner); accounts of owners at or beyond n_owners are left out."""
    size = collateral.size
    coll = _pairwise_scaled_sum(collateral.reshape(size), _tiled(prices))
    debt = _pairwise_scaled_sum(scaled_debt.reshape(size), _tiled(debt_prices))
    in_use = np.zeros(n_owners, dtype=np.bool_)
    for i in range(collateral.shape[0]):  # the rows the sums just read (in cache still): one call, no second dispatch
        o = owners[i]
        if o < n_owners and not in_use[o]:
            for j in range(collateral.shape[1]):
                if collateral[i, j] != 0.0 or scaled_debt[i, j] != 0.0:
                    in_use[o] = True
                    break
    return 0.0 + coll, 0.0 + debt, in_use


@njit(inline="always")
def _tiled(v: np.ndarray) -> np.ndarray:
    """v repeated to PAIRWISE_BLOCK + len(v) numbers: the factors of a block of products from any column on."""
    out = np.empty(PAIRWISE_BLOCK + len(v))
    for k in range(len(out)):
        out[k] = v[k % len(v)]
    return out


@njit(inline="always")
def _pairwise_scaled_sum(x: np.ndarray, tiled: np.ndarray) -> float:
    """numpy's `pairwise_sum` of the products x[k] * v[k % len(v)] (x: a C-ordered (rows, len(v)) array flattened;
    `tiled`: v repeated, `_tiled`). The recursion over halves runs on an explicit stack of (start, size, left
    half's sum) (numba's on-disk cache does not keep recursive functions safely)."""
    starts = np.empty(64, dtype=np.int64)  # a node's halves are at most half its size: 64 levels cover any array
    sizes = np.empty(64, dtype=np.int64)
    left_done = np.zeros(64, dtype=np.bool_)
    left_sums = np.empty(64)
    top = 0
    starts[0], sizes[0] = 0, len(x)
    while True:
        start, n = starts[top], sizes[top]
        if n > PAIRWISE_BLOCK:  # descend into the left half
            top += 1
            starts[top], sizes[top], left_done[top] = start, _left_half(n), False
            continue
        total = _block_sum(x, tiled, start, n)
        while True:  # climb: a finished node is its parent's left half (the right one is next) or its right half
            if top == 0:
                return total
            top -= 1
            if not left_done[top]:
                left_done[top], left_sums[top] = True, total
                half = _left_half(sizes[top])
                starts[top + 1], sizes[top + 1], left_done[top + 1] = starts[top] + half, sizes[top] - half, False
                top += 1
                break
            total = left_sums[top] + total


@njit(inline="always")
def _left_half(n: int) -> int:
    """Where numpy's pairwise sum splits n numbers: at n / 2 rounded down to a multiple of 8."""
    half = n // 2
    return half - half % 8


@njit(inline="always")
def _block_sum(x: np.ndarray, tiled: np.ndarray, start: int, n: int) -> float:
    """numpy's pairwise sum of at most PAIRWISE_BLOCK products x[k] * tiled[k % len(v)], k = start .. start + n - 1:
    fewer than 8 left to right, more in 8 interleaved partial sums, then the rest one by one."""
    a = x[start : start + n]
    f = tiled[start % (len(tiled) - PAIRWISE_BLOCK) :]
    if n < 8:
        total = 0.0
        for k in range(n):
            total += a[k] * f[k]
        return total
    r0, r1, r2, r3 = a[0] * f[0], a[1] * f[1], a[2] * f[2], a[3] * f[3]
    r4, r5, r6, r7 = a[4] * f[4], a[5] * f[5], a[6] * f[6], a[7] * f[7]
    blocks = n - n % 8
    for k in range(8, blocks, 8):
        r0 += a[k] * f[k]
        r1 += a[k + 1] * f[k + 1]
        r2 += a[k + 2] * f[k + 2]
        r3 += a[k + 3] * f[k + 3]
        r4 += a[k + 4] * f[k + 4]
        r5 += a[k + 5] * f[k + 5]
        r6 += a[k + 6] * f[k + 6]
        r7 += a[k + 7] * f[k + 7]
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for k in range(blocks, n):
        total += a[k] * f[k]
    return total


@njit(cache=True, nogil=True)
def account_equities(
    collateral: np.ndarray, scaled_debt: np.ndarray, prices: np.ndarray, debt_prices: np.ndarray
) -> np.ndarray:
    """Every account's collateral minus debt in USD: sum_i (c_i p_i - d_i q_i), asset by asset (q as in
    `account_values`)."""
    n, n_assets = collateral.shape
    out = np.empty(n)
    for i in range(n):
        e = collateral[i, 0] * prices[0] - scaled_debt[i, 0] * debt_prices[0]
        for j in range(1, n_assets):
            e += collateral[i, j] * prices[j] - scaled_debt[i, j] * debt_prices[j]
        out[i] = e
    return out


@njit(cache=True, nogil=True)
def owner_minimum(values: np.ndarray, owners: np.ndarray, n_owners: int) -> np.ndarray:
    """The smallest of `values` per owner 0..n_owners-1 (inf for an owner without any); values of owners at or
    beyond n_owners are left out."""
    out = np.full(n_owners, np.inf)
    for i in range(len(values)):
        o, v = owners[i], values[i]
        if o < n_owners and (v < out[o] or v != v):  # NaN wins and stays, as in np.minimum
            out[o] = v
    return out


@njit(cache=True, nogil=True)
def loans_in_turn(cash: np.ndarray, assets: np.ndarray, amounts: np.ndarray) -> np.ndarray:
    """Which loans the pool makes when they come one at a time in order (`amounts[i]` >= 0 tokens of reserve
    `assets[i]`): a loan is made if it is at most the reserve's cash left (`cash`, tokens per reserve, as it was
    before the first loan), which it then lowers (clamped at 0, as `LendingPool.lend_out`); one that does not fit is
    skipped and a later, smaller one may fit."""
    left = cash.copy()
    made = np.empty(len(amounts), dtype=np.bool_)
    for i in range(len(amounts)):
        a = assets[i]
        made[i] = amounts[i] <= left[a]
        if made[i]:
            left[a] = max(left[a] - amounts[i], 0.0)
    return made


@njit(cache=True, nogil=True)
def owner_equities(
    owners: np.ndarray,
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    prices: np.ndarray,
    debt_prices: np.ndarray,
    n_owners: int,
) -> np.ndarray:
    """Each owner's lending equity (USD): the sum of its accounts' `account_equities`, accounts added in order from
    0 (as `np.bincount` with weights adds them), for owners 0..n_owners-1; accounts of later owners are left out."""
    n, n_assets = collateral.shape
    out = np.zeros(n_owners)
    if n_assets == 3:  # the usual book: with the count a constant the compiler unrolls the sums (every step)
        for i in range(n):
            if owners[i] < n_owners:
                out[owners[i]] += _account_equity(collateral, scaled_debt, prices, debt_prices, i, 3)
    else:
        for i in range(n):
            if owners[i] < n_owners:
                out[owners[i]] += _account_equity(collateral, scaled_debt, prices, debt_prices, i, n_assets)
    return out


@njit(inline="always")
def _account_equity(
    collateral: np.ndarray, scaled_debt: np.ndarray, prices: np.ndarray, debt_prices: np.ndarray, i: int, n_assets: int
) -> float:
    """Account `i`'s collateral minus debt (USD) over its first `n_assets` assets (`owner_equities`)."""
    e = collateral[i, 0] * prices[0] - scaled_debt[i, 0] * debt_prices[0]
    for j in range(1, n_assets):
        e += collateral[i, j] * prices[j] - scaled_debt[i, j] * debt_prices[j]
    return e


@njit(cache=True, nogil=True)
def finite_percentiles_histogram(values: np.ndarray, q: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Of the finite `values` (health factors, say): the percentiles `q` (in %) as `np.percentile` ("linear") gives
    them, bit for bit (NaN without finite values), and the counts `np.histogram` gives over the ascending edges
    `bins` (each bin [lo, hi) but the last, which is closed; values outside left out), without sorting the values.

    Both are order statistics: a percentile interpolates between the two values around its virtual index
    (n - 1) q / 100 (as numpy's `_lerp`: from the upper one when the weight is at least 0.5), and a bin's count is
    the number of values below its upper edge minus the number below its lower one. Counting the values in buckets
    of their bit patterns (ordered as the numbers are) places each of those in one bucket, and only those few
    buckets' values are gathered, each order statistic selected in its bucket.
    """
    n_edges = len(bins)
    n, smallest, largest = 0, np.inf, -np.inf
    for i in range(len(values)):
        v = values[i]
        if v - v == 0.0:  # finite
            smallest, largest = min(smallest, v), max(largest, v)
            n += 1
    # buckets: consecutive ranges of order keys, as many as a few values per bucket need (a power of two, up to
    # 2^15: bucket + 1 fits in 16 bits, 0 marking a value left out)
    n_buckets = 16
    while n_buckets < 32768 and 8 * n_buckets < n:
        n_buckets *= 2
    key_min, key_max = _order_keys(np.array([smallest, largest]))
    span, shift = np.uint64(key_max) - np.uint64(key_min), np.uint64(0)
    while (span >> shift) >= np.uint64(n_buckets):
        shift += np.uint64(1)
    counts = np.zeros(n_buckets + 1, dtype=np.int64)
    in_bucket = np.empty(len(values), dtype=np.uint16)  # bucket + 1 of each finite value, 0 for the others
    bits = values.view(np.int64)
    for i in range(len(values)):
        v = values[i]
        if v - v == 0.0:
            b = _bucket(_order_key(v, bits[i]), key_min, shift) + 1
            in_bucket[i] = b
            counts[b] += 1
        else:
            in_bucket[i] = 0
    first_rank = counts.copy()  # first_rank[b]: the rank (in sorted order) of bucket b's first value
    for b in range(1, n_buckets + 1):
        first_rank[b] += first_rank[b - 1]
    # the buckets holding an order statistic (selected) or a bin edge (counted)
    needed = np.zeros(n_buckets + 1, dtype=np.bool_)  # by bucket + 1, as `in_bucket`: 0 is never needed
    ranks = np.empty(2 * len(q), dtype=np.int64)
    if n > 0:
        for p in range(len(q)):
            below = min(int(np.floor((n - 1) * (q[p] / 100.0))), n - 1)
            ranks[2 * p], ranks[2 * p + 1] = below, min(below + 1, n - 1)
        for r in ranks:
            needed[_bucket_of_rank(first_rank, r) + 1] = True
    edge_bucket = np.full(n_edges, -1, dtype=np.int64)  # -1: every value above the edge, n_buckets: every one below
    edge_keys = _order_keys(bins)
    for e in range(n_edges):
        if n == 0 or not bins[e] == bins[e]:
            continue
        key = edge_keys[e]
        if key > key_max:
            edge_bucket[e] = n_buckets
        elif key >= key_min:
            edge_bucket[e] = _bucket(key, key_min, shift)
            needed[edge_bucket[e] + 1] = True
    # the needed buckets' values, gathered bucket by bucket (start[b]: bucket b's first place)
    start = np.zeros(n_buckets + 1, dtype=np.int64)
    for b in range(n_buckets):
        start[b + 1] = start[b] + (counts[b + 1] if needed[b + 1] else 0)
    spare = start[n_buckets]
    gathered = np.empty(spare + 1)
    filled = np.empty(n_buckets + 1, dtype=np.int64)  # by bucket + 1: where its next value goes
    filled[0] = spare
    for b in range(n_buckets):
        filled[b + 1] = start[b] if needed[b + 1] else spare
    if 16 * spare < n:  # few gathered (a large book's): the branch goes the same way nearly every time
        for i in range(len(values)):
            b = in_bucket[i]
            if needed[b]:
                gathered[filled[b]] = values[i]
                filled[b] += 1
    else:  # many (the edges sit among most health factors): no branch, every other value goes to one spare place
        for i in range(len(values)):
            b = in_bucket[i]
            gathered[filled[b]] = values[i]
            filled[b] += needed[b]  # the spare place stays where it is
    # each order statistic to its place in its bucket (the smaller values before it, the larger after), in
    # ascending rank, so that a bucket's next selection runs on the values after the last one and keeps it in place
    placed = -1  # the last rank placed
    for r in _ascending(ranks if n > 0 else ranks[:0]):
        if r == placed:
            continue
        b = _bucket_of_rank(first_rank, r)
        lo = start[b] + (placed + 1 - first_rank[b] if placed >= first_rank[b] else 0)
        _select(gathered, lo, start[b + 1], start[b] + r - first_rank[b])
        placed = r
    # the histogram: values below each edge (at most the last edge, which closes the last bin)
    below_edge = np.zeros(n_edges, dtype=np.int64)
    for e in range(n_edges):
        b = edge_bucket[e]
        if b == n_buckets:
            below_edge[e] = n
        elif b >= 0:
            below_edge[e] = first_rank[b]
            edge, last = bins[e], e == n_edges - 1
            for x in gathered[start[b] : start[b + 1]]:
                if x < edge or (last and x == edge):
                    below_edge[e] += 1
    histogram = below_edge[1:] - below_edge[:-1]
    out = np.full(len(q), np.nan)
    if n > 0:
        for p in range(len(q)):
            virtual = (n - 1) * (q[p] / 100.0)
            a = _ranked(gathered, start, first_rank, ranks[2 * p])
            b_value = _ranked(gathered, start, first_rank, ranks[2 * p + 1])
            if virtual >= n - 1:  # numpy takes the last value for an index past the end
                out[p] = b_value
                continue
            gamma = virtual - ranks[2 * p]
            diff = b_value - a
            out[p] = b_value - diff * (1.0 - gamma) if gamma >= 0.5 else a + diff * gamma
    return out, histogram


@njit
def _select(a: np.ndarray, lo: int, end: int, k: int) -> None:
    """Put the value of rank k - lo among a[lo:end] (finite floats) at a[k], the smaller ones before it and the
    larger ones after (a quickselect with Hoare's partition around a median of three; a few passes over the range
    where a sort would make many)."""
    hi = end - 1
    while lo < hi:
        if k == lo:  # the smallest: one scan
            m = lo
            for i in range(lo + 1, hi + 1):
                if a[i] < a[m]:
                    m = i
            a[lo], a[m] = a[m], a[lo]
            return
        x, y, z = a[lo], a[(lo + hi) // 2], a[hi]
        pivot = max(min(x, y), min(max(x, y), z))
        i, j = lo, hi
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:  # a[lo..j] <= pivot <= a[i..hi], and the values between equal the pivot
            hi = j
        elif k >= i:
            lo = i
        else:
            return


@njit(inline="always")
def _ascending(values: np.ndarray) -> np.ndarray:
    """A sorted copy of a few integers (an insertion sort)."""
    out = values.copy()
    for i in range(1, len(out)):
        v, j = out[i], i
        while j > 0 and out[j - 1] > v:
            out[j] = out[j - 1]
            j -= 1
        out[j] = v
    return out


@njit(inline="always")
def _order_key(value: float, bits: np.int64) -> np.int64:
    """An integer ordered as the (non-NaN) floats are: the bit pattern `bits` of `value`, with a negative number's
    magnitude bits flipped; zeros of either sign are the same key."""
    if value == 0.0:
        return np.int64(0)
    return bits if bits >= 0 else bits ^ np.int64(0x7FFFFFFFFFFFFFFF)


@njit(inline="always")
def _order_keys(values: np.ndarray) -> np.ndarray:
    """`_order_key` of each of a few values (made once per call: each needs a small array for its bit pattern)."""
    out = values.view(np.int64).copy()
    for i in range(len(values)):
        out[i] = _order_key(values[i], out[i])
    return out


@njit(inline="always")
def _bucket(key: np.int64, key_min: np.int64, shift: np.uint64) -> int:
    """The bucket of an order key: its distance from the smallest key, coarsened by `shift` bits."""
    return int((np.uint64(key) - np.uint64(key_min)) >> shift)


@njit(inline="always")
def _ranked(gathered: np.ndarray, start: np.ndarray, first_rank: np.ndarray, rank: int) -> float:
    """The value of the given rank (sorted order), at its place among its bucket's values in `gathered` (`_select`)."""
    b = _bucket_of_rank(first_rank, rank)
    return gathered[start[b] + rank - first_rank[b]]


@njit(inline="always")
def _bucket_of_rank(first_rank: np.ndarray, rank: int) -> int:
    """The bucket holding the value of the given rank: the last b with first_rank[b] <= rank (a binary search, as
    np.searchsorted(first_rank, rank, side="right") - 1)."""
    lo, hi = 0, len(first_rank)
    while lo < hi:
        mid = (lo + hi) // 2
        if first_rank[mid] <= rank:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


# --- the accounts of the traders who decide (abm.agents.batched) ------------------------------------------------


@njit(cache=True, nogil=True)
def tokens_health(
    collateral: np.ndarray, debt_tokens: np.ndarray, liquidation_threshold: np.ndarray, prices: np.ndarray
) -> float:
    """Health factor of one account state (cross or isolated margin; `MarginEngine._state_health` for fewer than
    `SEQUENTIAL_SUM_MAX` assets): collateral value (tokens x price) times the liquidation threshold over the debt
    value (debt tokens x price), each summed over the assets left to right, as numpy adds a few numbers; inf
    without debt."""
    weighted = (collateral[0] * prices[0]) * liquidation_threshold[0]
    owed = debt_tokens[0] * prices[0]
    for j in range(1, len(collateral)):
        weighted += (collateral[j] * prices[j]) * liquidation_threshold[j]
        owed += debt_tokens[j] * prices[j]
    return weighted / owed if owed > 0 else np.inf


@njit(cache=True, nogil=True)
def tokens_headroom(collateral: np.ndarray, debt_tokens: np.ndarray, ltv: np.ndarray, prices: np.ndarray) -> float:
    """Borrow power minus debt (USD) of one account state (cross or isolated margin; `MarginEngine._state_headroom`
    for fewer than `SEQUENTIAL_SUM_MAX` assets): collateral value (tokens x price) times the LTV, minus the debt
    value (debt tokens x price), each summed over the assets left to right, as numpy adds a few numbers."""
    power = (collateral[0] * prices[0]) * ltv[0]
    owed = debt_tokens[0] * prices[0]
    for j in range(1, len(collateral)):
        power += (collateral[j] * prices[j]) * ltv[j]
        owed += debt_tokens[j] * prices[j]
    return power - owed


@njit(inline="always")
def state_health(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    row: int,
    borrow_index: np.ndarray,
    liquidation_threshold: np.ndarray,
    prices: np.ndarray,
) -> float:
    """`tokens_health` of account row `row` of the book (its debt tokens: scaled debt x borrow index)."""
    return tokens_health(collateral[row], scaled_debt[row] * borrow_index, liquidation_threshold, prices)


@njit(cache=True, nogil=True)
def accounts_health_factors(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    accounts: np.ndarray,
    borrow_index: np.ndarray,
    liquidation_threshold: np.ndarray,
    prices: np.ndarray,
) -> np.ndarray:
    """`state_health` of each of `accounts` (ids into the rows of `collateral`, `scaled_debt`; repeats allowed)."""
    out = np.empty(len(accounts))
    for r in range(len(accounts)):
        out[r] = state_health(collateral, scaled_debt, accounts[r], borrow_index, liquidation_threshold, prices)
    return out


@njit(cache=True, nogil=True)
def accounts_net_tokens(
    collateral: np.ndarray, scaled_debt: np.ndarray, accounts: np.ndarray, borrow_index: np.ndarray
) -> np.ndarray:
    """Collateral minus debt in tokens (scaled debt x borrow index) per asset of each of `accounts` (ids into the
    rows of `collateral`, `scaled_debt`; repeats allowed): (accounts, assets)."""
    n_assets = collateral.shape[1]
    out = np.empty((len(accounts), n_assets))
    for r in range(len(accounts)):
        for a in range(n_assets):
            out[r, a] = collateral[accounts[r], a] - scaled_debt[accounts[r], a] * borrow_index[a]
    return out


@njit(cache=True, nogil=True)
def liquidation_plans(
    collateral: np.ndarray,
    scaled_debt: np.ndarray,
    accounts: np.ndarray,
    borrow_index: np.ndarray,
    prices: np.ndarray,
    collateral_enabled: np.ndarray,
    liquidation_bonus: np.ndarray,
    health: np.ndarray,
    close_factor_default: float,
    close_factor_full_below: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A full close-factor liquidation plan of each of `accounts` (ids into the rows of `collateral`,
    `scaled_debt`; `health` their health factors at `prices`, USD/token): (liquidatable, debt asset, collateral
    asset, repay in debt tokens, seize in collateral tokens). The debt and collateral assets are the first largest
    in USD at `prices` (collateral times `collateral_enabled`, 1.0 or 0.0); liquidatable where the health is below
    1 and both are positive (the other entries then mean nothing). Each plan's arithmetic is its own: the protocol's
    close factor, seizure and (when the collateral held caps the seizure) repayment."""
    n, n_assets = len(accounts), collateral.shape[1]
    liquidatable = np.zeros(n, dtype=np.bool_)
    debt_asset = np.zeros(n, dtype=np.int64)
    collateral_asset = np.zeros(n, dtype=np.int64)
    repay, seize = np.zeros(n), np.zeros(n)
    for r in range(n):
        a = accounts[r]
        j, k = 0, 0
        largest_debt = scaled_debt[a, 0] * borrow_index[0] * prices[0]
        largest_coll = collateral[a, 0] * prices[0] * collateral_enabled[0]
        for x in range(1, n_assets):
            owed = scaled_debt[a, x] * borrow_index[x] * prices[x]
            if owed > largest_debt:
                largest_debt, j = owed, x
            held = collateral[a, x] * prices[x] * collateral_enabled[x]
            if held > largest_coll:
                largest_coll, k = held, x
        debt_asset[r], collateral_asset[r] = j, k
        if not (health[r] < 1.0 and largest_debt > 0 and largest_coll > 0):
            continue
        liquidatable[r] = True
        cf = compiled_close_factor(health[r], close_factor_default, close_factor_full_below)
        repaid = cf * (scaled_debt[a, j] * borrow_index[j])
        seized = compiled_seized_for_repaid(repaid, prices[j], prices[k], liquidation_bonus[k])
        if seized > collateral[a, k]:
            seized = collateral[a, k]
            repaid = compiled_repaid_for_seized(seized, prices[j], prices[k], liquidation_bonus[k])
        repay[r], seize[r] = repaid, seized
    return liquidatable, debt_asset, collateral_asset, repay, seize
