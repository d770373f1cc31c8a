"""What the model records each step (docs/model.md, 1.3 Process overview and scheduling): the time-series row,
liquidation events (the lending pool's and the perp venue's, in one table with a `venue` column), write-offs, HF
histograms.

The row is computed once per step from the model's arrays (vectorised) into the next row of a table preallocated for
the run (`StepRecorder`); `RowCollector` keeps it, shows the rows so far as Mesa's `DataCollector.model_vars` (one
list per column) and builds the time-series table once at the end. Events and write-offs are plain lists turned
into tables at the end of a run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import mesa
import numpy as np
import pandas as pd

from abm.lending.kernels import book_totals, finite_percentiles_histogram
from abm.lending.margin import LiquidationPlan
from abm.lending.pool import WriteOff
from abm.numerics import row_sums
from abm.perps import FIRST_ACCOUNT, VAULT
from abm.recording.attribution import Attribution
from abm.recording.baseline import baseline_crossing_columns

if TYPE_CHECKING:
    from abm.model import ReflexivityModel

# log-spaced health-factor bins for the distribution-over-time figure; the last bin collects HF >= 5
HF_BIN_EDGES = np.concatenate([np.geomspace(0.5, 5.0, 24), [np.inf]])


_HIST_BINS = np.concatenate([[0.0], HF_BIN_EDGES])
_HF_PERCENTILES = np.array([10.0, 50.0, 90.0])


class RecordedColumns(Mapping[str, list[float]]):
    """The rows kept so far as Mesa's `DataCollector.model_vars` holds them: column -> list of its values (floats,
    and ints for the count columns), read from the recorder's table (each column's list is made once per number of
    rows kept, so readers that go over every column at every step, as `mesa.batch_run` does, stay cheap)."""

    def __init__(self, recorder: StepRecorder) -> None:
        self.recorder = recorder
        self._lists: dict[str, list[float]] = {}
        self._n_rows = -1  # the number of rows `_lists` were made from

    def __getitem__(self, column: str) -> list[float]:
        rec = self.recorder
        if self._n_rows != rec.n_rows:
            self._lists.clear()
            self._n_rows = rec.n_rows
        values = self._lists.get(column)
        if values is None:
            values = self._lists[column] = rec.column_values(column, 0, rec.n_rows).tolist()
        return values

    def __contains__(self, column: object) -> bool:
        return column in self.recorder.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.recorder.columns)

    def __len__(self) -> int:
        return len(self.recorder.columns)


class RowCollector(mesa.DataCollector):
    """Mesa's DataCollector over the recorder's table: `collect` keeps the row the recorder computed last and the
    collection time in `_collection_steps` (which `mesa.batch_run` reads), without Mesa's per-column reporter calls
    and copies; `model_vars` shows the rows kept so far (`RecordedColumns`); `get_model_vars_dataframe` builds the
    table once."""

    def __init__(self, recorder: StepRecorder) -> None:
        super().__init__()
        self.recorder = recorder
        self.model_vars = RecordedColumns(recorder)

    def collect(self, model: ReflexivityModel) -> None:
        self._collection_steps.append(model.time)
        self.recorder.keep_row()

    def get_model_vars_dataframe(self) -> pd.DataFrame:
        return self.recorder.table()


# per-asset columns of the row: "<quantity>_<symbol>", for each risky asset and for each reserve (USD included)
RISKY_ASSET_QUANTITIES = ("price", "fundamental", "oracle", "liquidation_impact")
RESERVE_QUANTITIES = ("utilisation", "borrow_rate", "supply_rate", "cash", "borrows", "supplied", "reserves")
# the book-wide columns after the per-asset ones, in the table's order
BOOK_COLUMNS = (
    "total_collateral_usd",
    "total_debt_usd",
    "aggregate_leverage",
    "n_liquidations",
    "liquidation_volume_usd",
    "bad_debt_usd",
    "lender_loss_usd",
    "dilution_usd",
    "reserves_loss_usd",
    "withdrawals_blocked_usd",
    "n_liquidatable",
)
# the columns `compute_row` fills from scalars, in the order it fills them
_SCALAR_COLUMNS = ("step", *BOOK_COLUMNS, "n_active_traders")
# the columns that count (int64 in the table); the others are float64
COUNT_COLUMNS = frozenset(
    (
        "step",
        "n_liquidations",
        "n_liquidatable",
        *baseline_crossing_columns(),
        "n_active_traders",
        "n_perp_liquidations",
        "n_adl",
    )
)


def timeseries_columns(symbols: list[str], perps: bool = False) -> list[str]:
    """Column names of the per-step table, in order (the documented run outputs plus a few diagnostics); with
    `perps`, the perpetual venue's columns (`perp_columns`) follow."""
    cols = ["step"]
    for s in symbols[1:]:
        cols += [f"{q}_{s}" for q in RISKY_ASSET_QUANTITIES]
    for s in symbols:
        cols += [f"{q}_{s}" for q in RESERVE_QUANTITIES]
    cols += [
        *BOOK_COLUMNS,
        *baseline_crossing_columns(),
        "n_active_traders",
        "hf_p10",
        "hf_p50",
        "hf_p90",
    ]
    return cols + perp_columns(symbols) if perps else cols


