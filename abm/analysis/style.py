"""The one report and figure kit: figure style and saving, number formatting, markdown tables, report sections.

Every report of abm (a run's, a sweep's, a collection of sweeps like the contagion study) is a list of `Section`s
rendered by `render_sections`, and every figure is saved by `save` at `DPI`, so they look and read the same.

    from abm.analysis import style
    style.theme()
    style.save(fig, "out/figures/prices.png")
    style.num(1.234e6)                         # '1.23M'
    style.markdown_table(["a", "b"], [[1, 2.5]])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DPI = 120  # every PNG abm writes
FIGURE_TITLE_SIZE = 11

METRIC_LABELS = {
    "bad_debt_usd": "bad debt (USD)",
    "liquidation_volume_usd": "liquidation volume (USD)",
    "n_liquidations": "liquidations (count)",
    "n_accounts_liquidated": "accounts liquidated (count)",
    "reflexivity_index": "reflexivity index",
    "branching_ratio": "branching ratio",
    "lender_loss_usd": "lender loss (USD)",
    "liquidation_overshoot": "liquidation overshoot (1 - HF)",
    "liquidation_hf_mean": "HF at liquidation",
    "oracle_gap_at_liquidation": "oracle / market - 1 at liquidation",
    "peak_utilisation": "peak utilisation",
    "return_kurtosis": "excess kurtosis of returns",
    "largest_cascade": "largest cascade (events)",
    "max_cascade_depth": "deepest cascade (generations)",
    "mean_endogenous_share": "mean endogenous share",
    "share_accounts_liquidated": "accounts liquidated (share)",
    "share_accounts_wiped_out": "accounts wiped out (share)",
    "share_traders_wiped_out": "traders wiped out (share)",
    "share_equity_lost": "equity lost (share)",
    "share_positions_liquidated": "positions liquidated (share)",
    "positions_liquidated": "positions liquidated (count)",
    "pre_shock_liquidations": "liquidations before the shock",
}
PREFIX_LABELS = (
    ("amplification_", "amplification"),
    ("max_drawdown_", "max drawdown"),
    ("price_overshoot_", "price overshoot"),
    ("pre_shock_max_gap_", "largest pre-shock |log(market / fundamental)|"),
)


# --- figures ------------------------------------------------------------------------------------------------------


def theme() -> None:
    """The seaborn theme of every abm figure."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")


def save(fig: Any, path: str | Path, *, tight_layout: bool = False, trim: bool = True) -> Path:
    """Save a matplotlib figure as a PNG at `DPI` (atomically, via `abm.io.save_figure`), close it, return the path.
    `tight_layout`: re-lay the axes first; `trim`: crop the canvas to what is drawn."""
    from abm.io import save_figure

    return save_figure(fig, path, DPI, tight_layout=tight_layout, trim=trim)


def clear_figures(fig_dir: Path) -> None:
    """Create `fig_dir` and delete the PNGs a previous report left there (a report redraws all of its figures)."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()


def axis_number_format(axis: Any) -> None:
    """Tick labels of a matplotlib axis (ax.xaxis / ax.yaxis) in `num`'s compact form."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: num(v)))


# --- numbers ------------------------------------------------------------------------------------------------------


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float | np.floating) and math.isnan(v)


def num(v: Any, digits: int = 3) -> str:
    """A compact number: `digits` significant digits, k/M/B suffixes for large magnitudes, integers as integers,
    'n/a' for missing or NaN; text is shortened to 40 characters."""
    if _missing(v):
        return "n/a"
    if isinstance(v, bool | np.bool_):
        return str(bool(v)).lower()
    if not isinstance(v, int | float | np.number):
        text = str(v)
        return text if len(text) <= 40 else text[:37] + "..."
    v = float(v)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    a = abs(v)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return _significant(v / scale, digits) + suffix
    if v == int(v):
        return str(int(v))
    return _significant(v, digits)


