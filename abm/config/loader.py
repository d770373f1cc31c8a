"""Building configurations: presets, TOML files, dicts and dotted overrides, with one-line errors.

Every failure becomes a `ConfigError` whose message names the field, the value and the rule, e.g.
``unknown parameter 'traders.max_leverag' (did you mean 'traders.max_leverage'?)``.
"""

from __future__ import annotations

import copy
import difflib
import tomllib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from abm.config.schema import FIXED_AT_BUILD, ModelConfig
from abm.errors import ConfigError

PRESET_PACKAGE = "abm.config.presets"


# --- presets ------------------------------------------------------------------------------------------------


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted."""
    files = resources.files(PRESET_PACKAGE).iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def preset_descriptions() -> dict[str, str]:
    """One line per preset: its `description` field."""
    return {name: str(_preset_dict(name).get("description", "")).strip().splitlines()[0] for name in preset_names()}


def _preset_dict(name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    names = preset_names()
    if name not in names:
        hint = _did_you_mean(name, names)
        raise ConfigError(f"unknown preset '{name}'{hint} (valid: {', '.join(names)})")
    if name in _seen:
        raise ConfigError(f"preset '{name}' extends itself (chain: {' -> '.join((*_seen, name))})")
    text = resources.files(PRESET_PACKAGE).joinpath(f"{name}.toml").read_text(encoding="utf-8")
    data = _parse_toml(text, f"preset {name}")
    return _resolve_base(data, (*_seen, name))


def _resolve_base(data: dict[str, Any], seen: tuple[str, ...] = ()) -> dict[str, Any]:
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"base = {base!r}: must be a preset name")
    return deep_merge(_preset_dict(base, seen), data)


# --- parsing ------------------------------------------------------------------------------------------------


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: malformed TOML: {exc}") from None


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a one-line `ConfigError` (with the line number)."""
    from abm.io import read_text_file

    return _parse_toml(read_text_file(path, "config file", ConfigError), str(Path(path)))


def parse_value(text: str) -> Any:
    """A CLI value as TOML would read it (numbers, booleans, inf, strings, arrays, inline tables).

    Bare words that are not TOML values are taken as strings, so `--set pool.bad_debt_policy=dilute` works.
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `update` wins; lists and scalars are replaced, not merged."""
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- dotted names -------------------------------------------------------------------------------------------


