"""Backbones (registry) and heads."""

from byol.models.backbones import Encoder, available_backbones, build_encoder, register
from byol.models.heads import MLP, NORMS

__all__ = ["MLP", "NORMS", "Encoder", "available_backbones", "build_encoder", "register"]
