"""Experiment files: parse, validate, expand into points and runs (docs/sweeps.md).

An experiment is a TOML file::

    name = "leverage_vs_depth"
    description = "..."
    base = "crash"                 # a preset name, or: config = "path/to/config.toml" (relative to this file)
    steps = 600                    # run length (steps); optional, default: the configuration's
    replicates = 4                 # seeds per point
    base_seed = 20240312           # run i's seed comes from SeedSequence(base_seed) and i
    save_timeseries = [0, 5]       # optional: run indices whose full tables are saved, or "all"
    twin = "unlevered"             # optional: every run also runs its counterfactual twin on the same news
                                   # (abm.run.TWINS); the row gets twin_shock_drawdown_A, forced_selling_drawdown_A

    [overrides]                    # dotted names -> value, applied to every run
    "traders.n_traders" = 300

    [grid]                         # full factorial; the last name varies fastest
    "traders.max_leverage" = [2.0, 3.0, 5.0]
    "market.depth_scale" = [0.25, 1.0]

    # or, instead of [grid], a sampled design:
    [design]
    kind = "sobol"                 # or "latin_hypercube"
    n = 32                         # samples (sobol: SALib's base N, a power of 2)
    [design.bounds]
    "traders.max_leverage" = [1.5, 6.0]

    # or a list of cases, each its own configuration (the column `case` holds the label):
    [cases.crash]
    base = "crash"                 # this case's preset (or config = "file.toml"); default: the top-level base
    [cases."crash, max_leverage 3"]
    base = "crash"
    "traders.max_leverage" = 3.0   # every other key is a dotted override of this case

    [outputs]                      # optional: what is kept of each run besides its row (abm.sweep.outputs)
    tables = ["events", "cascades"]   # per-run tables -> OUT/events.parquet, OUT/cascades.parquet
    metrics = ["hawkes"]              # extra metric columns of runs.parquet

    [report]                       # optional: what `abm report` shows
    metrics = ["amplification_ETH", "bad_debt_usd"]
    optional_metrics = ["pre_shock_liquidations"]  # shown when the runs have them (not checked here)
    x = "traders.max_leverage"     # the heatmap's / line plot's x axis (default: the first grid name)
    y = "market.depth_scale"       # the heatmap's y axis / line plot's hue (default: the second)

Everything is checked before any run starts: every point's configuration is built and validated, so a typo or
a bad value is a one-line `UserInputError`/`ConfigError` that names the field, the value and the rule.

Runs are numbered point-major: run index = point index * replicates + replicate. Replicate r of every point gets
the seed ``SeedSequence(base_seed).spawn(r + 1)[r].generate_state(1)[0]`` (see `seed_for`), so points are compared
on common random numbers (``common_random_numbers = false``: run i gets ``seed_for(base_seed, i)``), and a result
never depends on the order in which runs execute or on the backend that runs them.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tomli_w

from abm.config import ModelConfig, parameter_names, preset_names
from abm.config import loader as config_loader
from abm.errors import ConfigError, UserInputError

TOP_KEYS = (
    "name",
    "description",
    "base",
    "config",
    "steps",
    "replicates",
    "base_seed",
    "save_timeseries",
    "twin",
    "common_random_numbers",
    "overrides",
    "grid",
    "design",
    "cases",
    "outputs",
    "report",
)
DESIGN_KEYS = ("kind", "n", "bounds", "seed", "calc_second_order")
DESIGN_KINDS = ("latin_hypercube", "sobol")
REPORT_KEYS = ("metrics", "optional_metrics", "x", "y")
OUTPUT_KEYS = ("tables", "metrics")
CASE_KEYS = ("base", "config")  # besides dotted overrides
CASE_COLUMN = "case"  # the parameter column of a case design
MAX_RUNS = 1_000_000
CASE_CONFIG_DIR = "case_configs"  # OUT/case_configs/case-NNN.toml: each case's resolved base configuration

DesignKind = Literal["grid", "latin_hypercube", "sobol", "cases", "single"]


def seed_for(base_seed: int, run_index: int) -> int:
    """Seed of run `run_index`: ``SeedSequence(base_seed).spawn(n)[run_index].generate_state(1)[0]``.

    A spawned child depends only on the parent's entropy and its own index, so this equals the `spawn` form for
    every n > run_index and never depends on how many runs there are, their order, or the backend.
    """
    child = np.random.SeedSequence(base_seed, spawn_key=(run_index,))
    return int(child.generate_state(1)[0])


@dataclass(frozen=True)
class Design:
    """A sampled design: `kind`, `n` samples (sobol: SALib's base N), bounds per dotted name, sampler seed."""

    kind: Literal["latin_hypercube", "sobol"]
    n: int
    bounds: dict[str, tuple[float, float]]
    seed: int
    calc_second_order: bool = False
    integer: tuple[str, ...] = ()  # integer-valued parameters: samples are rounded to the nearest integer

    def problem(self) -> dict[str, Any]:
        """The SALib problem dict."""
        names = list(self.bounds)
        return {"num_vars": len(names), "names": names, "bounds": [list(self.bounds[k]) for k in names]}

    def sample(self) -> np.ndarray:
        """The sample matrix (points x parameters), before integer rounding."""
        if self.kind == "sobol":
            from SALib.sample import sobol

            return sobol.sample(
                self.problem(), self.n, calc_second_order=self.calc_second_order, scramble=True, seed=self.seed
            )
        from SALib.sample import latin

        return latin.sample(self.problem(), self.n, seed=self.seed)


@dataclass(frozen=True)
class Case:
    """One case of a case design: its own base configuration and overrides (on top of the experiment's)."""

    label: str
    base_config: ModelConfig  # the case's preset or config file, fully resolved
    base_label: str  # "preset crash" or "config path"
    overrides: dict[str, Any]


@dataclass(frozen=True)
class Outputs:
    """Named per-run tables and extra metrics (`abm.sweep.outputs`) kept by every run of the experiment."""

    tables: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tables or self.metrics)

    def as_dict(self) -> dict[str, list[str]]:
        return {"tables": list(self.tables), "metrics": list(self.metrics)}


