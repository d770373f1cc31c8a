"""DebtRank (Battiston et al. 2012) on graphs whose answer is computed by hand."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from scipy import sparse

from abm.contagion.debtrank import debtrank, node_debtranks, propagate, propagate_channels


def test_chain_by_hand() -> None:
    # A -> B -> C: W_AB = 0.5, W_BC = 0.4; A defaults (h = 1). B: 0.5; C: 0.4 * 0.5 = 0.2.
    g = nx.DiGraph()
    g.add_edge("A", "B", weight=0.5)
    g.add_edge("B", "C", weight=0.4)
    res = debtrank(g, {"A": 1.0}, {"A": 1.0, "B": 1.0, "C": 1.0})
    assert res.nodes == ["A", "B", "C"]
    np.testing.assert_allclose(res.h_final, [1.0, 0.5, 0.2])
    assert res.debtrank == pytest.approx((0.5 + 0.2) / 3)
    assert res.rounds == 3  # A propagates, then B, then C (who has no one to hit)


def test_star_hub_and_leaf_by_hand() -> None:
    # hub H hits each of three leaves by 0.5; each leaf hits the hub by 0.2. Values: hub 0.4, leaves 0.2 each.
    w = np.zeros((4, 4))
    w[0, 1:] = 0.5
    w[1:, 0] = 0.2
    values = [0.4, 0.2, 0.2, 0.2]
    hub = debtrank(w, [1.0, 0, 0, 0], values)
    np.testing.assert_allclose(hub.h_final, [1.0, 0.5, 0.5, 0.5])
    assert hub.debtrank == pytest.approx(0.2 * 0.5 * 3)
    # a leaf: round 1, the hub gets 0.2; round 2, the hub sends 0.2 * 0.5 = 0.1 to each other leaf (the first
    # is inactive, already at 1); round 3, those two leaves send 0.1 * 0.2 back to the (inactive) hub, which
    # accumulates it but does not propagate again: hub 0.2 + 2 * 0.02 = 0.24.
    leaf = debtrank(w, [0, 1.0, 0, 0], values)
    np.testing.assert_allclose(leaf.h_final, [0.24, 1.0, 0.1, 0.1])
    assert leaf.debtrank == pytest.approx(0.4 * 0.24 + 0.2 * 0.1 * 2)
    assert leaf.rounds == 3


def test_cycle_propagates_once_no_double_counting() -> None:
    # A -> B -> C -> A with impact 1 each; A starts at 0.5. B: 0.5, C: 0.5, then A: min(1, 0.5 + 0.5) = 1,
    # but A has already propagated: it does not hit B again (else B would reach 1 and so on for ever).
    w = sparse.csr_array(np.array([[0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0]]))
    res = debtrank(w, [0.5, 0, 0], [1, 1, 1])
    np.testing.assert_allclose(res.h_final, [1.0, 0.5, 0.5])
    assert res.debtrank == pytest.approx((1.0 + 0.5 + 0.5) / 3 - 0.5 / 3)
    assert res.rounds == 3


def test_impacts_capped_at_one() -> None:
    # weight 3 is read as 1, and distress never exceeds 1 even with two full hits
    g = nx.DiGraph()
    g.add_edge(0, 2, weight=3.0)
    g.add_edge(1, 2, weight=0.7)
    res = debtrank(g, {0: 1.0, 1: 1.0}, [1, 1, 1])
    assert res.h_final[2] == 1.0
    assert res.debtrank == pytest.approx(1 / 3)


def test_undirected_graph_counts_both_ways_and_equal_default_values() -> None:
    g = nx.Graph()
    g.add_edge("x", "y", weight=0.3)
    assert debtrank(g, {"y": 1.0}).debtrank == pytest.approx(0.3 / 2)


def test_node_debtranks_match_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    dense = rng.random((40, 40)) * (rng.random((40, 40)) < 0.1)
    np.fill_diagonal(dense, 0.0)
    values = rng.random(40)
    batch = node_debtranks(sparse.csr_array(dense), values, chunk=7)
    single = [debtrank(dense, np.eye(40)[i], values).debtrank for i in range(40)]
    np.testing.assert_allclose(batch, single, atol=1e-12)


def test_propagate_many_shocks_at_once() -> None:
    w = sparse.csr_array(np.array([[0, 0.5], [0.25, 0]]))
    h, rounds = propagate(w, np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(h, [[1.0, 0.25], [0.5, 1.0]])
    assert rounds == 2


def test_channels_split_the_distress_by_the_edges_it_arrived_on() -> None:
    # chain 0 -> 1 -> 2 with the 0 -> 1 edge in two channels (0.3 + 0.2) and 1 -> 2 in the second only (0.4):
    # h1 = 0.5 (0.3 via A, 0.2 via B), h2 = 0.4 x 0.5 = 0.2 (all via B)
    a = sparse.csr_array(np.array([[0.0, 0.3, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    b = sparse.csr_array(np.array([[0.0, 0.2, 0.0], [0.0, 0.0, 0.4], [0.0, 0.0, 0.0]]))
    h0 = np.array([1.0, 0.0, 0.0])
    h, by_channel, rounds = propagate_channels([a, b], h0)
    assert h == pytest.approx([1.0, 0.5, 0.2]) and rounds == 3
    assert by_channel[0] == pytest.approx([0.0, 0.3, 0.0]) and by_channel[1] == pytest.approx([0.0, 0.2, 0.2])
    # the same final distress as the whole matrix, and the parts sum to the gain, also under the cap at 1:
    # 0.8 + 0.6 sent to node 1 is capped at 1, shared 4:3
    assert propagate(a + b, h0)[0] == pytest.approx(h)
    big_a, big_b = a * (0.8 / 0.3), b * 3.0
    h, by_channel, _ = propagate_channels([big_a, big_b], h0)
    assert h[1] == 1.0 and by_channel[:, 1] == pytest.approx([1.0 * 0.8 / 1.4, 1.0 * 0.6 / 1.4])
    assert by_channel.sum(axis=0) == pytest.approx(h - h0)
