"""Performance benchmarks of `abm` against a plain-numpy yardstick. Run on demand, never as a test.

    python benchmarks/run.py              # full run (about 20 min on 2 cores); writes benchmarks/results.md
    python benchmarks/run.py --quick      # under 3 min; prints the tables, writes nothing (add --write to write)
    python benchmarks/run.py --quick --check   # also compare with the committed results.md: exit 1 on a slowdown
    python benchmarks/run.py --no-1m      # a full run without the million-trader case (25 min on a busy machine)
    python benchmarks/run.py --render     # rewrite results.md from its data block with the current notes.md

Yardstick: the Boltzmann wealth exchange written as plain vectorised numpy (`boltzmann_numpy`): each step, every
agent with wealth gives one unit to a uniformly drawn agent (np.flatnonzero, rng.integers, np.add.at). It is
measured in the same run at the size and step count of every crash case, so each case is compared with the
yardstick of its own size.

Cases (every repeat in a fresh Python process, whose peak resident memory, ru_maxrss, is the case's peak memory):

- crash at 1,000 and 10,000 traders x 1,000 steps, and 100,000 and 1,000,000 traders x 100 steps: the model is
  built (`ReflexivityModel(ModelConfig.from_preset("crash", {"traders.n_traders": N}), rng=seed, steps=steps)`)
  and stepped; "model time" is build plus steps, after imports (the issue's measure); the run's tables and summary
  (`abm.run.collect_result`, whose Hawkes fit costs about 0.2 s whatever N) are timed apart as "collect";
- the yardstick at each crash case's size and step count;
- a sweep of 16 crash runs (`abm.sweep.runner.run_sweep`, timed from the call to its return, abm already imported)
  with 1 and with 2 local workers, measured alternately: parallel efficiency = T(1 worker) / (2 T(2 workers)), and
  the projected time of a Sobol study of 10 parameters at base N = 256 (5,632 runs of 1,000 traders x 1,440
  steps) on 2 workers, from the 2-worker time per run scaled to 1,440 steps;
- the exponent of time against traders from 10,000 up: least squares of log T on log N, T being the model time of
  a 100-step run (build plus 100 steps at the case's measured time per step);
- the memory guard: `abm run --set traders.n_traders=1e9` must fail at once (exit 2, one line naming the estimated
  memory and the limit) without allocating.

Per case the fastest repeat per seed counts and the table shows the mean over seeds. Times are CPU seconds
(time.process_time of the measured process), which move less than wall-clock time when other processes share the
machine; wall seconds are shown beside them. The regression guard (`--check`) compares each crash case with the
last committed results.md and flags it when it is more than 20% slower both relative to the yardstick of its size
and in CPU seconds (a slower machine moves only the seconds, a yardstick measured at a busy moment only the
ratio), or uses more than 20% more peak memory. The crash cases and the yardstick run with one BLAS thread
(threadpoolctl), as every sweep worker does: process time then counts the work of the run, not BLAS threads
spinning idle beside it (with OpenBLAS's default threads a 1,000,000-trader run spent about 11 s more CPU to save
about 2 s of wall time). The harness does not touch OPENBLAS_* variables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results.md"
DATA_BEGIN, DATA_END = "<!-- benchmark-data", "-->"
THRESHOLD = 0.20  # a slowdown (or memory growth) beyond this fraction is flagged
SWEEP_RUNS = 16
PROFILE_LINES = 60

YARDSTICK = "boltzmann_numpy"  # the name the committed results carry; the guard compares like with like

# the performance targets (README, "Performance"), measured on a 2-core machine
TARGET_RATIO = 10.0  # crash model time / the yardstick's at the same size and steps (1k, 10k, 1M)
STRETCH_RATIO = 5.0
TARGET_EXPONENT = 1.05  # from 10,000 to 1,000,000 traders
TARGET_PEAK_MB = 2048.0  # crash at 1,000,000 traders
TARGET_SOBOL_S = 3600.0  # Sobol, 10 parameters, base N = 256, 2 workers
SOBOL_RUNS, SOBOL_STEPS = 256 * (2 * 10 + 2), 1440  # Saltelli: N (2D + 2) runs
SCALING_STEPS = 100  # the scaling fit compares runs of this many steps


@dataclass
class Case:
    """One benchmark case. kind: crash | boltzmann | sweep. n: traders (crash, sweep runs) or agents (boltzmann)."""

    name: str
    kind: str  # crash | yardstick | sweep
    n: int
    steps: int
    seeds: list[int]
    repeats: int
    workers: int = 1
    results: list[dict[str, Any]] = field(default_factory=list)  # the fastest repeat per seed

    def mean(self, key: str) -> float:
        values = [r[key] for r in self.results if key in r]
        return sum(values) / len(values) if values else float("nan")

    def peak_mb(self) -> float:
        return max((r["peak_mb"] for r in self.results), default=float("nan"))


def plan(quick: bool, million: bool = True) -> list[Case]:
    """The cases of a full or a quick run. Quick: one seed (still the fastest of a few repeats, which the
    regression guard needs on a busy machine), no 100k or 1M case, and shorter sweep runs."""
    if quick:
        crash = [
            Case("crash_1k", "crash", 1_000, 1000, [0], 3),
            Case("crash_10k", "crash", 10_000, 1000, [0], 2),
        ]
        sweep_steps, sweep_repeats = 300, 1
    else:
        crash = [
            Case("crash_1k", "crash", 1_000, 1000, [0, 1, 2], 2),
            Case("crash_10k", "crash", 10_000, 1000, [0, 1], 1),
            Case("crash_100k", "crash", 100_000, SCALING_STEPS, [0], 1),
        ]
        if million:
            crash.append(Case("crash_1m", "crash", 1_000_000, SCALING_STEPS, [0], 1))
        sweep_steps, sweep_repeats = 1000, 1
    # the yardstick takes 0.05-3 s: the fastest of 7 repeats, as the machine's noise is a large share of it
    sticks = [Case(yardstick_name(c), "yardstick", c.n, c.steps, c.seeds[:1], 7) for c in crash]
    return [
        *crash,
        *sticks,
        Case("sweep_1w", "sweep", 1_000, sweep_steps, [0], sweep_repeats, workers=1),
        Case("sweep_2w", "sweep", 1_000, sweep_steps, [0], sweep_repeats, workers=2),
    ]


def yardstick_name(case: Case) -> str:
    return "yardstick_" + case.name.split("_", 1)[1]


# --- the measured process -----------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def measure_crash(n: int, steps: int, seed: int) -> dict[str, Any]:
    """Model time (build plus steps, CPU and wall) of one crash run, and the time to collect its results."""
    # imports are not the model's time (the summary's Hawkes fit imports SciPy's modules lazily)
    import scipy.optimize
    import scipy.signal
    import scipy.stats  # noqa: F401

    import abm  # noqa: F401  (imports are not the model's time)
    from abm.config import ModelConfig
    from abm.model import ReflexivityModel
    from abm.run import collect_result

    config = ModelConfig.from_preset("crash", {"traders.n_traders": n})
    cpu0, t0 = time.process_time(), time.perf_counter()
    model = ReflexivityModel(config, rng=seed, steps=steps)
    build_cpu, build = time.process_time() - cpu0, time.perf_counter() - t0
    for _ in range(model.total_steps):
        model.step()
    cpu, total = time.process_time() - cpu0, time.perf_counter() - t0
    result = collect_result(model, total, keep_model=False)
    return {
        "build_s": build,
        "build_cpu_s": build_cpu,
        "total_s": total,
        "cpu_s": cpu,
        "step_cpu_ms": (cpu - build_cpu) / steps * 1e3,
        "collect_cpu_s": time.process_time() - cpu0 - cpu,
        "events": len(result.events),
    }


def boltzmann_numpy(n: int, steps: int, seed: int) -> Any:
    """The yardstick: Boltzmann wealth exchange as plain vectorised numpy. Every agent starts with one unit; each
    step every agent with wealth gives one unit to an agent drawn uniformly (itself included). Returns the
    wealth."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wealth = np.ones(n, dtype=np.int64)
    for _ in range(steps):
        givers = np.flatnonzero(wealth)
        receivers = rng.integers(0, n, len(givers))
        wealth[givers] -= 1
        np.add.at(wealth, receivers, 1)
    return wealth