@dataclass
class Experiment:
    """A validated experiment: base configuration, points, replicates, seeds. Build with `load_experiment`."""

    name: str
    description: str
    source: Path | None
    base_config: ModelConfig  # the preset or config file, fully resolved, before the experiment's overrides
    base_label: str  # "preset crash" or "config path"
    overrides: dict[str, Any]  # applied to every run (includes `steps` when the experiment sets it)
    replicates: int
    base_seed: int
    kind: DesignKind
    grid: dict[str, list[Any]] = field(default_factory=dict)
    design: Design | None = None
    cases: dict[str, Case] = field(default_factory=dict)
    outputs: Outputs = field(default_factory=Outputs)
    points: list[dict[str, Any]] = field(default_factory=list)
    save_timeseries: frozenset[int] | Literal["all"] = frozenset()
    report: dict[str, Any] = field(default_factory=dict)
    steps: int = 0  # run length of every run (steps)
    twin: str | None = None  # counterfactual twin of every run (abm.run.TWINS), or None
    # seeds by replicate (the default): replicate r of every point gets the same seed, so the points are compared
    # on the same news (paired differences); off, every run has a seed of its own
    common_random_numbers: bool = True
    base_dir: Path = field(default_factory=Path.cwd)  # relative paths in override values resolve from here
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    # --- sizes and identities ------------------------------------------------------------------------------

    @property
    def parameters(self) -> list[str]:
        """The dotted names that vary between points (the parameter columns of runs.parquet)."""
        if self.design is not None:
            return list(self.design.bounds)
        if self.cases:
            return [CASE_COLUMN]
        return list(self.grid)

    @property
    def n_points(self) -> int:
        return len(self.points)

    @property
    def n_runs(self) -> int:
        return len(self.points) * self.replicates

    def run_point(self, run_index: int) -> tuple[int, int]:
        """(point index, replicate) of a run index."""
        return divmod(run_index, self.replicates)

    def seed(self, run_index: int) -> int:
        """The run's seed: the replicate's, `seed_for(base_seed, replicate)`, shared by every point; without
        `common_random_numbers`, the run's own, `seed_for(base_seed, run_index)`."""
        if self.common_random_numbers:
            return seed_for(self.base_seed, self.run_point(run_index)[1])
        return seed_for(self.base_seed, run_index)

    def saves_timeseries(self, run_index: int) -> bool:
        return self.save_timeseries == "all" or run_index in self.save_timeseries

    def point_config(self, point: int) -> ModelConfig:
        """The validated configuration of one point (base + overrides + the point's values; a case: the case's
        base + the experiment's overrides + the case's)."""
        if self.cases:
            case = self.cases[self.points[point][CASE_COLUMN]]
            return _build(case.base_config, {**self.overrides, **case.overrides}, self.base_dir, f"case {case.label!r}")
        return _build(self.base_config, {**self.overrides, **self.points[point]}, self.base_dir, f"point {point}")

    def identity(self) -> dict[str, str]:
        """Hashes of what determines the runs (not the name, description, report or save_timeseries)."""
        parts = {
            "base configuration": self.base_config.model_dump(mode="json"),
            "overrides": self.overrides,
            "points": self.points,
            "replicates": self.replicates,
            "base_seed": self.base_seed,
        }
        parts["common_random_numbers"] = self.common_random_numbers
        if self.cases:  # only when present, so experiments without them keep their fingerprints
            parts["cases"] = {
                c.label: {"base configuration": c.base_config.model_dump(mode="json"), "overrides": c.overrides}
                for c in self.cases.values()
            }
        if self.outputs:
            parts["outputs"] = self.outputs.as_dict()
        if self.twin is not None:  # only when set, so experiments without one keep their fingerprints
            parts["twin"] = self.twin
        return {k: _digest(v) for k, v in parts.items()}

    def fingerprint(self) -> str:
        return _digest(self.identity())

    def first_config(self) -> ModelConfig:
        """The base configuration of the first case (of a case design), else the experiment's base."""
        return next(iter(self.cases.values())).base_config if self.cases else self.base_config

    # --- writing -------------------------------------------------------------------------------------------

    def case_config_files(self) -> dict[str, str]:
        """Case label -> the file (relative to OUT) that holds the case's resolved base configuration."""
        return {label: f"{CASE_CONFIG_DIR}/case-{i:03d}.toml" for i, label in enumerate(self.cases)}

    def resolved_toml(self, config_file: str = "base_config.toml") -> str:
        """This experiment as a runnable TOML file whose base is `config_file` (the resolved base config) and whose
        cases' bases are the files of `case_config_files`."""
        out: dict[str, Any] = {"name": self.name, "description": self.description, "config": config_file}
        out["replicates"] = self.replicates
        out["base_seed"] = self.base_seed
        if not self.cases or "steps" in self.overrides:
            out["steps"] = self.steps
        if self.save_timeseries == "all":
            out["save_timeseries"] = "all"
        elif self.save_timeseries:
            out["save_timeseries"] = sorted(self.save_timeseries)
        if self.twin is not None:
            out["twin"] = self.twin
        out["common_random_numbers"] = self.common_random_numbers
        overrides = {k: v for k, v in self.overrides.items() if k != "steps"}
        if overrides:
            out["overrides"] = overrides
        if self.grid:
            out["grid"] = self.grid
        if self.design is not None:
            d = self.design
            out["design"] = {
                "kind": d.kind,
                "n": d.n,
                "seed": d.seed,
                "bounds": {k: list(v) for k, v in d.bounds.items()},
            }
            if d.kind == "sobol":
                out["design"]["calc_second_order"] = d.calc_second_order
        if self.cases:
            files = self.case_config_files()
            out["cases"] = {c.label: {"config": files[c.label], **c.overrides} for c in self.cases.values()}
        if self.outputs:
            out["outputs"] = self.outputs.as_dict()
        if self.report:
            out["report"] = self.report
        header = (
            f"# resolved experiment '{self.name}' (base: {self.base_label}); re-run with `abm sweep` on this file\n"
        )
        return header + tomli_w.dumps(out)

    def metadata(self) -> dict[str, Any]:
        """What the report needs without re-validating every point (written to OUT/sweep.json)."""
        meta: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "base": self.base_label,
            "kind": self.kind,
            "parameters": self.parameters,
            "n_points": self.n_points,
            "replicates": self.replicates,
            "n_runs": self.n_runs,
            "steps": self.steps,
            "base_seed": self.base_seed,
            "overrides": self.overrides,
            "report": self.report,
            "fingerprint": self.fingerprint(),
            "identity": self.identity(),
            "risky_assets": self.first_config().symbols[1:],
            "outputs": self.outputs.as_dict(),
            "twin": self.twin,
            "common_random_numbers": self.common_random_numbers,
        }
        if self.cases:
            meta["cases"] = {
                c.label: {"base": c.base_label, "overrides": c.overrides, "steps": self.point_config(i).steps}
                for i, c in enumerate(self.cases.values())
            }
        if self.grid:
            meta["grid"] = self.grid
        if self.design is not None:
            meta["design"] = {
                "kind": self.design.kind,
                "n": self.design.n,
                "seed": self.design.seed,
                "calc_second_order": self.design.calc_second_order,
                "bounds": {k: list(v) for k, v in self.design.bounds.items()},
                "integer": list(self.design.integer),
            }
        return meta


