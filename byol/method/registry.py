"""The methods ``model.method`` (``--method``) can name, each with what it brings besides its module.

A new method is a module of its own in this package (a ``Method``) and one entry here: how to build
it from the model config, how to check the options it reads there, and how it changes the views a
config asks for (SimCLR's own recipe has views of its own). ``test_method`` adds a third this way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from byol.method import simclr
from byol.method.base import Method
from byol.method.byol import build_byol


def _no_options(model_cfg, require) -> None:
    """A method that reads no options of its own."""


def _same_views(values: dict[str, Any], keep: set[str] = frozenset()) -> dict[str, Any]:
    return values


@dataclass(frozen=True)
class MethodSpec:
    """One registry entry: ``build(model_cfg, encoder, feature_dim)``; ``check_options(model_cfg,
    require)``, which checks the options it reads (``require(key, ok, rule)``); ``views(values, keep)``,
    the config (as a dict) with the views it asks for, those named in ``keep`` (set by the user) left."""

    build: Callable[[Any, nn.Module, int], Method]
    check_options: Callable[[Any, Callable[[str, bool, str], None]], None] = _no_options
    views: Callable[..., dict[str, Any]] = _same_views


METHODS: dict[str, MethodSpec] = {
    "byol": MethodSpec(build_byol),
    "simclr": MethodSpec(simclr.build_simclr, simclr.check_options, simclr.paper_views),
}


def build_method(model_cfg, encoder: nn.Module, feature_dim: int) -> Method:
    """The method module that ``model_cfg.method`` names, around ``encoder``."""
    return METHODS[model_cfg.method].build(model_cfg, encoder, feature_dim)
