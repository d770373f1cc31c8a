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
    ('[outputs]\ntables = ["event"]\n', "outputs.tables = ['event']: unknown table 'event'", "did you mean 'events'"),
    ('[outputs]\nmetrics = ["hawks"]\n', "unknown metric 'hawks' (did you mean 'hawkes'?)", "(valid: hawkes"),
    ('[outputs]\ntables = "events"\n', "outputs.tables = 'events'", "must be a list of table names"),
    ('[outputs]\ntables = ["events", "events"]\n', "outputs.tables", "must be distinct"),
    ('[outputs]\ntable = ["events"]\n', "unknown key 'outputs.table'", "did you mean 'tables'"),
    ('[report]\nmetrics = ["hawkes_n_mle"]\n', "unknown metric 'hawkes_n_mle'", "report.metrics"),
    ('[report]\noptional_metrics = "x"\n', "report.optional_metrics = 'x'", "list of metric names"),
    ('[cases.a]\nbase = "crsh"\n', "cases.a.base = 'crsh'", "did you mean 'crash'"),
    ('[cases.a]\nbase = "crash"\nconfig = "c.toml"\n', "cases.a", "not both"),
    ("[cases]\na = 3\n", "cases.a = 3", "must be a table"),
    ('[grid]\n"market.depth_scale" = [1]\n[cases.a]\nbase = "crash"\n', "not both [grid] and [cases]", "one of"),
    (
        '[overrides]\n"traders.max_leverage" = 2\n[cases.a]\n"traders.max_leverage" = 3\n',
        "cases.a.traders.max_leverage",
        "one place",
    ),
    ('[cases.a]\n"traders.max_leverage" = 0.5\n', "case 'a'", "traders.max_leverage = 0.5"),
    ('twin = "levered"\n', "twin = 'levered'", "must be one of 'unlevered'"),
    ("twin = true\n", "twin = True", "must be one of 'unlevered'"),
    ('[report]\nmetrics = ["forced_selling_drawdown_ETH"]\n', "unknown metric 'forced_selling_drawdown_ETH'", "report"),
]
TWIN_BAD = len(BAD) - 3  # index of the first twin case


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


@pytest.mark.parametrize("case", [0, 2, 4, 21, 25, 33])
def test_cli_bad_experiment_exits_2_and_writes_nothing(tmp_path: Path, case: int) -> None:
    path = write(tmp_path, BAD[case][0])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abm: error: ") and BAD[case][1] in lines[0]
    assert not out.exists()


def test_cli_bad_twin_exits_2_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, BAD[TWIN_BAD][0])
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sweep", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0] == f"abm: error: {path}: twin = 'levered': " + (
        "must be one of 'unlevered', 'unhunted' (a counterfactual run of the same configuration and seed)"
    )
    assert not out.exists()


TWIN = TINY.replace("replicates = 2", 'replicates = 2\ntwin = "unlevered"') + (
    '\n[report]\nmetrics = ["forced_selling_drawdown_ETH", "twin_shock_drawdown_BTC", "pre_shock_max_gap_ETH"]\n'
)


def test_twin_is_part_of_the_experiment_and_its_identity(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, TWIN))
    assert exp.twin == "unlevered" and exp.metadata()["twin"] == "unlevered"
    plain = load_experiment(write(tmp_path, TINY, "plain.toml"))
    assert plain.twin is None and "twin" not in plain.identity()
    assert exp.identity()["points"] == plain.identity()["points"] and exp.fingerprint() != plain.fingerprint()
    out = tmp_path / "out"
    out.mkdir()
    (out / "base_config.toml").write_text(exp.base_config.to_toml())
    (out / "experiment.toml").write_text(exp.resolved_toml("base_config.toml"))
    again = load_experiment(out / "experiment.toml")
    assert again.twin == "unlevered" and again.fingerprint() == exp.fingerprint()


def test_sweep_worker_runs_the_same_twin_as_abm_run(tmp_path: Path) -> None:
    import abm
    from abm.sweep.worker import RunTask, execute

    exp = load_experiment(write(tmp_path, TWIN))
    config = exp.point_config(0).with_overrides({"steps": 300})
    task = RunTask(0, 0, 0, 5, 300, {}, config.model_dump(mode="python"), twin=exp.twin)
    row = execute(task).row
    assert row["status"] == "ok", row["error"]
    direct = abm.run(config, seed=5, steps=300, twin="unlevered", keep_model=False).summary
    for a in ("ETH", "BTC"):
        assert row[f"forced_selling_drawdown_{a}"] == direct[f"forced_selling_drawdown_{a}"]
        assert row[f"forced_selling_drawdown_{a}"] == row[f"shock_drawdown_{a}"] - row[f"twin_shock_drawdown_{a}"]


def test_cli_missing_experiment_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sweep", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "does not exist" in result.output
    assert not (tmp_path / "o").exists()


