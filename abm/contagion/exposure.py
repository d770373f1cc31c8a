"""The exposure graph (ex ante): accounts, the assets they hold or owe, and the reserves they borrow from.

Described in docs/contagion.md, "Exposure graph (ex ante)".

Node ids are strings, so the graph writes to GraphML as is: ``account:<id>``, ``asset:<SYM>``, ``reserve:<SYM>``;
every node has a ``kind`` attribute (``account``, ``asset``, ``reserve``).

Edges (attribute ``kind``):

- ``exposure`` (account - asset): ``collateral_usd`` and ``debt_usd`` of that asset in the account, ``net_usd``
  (collateral minus debt) and ``weight`` = collateral + debt (gross exposure, USD).
- ``borrow`` (account - reserve): ``debt_usd``, the reserve's claim on the account (USD); ``weight`` = debt.
- ``listed`` (asset - reserve): the reserve lending that asset.
- ``overlap`` (account - account): the sparse account-to-account projection (see `account_projection_arrays`):
  ``overlap_usd`` (``weight``) and ``impact_usd``.

The projection lives in the same graph, as edges of kind ``overlap``, so one object holds the whole ex-ante
picture; `account_projection(graph)` extracts it as an account-only graph (a copy). Values are USD at the
oracle prices the protocol sees (what the margin engine margins against).

Overlap. Net USD exposure of account i to risky asset a: s_ia = c_ia - d_ia. Each asset has a long side (s > 0)
and a short side (s < 0); two accounts overlap only on the same side, because a fire sale of a long's
collateral hurts the other longs and helps the shorts. overlap_ij = sum over sides of min(x_i, x_j), the USD
both hold on the same side; impact_ij = sum_a x_ia x_ja / depth_a, the loss (USD, first order) either would take
if the other's whole position on those sides were sold into the market (linear impact; the same number both ways).

Sparsity, O(N k) per asset side: on one side the partner that maximises min(x_i, x_j) (and x_i x_j) for any i is
one of the largest holders, so each account is paired with the k largest other holders of each side it is on
(np.argpartition, no N x N matrix). Candidate pairs are scored over all sides at once and each account keeps its
k strongest by overlap (impact breaks ties); an edge stays if either end keeps it, so the projection has at most
N k edges and every account with an exposure has up to k links.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

from abm.config.schema import MARGIN_MODES

if TYPE_CHECKING:
    from abm.model import ReflexivityModel


@dataclass
class ExposureArrays:
    """The exposure structure as arrays over accounts (rows) and assets (columns, numéraire first), USD."""

    symbols: list[str]
    account: np.ndarray  # account ids
    owner: np.ndarray
    mode: list[str]
    coll_usd: np.ndarray  # (n, assets)
    debt_usd: np.ndarray  # (n, assets)
    hf: np.ndarray
    liquidated: np.ndarray  # bool: liquidated at least once so far in the run
    depth_usd: np.ndarray  # (assets,) effective linear depth (USD moving log price by 1); inf for the numéraire
    prices: np.ndarray  # (assets,) oracle prices

    @property
    def equity(self) -> np.ndarray:
        return self.coll_usd.sum(axis=1) - self.debt_usd.sum(axis=1)

    @property
    def net_risky(self) -> np.ndarray:
        """Net USD exposure per risky asset (n, assets - 1): collateral minus debt."""
        return self.coll_usd[:, 1:] - self.debt_usd[:, 1:]

    @property
    def gross_exposure(self) -> np.ndarray:
        """USD of risky assets held as collateral plus owed: the size of the account's price exposure."""
        return self.coll_usd[:, 1:].sum(axis=1) + self.debt_usd[:, 1:].sum(axis=1)

    @property
    def leverage(self) -> np.ndarray:
        """Gross risky exposure / equity (a long: collateral / equity; a short: debt / equity); NaN if equity <= 0."""
        eq = self.equity
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(eq > 0, self.gross_exposure / eq, np.nan)


def effective_depth(model: ReflexivityModel, reference_usd: np.ndarray | None = None) -> np.ndarray:
    """USD notional that moves each asset's log price by 1 (linear depth), per asset; numéraire: inf. Each impact
    model's own secant depth (`abm.market.Market.effective_depth`)."""
    return model.market.effective_depth(reference_usd)


