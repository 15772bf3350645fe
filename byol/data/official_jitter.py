"""The official release's colour jitter (TensorFlow's ops), ``--set augment.jitter=official``."""

from __future__ import annotations

import torch

from byol.data.kernels import Channels, hue_channels, per_sample, where_channels


def _saturation_hsv(c: Channels, factor: torch.Tensor) -> Channels:
    """Scale the HSV saturation by ``factor`` (clipped to 1), hue and value kept: TensorFlow's
    ``adjust_saturation``. With V = max, C = max − min and S = C/V, each channel becomes
    ``V − (V − x)·min(S·f, 1)/S``, i.e. ``V − (V − x)·min(f, V/C)``; grey pixels (C = 0) stay."""
    r, g, b = c
    v = torch.maximum(torch.maximum(r, g), b)
    chroma = v - torch.minimum(torch.minimum(r, g), b)
    k = torch.minimum(per_sample(factor, 2).expand_as(v), v / chroma.clamp(min=1e-12))
    k = torch.where(chroma > 0, k, torch.ones_like(k))
    return tuple(v - (v - ch) * k for ch in c)


def colour_jitter_official(c: Channels, order: torch.Tensor, factors: torch.Tensor, shift: torch.Tensor) -> Channels:
    """The official release's colour jitter: brightness ``x + δ``, contrast ``f·(x − mean) + mean``
    with each channel's own mean, saturation scaling HSV saturation (``_saturation_hsv``), hue
    rotation, in each sample's ``order``, each result clipped to [0, 1]. Every slot computes the four
    ops and keeps the sample's (simple, 4× the arithmetic of the torchvision path's chain)."""
    delta, contrast, saturation = per_sample(factors[:, 0], 2), per_sample(factors[:, 1], 2), factors[:, 2]
    for r in range(4):
        op = order[:, r]
        c = where_channels(op == 0, tuple((ch + delta).clamp(0, 1) for ch in c), c)
        means = [ch.mean(dim=(1, 2), keepdim=True) for ch in c]
        c = where_channels(op == 1, tuple(((ch - m) * contrast + m).clamp(0, 1) for ch, m in zip(c, means)), c)
        c = where_channels(op == 2, tuple(ch.clamp(0, 1) for ch in _saturation_hsv(c, saturation)), c)
        c = where_channels((op == 3) & (shift != 0), hue_channels(c, shift), c)
    return c
