"""Which asset carries the contagion in a run with staking collateral (docs/contagion.md, "Exposure graph"): the
ex-ante exposure structure at step 0 split by asset, and DebtRank by looped and unlooped accounts.

The account projection links two accounts through each asset side they share (`abm.contagion.exposure`); its
fire-sale impact is impact_ij = sum over sides s of x_is x_js / depth_s. Split by side, the staked token's long
side is the loopers' channel: their collateral sits in one thin market. DebtRank (`account_debtrank`) then says
how far the scripted depeg's first loss on the looped accounts spreads through those impacts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from abm.config.schema import ModelConfig, ShockEvent
from abm.contagion.debtrank import fire_sale_impacts, propagate
from abm.contagion.exposure import ExposureArrays, account_projection_arrays, exposure_arrays

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


def impact_by_side(arrays: ExposureArrays, k: int) -> dict[str, float]:
    """The projection's fire-sale impact (USD, summed over its pairs) split by asset side: keys ``<SYM>_long``
    and ``<SYM>_short`` for each risky asset."""
    pairs, _, _ = account_projection_arrays(arrays, k)
    net = arrays.net_risky
    sides = np.concatenate([np.maximum(net, 0.0), np.maximum(-net, 0.0)], axis=1)
    depth = np.tile(arrays.depth_usd[1:], 2)
    inv_depth = np.where(np.isfinite(depth) & (depth > 0), 1.0 / depth, 0.0)
    per_side = (sides[pairs[:, 0]] * sides[pairs[:, 1]]).sum(axis=0) * inv_depth if len(pairs) else 0.0 * depth
    risky = arrays.symbols[1:]
    names = [f"{s}_long" for s in risky] + [f"{s}_short" for s in risky]
    return dict(zip(names, np.asarray(per_side, dtype=float).tolist(), strict=True))


def scripted_depeg(config: ModelConfig) -> float:
    """The peg's scripted fall: 1 - product of (1 + size) over the scenario's shocks to the staked token."""
    sizes = [ev.size for ev in config.scenario.events if isinstance(ev, ShockEvent) and ev.asset == config.lst.symbol]
    return float(1.0 - np.prod([1.0 + s for s in sizes])) if sizes else 0.0


def staking_channel(model: ReflexivityModel) -> dict[str, Any]:
    """At the model's current step (the sweep metric uses step 0), with every looper linked to every other
    (projection k = max(`contagion.k_strongest`, `lst.n_loopers`): the loopers' collective sale is the channel):

    - lst_impact_share: the staked token's long side's share of the projection's fire-sale impact;
    - depeg_debtrank: DebtRank of the scripted depeg d: each account starts at distress
      h0 = min(1, d x staked collateral / equity) (its equity loss at the depeg), then distress spreads along
      the fire-sale impacts; value-weighted (equity) final minus initial distress;
    - depeg_distress_looped, depeg_distress_unlooped: equity-weighted final distress of the looped accounts
      (staked collateral against base-asset debt) and of the other accounts with debt.
    """
    cfg = model.config
    arrays = exposure_arrays(model)
    k = max(int(cfg.contagion.k_strongest), cfg.lst.n_loopers)
    impact = impact_by_side(arrays, k)
    total = sum(impact.values())
    token = cfg.symbols.index(cfg.lst.symbol)
    base = cfg.symbols.index(cfg.lst.base)
    looped = (arrays.coll_usd[:, token] > 0) & (arrays.debt_usd[:, base] > 0)
    unlooped = (arrays.debt_usd.sum(axis=1) > 0) & ~looped
    equity = np.maximum(arrays.equity, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h0 = np.where(equity > 0, np.minimum(1.0, scripted_depeg(cfg) * arrays.coll_usd[:, token] / equity), 0.0)
    pairs, _, pair_impact = account_projection_arrays(arrays, k)
    h, _ = propagate(fire_sale_impacts(arrays, pairs, pair_impact), h0)
    v = equity / equity.sum() if equity.sum() > 0 else equity

    def weighted(mask: np.ndarray) -> float:
        return float(equity[mask] @ h[mask] / equity[mask].sum()) if equity[mask].sum() > 0 else float("nan")

    return {
        "lst_impact_share": impact[f"{cfg.lst.symbol}_long"] / total if total > 0 else float("nan"),
        "depeg_debtrank": float(v @ h - v @ h0),
        "depeg_distress_looped": weighted(looped),
        "depeg_distress_unlooped": weighted(unlooped),
    }
