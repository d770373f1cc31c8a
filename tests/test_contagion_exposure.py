"""The exposure graph (docs/contagion.md, "Exposure graph (ex ante)"): layout, attributes, the sparse projection,
DebtRank on the model's structure."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pytest

import abm
from abm import ModelConfig
from abm.contagion.debtrank import account_debtrank, graph_debtrank
from abm.contagion.exposure import (
    ExposureArrays,
    account_projection,
    account_projection_arrays,
    exposure_graph,
    graph_from_arrays,
)


def make_arrays(coll: np.ndarray, debt: np.ndarray, depth: float = 1e6) -> ExposureArrays:
    n, a = coll.shape
    symbols = ["USD", "ETH", "BTC", "SOL"][:a]
    with np.errstate(divide="ignore", invalid="ignore"):
        lt = np.full(a, 0.8)
        hf = np.where(debt.sum(1) > 0, (coll * lt).sum(1) / debt.sum(1), np.inf)
    return ExposureArrays(
        symbols=symbols,
        account=np.arange(n),
        owner=np.arange(n),
        mode=["cross"] * n,
        coll_usd=coll.astype(float),
        debt_usd=debt.astype(float),
        hf=hf,
        liquidated=np.zeros(n, dtype=bool),
        depth_usd=np.array([np.inf] + [depth] * (a - 1)),
        prices=np.ones(a),
    )


def test_projection_by_hand() -> None:
    # USD, ETH, BTC. Longs: 0 (ETH 100), 1 (ETH 50, BTC 30), 2 (BTC 60); 3 is short ETH 40 (USD collateral).
    coll = np.array([[0, 100, 0], [0, 50, 30], [0, 0, 60], [90, 0, 0]])
    debt = np.array([[60, 0, 0], [50, 0, 0], [30, 0, 0], [0, 40, 0]])
    arr = make_arrays(coll, debt, depth=1000.0)
    pairs, overlap, impact = account_projection_arrays(arr, k=5)
    got = {tuple(p): (o, m) for p, o, m in zip(pairs.tolist(), overlap, impact, strict=True)}
    # same-side overlap only: the short (3) overlaps no long
    assert set(got) == {(0, 1), (1, 2)}
    assert got[(0, 1)][0] == pytest.approx(50.0)  # min(100, 50) on ETH long
    assert got[(1, 2)][0] == pytest.approx(30.0)  # min(30, 60) on BTC long
    assert got[(0, 1)][1] == pytest.approx(100 * 50 / 1000.0)  # x_i x_j / depth
    assert got[(1, 2)][1] == pytest.approx(30 * 60 / 1000.0)


def test_projection_keeps_the_k_strongest_like_brute_force_on_one_asset() -> None:
    rng = np.random.default_rng(0)
    n, k = 80, 3
    x = rng.pareto(1.5, n) + 0.1
    coll = np.zeros((n, 2))
    coll[:, 1] = x
    debt = np.zeros((n, 2))
    debt[:, 0] = 0.5 * x
    pairs, overlap, _ = account_projection_arrays(make_arrays(coll, debt), k=k)
    assert len(pairs) <= n * k
    g = nx.Graph()
    g.add_weighted_edges_from((int(i), int(j), o) for (i, j), o in zip(pairs, overlap, strict=True))
    for i in range(n):
        brute = np.sort(np.minimum(x[i], np.delete(x, i)))[::-1][:k]
        mine = np.sort([d["weight"] for _, _, d in g.edges(i, data=True)])[::-1][:k]
        np.testing.assert_allclose(mine, brute)  # its k strongest links are the best possible ones


def test_projection_is_sparse_and_fast_at_10k_accounts() -> None:
    rng = np.random.default_rng(1)
    n, k = 10_000, 5
    coll = np.zeros((n, 4))
    debt = np.zeros((n, 4))
    held = rng.permuted(np.tile([1, 1, 0], (n, 1)), axis=1).astype(bool)  # two of three assets each
    coll[:, 1:][held] = rng.pareto(1.5, 2 * n) + 1
    debt[:, 0] = 0.6 * coll.sum(1)
    arr = make_arrays(coll, debt)
    start = time.perf_counter()
    pairs, _, _ = account_projection_arrays(arr, k)
    g = graph_from_arrays(arr, k)
    elapsed = time.perf_counter() - start
    assert len(pairs) <= n * k
    assert elapsed < 10.0
    deg = np.bincount(pairs.ravel(), minlength=n)
    assert deg.min() >= k  # every account keeps its k links (and hubs gather more)
    assert g.number_of_nodes() == n + 2 * 4


@pytest.fixture(scope="module")
def run_result() -> abm.RunResult:
    cfg = ModelConfig.from_preset(
        "crash",
        {"traders.n_traders": 80, "traders.margin_mode_mix": {"cross": 0.5, "isolated": 0.3, "portfolio": 0.2}},
    )
    return abm.run(cfg, seed=3, steps=300)


def test_exposure_graph_layout_and_attributes(run_result: abm.RunResult) -> None:
    model = run_result.model
    assert model is not None
    g = run_result.exposure_graph(k=3)
    assert isinstance(g, nx.Graph) and not g.is_directed()
    kinds = nx.get_node_attributes(g, "kind")
    accounts = [v for v, kd in kinds.items() if kd == "account"]
    assert len(accounts) == model.engine.n
    assert {v for v, kd in kinds.items() if kd == "asset"} == {"asset:USD", "asset:ETH", "asset:BTC"}
    assert {v for v, kd in kinds.items() if kd == "reserve"} == {"reserve:USD", "reserve:ETH", "reserve:BTC"}
    for v in accounts:
        for attr in ("owner", "mode", "equity", "HF", "leverage", "liquidated"):
            assert attr in g.nodes[v]
    # liquidated flags are the accounts of the events
    flagged = {g.nodes[v]["account"] for v in accounts if g.nodes[v]["liquidated"]}
    assert flagged == set(run_result.events["account"])
    assert {g.nodes[v]["mode"] for v in accounts} == {"cross", "isolated", "portfolio"}
    # exposure edges carry collateral and debt values that add up to the engine's
    coll, debt = model.engine.values(model.oracle.prices)
    exp_edges = [(u, v, d) for u, v, d in g.edges(data=True) if d["kind"] == "exposure"]
    assert sum(d["collateral_usd"] for *_, d in exp_edges) == pytest.approx(coll.sum())
    assert sum(d["debt_usd"] for *_, d in exp_edges) == pytest.approx(debt.sum())
    borrow = sum(d["debt_usd"] for *_, d in g.edges(data=True) if d["kind"] == "borrow")
    assert borrow == pytest.approx(debt.sum())
    # HF and equity match the engine
    hf = model.engine.health(model.oracle.prices)
    some = accounts[:10]
    for v in some:
        a = g.nodes[v]["account"]
        assert g.nodes[v]["HF"] == pytest.approx(hf[a]) or (np.isinf(hf[a]) and np.isinf(g.nodes[v]["HF"]))
        assert g.nodes[v]["equity"] == pytest.approx(coll[a].sum() - debt[a].sum())
    # the projection is in the same graph (kind "overlap"), at most k per account
    proj = account_projection(g)
    assert proj.number_of_nodes() == len(accounts)
    assert 0 < proj.number_of_edges() <= 3 * len(accounts)
    assert all(d["kind"] == "overlap" and d["overlap_usd"] > 0 for *_, d in proj.edges(data=True))
    assert nx.get_node_attributes(g, "utilisation")["reserve:USD"] >= 0


def test_exposure_graph_default_k_and_graphml(run_result: abm.RunResult, tmp_path) -> None:
    model = run_result.model
    assert model is not None
    g = exposure_graph(model)
    assert g.graph["k"] == model.config.contagion.k_strongest
    nx.write_graphml(g, tmp_path / "exposure.graphml")
    back = nx.read_graphml(tmp_path / "exposure.graphml")
    assert back.number_of_edges() == g.number_of_edges()
    bare = exposure_graph(model, projection=False)
    assert not any(d["kind"] == "overlap" for *_, d in bare.edges(data=True))


def test_exposure_graph_at_an_earlier_step_re_simulates(run_result: abm.RunResult) -> None:
    g0 = run_result.exposure_graph(step=0)
    assert g0.graph["step"] == 0
    assert not any(d.get("liquidated") for _, d in g0.nodes(data=True))


def test_account_debtrank_on_the_model(run_result: abm.RunResult) -> None:
    model = run_result.model
    assert model is not None
    from abm.contagion.exposure import exposure_arrays

    table = account_debtrank(exposure_arrays(model), k=5)
    assert len(table) == model.engine.n
    assert table["debtrank"].between(0.0, 1.0).all()
    assert table["debtrank"].max() > 0
    # bigger accounts hurt the others more (rank correlation of size and DebtRank)
    pos = table[table["gross_exposure_usd"] > 0]
    assert pos["gross_exposure_usd"].corr(pos["debtrank"], method="spearman") > 0.3
    # the same from the graph
    g = exposure_graph(model, k=5)
    again = graph_debtrank(g).set_index("account")["debtrank"]
    np.testing.assert_allclose(again.loc[table["account"]].to_numpy(), table["debtrank"].to_numpy(), atol=1e-12)


def test_account_debtrank_for_the_largest_only(run_result: abm.RunResult) -> None:
    model = run_result.model
    assert model is not None
    from abm.contagion.exposure import exposure_arrays

    arrays = exposure_arrays(model)
    full = account_debtrank(arrays, k=5)
    part = account_debtrank(arrays, k=5, top=10)
    done = part["debtrank"].notna()
    assert done.sum() == 10
    assert set(part.loc[done, "account"]) == set(full.nlargest(10, "gross_exposure_usd")["account"])
    np.testing.assert_allclose(part.loc[done, "debtrank"], full.loc[done, "debtrank"])
