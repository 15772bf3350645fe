"""The configuration: the schema (``schema``, the ground floor: sections, their flags, resume policy and
validation), the registries of names and method options it validates against (``registry``), the views'
value type (``views``), YAML and dicts (``io``), the command line's flags
(``flags``), the texts of ``--help`` and the reference (``docs``) and the presets (``presets``).
``byol.build`` turns a ``Config`` into objects; below it nothing sees a ``Config``."""

from byol.config.registry import CHOICES, option, register_choices, register_methods
from byol.config.schema import (
    AugmentConfig,
    Config,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    option_name,
    resumable_keys,
)

__all__ = [
    "CHOICES",
    "AugmentConfig",
    "Config",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "option",
    "option_name",
    "register_choices",
    "register_methods",
    "resumable_keys",
]
