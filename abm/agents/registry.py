"""Many Mesa agents at once: what `mesa.Agent.__init__` does for one agent (`Model.register_agent`), done for a
whole population in a few passes.

Mesa registers an agent when its `__init__` runs: the next `unique_id`, the model's agent set, the set of its type,
an `agents` signal (`ModelSignals.AGENT_ADDED`) and a debug log line. For a million traders that is most of the
model's build. `new_agents` gives the same result (same ids, same order in `model.agents` and in
`model.agents_by_type`, the same types in the same order in `model.agent_types`) without the per-agent calls, and
`agent.remove()` and Mesa's data collection work on these agents as on any other. Nobody listens to the signal or
reads the debug log in a run; when someone does (a subscriber, a signal batch, Mesa's debug logging, a dataset that
tracks the class), every agent goes through Mesa's own `Agent.__init__` instead, so they see every agent.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import mesa
from mesa.agentset import _HardKeyAgentSet
from mesa.experimental.mesa_signals import ModelSignals


def _registration_observed(model: mesa.Model, classes: Sequence[type[mesa.Agent]]) -> bool:
    """Whether anyone sees agents being registered one by one: an `agents` signal that would be delivered or
    batched, Mesa's debug log of the registration, or a dataset tracking one of the classes."""
    signalled = ("agents", ModelSignals.AGENT_ADDED) in model.subscribers or model._batch_context is not None
    logged = logging.getLogger("MESA.mesa.model").isEnabledFor(logging.DEBUG)
    return (signalled and not model._suppress) or logged or any(cls._datasets for cls in classes)


def new_agents[A: mesa.Agent](model: mesa.Model, classes: Sequence[type[A]]) -> list[A]:
    """One new agent of `classes[i]` for each i, registered with `model` in that order as `mesa.Agent.__init__`
    registers each (the caller sets their own attributes: their classes' `__init__` is not run). Each has `model`,
    `unique_id` (consecutive from the model's counter) and `pos` (None), in that attribute order, as Mesa's."""
    kinds = list(dict.fromkeys(classes))  # in order of first appearance: the order Mesa adds their agent sets
    if _registration_observed(model, kinds):
        agents = [cls.__new__(cls) for cls in classes]
        for agent in agents:
            mesa.Agent.__init__(agent, model)
        return agents
    first = model.agent_id_counter
    plain = all(cls.__new__ is object.__new__ for cls in kinds)  # no class of its own `__new__`: the fast call
    agents = list(map(object.__new__, classes)) if plain else [cls.__new__(cls) for cls in classes]
    for agent, unique_id in zip(agents, range(first, first + len(agents)), strict=True):
        agent.model = model
        agent.unique_id = unique_id
        agent.pos = None
    model.agent_id_counter = first + len(agents)
    # the ordered dicts behind Mesa's agent sets, filled as `add` fills them, one agent after another: the agents
    # hashed into one dict once, which the sets then take over in one copy each
    added = dict.fromkeys(agents)
    model.agents._agents.update(added)
    by_type = model.agents_by_type
    for cls in kinds:
        if cls not in by_type:
            by_type[cls] = _HardKeyAgentSet([], random=model.random)  # as `register_agent` makes it (random first)
        of_cls = (
            added if len(kinds) == 1 else dict.fromkeys(a for a, c in zip(agents, classes, strict=True) if c is cls)
        )
        by_type[cls]._agents.update(of_cls)
    return agents


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (back on after it if it was on): building a million
    agents and their lists allocates millions of objects, and the collector would pass over the growing heap again
    and again (seconds at a million traders) to find no garbage. Reference counting frees memory as always."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
