"""Contagion: loss attribution, the cascade graph (ex post), the exposure graph (ex ante), DebtRank, Hawkes check."""
