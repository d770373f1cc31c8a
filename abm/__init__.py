"""abm: an agent-based model of reflexivity in leveraged crypto markets.

Leveraged traders, liquidators, lenders and oracle updaters (Mesa agents) interact through a shared lending pool
and a market with finite depth, so that forced selling can deepen an exogenous fall. Start with::

    import abm
    result = abm.run("crash", seed=1)
    result.summary["amplification_ETH"]
"""

from abm.config import ModelConfig
from abm.model import ReflexivityModel
from abm.run import RunResult, run

__all__ = ["ModelConfig", "ReflexivityModel", "RunResult", "run"]
__version__ = "0.1.0"