def parameter_names(config: ModelConfig) -> list[str]:
    """Every dotted parameter name valid for `config` (dict-keyed entries use the keys it has)."""
    names: list[str] = []

    def walk(model: BaseModel, prefix: str) -> None:
        for field in type(model).model_fields:
            value = getattr(model, field)
            path = f"{prefix}{field}"
            if isinstance(value, BaseModel):
                walk(value, path + ".")
            elif isinstance(value, dict) and value and all(isinstance(v, BaseModel) for v in value.values()):
                for key, sub in value.items():
                    walk(sub, f"{path}.{key}.")
            elif isinstance(value, dict):
                names.append(path)
                names.extend(f"{path}.{k}" for k in value)
            else:
                names.append(path)

    walk(config, "")
    return names


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any], valid: list[str]) -> dict[str, Any]:
    """Set dotted keys in a nested dict. Unknown names raise `ConfigError` with the nearest valid name.

    A name is valid if it is a known parameter, or a new key inside a free-form table (a new asset, reserve or
    mix entry), which the schema validates afterwards.
    """
    out = copy.deepcopy(data)
    valid_set = set(valid)
    for dotted, value in overrides.items():
        if not isinstance(dotted, str) or not dotted:
            raise ConfigError(f"override key {dotted!r}: must be a dotted parameter name")
        parts = dotted.split(".")
        if dotted not in valid_set and not _is_free_table_key(parts, valid_set):
            raise ConfigError(f"unknown parameter '{dotted}'{_did_you_mean(dotted, valid)}")
        node = out
        for part in parts[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                node[part] = nxt
            node = nxt
        node[parts[-1]] = value
    return out


_FREE_TABLES = ("assets", "pool.reserves", "traders.strategy_mix", "traders.risk_mix", "traders.margin_mode_mix")


def _is_free_table_key(parts: list[str], valid: set[str]) -> bool:
    for table in _FREE_TABLES:
        tparts = table.split(".")
        if parts[: len(tparts)] == tparts and len(parts) > len(tparts):
            rest = parts[len(tparts) + 1 :]
            if table in ("assets", "pool.reserves"):
                # a new entry's fields must still be real field names
                template = "assets.ETH" if table == "assets" else "pool.reserves.ETH"
                return len(rest) == 1 and f"{template}.{rest[0]}" in valid | _TEMPLATE_NAMES
            return not rest
    return False


_TEMPLATE_NAMES = {
    f"assets.ETH.{f}" for f in ("price", "drift", "volatility", "impact", "depth_usd", "daily_volume_usd", "amm_fee")
} | {
    f"pool.reserves.ETH.{f}"
    for f in (
        "ltv",
        "liquidation_threshold",
        "liquidation_bonus",
        "reserve_factor",
        "base_rate",
        "slope1",
        "slope2",
        "optimal_utilisation",
        "supply_to_equity",
        "outside_rate",
        "collateral_enabled",
        "borrow_enabled",
    )
}


# --- validation ---------------------------------------------------------------------------------------------


def format_validation_error(exc: ValidationError, data: Mapping[str, Any] | None = None) -> str:
    """The first validation error as one line: field, value, rule."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in ("shock", "set", "replay")))
    loc = _normalise_loc(loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        valid = _safe_names(data)
        return f"unknown parameter '{loc}'{_did_you_mean(loc, valid)}"
    if err["type"] == "missing":
        return f"{loc}: required field is missing"
    if err["type"] in ("value_error", "assertion_error") and loc == "":
        return msg
    value = err.get("input")
    if isinstance(value, Mapping):
        return f"{loc}: {msg}" if loc else msg
    return f"{loc} = {value!r}: {msg}" if loc else msg


def _normalise_loc(loc: str) -> str:
    # list indices render as scenario.events.0.size; show them as scenario.events[0].size
    parts = loc.split(".")
    out: list[str] = []
    for p in parts:
        if p.isdigit() and out:
            out[-1] = f"{out[-1]}[{p}]"
        else:
            out.append(p)
    return ".".join(out)


def _safe_names(data: Mapping[str, Any] | None) -> list[str]:
    """Names to suggest from: every default parameter, its sections ('market', 'pool.reserves.ETH'), and the
    fields of the asset / reserve entries `data` itself names (so a typo in BTC's entry suggests BTC's field)."""
    names = set(parameter_names(ModelConfig()))
    for table, template in (("assets", "assets.ETH."), ("pool.reserves", "pool.reserves.ETH.")):
        node: Any = data
        for part in table.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            fields = [n.removeprefix(template) for n in names if n.startswith(template)]
            names |= {f"{table}.{key}.{field}" for key in node for field in fields}
    names |= {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 1)}
    return sorted(names)


def build(
    data: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, base_dir: Path | None = None
) -> ModelConfig:
    """Validate a nested dict (after `base` preset resolution and dotted overrides) into a `ModelConfig`."""
    data = _resolve_base(copy.deepcopy(dict(data)))
    if overrides:
        try:
            valid = parameter_names(ModelConfig.model_validate(data))
        except ValidationError:
            valid = parameter_names(ModelConfig())
        data = apply_overrides(data, overrides, valid)
    try:
        config = ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, data)) from None
    _resolve_replay_paths(config, base_dir or Path.cwd())
    _check_set_events(config)
    return config


def _check_set_events(config: ModelConfig) -> None:
    """A scenario `set` event must name a real parameter and a value its rule accepts (checked before a run).

    Checked as the model applies them: the events of one step together, on the configuration the earlier steps'
    events left (so a threshold may be cut below the old LTV in the step that cuts the LTV too)."""
    events = [(i, ev) for i, ev in enumerate(config.scenario.events) if ev.kind == "set"]
    if not events:
        return
    valid = parameter_names(config)
    for i, ev in events:
        where = f"scenario.events[{i}]"
        if ev.parameter not in valid:
            raise ConfigError(
                f"{where}.parameter: unknown parameter '{ev.parameter}'{_did_you_mean(ev.parameter, valid)}"
            )
        if ev.parameter.startswith("scenario."):
            raise ConfigError(f"{where}.parameter = '{ev.parameter}': scenario events cannot change the scenario")
        if ev.parameter in FIXED_AT_BUILD:
            raise ConfigError(f"{where}.parameter = '{ev.parameter}': fixed when the run is built, not by an event")
    data = {k: v for k, v in config.model_dump(mode="python").items() if k != "scenario"}
    for step in sorted({ev.step for _, ev in events}):
        group = [(i, ev) for i, ev in events if ev.step == step]
        data = apply_overrides(data, {ev.parameter: ev.value for _, ev in group}, valid)
        try:
            ModelConfig.model_validate(data)
        except ValidationError as exc:
            where = ", ".join(f"scenario.events[{i}]" for i, _ in group)
            raise ConfigError(f"{where} (at step {step}): {format_validation_error(exc, data)}") from None


def _resolve_replay_paths(config: ModelConfig, base_dir: Path) -> None:
    for i, ev in enumerate(config.scenario.events):
        if ev.kind != "replay":
            continue
        path = Path(ev.path)
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        if not path.is_file():
            raise ConfigError(f"scenario.events[{i}].path = '{ev.path}': replay CSV file does not exist")
        ev.path = str(path)


def from_preset(name: str, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    data = _preset_dict(name)
    data.setdefault("name", name)
    return build(data, overrides)


def from_toml(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ModelConfig:
    data = read_toml(path)
    data.setdefault("name", Path(path).stem)
    return build(data, overrides, base_dir=Path(path).resolve().parent)


def to_toml(config: ModelConfig) -> str:
    """The full resolved configuration as TOML: enough to re-run exactly."""
    return tomli_w.dumps(config.model_dump(mode="python"))


def with_overrides(config: ModelConfig, overrides: Mapping[str, Any]) -> ModelConfig:
    return build(config.model_dump(mode="python"), overrides)
