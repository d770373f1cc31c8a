"""cProfile (CPU time) of one crash run: the top functions by own and by cumulative time, with their shares.

    python benchmarks/profile_crash.py 1000 1000             # abm.run: build, steps, the run's tables and summary
    python benchmarks/profile_crash.py 100000 1000 --build   # the build alone
    python benchmarks/profile_crash.py --show saved.prof     # print a saved profile

Made benchmarks/profile_before.md and profile_after.md. SciPy's modules (imported lazily by the summary's Hawkes
fit) are imported before profiling: imports are not the model's time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time


def label(f: tuple[str, int, str]) -> str:
    """A profiled function as `path:line(name)`, the path from the package (abm/..., numpy/...), not the machine's."""
    path, line, name = f
    for cut in ("/site-packages/", "/lib/python3"):
        path = path.split(cut)[-1]
    path = "abm/" + path.split("/abm/", 1)[-1] if "/abm/" in path else path
    return f"{path}:{line}({name})"


def show(stats: pstats.Stats, top: int = 25) -> str:
    rows = [(f, v[1], v[2], v[3]) for f, v in stats.stats.items()]  # type: ignore[attr-defined]
    total = sum(r[2] for r in rows)
    lines = [f"total {total:.2f} s CPU (under the profiler)"]
    for title, key in (("own time", 2), ("cumulative time", 3)):
        lines.append(f"## top {top} by {title}: seconds, share, calls, function")
        for r in sorted(rows, key=lambda r: -r[key])[:top]:
            lines.append(f"{r[key]:8.3f} {100 * r[key] / total:5.1f}% {r[1]:9d}  {label(r[0])}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", nargs="?", type=int, default=1000)
    parser.add_argument("steps", nargs="?", type=int, default=1000)
    parser.add_argument("--build", action="store_true", help="profile the model's build only")
    parser.add_argument("--out", help="also save the raw profile here")
    parser.add_argument("--show", help="print a saved profile and exit")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.show:
        print(show(pstats.Stats(args.show), args.top))
        return 0
    import scipy.optimize
    import scipy.signal
    import scipy.stats  # noqa: F401

    import abm
    from abm.config import ModelConfig
    from abm.model import ReflexivityModel

    config = ModelConfig.from_preset("crash", {"traders.n_traders": args.n})
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    if args.build:
        ReflexivityModel(config, rng=0, steps=args.steps)
    else:
        abm.run(config, seed=0, steps=args.steps, keep_model=False)
    prof.disable()
    if args.out:
        prof.dump_stats(args.out)
    print(show(pstats.Stats(prof), args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