# --- loading ------------------------------------------------------------------------------------------------


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file; raise a one-line `UserInputError`/`ConfigError` on any problem."""
    from abm.io import read_text_file

    p = Path(path)
    return parse_experiment(read_text_file(p, "experiment file", UserInputError), source=p)


def parse_experiment(text: str, source: Path | None = None) -> Experiment:
    """Validate experiment TOML text. Relative paths in it are relative to `source`'s folder (else the cwd)."""
    label = str(source) if source is not None else "experiment"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"{label}: malformed TOML: {exc}") from None
    base_dir = source.resolve().parent if source is not None else Path.cwd()
    try:
        exp = _validate(data, label, base_dir, default_name=source.stem if source is not None else "experiment")
        exp.source = source
        return exp
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    except UserInputError as exc:
        raise UserInputError(f"{label}: {exc}") from None


def _validate(data: dict[str, Any], label: str, base_dir: Path, default_name: str) -> Experiment:
    _check_keys(data, TOP_KEYS, "")
    name = _string(data, "name", default_name)
    if not name or any(c in name for c in "/\\\n"):
        raise UserInputError(f"name = {name!r}: must be a non-empty name without slashes or newlines")
    description = _string(data, "description", "")

    # --- the base configuration ---------------------------------------------------------------------------
    base_config, base_label = _base(data, base_dir, "")
    valid_names = parameter_names(base_config)

    replicates = _int(data, "replicates", 1, lo=1)
    base_seed = _int(data, "base_seed", 0, lo=0)
    if base_seed >= 2**128:
        raise UserInputError(f"base_seed = {base_seed}: must be < 2**128")
    from abm.run import check_twin  # the model's import chain, only once a file is being validated

    twin = check_twin(data.get("twin"))
    common = data.get("common_random_numbers", True)
    if not isinstance(common, bool):
        raise UserInputError(f"common_random_numbers = {common!r}: must be true or false")

    # --- overrides ----------------------------------------------------------------------------------------
    overrides = _flat_table(data.get("overrides", {}), "overrides", valid_names)
    if "steps" in data:
        steps = _int(data, "steps", 0, lo=1)
        if "steps" in overrides:
            raise UserInputError("steps is set both at the top level and in [overrides]; keep one")
        overrides["steps"] = steps

    # --- grid, design or cases ----------------------------------------------------------------------------
    given = [k for k in ("grid", "design", "cases") if k in data]
    if len(given) > 1:
        raise UserInputError(
            f"give one of [grid] (a full factorial), [design] (a sampled design) or [cases] (a case list), not both "
            f"[{given[0]}] and [{given[1]}]"
        )
    grid: dict[str, list[Any]] = {}
    design: Design | None = None
    cases: dict[str, Case] = {}
    if "grid" in data:
        grid = _grid(data["grid"], valid_names, overrides)
        kind: DesignKind = "grid"
        points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*grid.values())]
    elif "design" in data:
        design = _design(data["design"], valid_names, overrides, base_config, base_seed)
        kind = design.kind
        points = _design_points(design)
    elif "cases" in data:
        cases = _cases(data["cases"], data, base_dir, overrides)
        kind = "cases"
        if "base" not in data and "config" not in data:
            base_label = "each case's own"
        points = [{CASE_COLUMN: label} for label in cases]
    else:
        kind = "single"
        points = [{}]
    if len(points) * replicates > MAX_RUNS:
        raise UserInputError(
            f"{len(points)} points x {replicates} replicates = {len(points) * replicates} runs: must be <= {MAX_RUNS}"
        )

    # --- save_timeseries and report --------------------------------------------------------------------------
    n_runs = len(points) * replicates
    save = _save_timeseries(data.get("save_timeseries"), n_runs)
    outputs = _outputs(data.get("outputs", {}))
    report = _report(data.get("report", {}), list(grid or (design.bounds if design else {})))

    exp = Experiment(
        name=name,
        description=description,
        source=None,
        base_config=base_config,
        base_label=base_label,
        overrides=overrides,
        replicates=replicates,
        base_seed=base_seed,
        kind=kind,
        grid=grid,
        design=design,
        cases=cases,
        outputs=outputs,
        points=points,
        save_timeseries=save,
        report=report,
        twin=twin,
        common_random_numbers=common,
        base_dir=base_dir,
        raw=data,
    )

    # --- every point's configuration, validated before anything runs ----------------------------------------
    if cases:
        configs = [exp.point_config(i) for i in range(len(points))]
        common = configs[0]
        exp.steps = max(c.steps for c in configs)
    else:
        common = _build(base_config, overrides, base_dir, "[overrides]")
        exp.steps = common.steps
        where = "[grid]" if grid else "[design]"
        seen_ok: set[str] = set()
        for i, point in enumerate(points):
            key = _digest(point)
            if key in seen_ok:
                continue
            values = ", ".join(f"{k}={_short(v)}" for k, v in point.items())
            _build(base_config, {**overrides, **point}, base_dir, f"{where} point {i} ({values})")
            seen_ok.add(key)
    if report.get("metrics"):
        _check_metrics(report["metrics"], common, outputs.metrics, twin)
    return exp


