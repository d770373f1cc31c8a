"""Milliseconds per step by phase: python benchmarks/phase_timing.py N STEPS [PRESET].

Wraps the phases' entry points with a timer (the traders' phase is `batched_trader_phase`, the lenders' phase
`act_in_turn`); "rest" is the step's time outside them.
"""

from __future__ import annotations

import collections
import sys
import time
from collections.abc import Callable
from typing import Any

import abm.model as model_module
from abm.config import ModelConfig
from abm.model import ReflexivityModel

n, steps = int(sys.argv[1]), int(sys.argv[2])
preset = sys.argv[3] if len(sys.argv) > 3 else "crash"
m = ReflexivityModel(ModelConfig.from_preset(preset, {"traders.n_traders": n}), rng=0, steps=steps)
spent: collections.Counter[str] = collections.Counter()


def wrap(obj: Any, name: str, label: str) -> None:
    inner: Callable[..., Any] = getattr(obj, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = inner(*args, **kwargs)
        spent[label] += time.perf_counter() - start
        return out

    setattr(obj, name, timed)


wrap(model_module, "batched_trader_phase", "traders")
wrap(model_module, "act_in_turn", "lenders")
for group, label in ((m.liquidators, "liquidators"), (m.updaters, "oracles")):
    for agent in group:
        wrap(agent, "step", label)
wrap(m, "_health_pass", "health_pass")
wrap(m.baseline, "count", "  baseline.count")
wrap(m, "_resolve_bad_debt", "bad_debt")
wrap(m, "wake_alerted", "risk_alerts")
wrap(m.recorder, "end_step", "recorder.end_step")
wrap(m.datacollector, "collect", "collect")
wrap(m.pool, "accrue", "accrue")
wrap(m.fundamentals, "step", "fundamentals")
wrap(m.book, "clocks_due", "clocks_due")
wrap(m.lender_sentiment, "update", "sentiment")
wrap(model_module.LenderView, "of", "lenderview")
t0 = time.perf_counter()
for _ in range(steps):
    m.step()
total = time.perf_counter() - t0
print(f"total {total:.3f}s  {1000 * total / steps:.3f} ms/step")
for label, seconds in spent.most_common():
    print(f"{label:22s} {1000 * seconds / steps:7.3f} ms/step {100 * seconds / total:5.1f}%")
timed_total = sum(v for k, v in spent.items() if not k.startswith(" "))
print(f"{'rest':22s} {1000 * (total - timed_total) / steps:7.3f}")
