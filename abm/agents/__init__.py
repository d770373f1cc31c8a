"""The Mesa agents: leveraged traders (on the lending pool or, `PerpTrader`, on the perpetual venue), basis traders,
liquidators, lenders and oracle updaters (one file each)."""

from abm.agents.basis_trader import BasisTrader
from abm.agents.lender import Lender
from abm.agents.liquidator import Liquidator
from abm.agents.looper import LoopingTrader
from abm.agents.oracle_updater import OracleUpdater
from abm.agents.perp_trader import PerpTrader
from abm.agents.trader import LeveragedTrader

__all__ = ["BasisTrader", "Lender", "LeveragedTrader", "Liquidator", "LoopingTrader", "OracleUpdater", "PerpTrader"]
