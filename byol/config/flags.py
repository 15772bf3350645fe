"""The command line's config flags: ``byol pretrain`` (and ``ablate``) build their arguments from the
schema, read them back, and errors name a config key the way a user sets it (``option_name``).

The table is derived: each flag is declared beside its field (``byol.config.schema.option(flag=...)``,
and in a method's options class), its type is the field's, a bool's flag is a switch (``--no-x`` sets
it false, any other true). A flag's help is its key's docstring (``byol.config.docs.option_help``: one
text per option, the same in ``--help`` and in the reference), given to ``add_flags``. Every other key
is set with ``--set section.key=value``.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from byol.config.schema import option_name, section_classes

__all__ = ["Flag", "add_flags", "flag_values", "flags", "option_name"]


@dataclass(frozen=True)
class Flag:
    name: str  # "--epochs"
    key: str  # "run.epochs": the config section and key it sets ("methods.simclr.temperature": a method's)
    type: type | None  # what argparse parses the value as; None for a switch
    switch: Any = None  # a switch takes no value and sets the key to this

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")


def _value_type(hint: Any) -> type:
    """What argparse parses a field of type ``hint`` as (``float | None`` as float)."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def flags() -> tuple[Flag, ...]:
    """Every field declared with a flag, section by section in the schema's order; two fields of one
    flag are a ``ValueError`` naming both (a method's options class that took another's flag)."""
    table: list[Flag] = []
    for section, cls in section_classes().items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            name = f.metadata.get("flag")
            if name is None:
                continue
            kind = _value_type(hints[f.name])
            if kind is bool:
                table.append(Flag(name, f"{section}.{f.name}", None, switch=not name.startswith("--no-")))
            else:
                table.append(Flag(name, f"{section}.{f.name}", kind))
    seen: dict[str, str] = {}
    for f in table:
        if seen.setdefault(f.name, f.key) != f.key:
            raise ValueError(f"{f.name} is declared by both {seen[f.name]} and {f.key}")
    return tuple(table)


def add_flags(parser: argparse.ArgumentParser, help_for: Callable[[str], str] | None = None) -> None:
    """Every flag of the table (``flags()``: read now, so a method registered after this module was
    imported brings its flags), its help ``help_for(key)`` (``byol.config.docs.option_help``)."""
    for f in flags():
        text = help_for(f.key).replace("%", "%%") if help_for is not None else None
        if f.switch is None:
            parser.add_argument(f.name, type=f.type, default=None, help=text)
        else:
            parser.add_argument(f.name, action="store_true", default=None, help=text)


def flag_values(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The config values the flags in ``args`` set, as ``{section: {key: value}}`` (nested deeper for
    a method's options: ``{"methods": {"simclr": {"temperature": ...}}}``)."""
    out: dict[str, dict[str, Any]] = {}
    for f in flags():
        given = getattr(args, f.dest)
        if given is None:
            continue
        *path, key = f.key.split(".")
        where = out
        for part in path:
            where = where.setdefault(part, {})
        where[key] = given if f.switch is None else f.switch
    return out