def measure_yardstick(n: int, steps: int, seed: int) -> dict[str, Any]:
    import numpy as np

    cpu0, t0 = time.process_time(), time.perf_counter()
    wealth = boltzmann_numpy(n, steps, seed)
    total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    assert int(np.sum(wealth)) == n  # wealth is conserved
    return {"build_s": 0.0, "total_s": total, "cpu_s": cpu}


def measure_memory_guard() -> dict[str, Any]:
    """`abm run --set traders.n_traders=1e9`: exit status, seconds to fail, its stderr (one line expected)."""
    with tempfile.TemporaryDirectory(prefix="abm-bench-") as tmp:
        cmd = [sys.executable, "-m", "abm.cli", "run", "--set", "traders.n_traders=1e9", "--out", str(Path(tmp) / "r")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
        seconds = time.perf_counter() - t0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return {"exit": proc.returncode, "seconds": seconds, "lines": lines}


def measure_sweep(n: int, steps: int, seed: int, workers: int) -> dict[str, Any]:
    """Wall time of `abm.sweep.runner.run_sweep` over SWEEP_RUNS crash runs, from the call to its return.

    The measuring process imports abm before the clock starts (as every case does: an interpreter's start-up is
    not the sweep's work); the workers' own start-up happens inside the call and is counted (about 10 ms when they
    are forked, about 1.7 s each for a spawned interpreter importing abm, Mesa and pandas)."""
    from abm.sweep.runner import run_sweep

    with tempfile.TemporaryDirectory(prefix="abm-bench-") as tmp:
        exp = Path(tmp) / "bench.toml"
        exp.write_text(
            f'name = "bench_sweep"\nbase = "crash"\nsteps = {steps}\nreplicates = {SWEEP_RUNS}\n'
            f'base_seed = {seed}\n\n[overrides]\n"traders.n_traders" = {n}\n'
        )
        cpu0, t0 = time.process_time(), time.perf_counter()
        outcome = run_sweep(exp, Path(tmp) / "out", workers=workers)
        total = time.perf_counter() - t0
        if outcome.failed:
            raise RuntimeError(f"{outcome.failed} sweep runs failed")
    return {"build_s": 0.0, "total_s": total, "cpu_s": time.process_time() - cpu0, "backend": outcome.backend}


def worker_main(spec: dict[str, Any]) -> None:
    kind = spec["kind"]
    if kind in ("crash", "yardstick"):
        import numpy  # noqa: F401  (threadpoolctl limits the BLAS libraries loaded when it is called: numpy's and
        import scipy.linalg  # noqa: F401  SciPy's own)
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # as a sweep worker runs (abm.sweep.runner); for the life of this process
        # OpenBLAS's worker threads, started when numpy loads, spin for a while before they sleep: a crash process
        # spends longer than that importing abm, the yardstick's would count their spinning (its CPU time was up to
        # 1.8 times its wall time in 5 of 6 processes, so the crash cases' ratios came out low): wait it out
        time.sleep(0.3)
    if kind == "crash":
        out = measure_crash(spec["n"], spec["steps"], spec["seed"])
    elif kind == "yardstick":
        out = measure_yardstick(spec["n"], spec["steps"], spec["seed"])
    elif kind == "sweep":
        out = measure_sweep(spec["n"], spec["steps"], spec["seed"], spec["workers"])
    else:
        raise SystemExit(f"unknown case kind {kind!r}")
    out["peak_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(out), flush=True)


# --- the orchestrating process ---------------------------------------------------------------------------------


def run_in_subprocess(spec: dict[str, Any]) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"benchmark case {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def run_cases(cases: list[Case], say: Any) -> None:
    """Measure `cases` together: per seed and repeat, each case in turn, so that cases compared with each other
    (the 1- and 2-worker sweeps) see the same machine, even when its speed drifts during the run."""
    first = cases[0]
    for seed in first.seeds:
        best: dict[str, dict[str, Any]] = {}
        for rep in range(first.repeats):
            for case in cases:
                spec = {"kind": case.kind, "n": case.n, "steps": case.steps, "seed": seed, "workers": case.workers}
                out = run_in_subprocess(spec)
                say(
                    f"  {case.name} seed {seed} repeat {rep + 1}/{case.repeats}: cpu {out['cpu_s']:.3f} s "
                    f"(wall {out['total_s']:.3f} s, build {out['build_s']:.2f} s), peak {out['peak_mb']:.0f} MB, "
                    f"load {os.getloadavg()[0]:.1f}"
                )
                if case.name not in best or out["cpu_s"] < best[case.name]["cpu_s"]:
                    best[case.name] = out
        for case in cases:
            case.results.append(best[case.name])


def profile_text(n: int, steps: int, seed: int, top: int = 25) -> str:
    """cProfile (CPU time) of the steps of one crash run, after its build, in a fresh process: the top functions
    by own time and by cumulative time, each with its share of the steps' time."""
    code = f"""
import cProfile, pstats, sys, time
from abm.config import ModelConfig
from abm.model import ReflexivityModel
model = ReflexivityModel(ModelConfig.from_preset('crash', {{'traders.n_traders': {n}}}), rng={seed}, steps={steps})
prof = cProfile.Profile(time.process_time)
prof.enable()
for _ in range(model.total_steps):
    model.step()
prof.disable()
stats = pstats.Stats(prof)
total = sum(v[2] for v in stats.stats.values())
sys.path.insert(0, {str(HERE)!r})
from profile_crash import label
rows = [(f, v[1], v[2], v[3]) for f, v in stats.stats.items()]
print(f'steps: {{total:.2f}} s CPU under the profiler, {{total / {steps} * 1e3:.2f}} ms per step')
for title, key in (('own time', 2), ('cumulative time', 3)):
    print(f'top {top} by {{title}}:')
    print(f'{{"seconds":>8}} {{"share":>6}} {{"calls":>9}}  function')
    for r in sorted(rows, key=lambda r: -r[key])[:{top}]:
        print(f'{{r[key]:8.3f}} {{100 * r[key] / total:5.1f}}% {{r[1]:9d}}  {{label(r[0])}}')
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        return f"(profile failed: {proc.stderr[-500:]})"
    return proc.stdout.rstrip()


# --- derived numbers ------------------------------------------------------------------------------------------


def summarise(cases: list[Case], guard: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metrics per case (means over seeds) plus the derived figures the targets are about."""
    by = {c.name: c for c in cases}
    metrics: dict[str, Any] = {}
    for c in cases:
        m = {
            "kind": c.kind,
            "n": c.n,
            "steps": c.steps,
            "seeds": len(c.seeds),
            "repeats": c.repeats,
            "build_s": c.mean("build_s"),
            "total_s": c.mean("total_s"),
            "cpu_s": c.mean("cpu_s"),
            "peak_mb": c.peak_mb(),
        }
        if c.kind == "crash":
            stick = by.get(yardstick_name(c))
            m["build_cpu_s"] = c.mean("build_cpu_s")
            m["step_cpu_ms"] = c.mean("step_cpu_ms")
            m["collect_cpu_s"] = c.mean("collect_cpu_s")
            m["rel_cpu"] = m["cpu_s"] / stick.mean("cpu_s") if stick else float("nan")
            m["rel_total"] = m["total_s"] / stick.mean("total_s") if stick else float("nan")
            m["us_per_trader_step"] = m["cpu_s"] / (c.n * c.steps) * 1e6
            m["cpu_s_100_steps"] = m["build_cpu_s"] + SCALING_STEPS * m["step_cpu_ms"] / 1e3
        metrics[c.name] = m
    big = sorted((c for c in cases if c.kind == "crash" and c.n >= 10_000), key=lambda c: c.n)
    exponent = float("nan")
    if len(big) >= 2:
        xs = [math.log(c.n) for c in big]
        ys = [math.log(metrics[c.name]["cpu_s_100_steps"]) for c in big]
        exponent = _slope(xs, ys)
    efficiency = sobol_s = float("nan")
    if "sweep_1w" in by and "sweep_2w" in by:
        efficiency = by["sweep_1w"].mean("total_s") / (2.0 * by["sweep_2w"].mean("total_s"))
        two = by["sweep_2w"]
        sobol_s = two.mean("total_s") / SWEEP_RUNS * SOBOL_RUNS * SOBOL_STEPS / two.steps
    return {
        "yardstick": YARDSTICK,
        "cases": metrics,
        "exponent": exponent,
        "exponent_range": f"{big[0].n}-{big[-1].n}" if len(big) >= 2 else "",
        "efficiency": efficiency,
        "sobol_projected_s": sobol_s,
        "memory_guard": guard,
    }


def _slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx


def machine() -> dict[str, Any]:
    import mesa
    import numpy
    import pandas

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = int(line.split()[1]) / 1024.0 / 1024.0
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(ram_gb, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "mesa": mesa.__version__,
        "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")},
        "load_avg_start": None,
        "load_avg_end": None,
    }