def _build(base: ModelConfig, overrides: Mapping[str, Any], base_dir: Path, where: str) -> ModelConfig:
    try:
        return config_loader.build(base.model_dump(mode="python"), overrides, base_dir=base_dir)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _base(table: Mapping[str, Any], base_dir: Path, where: str) -> tuple[ModelConfig, str]:
    """The base configuration a table names (`base` = preset or `config` = file) and its label."""
    prefix = f"{where}." if where else ""
    if "base" in table and "config" in table:
        raise UserInputError(f"{where or 'experiment'}: give `base` (a preset name) or `config` (a file), not both")
    if "config" in table:
        cfg_path = Path(_string(table, "config", "", prefix))
        if not cfg_path.is_absolute():
            cfg_path = base_dir / cfg_path
        return ModelConfig.from_toml(cfg_path), f"config {cfg_path}"
    base = _string(table, "base", "baseline", prefix)
    if base not in preset_names():
        raise UserInputError(
            f"{prefix}base = {base!r}: unknown preset{_hint(base, preset_names())} (valid: {', '.join(preset_names())})"
        )
    return ModelConfig.from_preset(base), f"preset {base}"


def _cases(table: Any, data: Mapping[str, Any], base_dir: Path, overrides: Mapping[str, Any]) -> dict[str, Case]:
    """`[cases.<label>]` tables: each a base (its own `base`/`config`, else the experiment's) and dotted overrides."""
    if not isinstance(table, Mapping) or not table:
        raise UserInputError(f"[cases] = {_short(table)}: must hold at least one [cases.<label>] table")
    out: dict[str, Case] = {}
    for label, spec in table.items():
        where = f"cases.{label}"
        if not label.strip() or "\n" in label:
            raise UserInputError(f"[cases] label {label!r}: must be a non-empty one-line name")
        if not isinstance(spec, Mapping):
            raise UserInputError(f'{where} = {_short(spec)}: must be a table (base = "preset" and dotted overrides)')
        own = {k: spec[k] for k in CASE_KEYS if k in spec}
        base_config, base_label = _base(own or data, base_dir, where if own else "")
        rest = {k: v for k, v in spec.items() if k not in CASE_KEYS}
        case_overrides = _flat_table(rest, where, parameter_names(base_config))
        for name in case_overrides:
            if name in overrides:
                raise UserInputError(f"{where}.{name}: also set in [overrides] (or by `steps`); set it in one place")
        out[label] = Case(label=label, base_config=base_config, base_label=base_label, overrides=case_overrides)
    return out