def exposure_arrays(model: ReflexivityModel) -> ExposureArrays:
    """Read the exposure structure from a model (its current step), at oracle prices."""
    engine = model.engine
    prices = np.asarray(model.oracle.prices, dtype=float)
    coll, debt = engine.values(prices)
    n = engine.n
    liquidated = np.zeros(n, dtype=bool)
    events = model.recorder.events
    if events:
        ids = np.array([e["account"] for e in events if e.get("venue", "lending") == "lending"], dtype=np.int64)
        liquidated[ids[ids < n]] = True
    return ExposureArrays(
        symbols=list(model.symbols),
        account=np.arange(n),
        owner=engine.owner[:n].copy(),
        mode=[MARGIN_MODES[int(c)] for c in engine.mode[:n]],
        coll_usd=coll,
        debt_usd=debt,
        hf=engine.health(prices),
        liquidated=liquidated,
        depth_usd=effective_depth(model),
        prices=prices,
    )


# --- the sparse projection -------------------------------------------------------------------------------------


def _side_matrix(arrays: ExposureArrays) -> np.ndarray:
    """(n, 2 (assets - 1)): USD on the long side of each risky asset, then on the short side."""
    s = arrays.net_risky
    return np.concatenate([np.maximum(s, 0.0), np.maximum(-s, 0.0)], axis=1)


def _candidates(x: np.ndarray, k: int) -> np.ndarray:
    """Pairs (i, j) pairing every holder i of one side with the k largest other holders (x > 0): (m k, 2)."""
    holders = np.flatnonzero(x > 0)
    m = len(holders)
    if m < 2:
        return np.empty((0, 2), dtype=np.int64)
    top_n = min(k + 1, m)
    part = np.argpartition(-x[holders], top_n - 1)[:top_n] if top_n < m else np.arange(m)
    top = holders[part]
    top = top[np.argsort(-x[top], kind="stable")]
    partners = np.broadcast_to(top, (m, top_n))
    keep = partners != holders[:, None]
    keep &= np.cumsum(keep, axis=1) <= k
    rows = np.broadcast_to(holders[:, None], (m, top_n))
    return np.stack([rows[keep], partners[keep]], axis=1)


