"""One branching ratio: the cascade graph's (mean offspring per event) and its Hawkes estimate from distress onsets
with a baseline driven by the path prices took without liquidation sales (the book's threshold crossings along it)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from abm.contagion.cascade import cascade_graph, cascade_metrics, main_parent_forest, offspring_weights
from abm.contagion.hawkes import fit_hawkes_exogenous, lagged_covariates, simulate_discrete_hawkes, step_counts
from abm.contagion.liquidation_hawkes import (
    AMPLIFICATIONS,
    distress_onsets,
    fit_hawkes_liquidations,
    gross_exposure_weights,
    hawkes_branching_ratio,
    health_crossings,
    liquidation_covariates,
    pooled_hawkes_branching_ratio,
)

LT = np.array([0.78, 0.825])  # USD, ETH
ETH_PATH = np.array([3000.0, 3100.0, 3300.0, 2600.0, 2400.0, 2300.0, 2600.0, 2200.0])


def two_asset_books() -> tuple[np.ndarray, np.ndarray]:
    """Four accounts (tokens of USD, ETH):
    A long: 10 ETH against 20,000 USD of debt, HF = 10 p 0.825 / 20000 (1.2375 at 3000, 0.99 at 2400);
    B short: 25,000 USD against 6 ETH of debt, HF = 19500 / (6 p) (1.083 at 3000, 0.985 at 3300);
    C long, already under water at the start (HF 0.928 at 3000); D without debt."""
    coll = np.array([[0.0, 10.0], [25_000.0, 0.0], [0.0, 10.0], [5_000.0, 1.0]])
    debt = np.array([[20_000.0, 0.0], [0.0, 6.0], [26_660.0, 0.0], [0.0, 0.0]])
    return coll, debt


def prices(eth: np.ndarray) -> np.ndarray:
    return np.column_stack([np.ones(len(eth)), eth])


def amplified_crossings(coll: np.ndarray, debt: np.ndarray, path: np.ndarray) -> np.ndarray:
    """(steps, amplifications) `health_crossings` of frozen books along p_0 (p_t / p_0)^a for each of the
    model's amplifications a: a known stand-in for the columns a model run records for its live book."""
    return np.column_stack([health_crossings(coll, debt, LT, path[0] * (path / path[0]) ** a) for a in AMPLIFICATIONS])


