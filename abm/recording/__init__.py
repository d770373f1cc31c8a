"""Per-step bookkeeping below the model: the step recorder (time series, events, write-offs, HF histograms), the
liquidation-attribution ledger and the equity snapshot. The model owns one of each and calls them; after-the-run
analysis (`abm.contagion`) reads what they recorded."""
