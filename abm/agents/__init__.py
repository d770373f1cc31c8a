"""The Mesa agents: leveraged traders, liquidators, lenders and oracle updaters (one file each)."""

from abm.agents.lender import Lender
from abm.agents.liquidator import Liquidator
from abm.agents.oracle_updater import OracleUpdater
from abm.agents.trader import LeveragedTrader

__all__ = ["Lender", "LeveragedTrader", "Liquidator", "OracleUpdater"]