def test_crossings_of_a_hand_built_pair() -> None:
    coll, debt = two_asset_books()
    got = health_crossings(coll, debt, LT, prices(ETH_PATH))
    # B crosses at step 2 (ETH 3300), A at step 4 (2400); A's second dip (step 7) is not a new crossing, C was
    # below 1 at the start and D has no debt
    np.testing.assert_array_equal(got, [0, 0, 1, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(health_crossings(coll, debt, LT, prices(ETH_PATH), chunk=1), got)
    # an amplified path (the ETH log move doubled) crosses earlier: A at step 3 (ETH 3000 (2600 / 3000)^2 = 2253,
    # HF 0.93), B still at step 2 (3630)
    rel = ETH_PATH / ETH_PATH[0]
    amplified = health_crossings(coll, debt, LT, prices(ETH_PATH[0] * rel**2))
    np.testing.assert_array_equal(amplified, [0, 0, 1, 1, 0, 0, 0, 0])
    assert health_crossings(coll[:0], debt[:0], LT, prices(ETH_PATH)).sum() == 0
    with pytest.raises(ValueError, match="liquidation_threshold must be"):
        health_crossings(coll, debt, LT[:1], prices(ETH_PATH))
    with pytest.raises(ValueError, match="debt_tokens must be finite and >= 0"):
        health_crossings(coll, -debt, LT, prices(ETH_PATH))


def test_gross_exposure_weights_are_shares_of_collateral_plus_debt() -> None:
    coll, debt = two_asset_books()
    # USD: 25,000 + 5,000 collateral and 20,000 + 26,660 debt; ETH: 21 tokens of collateral and 6 of debt at 3,000
    usd, eth = 76_660.0, 27 * 3000.0
    w = gross_exposure_weights(coll, debt, np.array([1.0, 3000.0]))
    np.testing.assert_allclose(w, [usd / (usd + eth), eth / (usd + eth)])
    np.testing.assert_allclose(gross_exposure_weights(coll[:0], debt[:0], np.array([1.0, 3000.0])), [0.5, 0.5])
    with pytest.raises(ValueError, match="one shape"):
        gross_exposure_weights(coll, debt[:2], np.array([1.0, 3000.0]))


def test_liquidation_covariates_columns() -> None:
    coll, debt = two_asset_books()
    crossings = amplified_crossings(coll, debt, prices(ETH_PATH))
    weights = gross_exposure_weights(coll, debt, prices(ETH_PATH)[0])
    x, names = liquidation_covariates(crossings, prices(ETH_PATH), weights, max_lag_steps=2)
    assert names[:4] == ("cross_x1_lag0", "cross_x1_lag1", "cross_x1_lag2", "cross_x1.5_lag0")
    assert names[-2:] == ("cross_x2_lag2", "abs_return_lag1")
    assert x.shape == (len(ETH_PATH), 3 * 3 + 1)
    np.testing.assert_array_equal(x[:, 1], [0, 0, 0, 1, 0, 1, 0, 0])  # the path's crossings one step late
    np.testing.assert_array_equal(x[:, 6], [0, 0, 1, 1, 0, 0, 0, 0])  # the doubled move crosses A a step earlier
    # |log return| at the previous step, weighted by gross exposure: ETH carries 51% of it at the start
    assert weights[1] == pytest.approx(0.51, abs=0.01)
    assert x[2, -1] == pytest.approx(weights[1] * np.log(3100.0 / 3000.0))
    with pytest.raises(ValueError, match="crossings must be"):
        liquidation_covariates(crossings[:, :2], prices(ETH_PATH), weights)
    with pytest.raises(ValueError, match="crossings must be"):
        liquidation_covariates(crossings[1:], prices(ETH_PATH), weights)
    with pytest.raises(ValueError, match="exposure_weights must be"):
        liquidation_covariates(crossings, prices(ETH_PATH), weights * 2)


def crash_books(n_accounts: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Long ETH books with health factors spread over 1.05-1.6 at ETH = 3000 (tokens of USD, ETH)."""
    hf = rng.uniform(1.05, 1.6, n_accounts)
    eth = rng.uniform(1.0, 100.0, n_accounts)
    coll = np.column_stack([np.zeros(n_accounts), eth])
    debt = np.column_stack([eth * 3000.0 * LT[1] / hf, np.zeros(n_accounts)])
    return coll, debt


@pytest.mark.parametrize(("n", "seed"), [(0.2, 11), (0.5, 12)])
def test_hawkes_branching_ratio_on_liquidations_driven_by_a_crash(n: float, seed: int) -> None:
    # 2,000 long books, a 30-step crash of ETH -40% at step 300 and a slow drift afterwards; each crossing along
    # the path brings a distress onset 1-3 steps later (oracle delays), each onset triggers Poisson(n) more; the
    # estimator, which sees only the onset steps, the crossings along the path and its amplifications and the
    # fundamentals, recovers n, where a constant baseline reads the crash as near-critical contagion
    rng = np.random.default_rng(seed)
    coll, debt = crash_books(2000, rng)
    steps = 1441
    eth = 3000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, steps)))
    eth[300:330] *= np.linspace(1.0, 0.6, 30)
    eth[330:] *= 0.6
    fund = prices(eth)
    crossings = amplified_crossings(coll, debt, fund)
    felt = lagged_covariates(crossings[:, 0], [1, 2, 3]) @ np.array([0.5, 0.3, 0.2])
    counts = simulate_discrete_hawkes(0.01 + felt, n, 0.5, rng)
    events = np.repeat(np.arange(steps), counts.astype(int))
    weights = gross_exposure_weights(coll, debt, fund[0])
    estimate = hawkes_branching_ratio(events, crossings, fund, weights)
    assert estimate == pytest.approx(n, abs=0.1)
    assert fit_hawkes_exogenous(step_counts(events, steps)).n > n + 0.25
    fit = fit_hawkes_liquidations(events, crossings, fund, weights)
    assert fit.n == estimate and fit.covariate_names[0] == "cross_x1_lag0"


def test_hawkes_branching_ratio_needs_enough_events() -> None:
    coll, debt = two_asset_books()
    fund = prices(ETH_PATH)
    crossings = amplified_crossings(coll, debt, fund)
    weights = gross_exposure_weights(coll, debt, fund[0])
    assert np.isnan(hawkes_branching_ratio(np.array([], dtype=int), crossings, fund, weights))
    assert np.isnan(hawkes_branching_ratio(np.arange(8).repeat(3), crossings, fund, weights))  # < 30
    with pytest.raises(ValueError, match="onset_steps must lie in"):
        fit_hawkes_liquidations(np.array([8]), crossings, fund, weights)
    with pytest.raises(ValueError, match="crossings must be"):
        fit_hawkes_liquidations(np.array([1]), np.vstack([crossings, crossings[:1]]), fund, weights)


def test_distress_onsets_count_each_episode_once() -> None:
    # account 7 is liquidated three times in one episode (onset 250) and once more after recovering (onset 300);
    # account 9 once
    events = pd.DataFrame(
        {"step": [252, 253, 260, 301, 255], "account": [7, 7, 7, 7, 9], "distress_step": [250, 250, 250, 300, 254]}
    )
    np.testing.assert_array_equal(distress_onsets(events), [250, 254, 300])
    assert len(distress_onsets(events.iloc[:0])) == 0


def test_pooled_fit_shares_one_branching_ratio_over_runs() -> None:
    # ten short runs of one crash design (n = 0.4): each run alone has a few dozen events, the pooled fit is close
    rng = np.random.default_rng(21)
    counts, covariates = [], []
    for _ in range(10):
        coll, debt = crash_books(300, rng)
        eth = 3000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, 400)))
        eth[100:130] *= np.linspace(1.0, 0.6, 30)
        eth[130:] *= 0.6
        fund = prices(eth)
        crossings = amplified_crossings(coll, debt, fund)
        felt = lagged_covariates(crossings[:, 0], [1, 2, 3]) @ [0.5, 0.3, 0.2]
        counts.append(simulate_discrete_hawkes(0.002 + felt, 0.4, 0.5, rng))
        covariates.append(liquidation_covariates(crossings, fund, gross_exposure_weights(coll, debt, fund[0]))[0])
    fit = pooled_hawkes_branching_ratio(counts, covariates)
    assert fit.n == pytest.approx(0.4, abs=0.1)
    assert fit.n_events == int(sum(c.sum() for c in counts))
    with pytest.raises(ValueError, match="same K"):
        pooled_hawkes_branching_ratio(counts[:2], [covariates[0], covariates[1][:, :3]])


# --- the cascade graph's branching ratio ---------------------------------------------------------------------


def graph_of(
    shares: list[float], edges: list[tuple[int, int, float]], ids: list[int] | None = None, threshold: float = 0.5
) -> nx.DiGraph:
    events = pd.DataFrame(
        {
            "event_id": range(len(shares)) if ids is None else ids,
            "step": range(len(shares)),
            "repaid_usd": 1.0,
            "endogenous": [s >= threshold for s in shares],
            "endogenous_share": shares,
        }
    )
    return cascade_graph(events, edges)


def test_branching_ratio_is_the_mean_offspring_weight() -> None:
    # event 1: 60% of its lost health from event 0's sale (endogenous, one parent); event 2: 20% from liquidation
    # sales (not endogenous: the recorder lists no parents, its share still counts); event 3: 80%, split 3:1
    # between events 1 and 2
    shares = [0.0, 0.6, 0.2, 0.8]
    g = graph_of(shares, [(0, 1, 1.0), (1, 3, 0.75), (2, 3, 0.25)])
    assert offspring_weights(g) == pytest.approx({0: 0.0, 1: 0.6, 2: 0.2, 3: 0.8})
    assert cascade_metrics(g)["branching_ratio"] == pytest.approx(np.mean(shares))  # 0.4, not 2/4 flagged
    # a parent that is not in the graph is not offspring in it: without event 1, event 3 keeps only event 2's
    # quarter of its 80%
    sub = graph_of([0.0, 0.2, 0.8], [(0, 1, 1.0), (1, 3, 0.75), (2, 3, 0.25)], ids=[0, 2, 3])
    assert sub.number_of_edges() == 1
    assert offspring_weights(sub) == pytest.approx({0: 0.0, 2: 0.2, 3: 0.2})
    assert cascade_metrics(sub)["branching_ratio"] == pytest.approx(0.4 / 3)


def test_parents_of_events_below_the_threshold_do_not_make_cascades() -> None:
    # a recorder that lists the parents of every event: event 2 (share 0.2) has a parent edge but is not endogenous
    g = graph_of([0.0, 0.6, 0.2], [(0, 1, 1.0), (1, 2, 1.0)])
    assert sorted(main_parent_forest(g).edges) == [(0, 1)]
    m = cascade_metrics(g)
    assert m["branching_ratio"] == pytest.approx(0.8 / 3)
    assert (m["largest_cascade"], m["n_cascades"]) == (2, 2)


def test_hand_built_graph_without_shares_uses_edge_weights() -> None:
    events = pd.DataFrame({"event_id": [0, 1, 2], "repaid_usd": [1.0, 1.0, 1.0]})
    g = cascade_graph(events, [(0, 1, 1.0), (0, 2, 0.5)])
    assert cascade_metrics(g)["branching_ratio"] == pytest.approx(0.5)
