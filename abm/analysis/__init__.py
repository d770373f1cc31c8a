"""Analysis: summary metrics (amplification, stylised facts), figures and reports."""