def _significant(v: float, digits: int) -> str:
    """`digits` significant digits without an exponent for magnitudes in [1, 1e6) (350 stays '350', not '3.5e+02')."""
    a = abs(v)
    if 10 ** (digits - 1) <= a < 1e6:
        return f"{round(v, digits - 1 - math.floor(math.log10(a))):.0f}"
    return f"{v:.{digits}g}"


def mean_sd(values: Iterable[Any], digits: int = 3) -> str:
    """'mean ± sd' (sample sd) of the finite values, 'n/a' when there is none; one value: 'mean ± 0'."""
    x = np.asarray([float(v) for v in values if not _missing(v)], dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return "n/a"
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return f"{num(x.mean(), digits)} ± {num(sd, 2)}"


def percent(v: Any) -> str:
    return "n/a" if _missing(v) else f"{float(v):.1%}"


def usd(v: Any) -> str:
    return "n/a" if _missing(v) else f"${float(v):,.0f}"


def count(v: Any) -> str:
    return "n/a" if _missing(v) else f"{int(v):,}"


def p_value(p: float) -> str:
    if _missing(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def metric_label(metric: str) -> str:
    """A reader's name for a metric column (the column name itself when there is none)."""
    if metric in METRIC_LABELS:
        return METRIC_LABELS[metric]
    for prefix, text in PREFIX_LABELS:
        if metric.startswith(prefix):
            return f"{text} {metric.removeprefix(prefix)}"
    return metric


def short_name(param: str) -> str:
    """The last two parts of a dotted parameter name ('pool.reserves.ETH.ltv' -> 'ETH.ltv')."""
    parts = param.split(".")
    return ".".join(parts[-2:]) if len(parts) > 2 else param


def slug(name: str) -> str:
    """A file-name-safe form of a name."""
    return "".join(c if c.isalnum() else "_" for c in name)


# --- markdown -----------------------------------------------------------------------------------------------------


def cell(v: Any) -> str:
    """A table cell: text as it is, numbers through `num`; pipes escaped."""
    text = v if isinstance(v, str) else num(v)
    return text.replace("|", "\\|")


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells through `cell`."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def frame_table(frame: pd.DataFrame, index: bool = True) -> str:
    """A DataFrame as a markdown table (its index as the first columns when `index`)."""
    df = frame.reset_index() if index else frame
    return markdown_table([str(c) for c in df.columns], df.itertuples(index=False, name=None))


def mean_sd_table(
    runs: pd.DataFrame, by: str | list[str], columns: dict[str, str], order: Sequence[Any] | None = None
) -> pd.DataFrame:
    """One row per group of `by`: 'mean ± sd' over runs of each column (renamed by `columns`), and the run count.
    Columns absent from `runs` are left out; `order`: the groups' order (default: sorted)."""
    present = {c: label for c, label in columns.items() if c in runs.columns}
    groups = runs.groupby(by, sort=order is None, dropna=False)
    out = groups[list(present)].agg(lambda s: mean_sd(s)) if present else pd.DataFrame(index=groups.size().index)
    out = out.rename(columns=present)
    out["runs"] = groups.size()
    if order is not None:
        out = out.reindex(list(order)).dropna(how="all")
    return out


def figure_link(title: str, path: Path, relative_to: Path) -> str:
    """A markdown image with a bold title above it."""
    return f"**{title}**\n\n![{title}]({path.relative_to(relative_to).as_posix()})\n"


# --- sections -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section[C]:
    """One part of a report: `render(context)` returns its markdown lines (and may write figures); `when(context)`
    says whether the report has it."""

    name: str
    render: Callable[[C], list[str]]
    when: Callable[[C], bool] = lambda _: True


def render_sections[C](sections: Sequence[Section[C]], context: C) -> str:
    """The markdown of every section that applies to `context`, in order."""
    lines: list[str] = []
    for section in sections:
        if section.when(context):
            lines += section.render(context)
    return "\n".join(lines).rstrip() + "\n"
