"""Self-supervised methods as modules of one protocol: BYOL (``byol.method.byol``), SimCLR, the registry."""

from byol.method.base import Method, MethodOutput
from byol.method.byol import BYOL
from byol.method.registry import METHODS, MethodSpec, build_method, default_options
from byol.method.simclr import SIMCLR_RECIPES, SimCLR, SimCLROptions

__all__ = [
    "BYOL",
    "METHODS",
    "SIMCLR_RECIPES",
    "Method",
    "MethodOutput",
    "MethodSpec",
    "SimCLR",
    "SimCLROptions",
    "build_method",
    "default_options",
]
