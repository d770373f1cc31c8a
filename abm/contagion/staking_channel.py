"""Which asset carries the contagion in a run with staking collateral (docs/contagion.md, "Exposure graph"): the
ex-ante exposure structure at step 0 split by asset, and DebtRank by looped and unlooped accounts.

The account projection links two accounts through each asset side they share (`abm.contagion.exposure`); its
fire-sale impact is impact_ij = sum over sides s of x_is x_js / depth_s. Split by side, the staked token's long
side is the loopers' channel: their collateral sits in one thin market. DebtRank (`account_debtrank`) then says
how far the scripted depeg's first loss on the looped accounts spreads through those impacts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from abm.config.schema import ModelConfig, ShockEvent
from abm.contagion.debtrank import fire_sale_impacts, propagate, propagate_channels
from abm.contagion.exposure import ExposureArrays, _side_matrix, account_projection_arrays, exposure_arrays

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


def side_names(arrays: ExposureArrays) -> list[str]:
    """The projection's asset sides: ``<SYM>_long`` for each risky asset, then ``<SYM>_short``."""
    risky = arrays.symbols[1:]
    return [f"{s}_long" for s in risky] + [f"{s}_short" for s in risky]


def pair_impacts_by_side(arrays: ExposureArrays, pairs: np.ndarray) -> np.ndarray:
    """(pairs, sides): each pair's fire-sale impact x_is x_js / depth_s (USD) on each side s (`side_names`); summed
    over sides it is the projection's impact_ij."""
    sides = _side_matrix(arrays)
    depth = np.tile(arrays.depth_usd[1:], 2)
    inv_depth = np.where(np.isfinite(depth) & (depth > 0), 1.0 / depth, 0.0)
    if not len(pairs):
        return np.zeros((0, len(depth)))
    return sides[pairs[:, 0]] * sides[pairs[:, 1]] * inv_depth


@dataclass
class PegExposure(ExposureArrays):
    """The exposure arrays with the staked token read as its two factors: the base asset (the token is worth the
    base asset x the exchange rate x the peg, so its USD counts on the base asset's side) and the peg (the token's
    own side, whose market is the token's pool against the base asset). A looper (token collateral C against base
    debt D) is then long the peg by C and long the base asset by its equity C - D, which is how its liquidation
    trades: the seized token is swapped for the base asset in the token's pool, the debt is repaid in kind, and the
    base asset's market against USD is not touched (`Liquidator.execute`). token, base: column indices."""

    token: int = 0
    base: int = 0

    @property
    def net_risky(self) -> np.ndarray:
        net = super().net_risky
        net[:, self.base - 1] += net[:, self.token - 1]
        return net


def impact_by_side(arrays: ExposureArrays, k: int) -> dict[str, float]:
    """The projection's fire-sale impact (USD, summed over its pairs) split by asset side: keys ``<SYM>_long``
    and ``<SYM>_short`` for each risky asset."""
    pairs, _, _ = account_projection_arrays(arrays, k)
    per_side = pair_impacts_by_side(arrays, pairs).sum(axis=0)
    return dict(zip(side_names(arrays), np.asarray(per_side, dtype=float).tolist(), strict=True))


def channel_impacts(arrays: ExposureArrays, pairs: np.ndarray, pair_impact: np.ndarray) -> list[sparse.csr_array]:
    """DebtRank's impact matrix (`fire_sale_impacts`) split into one matrix per asset side (`side_names`): each
    edge's weight is shared between the sides in proportion to their part of the pair's impact, so the parts sum
    to the whole (the cap at 1 applies to the whole, as in `fire_sale_impacts`)."""
    w = fire_sale_impacts(arrays, pairs, pair_impact).tocoo()
    per_side = pair_impacts_by_side(arrays, pairs)
    n = len(arrays.account)
    out = []
    for s in range(per_side.shape[1]):
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(pair_impact > 0, per_side[:, s] / pair_impact, 0.0)
        i, j = pairs[:, 0], pairs[:, 1]
        share = sparse.csr_array(
            (np.concatenate([frac, frac]), (np.concatenate([j, i]), np.concatenate([i, j]))), shape=(n, n)
        )
        out.append(sparse.csr_array(w.multiply(share)))
    return out


