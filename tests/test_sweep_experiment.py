"""Experiment files: parsing, validation (one-line errors, exit 2, nothing written), points, designs, seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from abm.cli import main
from abm.errors import ConfigError, UserInputError
from abm.sweep.experiment import load_experiment, parse_experiment, seed_for

TINY = """
name = "tiny"
description = "test"
base = "crash"
steps = 60
replicates = 2
base_seed = 11

[overrides]
"traders.n_traders" = 50

[grid]
"traders.max_leverage" = [2.0, 3.0, 4.0]
"market.depth_scale" = [0.5, 1.0]
"""


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_grid_points_runs_and_overrides(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, TINY))
    assert exp.name == "tiny" and exp.kind == "grid"
    assert exp.parameters == ["traders.max_leverage", "market.depth_scale"]
    assert exp.n_points == 6 and exp.n_runs == 12
    # full factorial, last name fastest; run index = point * replicates + replicate
    assert exp.points[0] == {"traders.max_leverage": 2.0, "market.depth_scale": 0.5}
    assert exp.points[1] == {"traders.max_leverage": 2.0, "market.depth_scale": 1.0}
    assert exp.run_point(5) == (2, 1)
    cfg = exp.point_config(5)
    assert cfg.traders.max_leverage == 4.0 and cfg.market.depth_scale == 1.0
    assert cfg.traders.n_traders == 50 and cfg.steps == 60 and exp.steps == 60


def test_nested_override_tables_equal_dotted_names(tmp_path: Path) -> None:
    nested = TINY.replace('[overrides]\n"traders.n_traders" = 50', "[overrides.traders]\nn_traders = 50")
    a = load_experiment(write(tmp_path, TINY, "a.toml"))
    b = load_experiment(write(tmp_path, nested, "b.toml"))
    assert a.overrides == b.overrides and a.fingerprint() == b.fingerprint()


def test_seed_is_spawned_child_and_independent_of_size() -> None:
    n = 50
    children = np.random.SeedSequence(123).spawn(n)
    expected = [int(c.generate_state(1)[0]) for c in children]
    assert [seed_for(123, i) for i in range(n)] == expected
    assert [seed_for(123, i) for i in reversed(range(n))] == expected[::-1]  # no hidden state
    assert len(set(expected)) == n
    assert seed_for(124, 0) != expected[0]


def test_seeds_do_not_depend_on_the_grid(tmp_path: Path) -> None:
    a = load_experiment(write(tmp_path, TINY, "a.toml"))
    b = load_experiment(write(tmp_path, TINY.replace("[2.0, 3.0, 4.0]", "[2.0]"), "b.toml"))
    assert [a.seed(i) for i in range(4)] == [b.seed(i) for i in range(4)]


def test_latin_hypercube_design(tmp_path: Path) -> None:
    text = """
base = "baseline"
steps = 30
base_seed = 3
[design]
kind = "latin_hypercube"
n = 10
[design.bounds]
"traders.max_leverage" = [1.5, 5.0]
"oracles.latency_steps" = [0, 6]
"""
    exp = load_experiment(write(tmp_path, text))
    assert exp.kind == "latin_hypercube" and exp.n_points == 10
    lev = [p["traders.max_leverage"] for p in exp.points]
    lat = [p["oracles.latency_steps"] for p in exp.points]
    assert all(1.5 <= v <= 5.0 for v in lev)
    assert all(isinstance(v, int) and 0 <= v <= 6 for v in lat)  # integer field: rounded
    assert load_experiment(write(tmp_path, text, "again.toml")).points == exp.points  # reproducible


def test_sobol_design_size(tmp_path: Path) -> None:
    text = """