def perp_columns(symbols: list[str]) -> list[str]:
    """The perpetual venue's columns, present only in runs with `perps.enabled` (a run without the venue keeps
    exactly the columns it always had). Per risky asset A, at the end of the step:

    - mark_A, index_A: the venue's mark price and its index (the oracle price), USD/token;
    - premium_A: this step's premium index sample (dimensionless: (impact bid - index)+ - (index - impact ask)+,
      over the index);
    - basis_A: mark / index - 1 (dimensionless);
    - funding_rate_A: the rate paid at the last funding payment, per funding period (fraction of notional; > 0:
      longs pay shorts);
    - open_interest_A: open interest in USD, the long side (= the short side) over every position, the book's
      and the vault's included, at mark;
    - basis_spot_dm_A: log price impact of basis traders' spot trades this step (< 0: their sales);
    - spot_liquidation_dm_A: log price impact of the lending liquidators' spot sales this step.

    Venue-wide: insurance_fund_usd; vault_equity_usd (the backstop vault's equity at mark); perp_bad_debt_usd
    (cumulative); n_perp_liquidations and perp_liquidation_volume_usd (positions closed this step: count of
    liquidated positions, USD at their fill prices over every waterfall stage); n_adl and adl_volume_usd (ADL fills
    this step, USD at the bankruptcy price); funding_paid_usd (gross funding paid this step by the positions that
    paid); basis_position_usd (basis traders' short legs, USD at mark)."""
    cols: list[str] = []
    for s in symbols[1:]:
        cols += [
            f"mark_{s}",
            f"index_{s}",
            f"premium_{s}",
            f"basis_{s}",
            f"funding_rate_{s}",
            f"open_interest_{s}",
            f"basis_spot_dm_{s}",
            f"spot_liquidation_dm_{s}",
        ]
    return [
        *cols,
        "insurance_fund_usd",
        "vault_equity_usd",
        "perp_bad_debt_usd",
        "n_perp_liquidations",
        "perp_liquidation_volume_usd",
        "n_adl",
        "adl_volume_usd",
        "funding_paid_usd",
        "basis_position_usd",
    ]


def risk_columns(symbols: list[str]) -> list[str]:
    """The risk manager's columns, present only in runs with `risk_manager.enabled` (docs/model.md, "Adaptive risk
    parameters"). Per risky asset A, at the end of the step: ltv_A and liquidation_threshold_A, the reserve's
    current parameters (fractions). Book-wide, at oracle prices over every lending account (USD):
    borrow_capacity_usd, the largest debt the collateral supports, sum_i c_i p_i LTV_i; borrow_headroom_usd, the
    part of it not yet borrowed, sum over accounts of max(capacity - debt, 0); and static_borrow_capacity_usd,
    static_borrow_headroom_usd, the same for the same positions under the parameters the run started with."""
    cols = [c for s in symbols[1:] for c in (f"ltv_{s}", f"liquidation_threshold_{s}")]
    return [
        *cols,
        "borrow_capacity_usd",
        "static_borrow_capacity_usd",
        "borrow_headroom_usd",
        "static_borrow_headroom_usd",
    ]


def lending_events(events: pd.DataFrame) -> pd.DataFrame:
    """The lending pool's rows of an events table (`venue` == "lending"; every row of a table saved before perps
    existed). Lending and perp account ids are separate numberings, and pool-specific quantities (seized collateral,
    repaid debt, the distress of accounts with debt) concern the pool's liquidations only."""
    if "venue" not in events.columns:
        return events
    return events[events["venue"] == "lending"]