CASES = """
name = "cases"
replicates = 2
base_seed = 4

[overrides]
"traders.n_traders" = 40

[cases.crash]
base = "crash"

[cases."crash, leverage 6"]
base = "crash"
"traders.max_leverage" = 6.0
"traders.leverage_min" = 1.1

[cases.cycle]
base = "leverage_cycle"
[cases.cycle.traders]
max_leverage = 1.0
leverage_min = 1.0

[outputs]
tables = ["cascades"]
metrics = ["hawkes"]

[report]
metrics = ["n_liquidations", "hawkes_n_mle"]
"""


def test_case_design_points_configs_and_outputs(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, CASES))
    assert exp.kind == "cases" and exp.parameters == ["case"]
    assert exp.points == [{"case": "crash"}, {"case": "crash, leverage 6"}, {"case": "cycle"}]
    assert exp.n_runs == 6 and exp.run_point(3) == (1, 1)
    crash, lev6, cycle = (exp.point_config(i) for i in range(3))
    assert crash.name == "crash" and cycle.name == "leverage_cycle"
    assert crash.traders.n_traders == lev6.traders.n_traders == cycle.traders.n_traders == 40  # [overrides] too
    assert lev6.traders.max_leverage == 6.0 and lev6.traders.leverage_min == 1.1
    assert crash.traders.max_leverage == exp.cases["crash"].base_config.traders.max_leverage
    assert cycle.traders.max_leverage == 1.0  # nested case tables are dotted overrides too
    assert crash.steps == 1440 and cycle.steps == 10080  # each case runs its preset's length
    assert exp.outputs.tables == ("cascades",) and exp.outputs.metrics == ("hawkes",)
    meta = exp.metadata()
    assert meta["cases"]["cycle"] == {
        "base": "preset leverage_cycle",
        "overrides": {"traders.max_leverage": 1.0, "traders.leverage_min": 1.0},
        "steps": 10080,
    }
    assert meta["outputs"] == {"tables": ["cascades"], "metrics": ["hawkes"]}


def test_outputs_and_cases_are_part_of_the_experiments_identity(tmp_path: Path) -> None:
    base = load_experiment(write(tmp_path, CASES))
    fewer = load_experiment(write(tmp_path, CASES.replace('tables = ["cascades"]', "tables = []"), "b.toml"))
    other = load_experiment(write(tmp_path, CASES.replace('max_leverage" = 6.0', 'max_leverage" = 5.0'), "c.toml"))
    assert len({base.fingerprint(), fewer.fingerprint(), other.fingerprint()}) == 3
    # without [outputs] or cases, the identity is the runs' configurations and their seeds
    plain = load_experiment(write(tmp_path, TINY, "d.toml"))
    assert set(plain.identity()) == {
        "base configuration",
        "overrides",
        "points",
        "replicates",
        "base_seed",
        "common_random_numbers",
    }


def test_resolved_case_experiment_reruns_identically(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, CASES))
    out = tmp_path / "out"
    (out / "case_configs").mkdir(parents=True)
    (out / "base_config.toml").write_text(exp.base_config.to_toml())
    for label, name in exp.case_config_files().items():
        (out / name).write_text(exp.cases[label].base_config.to_toml())
    (out / "experiment.toml").write_text(exp.resolved_toml("base_config.toml"))
    again = load_experiment(out / "experiment.toml")
    assert again.fingerprint() == exp.fingerprint()
    assert [again.point_config(i) for i in range(3)] == [exp.point_config(i) for i in range(3)]


def test_common_random_numbers_give_every_point_the_replicates_seeds(tmp_path: Path) -> None:
    text = """
name = "paired"
base = "crash"
replicates = 3
base_seed = 11
{extra}
[grid]
"traders.max_leverage" = [2.0, 4.0]
"""
    (tmp_path / "own.toml").write_text(text.format(extra="common_random_numbers = false"))
    (tmp_path / "paired.toml").write_text(text.format(extra=""))
    own, paired = load_experiment(tmp_path / "own.toml"), load_experiment(tmp_path / "paired.toml")
    # on by default: replicate r of both points shares one seed, the replicate's; off: every run its own seed
    assert len({own.seed(i) for i in range(own.n_runs)}) == 6
    assert [paired.seed(i) for i in range(3)] == [paired.seed(i) for i in range(3, 6)]
    assert [paired.seed(i) for i in range(3)] == [own.seed(i) for i in range(3)]
    assert paired.fingerprint() != own.fingerprint()
    assert "common_random_numbers = true" in paired.resolved_toml()
    assert "common_random_numbers = false" in own.resolved_toml()
    (tmp_path / "bad.toml").write_text(text.format(extra='common_random_numbers = "yes"'))
    with pytest.raises(UserInputError, match="common_random_numbers = 'yes': must be true or false"):
        load_experiment(tmp_path / "bad.toml")