# --- the report and the guard ----------------------------------------------------------------------------------


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def table(summary: dict[str, Any]) -> str:
    rows = [
        "| case | N | steps | seeds x repeats | build (s CPU) | model time (s CPU) | wall (s) | ms per step (CPU) "
        "| collect (s CPU) | x yardstick (CPU) | peak memory (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    kinds = ["crash", "yardstick", "sweep"]
    cases = sorted(summary["cases"].items(), key=lambda c: (kinds.index(c[1]["kind"]), c[1]["n"], c[0]))
    for name, m in cases:
        crash = m["kind"] == "crash"
        rows.append(
            f"| {name} | {m['n']:,} | {m['steps']:,} | {m['seeds']} x {m['repeats']} "
            f"| {_fmt(m['build_cpu_s']) if crash else ''} | {_fmt(m['cpu_s'], 3)} | {_fmt(m['total_s'], 3)} "
            f"| {_fmt(m['step_cpu_ms'], 3) if crash else ''} | {_fmt(m['collect_cpu_s']) if crash else ''} "
            f"| {_fmt(m['rel_cpu'], 1) if crash else ''} | {_fmt(m['peak_mb'], 0)} |"
        )
    return "\n".join(rows)


def targets(summary: dict[str, Any]) -> str:
    def verdict(x: float, ok: bool, stretch: bool = False) -> str:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return "not measured"
        return ("met (stretch too)" if stretch else "met") if ok else "NOT met"

    cases = summary["cases"]
    lines = ["| target | measured | verdict |", "|---|---:|---|"]
    for name, label in (
        ("crash_1k", "1,000 x 1,000"),
        ("crash_10k", "10,000 x 1,000"),
        ("crash_1m", "1,000,000 x 100"),
    ):
        r = cases.get(name, {}).get("rel_cpu", float("nan"))
        lines.append(
            f"| crash {label} <= {TARGET_RATIO:.0f} x yardstick (stretch {STRETCH_RATIO:.0f} x), model time CPU "
            f"| {_fmt(r, 1)} x | {verdict(r, r <= TARGET_RATIO, r <= STRETCH_RATIO)} |"
        )
    peak = cases.get("crash_1m", {}).get("peak_mb", float("nan"))
    lines.append(
        f"| crash 1,000,000 traders under {TARGET_PEAK_MB:.0f} MB peak | {_fmt(peak, 0)} MB "
        f"| {verdict(peak, peak < TARGET_PEAK_MB)} |"
    )
    sobol = summary["sobol_projected_s"]
    lines.append(
        f"| Sobol, 10 parameters, N = 256 ({SOBOL_RUNS:,} runs of 1,000 x {SOBOL_STEPS:,}) on 2 workers "
        f"< {TARGET_SOBOL_S / 3600:.0f} h (projected from the 2-worker sweep) | {_fmt(sobol / 3600, 2)} h "
        f"| {verdict(sobol, sobol < TARGET_SOBOL_S)} |"
    )
    expo = summary["exponent"]
    lines.append(
        f"| time grows no faster than N^{TARGET_EXPONENT} ({summary['exponent_range'] or '10,000-1,000,000'} "
        f"traders, {SCALING_STEPS}-step runs) | N^{_fmt(expo, 3)} | {verdict(expo, expo <= TARGET_EXPONENT)} |"
    )
    guard = summary.get("memory_guard")
    if guard:
        ok = guard["exit"] == 2 and len(guard["lines"]) == 1 and "GB" in guard["lines"][0]
        lines.append(
            f"| `abm run --set traders.n_traders=1e9` fails at once: exit 2, one line naming the memory and the "
            f"limit | exit {guard['exit']}, {len(guard['lines'])} line(s), {_fmt(guard['seconds'], 1)} s "
            f"| {'met' if ok else 'NOT met'} |"
        )
    eff = summary["efficiency"]
    lines.append(f"| (kept) 2-worker sweep efficiency | {_fmt(eff * 100, 1)}% | |")
    return "\n".join(lines)


def write_results(summary: dict[str, Any], mach: dict[str, Any], profile: str, notes: str, path: Path) -> None:
    data = json.dumps({"summary": summary, "machine": mach}, indent=1, sort_keys=True, default=_json_default)
    openblas = ", ".join(f"{k}={v}" for k, v in mach["openblas_env"].items()) or "none set"
    profile_intro = (
        "cProfile (CPU time) of the steps of one crash run at 10,000 traders x 1,000 steps (seed 0), after its build:"
        if profile
        else "(not profiled in this run: see benchmarks/profile_after.md, `python benchmarks/profile_crash.py`)"
    )
    profile_block = f"\n```\n{profile}\n```\n" if profile else ""
    text = f"""# Benchmarks

Produced by `python benchmarks/run.py` (see its docstring for the method); do not edit the numbers by hand.
Re-run it after a performance change and commit this file: `python benchmarks/run.py --quick --check` compares a
later checkout with it.

## Machine

- date: {mach["date"]}
- CPU: {mach["cpu"]}, {mach["cores"]} cores; RAM {mach["ram_gb"]} GB; {mach["os"]}
- Python {mach["python"]}, numpy {mach["numpy"]}, pandas {mach["pandas"]}, mesa {mach["mesa"]}
- OPENBLAS variables: {openblas}
- load average (1 min) at start / end: {mach["load_avg_start"]} / {mach["load_avg_end"]} (other processes shared
  the machine when this was above about 2)

## Results

Times are the mean over seeds of the fastest repeat per seed (fastest by CPU time). "Model time" is build plus
steps after imports; "collect" (the run's tables and summary) is timed apart. "x yardstick" is the case's model
time (CPU) over the plain-numpy Boltzmann yardstick's at the same N and steps in the same run.

{table(summary)}

- time against traders, {SCALING_STEPS}-step runs: T ~ N^{_fmt(summary["exponent"], 3)} (least squares on log-log,
  {summary["exponent_range"]})
- sweep of {SWEEP_RUNS} runs, 1 vs 2 local workers: parallel efficiency {_fmt(summary["efficiency"] * 100, 1)}%;
  projected Sobol study (N = 256, {SOBOL_RUNS:,} runs x {SOBOL_STEPS:,} steps, 2 workers):
  {_fmt(summary["sobol_projected_s"] / 3600, 2)} h

## Targets (2-core machine)

{targets(summary)}

{notes}

## Where the time goes

{profile_intro}
{profile_block}

{DATA_BEGIN}
{data}
{DATA_END}
"""
    from abm.io import atomic_write_text

    atomic_write_text(path, text)  # a run interrupted while writing leaves the committed file whole


def _json_default(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    return str(obj)


def committed_summary() -> dict[str, Any] | None:
    """The machine-readable block of the last committed results.md (or of the working copy if none is committed)."""
    text = None
    try:
        proc = subprocess.run(
            ["git", "show", "HEAD:benchmarks/results.md"], capture_output=True, text=True, cwd=ROOT, check=False
        )
        if proc.returncode == 0:
            text = proc.stdout
    except OSError:
        pass
    if text is None and RESULTS.exists():
        text = RESULTS.read_text()
    if not text:
        return None
    match = re.search(re.escape(DATA_BEGIN) + r"\s*(\{.*\})\s*" + re.escape(DATA_END), text, re.S)
    return json.loads(match.group(1))["summary"] if match else None


def regressions(now: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """Crash cases more than THRESHOLD slower than in `before` both relative to the yardstick of their size and in
    CPU seconds, or bigger (peak memory). Cases are compared only when both runs have them with the same steps and
    the same yardstick."""
    flags: list[str] = []
    if before.get("yardstick") != now.get("yardstick"):
        print(
            f"note: the committed results use another yardstick ({before.get('yardstick', 'Mesa Boltzmann')}); "
            "nothing to compare"
        )
        return flags
    for name, m in now["cases"].items():
        old = before.get("cases", {}).get(name)
        if not old or old.get("steps") != m["steps"] or m["kind"] != "crash":
            continue
        a, b = m.get("peak_mb"), old.get("peak_mb")
        if a and b and a > b * (1.0 + THRESHOLD):
            flags.append(f"{name}: peak memory {a:.0f} MB vs {b:.0f} MB committed (+{(a / b - 1) * 100:.0f}%)")
        # a slowdown of the code shows both against the yardstick and in CPU seconds; a slower machine moves the
        # CPU seconds only, and a yardstick measured on a busy moment (it takes 0.05-3 s) moves the ratio only
        rel, rel_old, cpu, cpu_old = m.get("rel_cpu"), old.get("rel_cpu"), m.get("cpu_s"), old.get("cpu_s")
        if not (rel and rel_old and cpu and cpu_old) or math.isnan(rel):
            continue
        slower_rel, slower_cpu = rel > rel_old * (1.0 + THRESHOLD), cpu > cpu_old * (1.0 + THRESHOLD)
        if slower_rel and slower_cpu:
            flags.append(
                f"{name}: CPU time {cpu:.2f} s vs {cpu_old:.2f} s committed (+{(cpu / cpu_old - 1) * 100:.0f}%), "
                f"{rel:.1f} x the yardstick vs {rel_old:.1f} x"
            )
        elif slower_rel or slower_cpu:
            print(
                f"note: {name}: {rel:.1f} x the yardstick vs {rel_old:.1f} x committed, CPU time {cpu:.2f} s vs "
                f"{cpu_old:.2f} s (not flagged: only one of the two moved)"
            )
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under 3 minutes); writes nothing")
    parser.add_argument("--check", action="store_true", help="exit 1 if a case is >20%% slower than committed")
    parser.add_argument("--write", action="store_true", help="write results.md even in --quick mode")
    parser.add_argument("--no-1m", action="store_true", help="leave out the 1,000,000-trader case")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile of crash 10k x 1000")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results (results.md)")
    parser.add_argument(
        "--notes", type=Path, default=HERE / "notes.md", help="markdown put under the targets (benchmarks/notes.md)"
    )
    parser.add_argument(
        "--render", action="store_true", help="rewrite results.md from its own data block with the current notes.md"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(json.loads(args.worker))
        return 0
    if args.render:  # the numbers and the profile stay those of the measured run; only the notes are re-read
        text = args.out.read_text()
        match = re.search(re.escape(DATA_BEGIN) + r"\s*(\{.*\})\s*" + re.escape(DATA_END), text, re.S)
        if not match:
            print(f"benchmarks/run.py: no data block in {args.out}", file=sys.stderr)
            return 2
        data = json.loads(match.group(1))
        notes = args.notes.read_text() if args.notes and args.notes.exists() else ""
        kept = re.search(r"## Where the time goes\n.*?\n```\n(.*?)\n```\n", text, re.S)  # the measured profile
        write_results(data["summary"], data["machine"], kept.group(1) if kept else "", notes, args.out)
        print(f"wrote {args.out}")
        return 0

    def say(text: str) -> None:
        print(text, flush=True)

    profiling = not args.quick and not args.no_profile
    start = time.perf_counter()
    before = committed_summary()  # read before this run writes results.md
    mach = machine()
    mach["load_avg_start"] = round(os.getloadavg()[0], 2)
    cases = plan(args.quick, million=not args.no_1m)
    say(f"abm benchmarks ({'quick' if args.quick else 'full'}): {len(cases)} cases on {mach['cpu']}")
    for case in cases:
        if case.kind != "sweep":
            say(f"{case.name}: {case.kind}, N={case.n:,}, {case.steps} steps, seeds {case.seeds} x {case.repeats}")
            run_cases([case], say)
    sweeps = [c for c in cases if c.kind == "sweep"]
    if sweeps:
        say(f"sweeps, 1 and 2 workers alternately: {SWEEP_RUNS} runs of N={sweeps[0].n:,}, {sweeps[0].steps} steps")
        run_cases(sweeps, say)
    guard = measure_memory_guard()
    say(f"memory guard: exit {guard['exit']} after {guard['seconds']:.1f} s: {guard['lines']}")
    profile = ""
    if profiling:
        say("profile of crash 10k x 1000 ...")
        profile = profile_text(10_000, 1000, 0)
    mach["load_avg_end"] = round(os.getloadavg()[0], 2)
    summary = summarise(cases, guard)
    say("")
    say(table(summary))
    say("")
    say(targets(summary))
    say(f"\n(benchmark took {time.perf_counter() - start:.0f} s)")
    if not args.quick or args.write:
        notes = args.notes.read_text() if args.notes and args.notes.exists() else ""
        write_results(summary, mach, profile, notes, args.out)
        say(f"wrote {args.out}")
    status = 0
    if before is None:
        say("regression guard: no committed benchmarks/results.md to compare with")
    else:
        flags = regressions(summary, before)
        if flags:
            say(f"WARNING: slower than the committed benchmarks/results.md by more than {THRESHOLD:.0%}:")
            for f in flags:
                say(f"  - {f}")
            status = 1 if args.check else 0
        else:
            say(f"regression guard: no case more than {THRESHOLD:.0%} slower than the committed results.md")
    return status


if __name__ == "__main__":
    sys.exit(main())
