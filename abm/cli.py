"""The `abm` command: run, sweep, report, app, presets.

User errors (bad configuration, unknown parameter, missing file) print one line and exit with status 2; nothing
is written. Bugs are not user errors and keep their traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from abm.errors import UserInputError

EXIT_USER_ERROR = 2
INTERRUPTED = 130  # the shells' status for a command ended by SIGINT (128 + 2)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn `UserInputError` into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserInputError as exc:
            click.echo(f"abm: error: {exc}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


def parse_sets(values: tuple[str, ...]) -> dict[str, Any]:
    """`--set key=value` pairs to a dict of dotted overrides (values read as TOML)."""
    from abm.config import parse_value

    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UserInputError(f"--set {item!r}: expected key=value, e.g. --set traders.max_leverage=5")
        out[key.strip()] = parse_value(raw.strip())
    return out


def load_config(preset: str | None, config_file: str | None, sets: tuple[str, ...]):
    from abm.config import ModelConfig

    if preset and config_file:
        raise UserInputError("give --preset or --config, not both")
    overrides = parse_sets(sets)
    if config_file:
        return ModelConfig.from_toml(config_file, overrides)
    return ModelConfig.from_preset(preset or "crash", overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="abm")
def main() -> None:
    """Agent-based model of reflexivity in leveraged crypto markets."""


@main.command()
@click.option("--preset", help="named preset (see `abm presets`); default: crash")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML configuration file")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="dotted override, repeatable")
@click.option("--steps", type=click.IntRange(min=1), help="run length in steps (default: the config's)")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="random seed")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="output directory")
@click.option("--figures/--no-figures", default=True, show_default=True, help="write figures/*.png")
@click.option(
    "--twin",
    metavar="NAME",
    help="also run a counterfactual twin on the same news (unlevered: traders at leverage 1; unhunted: without "
    "hunters and oracle attacker, adding hunter_triggered_liquidations) and add forced_selling_drawdown_A to the summary",
)
@user_errors
def run(
    preset: str | None,
    config_file: str | None,
    sets: tuple[str, ...],
    steps: int | None,
    seed: int,
    out_dir: str,
    figures: bool,
    twin: str | None,
) -> None:
    """Run one simulation and write its results to OUT."""
    import abm
    from abm.run import check_twin

    check_twin(twin, "--twin")
    config = load_config(preset, config_file, sets)
    result = abm.run(config, seed=seed, steps=steps, progress=True, keep_model=False, twin=twin)
    result.save(out_dir, figures=figures)
    click.echo(run_line(result.summary, config.name, config.symbols[1], str(out_dir)))
    from abm.analysis.shock_window import pre_shock_warning

    warning = pre_shock_warning(result.summary, config.symbols[1])
    if warning:
        click.echo(warning)


def run_line(s: dict[str, Any], name: str, asset: str, out_dir: str) -> str:
    """The one-line summary `abm run` prints: the main risky `asset`'s shock measures, the pre-shock check and
    the liquidation totals of summary `s`."""
    shock = f"amplification_{asset} {_num(s.get(f'amplification_{asset}'))}"
    if f"forced_selling_drawdown_{asset}" in s:
        shock += f", forced_selling_drawdown_{asset} {_num(s[f'forced_selling_drawdown_{asset}'], '.1%')}"
    groups = [f"{name}: seed {s['seed']}, {s['steps']} steps in {s['wall_seconds']:.1f} s", shock]
    if s.get("shock_step") is not None:
        groups.append(
            f"pre-shock {s['pre_shock_liquidations']} liquidations, max gap "
            f"{_num(s.get(f'pre_shock_max_gap_{asset}'), '.2%')}"
        )
    groups.append(
        f"{s['n_liquidations']} liquidations (${s['liquidation_volume_usd']:,.0f}), bad debt "
        f"${s['bad_debt_usd']:,.0f}, reflexivity index {_num(s.get('reflexivity_index'))}"
    )
    return "; ".join(groups) + f" -> {out_dir}"


def _num(value: Any, spec: str = ".3g") -> str:
    return "n/a" if value is None else format(value, spec)


@main.command()
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="sweep directory")
@click.option("--workers", type=click.IntRange(min=1), help="local worker processes (default: all cores)")
@click.option("--scheduler", help="address of a running Dask scheduler, e.g. tcp://127.0.0.1:8786")
@click.option("--resume", is_flag=True, help="run only what is missing from OUT/runs.parquet")
@user_errors
def sweep(experiment: str, out_dir: str, workers: int | None, scheduler: str | None, resume: bool) -> None:
    """Run every point of an EXPERIMENT file (grid or sampled design) and collect runs.parquet."""
    from abm.sweep.runner import run_sweep

    if workers and scheduler:
        raise UserInputError("give --workers or --scheduler, not both")
    try:
        run_sweep(experiment, out_dir, workers=workers, scheduler=scheduler, resume=resume, progress=True)
    except KeyboardInterrupt:  # the finished runs are in OUT (the store compacts them on the way out)
        click.echo(f"abm: sweep interrupted; finished runs are saved in {out_dir}: rerun with --resume", err=True)
        sys.exit(INTERRUPTED)


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@user_errors
def report(directory: str) -> None:
    """Figures and a report for a run directory, a sweep directory, or a folder of sweep directories (each
    sweep's report, then the study's tables across them, e.g. the contagion study)."""
    path = Path(directory)
    if not path.is_dir():
        raise UserInputError(f"'{directory}' is not a directory (expected the --out of `abm run` or `abm sweep`)")
    if (path / "runs.parquet").exists():
        from abm.sweep.report import sweep_report

        written = sweep_report(path)
    elif (path / "timeseries.parquet").exists():
        from abm.analysis.report import run_report

        written = run_report(path)
    else:
        from abm.contagion.study_report import collection_report, sweep_dirs

        if not sweep_dirs(path):
            raise UserInputError(
                f"'{directory}' holds neither timeseries.parquet (a run) nor runs.parquet (a sweep) nor sweep "
                "directories"
            )
        written = collection_report(path)
    click.echo(f"report: {written}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to bind (loopback by default)")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535), help="TCP port")
@user_errors
def app(host: str, port: int) -> None:
    """Serve the teaching page (a Solara app) at http://HOST:PORT."""
    from abm.app.server import serve

    serve(host=host, port=port)


@main.command()
@user_errors
def presets() -> None:
    """List the shipped presets, one line each."""
    from abm.config import preset_descriptions

    descriptions = preset_descriptions()
    width = max(map(len, descriptions))
    for name, text in descriptions.items():
        click.echo(f"{name:<{width}} {text}")


if __name__ == "__main__":
    main()
