"""Performance benchmarks of `abm` against Mesa's own Boltzmann wealth example. Run on demand, never as a test.

    python benchmarks/run.py              # full run (about 15-20 min on 2 cores); writes benchmarks/results.md
    python benchmarks/run.py --quick      # under 3 min; prints the table, writes nothing (add --write to write)
    python benchmarks/run.py --quick --check   # also compare with the committed results.md: exit 1 on a slowdown

Method (as Mesa's benchmarks/global_benchmark.py): every case runs for several seeds; per seed the fastest of a few
repeats counts; the table shows the mean over seeds. Every repeat runs in a fresh Python process, whose peak
resident memory (ru_maxrss) is the case's peak memory. Cases:

- crash at 1,000, 10,000 and 100,000 traders: `abm.run(ModelConfig.from_preset("crash", {"traders.n_traders": N}),
  seed=s, steps=1000, keep_model=False)`; build = the model's construction, total = the whole `abm.run` call;
- Mesa's Boltzmann wealth example as shipped (with its data collection) at 10,000 agents on a 100 x 100 grid,
  Mesa's own "large" configuration, for 1,000 steps: the baseline, measured in the same run;
- a sweep of 16 crash runs (`abm.sweep.runner.run_sweep`, timed from the call to its return, abm already imported)
  with 1 and with 2 local workers, measured alternately: parallel efficiency = T(1 worker) / (2 T(2 workers));
- the exponent of time against the number of traders: least squares of log T on log N over the crash sizes.

Times are wall-clock seconds (time.perf_counter, as Mesa's benchmarks); CPU seconds (time.process_time of the
measured process) are shown beside them, since they move less when other processes share the machine. The regression
guard (`--check`) compares each case's CPU time relative to the Boltzmann baseline of the same run (so a slower or
busier machine does not trip it) with the numbers in the last committed results.md, and flags any case more than
20% slower, or using more than 20% more peak memory. The harness does not touch OPENBLAS_* variables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
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

# the performance targets (README, "Performance"), measured on a 2-core machine
TARGET_RATIO = 0.25  # crash 10k x 1000 / Boltzmann 10k x 1000
TARGET_EXPONENT = 1.1
TARGET_PEAK_MB = 2048.0  # crash at 100k traders
TARGET_EFFICIENCY = 0.90  # 2-worker sweep


@dataclass
class Case:
    """One benchmark case. kind: crash | boltzmann | sweep. n: traders (crash, sweep runs) or agents (boltzmann)."""

    name: str
    kind: str
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


def plan(quick: bool) -> list[Case]:
    """The cases of a full or a quick run. Quick: one seed (still the fastest of a few repeats, which the
    regression guard needs on a busy machine), no 100k case, a shorter Boltzmann run (its cost per step is
    steady, so it is compared per 1,000 steps) and shorter sweep runs."""
    if quick:
        return [
            Case("crash_1k", "crash", 1_000, 1000, [0], 3),
            Case("crash_10k", "crash", 10_000, 1000, [0], 2),
            Case("boltzmann_10k", "boltzmann", 10_000, 250, [1], 1),
            Case("sweep_1w", "sweep", 1_000, 300, [0], 1, workers=1),
            Case("sweep_2w", "sweep", 1_000, 300, [0], 1, workers=2),
        ]
    return [
        Case("crash_1k", "crash", 1_000, 1000, [0, 1, 2], 3),
        Case("crash_10k", "crash", 10_000, 1000, [0, 1, 2], 2),
        Case("crash_100k", "crash", 100_000, 1000, [0, 1], 1),
        Case("boltzmann_10k", "boltzmann", 10_000, 1000, [1, 2], 1),
        Case("sweep_1w", "sweep", 1_000, 1000, [0], 2, workers=1),
        Case("sweep_2w", "sweep", 1_000, 1000, [0], 2, workers=2),
    ]


# --- the measured process -----------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def measure_crash(n: int, steps: int, seed: int) -> dict[str, Any]:
    import abm
    from abm.config import ModelConfig
    from abm.model import ReflexivityModel

    build: list[float] = []
    original_init = ReflexivityModel.__init__

    def timed_init(self: ReflexivityModel, *args: Any, **kwargs: Any) -> None:
        start = time.perf_counter()
        original_init(self, *args, **kwargs)
        build.append(time.perf_counter() - start)

    ReflexivityModel.__init__ = timed_init  # type: ignore[method-assign]  # only in this measuring process
    config = ModelConfig.from_preset("crash", {"traders.n_traders": n})
    cpu0, t0 = time.process_time(), time.perf_counter()
    result = abm.run(config, seed=seed, steps=steps, keep_model=False)
    total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "build_s": build[0],
        "total_s": total,
        "cpu_s": cpu,
        "events": len(result.events),
    }


def measure_boltzmann(n: int, steps: int, seed: int) -> dict[str, Any]:
    from mesa.examples.basic.boltzmann_wealth_model.model import BoltzmannScenario, BoltzmannWealth

    side = max(10, round(math.sqrt(n)))  # Mesa's benchmark: 100 x 100 for 10,000 agents
    cpu0, t0 = time.process_time(), time.perf_counter()
    model = BoltzmannWealth(scenario=BoltzmannScenario(n=n, width=side, height=side, rng=seed))
    build = time.perf_counter() - t0
    for _ in range(steps):
        model.step()
    total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"build_s": build, "total_s": total, "cpu_s": cpu}


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
    if kind == "crash":
        out = measure_crash(spec["n"], spec["steps"], spec["seed"])
    elif kind == "boltzmann":
        out = measure_boltzmann(spec["n"], spec["steps"], spec["seed"])
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
                    f"  {case.name} seed {seed} repeat {rep + 1}/{case.repeats}: total {out['total_s']:.2f} s "
                    f"(build {out['build_s']:.2f} s, cpu {out['cpu_s']:.2f} s), peak {out['peak_mb']:.0f} MB, "
                    f"load {os.getloadavg()[0]:.1f}"
                )
                if case.name not in best or out["total_s"] < best[case.name]["total_s"]:
                    best[case.name] = out
        for case in cases:
            case.results.append(best[case.name])


def profile_text(n: int, steps: int, seed: int) -> str:
    """Top of pyinstrument's text profile of one crash run (in a fresh process)."""
    code = (
        "import sys, abm\n"
        "from pyinstrument import Profiler\n"
        "from abm.config import ModelConfig\n"
        f"cfg = ModelConfig.from_preset('crash', {{'traders.n_traders': {n}}})\n"
        "p = Profiler(interval=0.005)\n"
        "p.start()\n"
        f"abm.run(cfg, seed={seed}, steps={steps}, keep_model=False)\n"
        "p.stop()\n"
        "sys.stdout.write(p.output_text(unicode=False, color=False))\n"
    )
    env = dict(os.environ, PYINSTRUMENT_IGNORE_OVERHEAD_WARNING="1")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=False)
    if proc.returncode != 0:
        return f"(profile failed: {proc.stderr[-500:]})"
    lines = [ln.rstrip() for ln in proc.stdout.splitlines() if ln.strip()]
    return "\n".join(lines[:PROFILE_LINES])


