"""A ``Config`` from a dict or YAML and back: unknown keys refused, values typed, errors in one line."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from byol.config.registry import default_options
from byol.config.schema import Config, option_name, section_classes
from byol.config.views import ViewParams
from byol.errors import ByolError
from byol.files import atomic_write

# Keys that moved, old → new: a run folder or YAML written before still loads (and resumes).
MOVED = {
    ("model", "temperature"): ("methods", "simclr", "temperature"),
    ("model", "simclr_recipe"): ("methods", "simclr", "recipe"),
}


def _build(cls, values: dict[str, Any], where: str, base: Any = None):
    """Dataclass ``cls`` from a dict over ``base`` (default: ``cls()``), refusing unknown keys."""
    if not isinstance(values, dict):
        raise ByolError(f"config section {where!r} must be a mapping")
    base = cls() if base is None else base
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ByolError(f"unknown config key {where}.{unknown[0]}; known: {', '.join(sorted(known))}")
    kwargs = {}
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        default = getattr(base, name)
        if isinstance(default, ViewParams):
            value = value if isinstance(value, ViewParams) else _build(ViewParams, value, f"{where}.{name}", default)
        else:
            value = _typed(f"{where}.{name}", value, hints[name])
        kwargs[name] = value
    try:
        return dataclasses.replace(base, **kwargs)
    except (ValueError, TypeError) as e:
        raise ByolError(f"config {where}: {e}") from None


def _typed(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type wants it, or a one-line error naming the key and the type."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):  # X | None
        if value is None:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and number and float(value).is_integer():
        return int(value)
    if hint is float and number:
        return float(value)
    if hint is str and isinstance(value, bool):
        return "on" if value else "off"  # YAML reads on/off as booleans
    if hint is str and (isinstance(value, str) or number):
        return str(value)
    if typing.get_origin(hint) is dict and isinstance(value, dict):
        return dict(value)
    if typing.get_origin(hint) is tuple and isinstance(value, list | tuple):
        kinds = typing.get_args(hint)
        if len(kinds) == len(value) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return tuple(float(v) for v in value)
    kind = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(hint)
    if kind is None and typing.get_origin(hint) is tuple:
        kind = f"a list of {len(typing.get_args(hint))} numbers"
    raise ByolError(f"{option_name(key)} must be {kind or hint}, got {value!r}")


def upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a config as a dict) with the keys that moved (``MOVED``) in their new place."""
    values = dict(values or {})
    for (section, key), new in MOVED.items():
        old = values.get(section)
        if isinstance(old, dict) and key in old:
            values[section] = {k: v for k, v in old.items() if k != key}
            values = merge({new[0]: {new[1]: {new[2]: old[key]}}}, values)  # a value set in the new place wins
    return values


def _methods(values: Any) -> dict[str, Any]:
    """The ``methods`` section: each registered method's options over their defaults."""
    if not isinstance(values, dict):
        raise ByolError("config section 'methods' must be a mapping")
    defaults = default_options()
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ByolError(f"unknown config key methods.{unknown[0]}; methods with options: {', '.join(defaults)}")
    return {name: _build(type(base), values.get(name, {}), f"methods.{name}", base) for name, base in defaults.items()}


def config_from_dict(values: dict[str, Any]) -> Config:
    values = upgrade(values)
    sections = {name: cls for name, cls in section_classes().items() if not name.startswith("methods.")}
    unknown = sorted(set(values) - set(sections) - {"methods", "preset"})
    if unknown:
        raise ByolError(f"unknown config section {unknown[0]!r}; known: {', '.join([*sections, 'methods'])}")
    built = {name: _build(cls, values.get(name, {}), name) for name, cls in sections.items()}
    return Config(**built, methods=_methods(values.get("methods", {})), preset=values.get("preset", ""))


def merge(base: dict, override: dict) -> dict:
    """Deep-merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def save_yaml(config: Config, path: Path) -> None:
    with atomic_write(path, "w") as f:
        yaml.safe_dump(config.to_dict(), f, sort_keys=False)


def load_yaml(path: Path) -> Config:
    try:
        return config_from_dict(yaml.safe_load(Path(path).read_text()))
    except yaml.YAMLError as e:
        raise ByolError(f"{path}: invalid YAML: {e}") from None