class StepRecorder:
    """Computes each step's row and keeps the event records of a run.

    The rows are kept in one float64 table preallocated for the run's steps (one row per collection), its columns
    in the order `compute_row` fills them (`_slot`): the per-asset arrays whole (the numéraire's entry of a risky
    asset quantity is kept there and never shown), the scalars, the baseline crossings, the HF percentiles, then
    the perp venue's and the risk manager's columns. Counts are kept as floats, exactly (they are far below
    2^53), and read back as int64 (`COUNT_COLUMNS`)."""

    def __init__(self, model: ReflexivityModel) -> None:
        self.model = model
        symbols = model.symbols
        self.columns = timeseries_columns(symbols, perps=model.perps is not None)
        if model.risk_manager is not None:
            self.columns += risk_columns(symbols)
        per_asset = [f"{q}_{s}" for q in RISKY_ASSET_QUANTITIES + RESERVE_QUANTITIES for s in symbols]
        core = [*per_asset, *_SCALAR_COLUMNS, *baseline_crossing_columns(), "hf_p10", "hf_p50", "hf_p90"]
        # the perp venue's and the risk manager's columns, filled by name (`perp_row`, `risk_row`)
        self._extra_columns = [c for c in self.columns if c not in core]
        slots = {c: j for j, c in enumerate(core + self._extra_columns)}
        self._n_core = len(core)
        self._slot = {c: slots[c] for c in self.columns}  # column -> its place in a row of the table
        self._table = np.empty((model.total_steps + 1, len(slots)))  # the initial row and one per step
        self.n_rows = 0  # rows kept (`keep_row`)
        self._last_row = 0  # the row `compute_row` filled last
        self._perp_liquidations_seen = 0  # venue events already in an earlier row
        self._adl_seen = 0
        self.events: list[dict[str, Any]] = []
        self.edges: list[tuple[int, int, float]] = []  # (parent event, child event, weight)
        self.write_offs: list[WriteOff] = []
        self.hf_histogram: list[np.ndarray] = []
        self.n_liquidatable = 0
        self._step_liquidations = 0
        self._step_volume = 0.0
        self._events_this_step: dict[int, int] = {}  # account -> index in events (latest this step)
        self._perp_event_rows: dict[int, int] = {}  # perp event id -> index in events, until its fills are in
        self.datacollector = RowCollector(self)
        self.compute_row()

    def keep_row(self) -> None:
        """Keep the row `compute_row` filled last (the data collector's `collect`)."""
        self.n_rows = self._last_row + 1

    def column_values(self, column: str, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 of a column (int64 for the counts, else float64; a float column is a view of the
        table)."""
        values = self._table[start:stop, self._slot[column]]
        return values.astype(np.int64) if column in COUNT_COLUMNS else values

    @property
    def row(self) -> dict[str, float]:
        """The row `compute_row` filled last, column -> value (ints for the counts)."""
        last = self._last_row
        return {c: self.column_values(c, last, last + 1).tolist()[0] for c in self.columns}

    def table(self) -> pd.DataFrame:
        """The kept rows as the run's time-series table (`columns` in order; counts int64, the rest float64)."""
        return pd.DataFrame({c: self.column_values(c, 0, self.n_rows) for c in self.columns})

    def begin_step(self) -> None:
        self._step_liquidations = 0
        self._step_volume = 0.0
        self._events_this_step.clear()

    def add_event(
        self,
        event_id: int,
        account: int,
        owner: int,
        liquidator: int,
        plan: LiquidationPlan,
        attribution: Attribution,
        distress_step: int,
    ) -> None:
        """Record one liquidation (executed as `plan` by agent `liquidator`) and, if it was endogenous, its edges
        from the earlier liquidations that caused it. distress_step: the step the account's health factor first
        showed below 1 in this episode (it was healthy at the step before)."""
        m = self.model
        oracle = m.oracle.prices
        debt_asset, coll_asset = plan.debt_asset, plan.collateral_asset
        repaid, seized = plan.repay, plan.seize
        self._append_event(
            event_id,
            attribution,
            {
                "step": m.steps,
                "distress_step": distress_step,
                "event_id": event_id,
                "account": account,
                "owner": owner,
                "liquidator": liquidator,
                "debt_asset": m.symbols[debt_asset],
                "repaid": repaid,
                "repaid_usd": repaid * float(oracle[debt_asset]),
                "collateral_asset": m.symbols[coll_asset],
                "seized": seized,
                "seized_usd": seized * float(oracle[coll_asset]),
                "price": float(oracle[coll_asset]),
                "market_price": m.market.price(coll_asset),
                "hf_before": plan.hf_before,
                "bad_debt_usd": 0.0,
                "venue": "lending",
            },
        )
        self._events_this_step[account] = len(self.events) - 1
        self._step_liquidations += 1
        self._step_volume += repaid * float(oracle[debt_asset])

    def _append_event(self, event_id: int, attribution: Attribution, row: dict[str, Any]) -> None:
        """Append an event row with its attribution columns (endogenous flag and share, exogenous and other loss)
        and, if it was endogenous, its edges from the earlier events that caused it (both venues alike)."""
        share = attribution.endogenous_share
        endogenous = share >= self.model.config.contagion.endogenous_share
        row.update(
            endogenous=bool(endogenous),
            endogenous_share=share,
            loss_exogenous=attribution.exogenous,
            loss_other=attribution.other,
        )
        self.events.append(row)
        if endogenous:
            self.edges.extend((parent, event_id, w) for parent, w in attribution.parents().items())

    def add_perp_event(
        self,
        event_id: int,
        account: int,
        owner: int,
        asset: int,
        attribution: Attribution,
        distress_step: int,
        hf_before: float,
    ) -> None:
        """Record the liquidation of perp position (account, asset), found below maintenance by this step's margin
        pass and not yet closed, and, if it was endogenous, its edges from the liquidations (of either venue) that
        caused it. The row's volume and bad debt come from its waterfall's fills at the end of the step
        (`perp_row`). Columns that have a lending meaning only are NaN or None (docs/contagion.md, "Cascade
        graph"): liquidator -1 (the venue's engine), debt_asset None, seized and seized_usd NaN."""
        m = self.model
        venue = m.perps
        assert venue is not None
        self._perp_event_rows[event_id] = len(self.events)
        self._append_event(
            event_id,
            attribution,
            {
                "step": m.steps,
                "distress_step": distress_step,
                "event_id": event_id,
                "account": account,
                "owner": owner,
                "liquidator": -1,
                "debt_asset": None,
                "repaid": 0.0,  # contracts closed (tokens), every stage
                "repaid_usd": 0.0,  # their notional at the fill prices (USD)
                "collateral_asset": m.symbols[asset],
                "seized": float("nan"),
                "seized_usd": float("nan"),
                "price": float(venue.mark_prices()[asset]),
                "market_price": float(venue.book_prices()[asset]),
                "hf_before": hf_before,
                "bad_debt_usd": 0.0,
                "venue": "perp",
            },
        )

    def add_write_off(self, rec: WriteOff, event_row: int | None = None) -> None:
        """Record a write-off; the liquidation event that left it (row `event_row` of `events`, by default this
        step's liquidation of the account, if any) carries its bad debt."""
        self.write_offs.append(rec)
        idx = self._events_this_step.get(rec.account) if event_row is None else event_row
        if idx is not None:  # the liquidation that exhausted the collateral carries the bad debt it left
            self.events[idx]["bad_debt_usd"] += rec.amount_usd

    def end_step(self) -> None:
        self.compute_row()

    def compute_row(self) -> None:
        """Fill the table's next row (after the kept ones) with the model's state now."""
        m = self.model
        pool, engine, market = m.pool, m.engine, m.market
        oracle = m.oracle.prices
        if self.n_rows == len(self._table):  # stepped past the planned steps: room for as many again
            self._table = np.concatenate((self._table, np.empty_like(self._table)))
        n = engine.n
        collateral, scaled_debt = engine.collateral[:n], engine.scaled_debt[:n]
        # basis traders' and loopers' lending accounts belong to holders after the traders: left out (otherwise
        # every holder counts, as the wallets number them)
        n_owners = len(m.traders) if m.basis_traders or m.loopers else len(m.wallets.balances)
        coll_total, debt_total, active = book_totals(
            collateral, scaled_debt, oracle, pool.borrow_index * oracle, engine.owner[:n], n_owners
        )
        equity = coll_total - debt_total
        if m.perps is not None:  # perp traders hold positions with the venue
            venue = m.perps
            perp_owners = venue.owner[FIRST_ACCOUNT : venue.n]
            held = np.any(venue.size[FIRST_ACCOUNT : venue.n] != 0, axis=1) & (perp_owners < len(m.traders))
            active[perp_owners[held]] = True
        # the percentiles and the histogram of the finite health factors, without sorting them all
        percentiles, histogram = finite_percentiles_histogram(m.hf, _HF_PERCENTILES, _HIST_BINS)
        self.hf_histogram.append(histogram)  # HF >= 0; the last bin is [5, inf]
        unmet = pool.unmet_withdrawals  # this step's unmet requests (tokens, >= 0): none in the usual step
        blocked_usd = float(unmet @ oracle) if any(unmet.tolist()) else 0.0
        scalars = [  # in `_SCALAR_COLUMNS` order
            m.steps,
            coll_total,
            debt_total,
            coll_total / equity if equity > 0 else float("nan"),
            self._step_liquidations,
            self._step_volume,
            pool.bad_debt_usd,
            pool.lender_loss_usd,
            pool.dilution_usd,
            pool.reserves_loss_usd,
            blocked_usd,
            self.n_liquidatable,
            np.count_nonzero(active),
        ]
        utilisation, borrow_rates, supply_rates = pool.rates()
        row = self._table[self.n_rows]
        per_asset = (market.prices, m.fundamentals.prices, oracle, market.liquidation_impact)
        reserves = (utilisation, borrow_rates, supply_rates, pool.cash, pool.borrows, pool.supplied, pool.reserves)
        np.concatenate((*per_asset, *reserves, scalars, m.baseline.new_crossings, percentiles), out=row[: self._n_core])
        if self._extra_columns:
            extra: dict[str, float] = {}
            if m.perps is not None:
                self.perp_row(extra)
            if m.risk_manager is not None:
                coll, debt = engine.values(oracle)
                self.risk_row(extra, coll, row_sums(debt))
            row[self._n_core :] = [extra[c] for c in self._extra_columns]
        self._last_row = self.n_rows

    def risk_row(self, row: dict[str, float], coll: np.ndarray, debt_usd: np.ndarray) -> None:
        """Add the risk manager's columns (`risk_columns`) to `row`. coll: (accounts, assets) collateral in USD at
        oracle prices; debt_usd: each account's debt (USD)."""
        m = self.model
        pool, manager = m.pool, m.risk_manager
        assert manager is not None
        for a, s in enumerate(m.symbols[1:], start=1):
            row[f"ltv_{s}"] = float(pool.ltv[a])
            row[f"liquidation_threshold_{s}"] = float(pool.liquidation_threshold[a])
        enabled = pool.collateral_enabled
        for prefix, ltv in (("", pool.ltv), ("static_", manager.configured_ltv)):
            capacity = coll @ np.where(enabled, ltv, 0.0)  # per account (USD)
            row[f"{prefix}borrow_capacity_usd"] = float(capacity.sum())
            row[f"{prefix}borrow_headroom_usd"] = float(np.clip(capacity - debt_usd, 0.0, None).sum())

    def perp_row(self, row: dict[str, float]) -> None:
        """Add the perpetual venue's columns (`perp_columns`) to `row`."""
        m = self.model
        venue = m.perps
        assert venue is not None
        mark = venue.mark_prices()
        long_oi = venue.open_interest()[0]
        for a, s in enumerate(m.symbols[1:], start=1):
            row[f"mark_{s}"] = float(mark[a])
            row[f"index_{s}"] = float(venue.index[a])
            row[f"premium_{s}"] = float(venue.premium[a])
            row[f"basis_{s}"] = float(mark[a] / venue.index[a] - 1.0)
            row[f"funding_rate_{s}"] = float(venue.last_funding_rate[a])
            row[f"open_interest_{s}"] = float(long_oi[a] * mark[a])
            row[f"basis_spot_dm_{s}"] = float(m.basis_spot_dm[a])
            row[f"spot_liquidation_dm_{s}"] = float(m.market.dm_step["liq"][a])
        row["insurance_fund_usd"] = float(venue.insurance_fund)
        row["vault_equity_usd"] = float(venue.cash[VAULT] + venue.size[VAULT] @ (mark - venue.entry[VAULT]))
        row["perp_bad_debt_usd"] = float(venue.bad_debt)
        new_liq = venue.liquidations[self._perp_liquidations_seen :]
        self._perp_liquidations_seen = len(venue.liquidations)
        for e in new_liq:  # each fill adds to its event's row: contracts, notional, loss nobody covered
            idx = self._perp_event_rows.get(e.event_id)
            if idx is not None:
                rec = self.events[idx]
                rec["repaid"] += e.size
                rec["repaid_usd"] += e.size * e.price
                if e.stage == "bad_debt":
                    rec["bad_debt_usd"] += e.shortfall
        self._perp_event_rows.clear()
        row["n_perp_liquidations"] = len({(e.event_id, e.asset) for e in new_liq})
        row["perp_liquidation_volume_usd"] = float(sum(e.size * e.price for e in new_liq))
        new_adl = venue.adl_events[self._adl_seen :]
        self._adl_seen = len(venue.adl_events)
        row["n_adl"] = len(new_adl)
        row["adl_volume_usd"] = float(sum(e.size * e.price for e in new_adl))
        row["funding_paid_usd"] = float(m.funding_paid_usd)
        row["basis_position_usd"] = float(sum(b.short_tokens() * mark[b.asset] for b in m.basis_traders))
