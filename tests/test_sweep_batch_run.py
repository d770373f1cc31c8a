"""The model works with Mesa's own sweep tool, `mesa.batch_run` (keyword parameters, `__` for dots)."""

from __future__ import annotations

import multiprocessing

import mesa

from abm import ReflexivityModel


def test_mesa_batch_run() -> None:
    method = multiprocessing.get_start_method(allow_none=True)
    try:
        results = mesa.batch_run(
            ReflexivityModel,
            parameters={
                "preset": "baseline",
                "traders__n_traders": 30,
                "steps": 20,
                "traders__max_leverage": [2.0, 3.0],
            },
            rng=[1, 2],
            max_steps=20,
            number_processes=1,
            data_collection_period=-1,
            display_progress=False,
        )
        again = mesa.batch_run(
            ReflexivityModel,
            parameters={"preset": "baseline", "traders__n_traders": 30, "steps": 20, "traders__max_leverage": 2.0},
            rng=[1],
            max_steps=20,
            number_processes=1,
            data_collection_period=-1,
            display_progress=False,
        )
    finally:
        multiprocessing.set_start_method(method, force=True)  # batch_run forces "spawn" for the whole process
    assert len(results) == 4
    assert {(r["traders__max_leverage"], r["rng"]) for r in results} == {(2.0, 1), (2.0, 2), (3.0, 1), (3.0, 2)}
    for r in results:
        assert r["Step"] == 20 and "price_ETH" in r and "bad_debt_usd" in r
    first = next(r for r in results if r["traders__max_leverage"] == 2.0 and r["rng"] == 1)
    assert first["price_ETH"] == again[0]["price_ETH"]  # same parameters and seed -> same result
