"""The cascade graph (ex post; docs/contagion.md, "Cascade graph (ex post) and the attribution window"): one node
per liquidation event, of the lending pool or the perp venue (node attribute `venue`), edges from the liquidations
whose sales (spot sales, or the perp engine's closes into the perp book) caused a later account's or position's loss
of health, weighted by their share of it; edges cross venues where a spot sale moved the index under a perp
position. Auto-deleveraging fills are not nodes (they lose no health and move no price): each bankrupt perp
liquidation carries its ADL fills as `adl_fills` and `adl_volume_usd`. Its metrics measure reflexivity. Its branching ratio counts the direct channel only (a
liquidation's own sale moving a later account's health); a liquidation that causes another through other traders'
reactions (deleveraging, momentum selling on the prices it moved) is booked under "other", not as offspring. The
Hawkes estimate (`abm.contagion.liquidation_hawkes.hawkes_branching_ratio`) puts other trading in its baseline too,
so it estimates the same quantity from event times alone (docs/contagion.md, "Hawkes check").
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import numpy as np
import pandas as pd

NODE_ATTRIBUTES = (
    "step",
    "account",
    "owner",
    "repaid_usd",
    "endogenous",
    "endogenous_share",
    "bad_debt_usd",
    "venue",
)
VENUES = ("lending", "perp")


def cascade_graph(
    events: pd.DataFrame, edges: Iterable[tuple[int, int, float]], adl: pd.DataFrame | None = None
) -> nx.DiGraph:
    """Build the DiGraph: nodes are event ids with their attributes; edge (parent, child) has `weight`, the parent's
    share of the child's liquidation-caused loss of health (a child's weights sum to 1 over all its parents). An
    edge whose parent or child is not an event in `events` is left out.

    adl: the run's ADL fills (`event_id`, `size`, `price`: the bankrupt liquidation each covered) when it ran the
    perp venue; every node then carries `adl_fills` (count) and `adl_volume_usd` (size x bankruptcy price, USD),
    0 where no ADL followed."""
    g = nx.DiGraph()
    cols = [c for c in NODE_ATTRIBUTES if c in events.columns]
    for rec in events[["event_id", *cols]].itertuples(index=False):
        attrs = {c: _plain(getattr(rec, c)) for c in cols}
        g.add_node(int(rec.event_id), **attrs)
    if adl is not None:
        nx.set_node_attributes(g, 0, "adl_fills")
        nx.set_node_attributes(g, 0.0, "adl_volume_usd")
        volume = adl["size"].to_numpy(dtype=float) * adl["price"].to_numpy(dtype=float)
        for event_id, fills, usd in zip(*adl_by_event(adl["event_id"].to_numpy(dtype=np.int64), volume), strict=True):
            if event_id in g:
                g.nodes[event_id]["adl_fills"] = fills
                g.nodes[event_id]["adl_volume_usd"] = usd
    for parent, child, weight in edges:
        if parent in g and child in g:
            g.add_edge(int(parent), int(child), weight=float(weight))
    return g


def adl_by_event(event_ids: np.ndarray, volume_usd: np.ndarray) -> tuple[list[int], list[int], list[float]]:
    """Per liquidation event id with ADL fills: (ids, number of fills, their volume in USD)."""
    ids, row, counts = np.unique(event_ids, return_inverse=True, return_counts=True)
    usd = np.zeros(len(ids))
    np.add.at(usd, row, volume_usd)
    return ids.tolist(), counts.tolist(), usd.tolist()


def _plain(value: object) -> object:
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def main_parent_forest(g: nx.DiGraph) -> nx.DiGraph:
    """Each endogenous event keeps only its heaviest parent: a forest whose trees are the cascades. An event whose
    `endogenous` attribute is False starts a tree of its own even if parent edges are listed for it (a node
    without the attribute counts as endogenous)."""
    forest = nx.DiGraph()
    forest.add_nodes_from(g.nodes(data=True))
    for node in g.nodes:
        if not g.nodes[node].get("endogenous", True):
            continue
        preds = list(g.predecessors(node))
        if preds:
            best = max(preds, key=lambda p: (g.edges[p, node]["weight"], -p))
            forest.add_edge(best, node, weight=g.edges[best, node]["weight"])
    return forest


def offspring_weights(g: nx.DiGraph) -> dict[int, float]:
    """How much of each event is offspring of the other events in the graph (expected parents, in [0, 1]).

    An event's offspring weight is its endogenous share s (the share of its lost health caused by liquidation
    sales; a share caused by other trading or by the fundamentals is not offspring) times the share pi of that
    part whose parent events are in the graph: s x sum_{parents p in g} pi(p). The recorder lists parents only
    for events flagged endogenous; an event with a share but no listed parent counts its whole share, since every
    liquidation of a run is a node of the run's graph (this is exact for the graphs `abm.run` and the teaching page
    build; a graph cut from a run's later part would overstate such an event's weight). A node without an
    `endogenous_share` attribute (a graph built by hand) takes the sum of its parent edge weights.
    """
    out: dict[int, float] = {}
    for node, data in g.nodes(data=True):
        parents = sum(w for _, _, w in g.in_edges(node, data="weight"))
        share = data.get("endogenous_share")
        if share is None or not np.isfinite(share):
            out[node] = float(parents)
        elif g.in_degree(node) > 0:
            out[node] = float(share) * float(parents)
        else:
            out[node] = float(share)
    return out


def cascade_metrics(g: nx.DiGraph) -> dict[str, float]:
    """reflexivity_index, branching_ratio, largest_cascade, max_cascade_depth, n_cascades, over every node (the
    liquidations of both venues; ADL fills are attributes, not nodes).

    reflexivity_index: share of liquidated volume (`repaid_usd`: USD repaid, or a perp position's notional closed)
      in endogenous events, in [0, 1].
    branching_ratio: expected offspring per event = the sum over events of their offspring weights (the parent
      weights attributed to earlier liquidations, `offspring_weights`) divided by the number of events, in [0, 1).
      On a whole run's graph this is the mean endogenous share of the events: the share of events that are
      direct offspring of earlier liquidations' sales (fractionally: an event whose loss was 30% caused by
      liquidation sales counts 0.3). It is not the share of events flagged endogenous (share >= the threshold),
      and it leaves out offspring through other traders' reactions to liquidation-driven moves (booked as
      "other" by the attribution), which a Hawkes branching ratio of liquidation times includes: it is a lower
      bound of that n, and nearer to it when traders do not react.
    Cascades are the trees of the main-parent forest: size = events in a tree, depth = longest root-leaf path.
    """
    n = g.number_of_nodes()
    if n == 0:
        return {
            "reflexivity_index": float("nan"),
            "branching_ratio": float("nan"),
            "largest_cascade": 0,
            "max_cascade_depth": 0,
            "n_cascades": 0,
        }
    volume = np.array([g.nodes[v].get("repaid_usd", 0.0) for v in g.nodes])
    endo = np.array([bool(g.nodes[v].get("endogenous", False)) for v in g.nodes])
    total = volume.sum()
    reflexivity = float(volume[endo].sum() / total) if total > 0 else float(endo.mean())
    branching = float(sum(offspring_weights(g).values()) / n)
    forest = main_parent_forest(g)
    sizes, depths = cascade_sizes(forest)
    return {
        "reflexivity_index": reflexivity,
        "branching_ratio": branching,
        "largest_cascade": int(max(sizes)),
        "max_cascade_depth": int(max(depths)),
        "n_cascades": len(sizes),
    }


def cascade_sizes(forest: nx.DiGraph) -> tuple[list[int], list[int]]:
    """Size and depth of every tree (root = node without parent) of a main-parent forest."""
    sizes, depths = [], []
    for root in (v for v in forest.nodes if forest.in_degree(v) == 0):
        lengths = nx.single_source_shortest_path_length(forest, root)
        sizes.append(len(lengths))
        depths.append(max(lengths.values()))
    return sizes, depths


def venue_metrics(g: nx.DiGraph) -> dict[str, float]:
    """Per venue v (lending, perp): n_events_v (its liquidation nodes) and branching_ratio_v (expected offspring
    of the earlier liquidations of either venue per event of v: the mean offspring weight of its nodes, NaN without
    any); cross_venue_edges: edges whose parent and child are on different venues (a spot liquidation sale moving
    the index under a perp position, or a perp close reaching a lending account). A node without `venue` is a
    lending one."""
    weights = offspring_weights(g)
    venue = {v: g.nodes[v].get("venue", "lending") for v in g.nodes}
    out: dict[str, float] = {}
    for name in VENUES:
        mine = [weights[v] for v in g.nodes if venue[v] == name]
        out[f"n_events_{name}"] = len(mine)
        out[f"branching_ratio_{name}"] = float(np.mean(mine)) if mine else float("nan")
    out["cross_venue_edges"] = sum(1 for u, v in g.edges if venue[u] != venue[v])
    return out


CASCADE_COLUMNS = [
    "root",
    "size",
    "depth",
    "volume_usd",
    "first_step",
    "last_step",
    "n_perp",
    "adl_fills",
    "adl_volume_usd",
]


def cascade_table(g: nx.DiGraph) -> pd.DataFrame:
    """One row per cascade (tree of the main-parent forest): root event, size (liquidation events, both venues),
    depth (longest root-leaf path), volume_usd (liquidated USD in the tree: repaid, or perp notional closed), first
    and last step, n_perp (perp liquidations in it), adl_fills and adl_volume_usd (the ADL fills its bankrupt perp
    liquidations caused, and their USD at the bankruptcy price)."""
    forest = main_parent_forest(g)
    rows = []
    for root in (v for v in forest.nodes if forest.in_degree(v) == 0):
        lengths = nx.single_source_shortest_path_length(forest, root)
        nodes = [forest.nodes[v] for v in lengths]
        steps = [d.get("step", 0) for d in nodes]
        rows.append(
            {
                "root": int(root),
                "size": len(lengths),
                "depth": max(lengths.values()),
                "volume_usd": float(sum(d.get("repaid_usd", 0.0) for d in nodes)),
                "first_step": int(min(steps)),
                "last_step": int(max(steps)),
                "n_perp": sum(1 for d in nodes if d.get("venue") == "perp"),
                "adl_fills": int(sum(d.get("adl_fills", 0) for d in nodes)),
                "adl_volume_usd": float(sum(d.get("adl_volume_usd", 0.0) for d in nodes)),
            }
        )
    return pd.DataFrame(rows, columns=CASCADE_COLUMNS)
