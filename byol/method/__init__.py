"""Self-supervised methods as modules of one protocol: BYOL (``byol.method.byol``), SimCLR, the registry."""

from byol.method.base import Heads, Method, MethodOutput
from byol.method.byol import BYOL
from byol.method.registry import METHODS, MethodSpec, build_method
from byol.method.simclr import SIMCLR_RECIPES, SimCLR, SimCLROptions

__all__ = [
    "BYOL",
    "Heads",
    "METHODS",
    "SIMCLR_RECIPES",
    "Method",
    "MethodOutput",
    "MethodSpec",
    "SimCLR",
    "SimCLROptions",
    "build_method",
]