base = "baseline"
[design]
kind = "sobol"
n = 8
[design.bounds]
"traders.max_leverage" = [1.5, 5.0]
"market.depth_scale" = [0.25, 2.0]
"pool.close_factor" = [0.2, 1.0]
"""
    exp = load_experiment(write(tmp_path, text))
    assert exp.n_points == 8 * (3 + 2)  # N (D + 2) without second-order indices
    assert exp.design is not None and exp.design.problem()["num_vars"] == 3


def test_resolved_experiment_reruns_identically(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, TINY))
    out = tmp_path / "out"
    out.mkdir()
    (out / "base_config.toml").write_text(exp.base_config.to_toml())
    (out / "experiment.toml").write_text(exp.resolved_toml("base_config.toml"))
    again = load_experiment(out / "experiment.toml")
    assert again.fingerprint() == exp.fingerprint()
    assert again.points == exp.points and again.n_runs == exp.n_runs


BAD = [
    ('name = "x"\nsteps = \n', "malformed TOML", "line 2"),
    ("replicate = 2\n", "unknown key 'replicate'", "did you mean 'replicates'"),
    ('[grid]\n"traders.max_leverag" = [2, 3]\n', "unknown parameter 'traders.max_leverag'", "traders.max_leverage"),
    ('[overrides]\n"traders.n_trader" = 5\n', "unknown parameter 'traders.n_trader'", "traders.n_traders"),
    ('[grid]\n"traders.max_leverage" = [2, 0.5]\n', "traders.max_leverage = 0.5", "point 1"),
    ('[grid]\n"pool.reserves.ETH.ltv" = [0.5, 0.9]\n', "liquidation_threshold", "ltv = 0.9"),
    ("replicates = 0\n", "replicates = 0", ">= 1"),
    ("replicates = 1.5\n", "replicates = 1.5", "integer"),
    ('base = "crsh"\n', "base = 'crsh'", "did you mean 'crash'"),
    ('base = "crash"\nconfig = "x.toml"\n', "not both", "config"),
    ('config = "missing.toml"\n', "missing.toml", "does not exist"),
    ('[grid]\n"traders.max_leverage" = []\n', "traders.max_leverage", "non-empty list"),
    ('[grid]\n"traders.max_leverage" = 3\n', "traders.max_leverage = 3", "non-empty list"),
    ('[grid]\n"traders.max_leverage" = [2, 2.0]\n', "traders.max_leverage", "distinct"),
    ('[overrides]\n"traders.max_leverage" = 2\n[grid]\n"traders.max_leverage" = [2, 3]\n', "[overrides]", "one place"),
    ('[grid]\n"market.depth_scale" = [1]\n[design]\nkind = "sobol"\n', "[grid]", "not both"),
    ('[design]\nkind = "halton"\nn = 4\n', "design.kind = 'halton'", "latin_hypercube"),
    (
        '[design]\nkind = "sobol"\nn = 10\n[design.bounds]\n"market.depth_scale" = [1, 2]\n',
        "design.n = 10",
        "power of 2",
    ),
    (
        '[design]\nkind = "latin_hypercube"\nn = 4\n[design.bounds]\n"market.depth_scale" = [2, 1]\n',
        "[2, 1]",
        "lo < hi",
    ),
    (
        '[design]\nkind = "latin_hypercube"\nn = 4\n[design.bounds]\n"pool.bad_debt_policy" = [0, 1]\n',
        "bad_debt_policy",
        "numeric",
    ),
    ('[design]\nkind = "latin_hypercube"\nn = 4\nnn = 3\n', "unknown key 'design.nn'", "did you mean 'n'"),
    ("save_timeseries = [0, 9]\n", "save_timeseries", "run index 9 is outside [0, 0]"),
    ('save_timeseries = "some"\n', "save_timeseries", '"all"'),
    ('[grid]\n"market.depth_scale" = [1, 2]\n[report]\nx = "market.depth"\n', "report.x = 'market.depth'", "varied"),
    ('[report]\nmetrics = ["bad_debt"]\n', "unknown metric 'bad_debt'", "did you mean 'bad_debt_usd'"),
]


@pytest.mark.parametrize(("text", "part1", "part2"), BAD)
def test_bad_experiment_is_one_line_user_error(tmp_path: Path, text: str, part1: str, part2: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserInputError) as info:
        load_experiment(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert part1 in msg and part2 in msg, msg
    assert msg.startswith(str(path))


def test_unknown_parameter_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[grid\].*did you mean 'market.depth_scale'"):
        parse_experiment('[grid]\n"market.depth_scal" = [1, 2]\n')


@pytest.mark.parametrize("case", [0, 2, 4, 21])
def test_cli_bad_experiment_exits_2_and_writes_nothing(tmp_path: Path, case: int) -> None:
    path = write(tmp_path, BAD[case][0])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abm: error: ") and BAD[case][1] in lines[0]
    assert not out.exists()


def test_cli_missing_experiment_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "o").exists()