def _outputs(table: Any) -> Outputs:
    from abm.sweep.outputs import METRICS, TABLES

    if not isinstance(table, Mapping):
        raise UserInputError(f"[outputs] must be a table, got {_short(table)}")
    _check_keys(table, OUTPUT_KEYS, "outputs")
    chosen: dict[str, tuple[str, ...]] = {}
    for key, registry, what in (("tables", TABLES, "table"), ("metrics", METRICS, "metric")):
        names = table.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UserInputError(f"outputs.{key} = {_short(names)}: must be a list of {what} names")
        valid = list(registry)
        for n in names:
            if n not in registry:
                raise UserInputError(
                    f"outputs.{key} = {_short(names)}: unknown {what} '{n}'{_hint(n, valid)} (valid: {', '.join(valid)})"
                )
        if len(set(names)) != len(names):
            raise UserInputError(f"outputs.{key} = {_short(names)}: names must be distinct")
        chosen[key] = tuple(names)
    return Outputs(tables=chosen["tables"], metrics=chosen["metrics"])


# --- pieces ---------------------------------------------------------------------------------------------------


def _check_keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise UserInputError(f"unknown key '{name}'{_hint(key, list(allowed))} (valid: {', '.join(allowed)})")


def _hint(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _string(data: Mapping[str, Any], key: str, default: str, prefix: str = "") -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise UserInputError(f"{prefix}{key} = {value!r}: must be a string")
    return value


def _int(data: Mapping[str, Any], key: str, default: int, lo: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserInputError(f"{key} = {value!r}: must be an integer")
    if value < lo:
        raise UserInputError(f"{key} = {value!r}: must be >= {lo}")
    return value


def _flat_table(table: Any, where: str, valid: list[str]) -> dict[str, Any]:
    """A TOML table of dotted names to values. Nested tables are flattened until a path is a parameter name,
    so `[overrides.traders] n_traders = 300` and `"traders.n_traders" = 300` mean the same."""
    if not isinstance(table, Mapping):
        raise UserInputError(f"[{where}] must be a table of dotted parameter names, got {table!r}")
    valid_set = set(valid)
    out: dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping) and path not in valid_set:
                walk(value, path + ".")
            else:
                if path in out:
                    raise UserInputError(f"[{where}] sets '{path}' twice")
                out[path] = value

    walk(table, "")
    return out


def _grid(table: Any, valid: list[str], overrides: Mapping[str, Any]) -> dict[str, list[Any]]:
    grid = _flat_table(table, "grid", valid)
    if not grid:
        raise UserInputError("[grid] is empty: give at least one dotted name = [values]")
    out: dict[str, list[Any]] = {}
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserInputError(f"[grid] {name} = {_short(values)}: must be a non-empty list of values")
        if name in overrides:
            raise UserInputError(f"[grid] {name}: also set in [overrides] (or by `steps`); set it in one place")
        # a list mixing integers and floats is read as floats (one column type in runs.parquet)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values) and any(
            isinstance(v, float) for v in values
        ):
            values = [float(v) for v in values]
        keys = [_digest(v) for v in values]
        if len(set(keys)) != len(keys):
            raise UserInputError(f"[grid] {name} = {_short(values)}: values must be distinct")
        out[name] = values
    return out