def account_projection_arrays(arrays: ExposureArrays, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sparse account-to-account projection: (pairs (P, 2) of row indices i < j, overlap_usd, impact_usd).

    At most k links kept per account (an edge stays if either end keeps it): P <= N k. O(N k) per asset side.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1 (got {k})")
    sides = _side_matrix(arrays)
    n, n_sides = sides.shape
    empty = (np.empty((0, 2), dtype=np.int64), np.empty(0), np.empty(0))
    if n < 2 or n_sides == 0:
        return empty
    cand = [_candidates(sides[:, s], k) for s in range(n_sides)]
    pairs = np.concatenate(cand) if cand else np.empty((0, 2), dtype=np.int64)
    if len(pairs) == 0:
        return empty
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    key = np.unique(lo.astype(np.int64) * n + hi)
    a, b = key // n, key % n
    overlap = np.minimum(sides[a], sides[b]).sum(axis=1)
    depth = np.tile(arrays.depth_usd[1:], 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv_depth = np.where(np.isfinite(depth) & (depth > 0), 1.0 / depth, 0.0)
    impact = (sides[a] * sides[b]) @ inv_depth
    # each account keeps its k strongest (overlap, then impact); an edge survives if either end keeps it
    ends = np.concatenate([a, b])
    score = np.concatenate([overlap, overlap])
    tie = np.concatenate([impact, impact])
    edge = np.concatenate([np.arange(len(a)), np.arange(len(a))])
    order = np.lexsort((-tie, -score, ends))
    ends_sorted = ends[order]
    starts = np.searchsorted(ends_sorted, ends_sorted, side="left")
    rank = np.arange(len(order)) - starts
    kept = np.zeros(len(a), dtype=bool)
    kept[edge[order][rank < k]] = True
    return np.stack([a[kept], b[kept]], axis=1), overlap[kept], impact[kept]


# --- the graph -------------------------------------------------------------------------------------------------


def account_node(acct: int) -> str:
    return f"account:{int(acct)}"


def asset_node(symbol: str) -> str:
    return f"asset:{symbol}"


def reserve_node(symbol: str) -> str:
    return f"reserve:{symbol}"


def exposure_graph(model: ReflexivityModel, k: int | None = None, projection: bool = True) -> nx.Graph:
    """The exposure graph of a model at its current step; see the module docstring for its layout.

    k: links kept per account in the projection (default `config.contagion.k_strongest`); projection=False
    leaves the overlap edges out.
    """
    arrays = exposure_arrays(model)
    if k is None:
        k = int(model.config.contagion.k_strongest)
    g = graph_from_arrays(arrays, k=k if projection else None)
    pool = model.pool
    util = pool.utilisation()
    for a, sym in enumerate(arrays.symbols):
        node = g.nodes[reserve_node(sym)]
        price = float(arrays.prices[a])
        node.update(
            cash_usd=float(pool.cash[a]) * price,
            borrows_usd=float(pool.borrows[a]) * price,
            supplied_usd=float(pool.supplied[a]) * price,
            reserves_usd=float(pool.reserves[a]) * price,
            utilisation=float(util[a]),
            liquidation_threshold=float(pool.liquidation_threshold[a]),
            ltv=float(pool.ltv[a]),
        )
    g.graph.update(step=int(model.steps), seed=-1 if model.seed is None else int(model.seed), k=int(k))
    return g


def graph_from_arrays(arrays: ExposureArrays, k: int | None = 5) -> nx.Graph:
    """Build the exposure graph from `ExposureArrays` (k None: no projection edges)."""
    g = nx.Graph()
    symbols = arrays.symbols
    for a, sym in enumerate(symbols):
        g.add_node(
            asset_node(sym),
            kind="asset",
            symbol=sym,
            price=float(arrays.prices[a]),
            depth_usd=float(arrays.depth_usd[a]),
        )
        g.add_node(reserve_node(sym), kind="reserve", symbol=sym)
        g.add_edge(asset_node(sym), reserve_node(sym), kind="listed", weight=0.0)
    equity = arrays.equity
    leverage = arrays.leverage
    gross = arrays.gross_exposure
    coll_tot = arrays.coll_usd.sum(axis=1)
    debt_tot = arrays.debt_usd.sum(axis=1)
    ids = [account_node(i) for i in arrays.account]
    g.add_nodes_from(
        (
            ids[r],
            {
                "kind": "account",
                "account": int(arrays.account[r]),
                "owner": int(arrays.owner[r]),
                "mode": arrays.mode[r],
                "equity": float(equity[r]),
                "HF": float(arrays.hf[r]),
                "leverage": float(leverage[r]),
                "liquidated": bool(arrays.liquidated[r]),
                "collateral_usd": float(coll_tot[r]),
                "debt_usd": float(debt_tot[r]),
                "gross_exposure_usd": float(gross[r]),
            },
        )
        for r in range(len(ids))
    )
    held = (arrays.coll_usd > 0) | (arrays.debt_usd > 0)
    rows, cols = np.nonzero(held)
    c = arrays.coll_usd[rows, cols]
    d = arrays.debt_usd[rows, cols]
    asset_ids = [asset_node(s) for s in symbols]
    g.add_edges_from(
        (
            ids[r],
            asset_ids[a],
            {
                "kind": "exposure",
                "collateral_usd": float(cv),
                "debt_usd": float(dv),
                "net_usd": float(cv - dv),
                "weight": float(cv + dv),
            },
        )
        for r, a, cv, dv in zip(rows.tolist(), cols.tolist(), c.tolist(), d.tolist(), strict=True)
    )
    rows, cols = np.nonzero(arrays.debt_usd > 0)
    reserve_ids = [reserve_node(s) for s in symbols]
    g.add_edges_from(
        (ids[r], reserve_ids[a], {"kind": "borrow", "debt_usd": float(v), "weight": float(v)})
        for r, a, v in zip(rows.tolist(), cols.tolist(), arrays.debt_usd[rows, cols].tolist(), strict=True)
    )
    if k is not None:
        pairs, overlap, impact = account_projection_arrays(arrays, k)
        g.add_edges_from(
            (
                ids[i],
                ids[j],
                {"kind": "overlap", "overlap_usd": float(o), "impact_usd": float(m), "weight": float(o)},
            )
            for i, j, o, m in zip(
                pairs[:, 0].tolist(), pairs[:, 1].tolist(), overlap.tolist(), impact.tolist(), strict=True
            )
        )
    g.graph["symbols"] = ",".join(symbols)
    return g


def account_projection(graph: nx.Graph) -> nx.Graph:
    """The account-to-account projection of an exposure graph: account nodes and their ``overlap`` edges (a copy)."""
    proj = nx.Graph()
    proj.add_nodes_from((v, d) for v, d in graph.nodes(data=True) if d.get("kind") == "account")
    proj.add_edges_from((u, v, d) for u, v, d in graph.edges(data=True) if d.get("kind") == "overlap")
    return proj
