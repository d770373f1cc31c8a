"""The parameter reference (docs/parameters.md), generated from the schema so it never drifts from the code.

python -m abm.config.reference > docs/parameters.md
"""

from __future__ import annotations

from pydantic import BaseModel

from abm.config.loader import from_preset
from abm.config.schema import AssetConfig, MarginTier, ModelConfig, ReserveConfig

SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("", ModelConfig, "Run"),
    ("market.", ModelConfig.model_fields["market"].annotation, "Market and price impact"),
    ("assets.<A>.", AssetConfig, "Risky assets (one table per symbol)"),
    ("pool.", ModelConfig.model_fields["pool"].annotation, "Lending pool"),
    ("pool.reserves.<A>.", ReserveConfig, "Reserves (one table per asset, USD included)"),
    ("traders.", ModelConfig.model_fields["traders"].annotation, "Leveraged traders"),
    ("liquidators.", ModelConfig.model_fields["liquidators"].annotation, "Liquidators"),
    (
        "auctions.",
        ModelConfig.model_fields["auctions"].annotation,
        "Liquidation auctions (liquidators.mechanism english or dutch)",
    ),
    ("lenders.", ModelConfig.model_fields["lenders"].annotation, "Lenders"),
    ("oracles.", ModelConfig.model_fields["oracles"].annotation, "Oracles"),
    ("contagion.", ModelConfig.model_fields["contagion"].annotation, "Contagion bookkeeping"),
    ("start.", ModelConfig.model_fields["start"].annotation, "Initial state"),
    ("perps.", ModelConfig.model_fields["perps"].annotation, "Perpetual futures venue"),
    ("perps.tiers[n].", MarginTier, "Perp margin tiers (a list of tables, floors increasing from 0)"),
    ("basis_traders.", ModelConfig.model_fields["basis_traders"].annotation, "Basis traders"),
    ("risk_manager.", ModelConfig.model_fields["risk_manager"].annotation, "Risk manager (adaptive risk parameters)"),
    ("lst.", ModelConfig.model_fields["lst"].annotation, "Staking collateral and looping"),
    ("hunters.", ModelConfig.model_fields["hunters"].annotation, "Liquidation hunters"),
    ("attacker.", ModelConfig.model_fields["attacker"].annotation, "Oracle attacker"),
    ("oracle_venue.", ModelConfig.model_fields["oracle_venue"].annotation, "Thin oracle venue"),
]


def _default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if (
        isinstance(value, BaseModel)
        or (isinstance(value, dict) and value and isinstance(next(iter(value.values())), BaseModel))
        or (isinstance(value, list) and value and isinstance(value[0], BaseModel))
    ):
        return "(table)"
    if value is None or str(value) == "PydanticUndefined":
        return "required"
    return f"`{value}`"


def reference() -> str:
    """Markdown tables of every parameter: dotted name, schema default, `baseline` preset value, meaning (units)."""
    baseline = from_preset("baseline")
    flat = baseline.model_dump()
    lines = [
        "# Parameter reference",
        "",
        "Generated from `abm/config/schema.py` by `python -m abm.config.reference`; do not edit by hand.",
        "Units are in each description. `default` is the schema's default; `baseline` is the value in the",
        "`baseline` preset (the other presets build on it: see `abm/config/presets/*.toml` for their values, and",
        "[calibration.md](calibration.md) for the sources of the calibrated ones). What each parameter does in the",
        "model: [model.md](model.md).",
        "",
    ]
    for prefix, model, title in SECTIONS:
        if model is None:
            continue
        lines += [f"## {title}", "", "| parameter | default | baseline | meaning |", "|---|---|---|---|"]
        for name, field in model.model_fields.items():
            if prefix == "" and name in {s[0].rstrip(".") for s in SECTIONS if s[0]} | {"assets", "scenario"}:
                continue
            base = _baseline_value(flat, prefix, name)
            desc = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{prefix}{name}` | {_default(model, name)} | {base} | {desc} |")
        lines.append("")
    lines += [
        "## Scenario events",
        "",
        "`scenario.events` is a list of tables, each with a `kind`:",
        "",
        "| kind | fields | meaning |",
        "|---|---|---|",
        "| `shock` | `asset`, `size` (total return, > -1), `start` (step), `duration` (steps) | move the fundamental "
        "by `size`, spread evenly in log terms |",
        "| `set` | `step`, `parameter` (dotted name), `value` | change a parameter at a step (validated at load) |",
        "| `replay` | `asset`, `path` (CSV with a `price` column), `start` (step) | the fundamental follows the CSV "
        "path relative to its first price |",
        "",
    ]
    return "\n".join(lines)


def _baseline_value(flat: dict, prefix: str, name: str) -> str:
    node = flat
    for part in prefix.rstrip(".").split(".") if prefix else []:
        if part == "<A>":
            node = node.get("ETH", {})
        else:
            node = node.get(part, {})
    value = node.get(name, "") if isinstance(node, dict) else ""
    if isinstance(value, dict | list):
        return "(table)" if value else "`{}`" if isinstance(value, dict) else "`[]`"
    return f"`{value}`" if value != "" else ""


if __name__ == "__main__":
    print(reference())