def scripted_depeg(config: ModelConfig) -> float:
    """The peg's scripted fall: 1 - product of (1 + size) over the scenario's shocks to the staked token."""
    sizes = [ev.size for ev in config.scenario.events if isinstance(ev, ShockEvent) and ev.asset == config.lst.symbol]
    return float(1.0 - np.prod([1.0 + s for s in sizes])) if sizes else 0.0


def staking_channel(model: ReflexivityModel) -> dict[str, Any]:
    """At the model's current step (the sweep metric uses step 0), with every looper linked to every other
    (projection k = max(`contagion.k_strongest`, `lst.n_loopers`): the loopers' collective sale is the channel):

    - lst_impact_share: the staked token's long side's share of the projection's fire-sale impact (every asset its
      own side: a hypothetical fire sale of every position);
    - depeg_debtrank: DebtRank of the scripted depeg d on the projection of `PegExposure` (the token read as the
      base asset times the peg): each account starts at distress h0 = min(1, d x staked collateral / equity) (its
      equity loss at the depeg), then distress spreads along the fire-sale impacts; value-weighted (equity) final
      minus initial distress;
    - depeg_distress_looped, depeg_distress_unlooped: equity-weighted final distress of the looped accounts
      (staked collateral against base-asset debt) and of the other accounts with debt;
    - depeg_lst_channel_share, depeg_base_channel_share: the shares of the depeg's second-round distress
      (value-weighted, `propagate_channels`) that travelled on the staked token's (the peg's) edges and on the
      base asset's (long and short) edges;
    - depeg_unlooped_lst_channel_share: the same share of the unlooped accounts' distress (0 when none of them
      holds the token: it reaches them on other edges, from loopers distressed through the token);
    - depeg_distress_unlooped_without_lst: their equity-weighted distress with the token's edges cut, so
      depeg_distress_unlooped less this is what reaches them only because distress travels through the token.
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
    peg = PegExposure(**{f.name: getattr(arrays, f.name) for f in fields(arrays)}, token=token, base=base)
    pairs, _, pair_impact = account_projection_arrays(peg, k)
    h, _ = propagate(fire_sale_impacts(peg, pairs, pair_impact), h0)
    v = equity / equity.sum() if equity.sum() > 0 else equity

    def weighted(mask: np.ndarray, dist: np.ndarray = h) -> float:
        return float(equity[mask] @ dist[mask] / equity[mask].sum()) if equity[mask].sum() > 0 else float("nan")

    # the same propagation with each edge's distress split by the asset side it travelled on, and once more with
    # the staked token's edges cut (what reaches the unlooped accounts without it)
    names = side_names(peg)
    channels = channel_impacts(peg, pairs, pair_impact)
    lst_side = names.index(f"{cfg.lst.symbol}_long")
    base_sides = [names.index(f"{cfg.lst.base}_long"), names.index(f"{cfg.lst.base}_short")]
    _, by_side, _ = propagate_channels(channels, h0)
    second = by_side @ v  # value-weighted second-round distress carried by each side
    cut, _ = propagate(sum(c for s, c in enumerate(channels) if s != lst_side), h0)

    def share(x: float, of: float) -> float:
        return x / of if of > 0 else float("nan")

    return {
        "lst_impact_share": impact[f"{cfg.lst.symbol}_long"] / total if total > 0 else float("nan"),
        "depeg_debtrank": float(v @ h - v @ h0),
        "depeg_distress_looped": weighted(looped),
        "depeg_distress_unlooped": weighted(unlooped),
        "depeg_lst_channel_share": share(float(second[lst_side]), float(second.sum())),
        "depeg_base_channel_share": share(float(second[base_sides].sum()), float(second.sum())),
        "depeg_unlooped_lst_channel_share": share(
            float(by_side[lst_side][unlooped] @ equity[unlooped]),
            float(by_side[:, unlooped].sum(axis=0) @ equity[unlooped]),
        ),
        "depeg_distress_unlooped_without_lst": weighted(unlooped, cut),
    }
