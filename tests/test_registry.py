"""Registering many agents at once (`abm.agents.registry.new_agents`): the model's Mesa structures are what one
`mesa.Agent.__init__` per agent makes, and Mesa keeps working on them (removal, new agents, data collection)."""

from __future__ import annotations

import logging

import mesa
import numpy as np
import pytest
from mesa.experimental.mesa_signals import ModelSignals

from abm import ModelConfig, ReflexivityModel
from abm.agents import LeveragedTrader, PerpTrader
from abm.agents.registry import new_agents

# the perp venue on: lending and perp traders interleaved, so two trader classes share the id sequence
CONFIG = ModelConfig.from_preset("perp_crash", {"traders.n_traders": 200})


def structure(model: ReflexivityModel) -> dict[str, object]:
    """What Mesa's registration decides, and what each trader is."""
    return {
        "ids": [a.unique_id for a in model.agents],
        "classes": [type(a) for a in model.agents],
        "types": model.agent_types,
        "by_type": {t: [a.unique_id for a in s] for t, s in model.agents_by_type.items()},
        "counter": model.agent_id_counter,
        "traders": [
            (t.model is model, t.unique_id, t.pos, t.book is model.book, t.holder, t.assets, t.accounts, t.mode)
            for t in model.traders
        ],
    }


def test_many_at_once_is_what_mesa_makes_one_at_a_time(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="MESA.mesa.model"):  # someone reads Mesa's log: Mesa's own path
        one_at_a_time = ReflexivityModel(CONFIG, rng=3, steps=10)
    assert "registered LeveragedTrader with agent_id 1" in caplog.text
    assert not logging.getLogger("MESA.mesa.model").isEnabledFor(logging.DEBUG)  # so this one registers at once
    at_once = ReflexivityModel(CONFIG, rng=3, steps=10)
    first, second = structure(one_at_a_time), structure(at_once)
    assert first == second
    assert second["ids"] == list(range(1, len(at_once.agents) + 1))
    assert {LeveragedTrader, PerpTrader} <= set(at_once.agent_types)
    assert at_once.traders[5].unique_id == 6 and at_once.traders[5].model is at_once


def test_mesa_keeps_working_on_agents_registered_at_once() -> None:
    model = ReflexivityModel(CONFIG, rng=3, steps=10)
    n, trader = len(model.agents), model.traders[7]
    its_set = model.agents_by_type[type(trader)]
    size = len(its_set)
    trader.remove()
    assert len(model.agents) == n - 1 and trader not in model.agents
    assert len(its_set) == size - 1 and trader not in its_set
    newcomer = mesa.Agent(model)  # the id sequence continues after the bulk
    assert newcomer.unique_id == n + 1 and newcomer in model.agents
    lending = model.agents_by_type[LeveragedTrader]
    collector = mesa.DataCollector(agenttype_reporters={LeveragedTrader: {"holder": "holder"}})
    collector.collect(model)
    rows = collector.get_agenttype_vars_dataframe(LeveragedTrader)
    assert len(rows) == len(lending)
    np.testing.assert_array_equal(rows["holder"].to_numpy(), [t.holder for t in lending])


def test_an_observed_registration_signals_every_agent() -> None:
    model = ReflexivityModel(CONFIG, rng=3, steps=10)
    seen: list[object] = []

    def heard(signal: object) -> None:  # Mesa keeps a weak reference to its handlers: a function of our own
        seen.append(signal)

    model.observe("agents", ModelSignals.AGENT_ADDED, heard)
    first = model.agent_id_counter
    agents = new_agents(model, [LeveragedTrader, PerpTrader, LeveragedTrader])
    assert len(seen) == 3
    assert [a.unique_id for a in agents] == [first, first + 1, first + 2]
    assert all(a in model.agents_by_type[type(a)] for a in agents)