def _design(table: Any, valid: list[str], overrides: Mapping[str, Any], base: ModelConfig, base_seed: int) -> Design:
    if not isinstance(table, Mapping):
        raise UserInputError(f"[design] must be a table, got {table!r}")
    _check_keys(table, DESIGN_KEYS, "design")
    kind = table.get("kind")
    if kind not in DESIGN_KINDS:
        raise UserInputError(f"design.kind = {kind!r}: must be one of {', '.join(DESIGN_KINDS)}")
    n = _int(table, "n", 0, lo=2)
    if kind == "sobol" and n & (n - 1):
        lo = 1 << (n.bit_length() - 1)
        raise UserInputError(f"design.n = {n}: must be a power of 2 for a sobol design (e.g. {lo} or {2 * lo})")
    seed = _int(table, "seed", base_seed % 2**32, lo=0)
    if seed >= 2**32:
        raise UserInputError(f"design.seed = {seed}: must be < 2**32")
    second = table.get("calc_second_order", False)
    if not isinstance(second, bool):
        raise UserInputError(f"design.calc_second_order = {second!r}: must be true or false")
    if second and kind != "sobol":
        raise UserInputError('design.calc_second_order: only for kind = "sobol"')
    raw_bounds = _flat_table(table.get("bounds", {}), "design.bounds", valid)
    if not raw_bounds:
        raise UserInputError("[design.bounds] is empty: give dotted name = [lo, hi] for each sampled parameter")
    if kind == "sobol" and len(raw_bounds) < 2:
        raise UserInputError("[design.bounds]: a sobol design needs at least 2 parameters")
    current = _current_values(base)
    bounds: dict[str, tuple[float, float]] = {}
    integer: list[str] = []
    for name, b in raw_bounds.items():
        if (
            not isinstance(b, list)
            or len(b) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in b)
        ):
            raise UserInputError(f"design.bounds.{name} = {_short(b)}: must be [lo, hi] (two numbers)")
        lo, hi = float(b[0]), float(b[1])
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
            raise UserInputError(f"design.bounds.{name} = {_short(b)}: must be finite with lo < hi")
        if name in overrides:
            raise UserInputError(f"design.bounds.{name}: also set in [overrides] (or by `steps`); set it in one place")
        value = current.get(name)
        if name in current and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise UserInputError(f"design.bounds.{name}: parameter is not numeric (value {value!r}); use [grid]")
        if isinstance(value, int) and not isinstance(value, bool):
            integer.append(name)
        bounds[name] = (lo, hi)
    return Design(kind=kind, n=n, bounds=bounds, seed=seed, calc_second_order=second, integer=tuple(integer))


