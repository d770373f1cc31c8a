"""Errors the library raises on purpose.

`UserInputError` (and its subclasses) mean the *input* is wrong: a bad configuration value, an unknown parameter,
a missing data file. The CLI prints their one-line message and exits with status 2. `InvariantError` means the
*model* broke one of its accounting identities; it is a bug, never the user's fault, and is never swallowed.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Input (configuration, experiment file, CLI argument, data file) that breaks a documented rule."""


class ConfigError(UserInputError):
    """A configuration value or key that breaks a rule; the message names the field, the value and the rule."""


class InvariantError(AssertionError):
    """An accounting invariant (docs/model.md, "5. Invariants") failed; the message names the step, the ledger and the
    amounts."""
