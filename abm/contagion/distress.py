"""Distress extent of a run: how many accounts, traders and positions a crash reached, and how much equity it took.

Compares two `abm.recording.distress.EquitySnapshot`s (the model takes one when its genesis positions exist,
`abm.run.collect_result` another at the end); `abm.run` puts `distress_metrics` into `RunResult.summary` (so every
sweep row carries them).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from abm.recording.distress import EquitySnapshot

WIPED_OUT = 0.05  # an account (trader) is wiped out when it ends with less than 5% of its initial equity


def distress_metrics(
    start: EquitySnapshot, end: EquitySnapshot, events: pd.DataFrame, symbols: list[str]
) -> dict[str, float]:
    """Distress extent of one run (all shares are fractions in [0, 1]).

    - share_accounts_liquidated: accounts with debt at the start that were liquidated at least once.
    - share_accounts_wiped_out: accounts ending with < 5% of their initial equity (or negative).
    - share_traders_wiped_out: the same for traders' total equity (accounts plus wallet).
    - share_equity_lost: 1 - traders' final equity / initial equity (market prices; includes the direct loss from
      the price move, not only liquidation losses); clipped at 0 below.
    - positions_liquidated / share_positions_liquidated: (account, risky asset) positions held at the start whose
      collateral was seized, or whose borrowed asset was repaid, by a liquidator.
    """
    base = start.has_debt
    n_acc = int(base.sum())
    liq = np.zeros(len(start.account_equity), dtype=bool)
    if len(events):
        ids = events["account"].to_numpy(dtype=np.int64)
        liq[ids[ids < len(liq)]] = True
    eq0 = start.account_equity
    n_end = len(end.account_equity)
    eq1 = end.account_equity[: len(eq0)] if n_end >= len(eq0) else np.pad(end.account_equity, (0, len(eq0) - n_end))
    wiped = base & (eq1 < WIPED_OUT * np.maximum(eq0, 0.0))
    t0, t1 = start.trader_equity, end.trader_equity
    traders = t0 > 0
    positions = start.positions
    touched = np.zeros_like(positions)
    if len(events):
        index = {s: k - 1 for k, s in enumerate(symbols) if k > 0}
        for col in ("collateral_asset", "debt_asset"):
            risky = events[col].isin(list(index))
            ids = events.loc[risky, "account"].to_numpy(dtype=np.int64)
            assets = events.loc[risky, col].map(index).to_numpy(dtype=np.int64)
            ok = ids < len(touched)
            touched[ids[ok], assets[ok]] = True
    pos_liq = int((touched & positions).sum())
    n_pos = int(positions.sum())
    return {
        "n_accounts_with_debt": n_acc,
        "share_accounts_liquidated": float((liq & base).sum() / n_acc) if n_acc else math.nan,
        "share_accounts_wiped_out": float(wiped.sum() / n_acc) if n_acc else math.nan,
        "share_traders_wiped_out": float((traders & (t1 < WIPED_OUT * t0)).sum() / traders.sum())
        if traders.any()
        else math.nan,
        "share_equity_lost": float(max(0.0, 1.0 - t1[traders].sum() / t0[traders].sum()))
        if traders.any()
        else math.nan,
        "positions_liquidated": pos_liq,
        "share_positions_liquidated": float(pos_liq / n_pos) if n_pos else math.nan,
    }
