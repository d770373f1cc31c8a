"""Contagion: attribution of losses to liquidation sales, the cascade graph (ex post) and the exposure graph (ex ante)."""
