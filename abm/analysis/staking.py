"""Summary keys of a run with staking collateral (`lst.enabled`; docs/model.md, 3.3 Submodels: Staking collateral
and looping): the peg the market showed against the scripted one, and what happened to the looped accounts.

Looped accounts are those that held the staked token as collateral against a debt in its base asset at step 0;
every other account with debt is "unlooped".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from abm.config.schema import ModelConfig
from abm.protocol import lst_exchange_rate


def looped_accounts(config: ModelConfig, start_collateral: np.ndarray, start_debt: np.ndarray) -> np.ndarray:
    """Indices of the accounts holding the staked token against base-asset debt at step 0 (tokens arrays,
    accounts x assets, numéraire first)."""
    token, base = config.symbols.index(config.lst.symbol), config.symbols.index(config.lst.base)
    return np.flatnonzero((start_collateral[:, token] > 0) & (start_debt[:, base] > 0))


def staking_summary(
    config: ModelConfig,
    timeseries: pd.DataFrame,
    events: pd.DataFrame,
    write_offs: pd.DataFrame,
    start_collateral: np.ndarray,
    start_debt: np.ndarray,
) -> dict[str, Any]:
    """The staking keys (NaN where undefined):

    - lst_peg_min: the lowest market peg, min over steps of (token price / base price) / exchange rate
      (dimensionless; 1 = par), the exchange rate r0 (1 + apr dt)^t (`lst_exchange_rate`);
    - lst_fundamental_peg_min: the lowest scripted peg (the same ratio of the fundamentals);
    - lst_extra_discount: lst_fundamental_peg_min - lst_peg_min, the discount the market added to the scripted
      one (positive: selling deepened the depeg);
    - looper_leverage: the looped accounts' collateral / equity at step 0 (USD at the step-0 oracle), mean;
    - looped_accounts: how many there were; lst_accounts_liquidated_share: the share liquidated at least once;
    - unlooped_accounts_liquidated: other accounts liquidated at least once;
    - lst_liquidation_volume_usd: collateral seized from looped accounts (USD at the oracle);
    - lst_bad_debt_usd: debt written off on looped accounts (USD).
    """
    lst = config.lst
    token, base = lst.symbol, lst.base
    steps = timeseries["step"].to_numpy(dtype=float)
    rate = lst_exchange_rate(lst.exchange_rate, lst.staking_apr, steps, config.market.step_seconds)
    market_peg = timeseries[f"price_{token}"].to_numpy() / timeseries[f"price_{base}"].to_numpy() / rate
    fundamental_peg = timeseries[f"fundamental_{token}"].to_numpy() / timeseries[f"fundamental_{base}"].to_numpy()
    fundamental_peg = fundamental_peg / rate
    looped = looped_accounts(config, start_collateral, start_debt)
    oracle0 = np.array([1.0] + [float(timeseries[f"oracle_{s}"].iloc[0]) for s in config.symbols[1:]])
    coll = start_collateral[looped] @ oracle0
    equity = coll - start_debt[looped] @ oracle0
    lending = events[events["venue"] == "lending"] if "venue" in events.columns else events
    liquidated = set(lending["account"].astype(int).tolist())
    in_loop = lending["account"].isin(looped)
    indebted = np.flatnonzero(start_debt.sum(axis=1) > 0)
    unlooped = np.setdiff1d(indebted, looped)
    return {
        "lst_peg_min": float(market_peg.min()),
        "lst_fundamental_peg_min": float(fundamental_peg.min()),
        "lst_extra_discount": float(fundamental_peg.min() - market_peg.min()),
        "looper_leverage": float(np.mean(coll / equity)) if len(looped) else float("nan"),
        "looped_accounts": len(looped),
        "lst_accounts_liquidated_share": (
            sum(int(a) in liquidated for a in looped) / len(looped) if len(looped) else float("nan")
        ),
        "unlooped_accounts_liquidated": sum(int(a) in liquidated for a in unlooped),
        "lst_liquidation_volume_usd": float(lending.loc[in_loop, "seized_usd"].sum()),
        "lst_bad_debt_usd": float(write_offs.loc[write_offs["account"].isin(looped), "amount_usd"].sum()),
    }
