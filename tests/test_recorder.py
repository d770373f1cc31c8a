"""The step recorder's table: what the model shows live (`datacollector.model_vars`, `recorder.row`) is the table
the run ends with, and a recorder stepped past its planned steps keeps every row."""

from __future__ import annotations

import math

import pytest

from abm import ModelConfig, ReflexivityModel
from abm.recording.recorder import COUNT_COLUMNS


def _same(a: float, b: float) -> bool:
    return type(a) is type(b) and (a == b or (math.isnan(a) and math.isnan(b)))


@pytest.mark.parametrize("preset", ["crash", "perp_crash", "dynamic_margin"])
def test_the_live_columns_and_the_last_row_are_the_final_table(preset: str) -> None:
    """At every step, `model_vars` (Mesa's shape: column -> list, ints for the counts) holds the rows so far and
    `recorder.row` the last one, equal to the rows of the table built at the end; with the perp venue's and the
    risk manager's columns too."""
    model = ReflexivityModel(ModelConfig.from_preset(preset, {"traders.n_traders": 40}), rng=4, steps=30)
    live, last = [], []
    for _ in range(30):
        model.step()
        data = model.datacollector.model_vars
        assert list(data) == model.recorder.columns and len(model.datacollector._collection_steps) == model.steps + 1
        live.append({c: list(data[c]) for c in data})
        last.append(model.recorder.row)
    table = model.datacollector.get_model_vars_dataframe()
    assert list(table.columns) == model.recorder.columns
    assert {c for c in table.columns if table[c].dtype == "int64"} == COUNT_COLUMNS & set(table.columns)
    assert all(table[c].dtype == "float64" for c in table.columns if c not in COUNT_COLUMNS)
    rows = table.to_dict("records")
    for t, (columns, row) in enumerate(zip(live, last, strict=True), start=1):
        assert row.keys() == rows[t].keys() and all(_same(row[c], rows[t][c]) for c in row)
        for c, values in columns.items():
            assert len(values) == t + 1
            assert all(_same(v, rows[s][c]) for s, v in enumerate(values))
    assert "price_ETH" in data and "no_such_column" not in data
    with pytest.raises(KeyError):
        data["no_such_column"]


def test_rows_past_the_planned_steps_are_kept() -> None:
    """Collecting more rows than the run planned (steps + 1) grows the table; earlier rows stay as they were."""
    model = ReflexivityModel(ModelConfig.from_preset("baseline", {"traders.n_traders": 20}), rng=1, steps=3)
    for _ in range(3):
        model.step()
    before = model.datacollector.get_model_vars_dataframe()
    for _ in range(5):  # the state no longer moves: each extra row repeats the last one
        model.recorder.compute_row()
        model.datacollector.collect(model)
    after = model.datacollector.get_model_vars_dataframe()
    assert len(after) == 9
    assert after.iloc[:4].equals(before)
    assert all(after.iloc[k].equals(before.iloc[3]) for k in range(4, 9))
