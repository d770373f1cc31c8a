"""The cascade graph (ex post, SPEC 4.2): one node per liquidation event, edges from the liquidations whose sales
caused a later account's loss of health, weighted by their share. Its metrics measure reflexivity.
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import numpy as np
import pandas as pd

NODE_ATTRIBUTES = ("step", "account", "owner", "repaid_usd", "endogenous", "endogenous_share", "bad_debt_usd")


def cascade_graph(events: pd.DataFrame, edges: Iterable[tuple[int, int, float]]) -> nx.DiGraph:
    """Build the DiGraph: nodes are event ids with their attributes; edge (parent, child) has `weight`."""
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
    """Each event keeps only its heaviest parent: a forest whose trees are the cascades."""
    forest = nx.DiGraph()
    forest.add_nodes_from(g.nodes(data=True))
    for node in g.nodes:
        preds = list(g.predecessors(node))
        if preds:
            best = max(preds, key=lambda p: (g.edges[p, node]["weight"], -p))
            forest.add_edge(best, node, weight=g.edges[best, node]["weight"])
    return forest


def cascade_metrics(g: nx.DiGraph) -> dict[str, float]:
    """reflexivity_index, branching_ratio, largest_cascade, max_cascade_depth, n_cascades.

    reflexivity_index: share of liquidated volume (USD repaid) in endogenous events, in [0, 1].
    branching_ratio: mean number of children per event, counting each child's parents by their weights
      (so it equals the Hawkes branching ratio: the share of events that are offspring).
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
    branching = float(sum(w for _, _, w in g.edges(data="weight")) / n)
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
