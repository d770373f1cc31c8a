"""Perpetual futures: a venue with its own books, funding, tiered margin and a liquidation waterfall
(docs/perps.md)."""

from abm.perps.venue import BOOK, FIRST_ACCOUNT, VAULT, PerpVenue, perp_config
from abm.perps.waterfall import STAGES, AdlEvent, Fill, LiquidationEvent, adl_allocation

__all__ = [
    "BOOK",
    "FIRST_ACCOUNT",
    "STAGES",
    "VAULT",
    "AdlEvent",
    "Fill",
    "LiquidationEvent",
    "PerpVenue",
    "adl_allocation",
    "perp_config",
]
