"""The outside market: fundamentals and scenarios, price impact (the market ledger), oracle aggregation."""

from abm.market.fundamentals import Fundamentals
from abm.market.impact import Market
from abm.market.oracle import OracleBoard

__all__ = ["Fundamentals", "Market", "OracleBoard"]
