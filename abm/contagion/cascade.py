"""The cascade graph (ex post; docs/contagion.md, "Cascade graph (ex post) and the attribution window"): one node
per liquidation event, edges from the liquidations whose sales caused a later account's loss of health, weighted by
their share of it. Its metrics measure reflexivity. Its branching ratio counts the direct channel only (a
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

NODE_ATTRIBUTES = ("step", "account", "owner", "repaid_usd", "endogenous", "endogenous_share", "bad_debt_usd")


def cascade_graph(events: pd.DataFrame, edges: Iterable[tuple[int, int, float]]) -> nx.DiGraph:
    """Build the DiGraph: nodes are event ids with their attributes; edge (parent, child) has `weight`, the parent's
    share of the child's liquidation-caused loss of health (a child's weights sum to 1 over all its parents). An
    edge whose parent or child is not an event in `events` is left out."""
    g = nx.DiGraph()
    cols = [c for c in NODE_ATTRIBUTES if c in events.columns]
    for rec in events[["event_id", *cols]].itertuples(index=False):
        attrs = {c: _plain(getattr(rec, c)) for c in cols}
        g.add_node(int(rec.event_id), **attrs)
    for parent, child, weight in edges:
        if parent in g and child in g:
            g.add_edge(int(parent), int(child), weight=float(weight))
    return g


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
    """reflexivity_index, branching_ratio, largest_cascade, max_cascade_depth, n_cascades.

    reflexivity_index: share of liquidated volume (USD repaid) in endogenous events, in [0, 1].
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


def cascade_table(g: nx.DiGraph) -> pd.DataFrame:
    """One row per cascade (tree of the main-parent forest): root event, size (events), depth (longest root-leaf
    path), volume_usd (repaid USD in the tree), first and last step."""
    forest = main_parent_forest(g)
    rows = []
    for root in (v for v in forest.nodes if forest.in_degree(v) == 0):
        lengths = nx.single_source_shortest_path_length(forest, root)
        steps = [forest.nodes[v].get("step", 0) for v in lengths]
        rows.append(
            {
                "root": int(root),
                "size": len(lengths),
                "depth": max(lengths.values()),
                "volume_usd": float(sum(forest.nodes[v].get("repaid_usd", 0.0) for v in lengths)),
                "first_step": int(min(steps)),
                "last_step": int(max(steps)),
            }
        )
    return pd.DataFrame(rows, columns=["root", "size", "depth", "volume_usd", "first_step", "last_step"])
