"""The methods ``model.method`` (``--method``) can name, each with what it brings besides its module.

A new method is a module of its own in this package (a ``Method``) and one entry here: how to build
it, the options of its own (a dataclass with defaults and a ``check``: the config's ``methods.<name>``
section, set with ``--set methods.<name>.<key>=...``), and how it changes the views a config asks for
(SimCLR's own recipe has views of its own). ``test_method`` adds a third this way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from byol.config.registry import register_methods
from byol.method import simclr
from byol.method.base import Heads, Method
from byol.method.byol import build_byol


def _same_views(values: dict[str, Any], keep: set[str] = frozenset()) -> dict[str, Any]:
    return values


@dataclass(frozen=True)
class MethodSpec:
    """One registry entry: ``build(heads, options, encoder, feature_dim)``; ``options``, the class of
    its own options (a dataclass whose defaults are the method's, with ``check(require)``; None: it reads
    the heads only); ``views(values, keep)``, the config (as a dict) with the views it asks
    for, those named in ``keep`` (set by the user) left."""

    build: Callable[[Heads, Any, nn.Module, int], Method]
    options: type | None = None
    views: Callable[..., dict[str, Any]] = _same_views


METHODS: dict[str, MethodSpec] = {
    "byol": MethodSpec(build_byol),
    "simclr": MethodSpec(simclr.build_simclr, simclr.SimCLROptions, simclr.paper_views),
}


# What the configuration validates against, shows and resolves: this registry, read when asked (so an
# entry added to METHODS brings its name, its section and its views).
register_methods(lambda: METHODS)


def build_method(name: str, heads: Heads, options: Any, encoder: nn.Module, feature_dim: int) -> Method:
    """The method module registered as ``name``, around ``encoder``, with ``heads`` and its own ``options``
    (None for a method without; ``byol.build.method`` reads all three from a ``Config``)."""
    return METHODS[name].build(heads, options, encoder, feature_dim)
