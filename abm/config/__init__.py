"""Model configuration: the validated schema, presets (TOML data in `presets/`), files and dotted overrides."""

from abm.config.loader import parameter_names, parse_value, preset_descriptions, preset_names, read_toml
from abm.config.schema import NUMERAIRE, ModelConfig

__all__ = [
    "NUMERAIRE",
    "ModelConfig",
    "parameter_names",
    "parse_value",
    "preset_descriptions",
    "preset_names",
    "read_toml",
]