def _design_points(design: Design) -> list[dict[str, Any]]:
    sample = design.sample()
    points = []
    for row in sample:
        point: dict[str, Any] = {}
        for name, value in zip(design.bounds, row, strict=True):
            point[name] = int(np.rint(value)) if name in design.integer else float(value)
        points.append(point)
    return points


def _current_values(config: ModelConfig) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            flat[prefix[:-1]] = node

    walk(config.model_dump(mode="python"), "")
    return flat


def _save_timeseries(value: Any, n_runs: int) -> frozenset[int] | Literal["all"]:
    if value is None:
        return frozenset()
    if value == "all":
        return "all"
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise UserInputError(f'save_timeseries = {_short(value)}: must be "all" or a list of run indices')
    bad = [v for v in value if not 0 <= v < n_runs]
    if bad:
        raise UserInputError(f"save_timeseries = {_short(value)}: run index {bad[0]} is outside [0, {n_runs - 1}]")
    return frozenset(value)


def _report(table: Any, parameters: list[str]) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise UserInputError(f"[report] must be a table, got {table!r}")
    _check_keys(table, REPORT_KEYS, "report")
    out: dict[str, Any] = {}
    if "metrics" in table:
        metrics = table["metrics"]
        if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
            raise UserInputError(f"report.metrics = {_short(metrics)}: must be a non-empty list of summary names")
        out["metrics"] = list(metrics)
    if "optional_metrics" in table:
        extra = table["optional_metrics"]
        if not isinstance(extra, list) or not all(isinstance(m, str) for m in extra):
            raise UserInputError(f"report.optional_metrics = {_short(extra)}: must be a list of metric names")
        out["optional_metrics"] = list(extra)
    for axis in ("x", "y"):
        if axis in table:
            v = table[axis]
            if v not in parameters:
                raise UserInputError(
                    f"report.{axis} = {v!r}: must be a varied parameter{_hint(str(v), parameters)}"
                    f" (varied: {', '.join(parameters) or 'none'})"
                )
            out[axis] = v
    if "x" in out and out.get("x") == out.get("y"):
        raise UserInputError(f"report.y = {out['y']!r}: must differ from report.x")
    return out


def _check_metrics(
    metrics: list[str], config: ModelConfig, extra: tuple[str, ...] = (), twin: str | None = None
) -> None:
    """Metric names must be columns a run produces: RunResult.summary keys (with the `twin`'s), the sweep's
    derived metrics or the columns of the named `extra` metrics ([outputs] metrics)."""
    from abm.sweep.worker import metric_names

    known = metric_names(config, extra, twin)
    for m in metrics:
        if m not in known:
            raise UserInputError(f"report.metrics: unknown metric '{m}'{_hint(m, known)}")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=repr, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()
