"""The small oracle-attack model the adversary tests share (tests/test_adversaries.py: the deep-market route;
tests/test_oracle_venue.py: the thin venue): the `oracle_attack` preset at 200 traders, the attack from step 5,
invariants checked every step."""

from __future__ import annotations

from abm import ModelConfig, ReflexivityModel

SMALL = {"traders.n_traders": 200}


def oracle_attack_model(
    twap: int, n_updaters: int, corrupt: int, steps: int = 80, **overrides: object
) -> ReflexivityModel:
    """`oracle_attack` with a `twap`-step TWAP over `n_updaters` updaters, `corrupt` of them the attacker's."""
    config = ModelConfig.from_preset(
        "oracle_attack",
        {
            **SMALL,
            "oracles.twap_window_steps": twap,
            "oracles.n_updaters": n_updaters,
            "attacker.corrupt_updaters": corrupt,
            "attacker.start_step": 5,
            "check_invariants": True,
            **overrides,
        },
    )
    return ReflexivityModel(config, rng=1, steps=steps)
