"""The teaching page: a Solara app over the live model (`abm app`; see docs/teaching.md).

`page` (layout, state, play loop), `controls` (sidebar), `panels` (live panels), `figures` (matplotlib charts),
`sim` (controls to models, no user interface), `text` (captions), `server` (`abm app`), `offline_assets`.
"""