# --- derived numbers ------------------------------------------------------------------------------------------


def summarise(cases: list[Case]) -> dict[str, Any]:
    """Metrics per case (means over seeds) plus the derived figures the targets are about."""
    by = {c.name: c for c in cases}
    base = by.get("boltzmann_10k")
    base_cpu_1000 = base.mean("cpu_s") * 1000.0 / base.steps if base else float("nan")
    base_total_1000 = base.mean("total_s") * 1000.0 / base.steps if base else float("nan")
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
            m["rel_total"] = m["total_s"] / base_total_1000 * 1000.0 / c.steps  # per 1000 steps vs Boltzmann
            m["rel_cpu"] = m["cpu_s"] / base_cpu_1000 * 1000.0 / c.steps
            m["us_per_trader_step"] = m["total_s"] / (c.n * c.steps) * 1e6
        if c.kind == "boltzmann":
            m["rel_total"] = m["rel_cpu"] = 1.0
            m["us_per_agent_step"] = m["total_s"] / (c.n * c.steps) * 1e6
        metrics[c.name] = m
    crash = sorted((c for c in cases if c.kind == "crash"), key=lambda c: c.n)
    exponent = float("nan")
    if len(crash) >= 2:
        xs = [math.log(c.n) for c in crash]
        ys = [math.log(c.mean("total_s")) for c in crash]
        exponent = _slope(xs, ys)
    efficiency = float("nan")
    if "sweep_1w" in by and "sweep_2w" in by:
        efficiency = by["sweep_1w"].mean("total_s") / (2.0 * by["sweep_2w"].mean("total_s"))
    return {
        "cases": metrics,
        "ratio_10k": metrics.get("crash_10k", {}).get("rel_total", float("nan")),
        "ratio_10k_cpu": metrics.get("crash_10k", {}).get("rel_cpu", float("nan")),
        "exponent": exponent,
        "exponent_range": f"{crash[0].n}-{crash[-1].n}" if crash else "",
        "efficiency": efficiency,
        "peak_100k_mb": metrics.get("crash_100k", {}).get("peak_mb", float("nan")),
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
        "| case | N | steps | seeds x repeats | build (s) | total (s) | CPU (s) | vs Boltzmann / 1000 steps "
        "| peak memory (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    kinds = ["crash", "boltzmann", "sweep"]
    cases = sorted(summary["cases"].items(), key=lambda c: (kinds.index(c[1]["kind"]), c[1]["n"], c[0]))
    for name, m in cases:
        rel = _fmt(m.get("rel_total", float("nan")), 3) if m["kind"] != "sweep" else ""
        rows.append(
            f"| {name} | {m['n']:,} | {m['steps']:,} | {m['seeds']} x {m['repeats']} | {_fmt(m['build_s'])} "
            f"| {_fmt(m['total_s'])} | {_fmt(m['cpu_s'])} | {rel} | {_fmt(m['peak_mb'], 0)} |"
        )
    return "\n".join(rows)


def targets(summary: dict[str, Any]) -> str:
    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    ratio, expo, eff, peak = summary["ratio_10k"], summary["exponent"], summary["efficiency"], summary["peak_100k_mb"]

    def check(x: float, ok: bool) -> bool | None:
        return None if math.isnan(x) else ok

    lines = [
        "| target | measured | verdict |",
        "|---|---:|---|",
        f"| crash 10k x 1000 <= {TARGET_RATIO} x Boltzmann 10k x 1000 (wall) | {_fmt(ratio, 3)} "
        f"(CPU: {_fmt(summary['ratio_10k_cpu'], 3)}) | {verdict(check(ratio, ratio <= TARGET_RATIO))} |",
        f"| time grows no faster than N^{TARGET_EXPONENT} ({summary['exponent_range']} traders) | N^{_fmt(expo, 3)} "
        f"| {verdict(check(expo, expo <= TARGET_EXPONENT))} |",
        f"| crash at 100k traders under {TARGET_PEAK_MB:.0f} MB peak | {_fmt(peak, 0)} MB "
        f"| {verdict(check(peak, peak < TARGET_PEAK_MB))} |",
        f"| 2-worker sweep efficiency >= {TARGET_EFFICIENCY:.0%} | {_fmt(eff * 100, 1)}% "
        f"| {verdict(check(eff, eff >= TARGET_EFFICIENCY))} |",
    ]
    return "\n".join(lines)


def write_results(summary: dict[str, Any], mach: dict[str, Any], profile: str, notes: str, path: Path) -> None:
    data = json.dumps({"summary": summary, "machine": mach}, indent=1, sort_keys=True, default=_json_default)
    openblas = ", ".join(f"{k}={v}" for k, v in mach["openblas_env"].items()) or "none set"
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

Times are the mean over seeds of the fastest repeat per seed. "vs Boltzmann" is the case's wall time per 1,000
steps divided by Mesa's Boltzmann wealth example's (10,000 agents, 100 x 100 grid, as shipped with its data
collection) per 1,000 steps in the same run.

{table(summary)}

- time against traders: T ~ N^{_fmt(summary["exponent"], 3)} (least squares on log-log, {summary["exponent_range"]})
- sweep of {SWEEP_RUNS} runs, 1 vs 2 local workers: parallel efficiency {_fmt(summary["efficiency"] * 100, 1)}%

## Targets (2-core machine)

{targets(summary)}

{notes}

## Where the time goes

Top of pyinstrument's profile of one crash run at 10,000 traders x 1,000 steps (seed 0):

```
{profile}
```

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
    """Cases more than THRESHOLD slower (CPU time relative to Boltzmann, per 1000 steps) or bigger (peak memory)
    than in `before`. Cases are compared only when both runs have them with the same steps."""
    flags = []
    for name, m in now["cases"].items():
        old = before.get("cases", {}).get(name)
        if not old or old.get("steps") != m["steps"] or m["kind"] != "crash":
            continue
        for key, what in (("rel_cpu", "CPU time relative to Boltzmann"), ("peak_mb", "peak memory")):
            a, b = m.get(key), old.get(key)
            if a is None or b is None or not b or math.isnan(a):
                continue
            if a > b * (1.0 + THRESHOLD):
                flags.append(f"{name}: {what} {a:.3f} vs {b:.3f} committed (+{(a / b - 1) * 100:.0f}%)")
        a, b = m.get("total_s"), old.get("total_s")
        if a and b and a > b * (1.0 + THRESHOLD):
            print(f"note: {name} wall time {a:.2f} s vs {b:.2f} s committed (not flagged: wall time depends on load)")
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under 3 minutes); writes nothing")
    parser.add_argument("--check", action="store_true", help="exit 1 if a case is >20%% slower than committed")
    parser.add_argument("--write", action="store_true", help="write results.md even in --quick mode")
    parser.add_argument("--no-profile", action="store_true", help="skip the profile of crash 10k x 1000")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results (results.md)")
    parser.add_argument(
        "--notes", type=Path, default=HERE / "notes.md", help="markdown put under the targets (benchmarks/notes.md)"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(json.loads(args.worker))
        return 0

    def say(text: str) -> None:
        print(text, flush=True)

    profiling = not args.quick and not args.no_profile
    if profiling and importlib.util.find_spec("pyinstrument") is None:
        print(
            "benchmarks/run.py: the profile needs pyinstrument: pip install -e '.[bench]' (or pass --no-profile)",
            file=sys.stderr,
        )
        return 2
    start = time.perf_counter()
    before = committed_summary()  # read before this run writes results.md
    mach = machine()
    mach["load_avg_start"] = round(os.getloadavg()[0], 2)
    cases = plan(args.quick)
    say(f"abm benchmarks ({'quick' if args.quick else 'full'}): {len(cases)} cases on {mach['cpu']}")
    for case in cases:
        if case.kind != "sweep":
            say(f"{case.name}: {case.kind}, N={case.n:,}, {case.steps} steps, seeds {case.seeds} x {case.repeats}")
            run_cases([case], say)
    sweeps = [c for c in cases if c.kind == "sweep"]
    if sweeps:
        say(f"sweeps, 1 and 2 workers alternately: {SWEEP_RUNS} runs of N={sweeps[0].n:,}, {sweeps[0].steps} steps")
        run_cases(sweeps, say)
    profile = ""
    if profiling:
        say("profile of crash 10k x 1000 ...")
        profile = profile_text(10_000, 1000, 0)
    mach["load_avg_end"] = round(os.getloadavg()[0], 2)
    summary = summarise(cases)
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
