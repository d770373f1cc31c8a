"""Bit-identity check for speed-ups: pickle the outputs of the shipped presets once (from a reference checkout) and
compare a later checkout's outputs with them, bit for bit. Not a test (each preset is a full run).

    PYTHONPATH=<reference> python benchmarks/bitcheck.py save REF.pkl
    PYTHONPATH=<checkout>  python benchmarks/bitcheck.py check REF.pkl
"""

from __future__ import annotations

import pickle
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

PRESETS = ["crash", "black_thursday", "contagion", "perp_crash", "lst_depeg", "crash@10000", "crash@100000x300"]
"""The shipped presets, and larger books: `preset@N` runs it with N traders, `preset@NxSTEPS` also for STEPS steps
(crash's shock starts at step 240)."""


def outputs(preset: str) -> dict[str, Any]:
    import abm
    from abm.config import ModelConfig

    name, _, size = preset.partition("@")
    n, _, steps = size.partition("x")
    config = ModelConfig.from_preset(name, {"traders.n_traders": int(n)} if n else {})
    r = abm.run(config, seed=0, steps=int(steps) if steps else None, keep_model=False)
    summary = {k: v for k, v in r.summary.items() if k != "wall_seconds"}
    return {
        "summary": summary,
        "timeseries": r.timeseries,
        "events": r.events,
        "write_offs": r.write_offs,
        "hf_histogram": r.hf_histogram,
        "adl": r.adl,
        "perp_liquidations": r.perp_liquidations,
        "auctions": r.auctions,
        "cascade_edges": sorted(map(repr, r.cascade.edges(data=True))),
    }


def same(a: Any, b: Any) -> bool:
    if isinstance(a, pd.DataFrame):
        if not isinstance(b, pd.DataFrame) or list(a.columns) != list(b.columns) or a.shape != b.shape:
            return False
        return all(same(a[c].to_numpy(), b[c].to_numpy()) for c in a.columns)
    if isinstance(a, np.ndarray):
        if a.dtype.kind == "f" and b.dtype.kind == "f":
            return a.shape == b.shape and np.array_equal(a.view(np.uint8), np.asarray(b, dtype=a.dtype).view(np.uint8))
        if a.dtype == object or b.dtype == object:
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return np.array_equal(a, b)
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def main() -> int:
    mode, path = sys.argv[1], sys.argv[2]
    presets = sys.argv[3:] or PRESETS
    if mode == "save":
        ref = {}
        for p in presets:
            t = time.process_time()
            ref[p] = outputs(p)
            print(f"{p}: {time.process_time() - t:.2f} s CPU", flush=True)
        with open(path, "wb") as fh:
            pickle.dump(ref, fh)
        return 0
    with open(path, "rb") as fh:
        ref = pickle.load(fh)
    bad = 0
    for p in presets:
        t = time.process_time()
        out = outputs(p)
        cpu = time.process_time() - t
        diffs = [k for k in ref[p] if not same(ref[p][k], out[k])]
        if diffs and "summary" in diffs:
            sk = [k for k in ref[p]["summary"] if not same(ref[p]["summary"][k], out["summary"].get(k))]
            diffs.append(f"summary keys: {sk[:10]}")
        if diffs and "timeseries" in diffs:
            a, b = ref[p]["timeseries"], out["timeseries"]
            cols = [c for c in a.columns if c not in b.columns or not same(a[c].to_numpy(), b[c].to_numpy())]
            diffs.append(f"timeseries columns: {cols[:10]}")
        print(f"{p}: {'IDENTICAL' if not diffs else 'DIFFERENT ' + str(diffs)} ({cpu:.2f} s CPU)", flush=True)
        bad += bool(diffs)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
