"""The shared lending pool (reserves, indices, bad-debt waterfall), wallets, and the margin engine (accounts)."""

from abm.lending.margin import MarginEngine
from abm.lending.pool import LendingPool
from abm.lending.wallets import Wallets

__all__ = ["LendingPool", "MarginEngine", "Wallets"]
