"""The encoder without batch statistics (Richemond et al. 2020): GroupNorm + weight standardisation,
a per-channel affine, or nothing in BatchNorm's place.

``groupnorm_ws``, ``batchnorm_to_affine`` and ``without_batchnorm`` convert a built backbone;
``mimic_batchnorm`` is the data-dependent start that makes such an encoder compute, on its first
batch, what a BatchNorm encoder computes at its start.
"""

from __future__ import annotations

import torch
from torch import nn

from byol.config.registry import register_choices
from byol.constants import GROUP_CHANNELS

MAX_GROUPS = 32  # Wu & He 2018, and Richemond et al. 2020 on ResNet-50
ENCODER_INITS = ("default", "bn-mimic")
register_choices("model.encoder_init", lambda: ENCODER_INITS)


class WSConv2d(nn.Conv2d):
    """A convolution whose weights are standardised per output channel before use (Qiao et al. 2019):
    ``ŵ = (w − mean(w)) / sqrt(var(w) + eps)`` over each filter's inputs and kernel."""

    eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        var, mean = torch.var_mean(w, dim=(1, 2, 3), keepdim=True, unbiased=False)
        return self._conv_forward(x, (w - mean) * torch.rsqrt(var + self.eps), self.bias)


class ChannelAffine(nn.Module):
    """A learned scale and shift per channel, no statistics: BatchNorm's affine without its
    normalisation (channels on dim 1). With ``mimic_batchnorm`` it starts as BatchNorm computes on the
    first batch, the BatchNorm-free network of Richemond et al. 2020 (65.7% top-1 against 0.1% from
    the default start)."""

    eps = 1e-5  # BatchNorm's variance floor, for the first-batch start

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)  # in x's dtype: under bf16 autocast fp32 parameters would promote x
        return x * self.weight.to(x.dtype).view(shape) + self.bias.to(x.dtype).view(shape)

    def extra_repr(self) -> str:
        return str(self.weight.numel())


def group_count(channels: int, min_channels: int = GROUP_CHANNELS, groups: int = MAX_GROUPS) -> int:
    """GroupNorm groups for ``channels``: the most groups that divide both ``groups`` (32) and the
    channels and still hold ``min_channels`` channels each (one group when none does). ResNet-18's
    64 … 512 channels get 8, 16, 32, 32 groups; ``min_channels=1`` gives ``gcd(32, channels)``,
    the rule of encoders saved before ``group_channels`` was recorded (1–4 channels per group on
    narrow encoders)."""
    best = 1
    for g in range(1, groups + 1):
        if groups % g == 0 and channels % g == 0 and channels // g >= min_channels:
            best = g
    return best


def groupnorm_ws(module: nn.Module, group_channels: int = GROUP_CHANNELS, prefix: str = "") -> nn.Module:
    """``module`` with every ``BatchNorm2d`` replaced by ``GroupNorm`` (``group_count`` groups, same
    affine start) and every ``Conv2d`` by a ``WSConv2d`` with the same weights, in place; module
    names are kept.

    Layers that merely derive from them (timm's ``BatchNormAct2d``, which also holds the activation,
    or its padding ``Conv2dSame``) would lose what they add: a ``ValueError`` names the first.
    """
    for name, child in module.named_children():
        kind = type(child)
        if kind not in (nn.BatchNorm2d, nn.Conv2d, WSConv2d) and isinstance(child, nn.BatchNorm2d | nn.Conv2d):
            raise ValueError(
                f"--encoder-norm groupnorm-ws converts plain BatchNorm2d and Conv2d layers, and {prefix}{name} is a "
                f"{kind.__module__}.{kind.__name__}; use --encoder-norm batchnorm with this backbone"
            )
        if isinstance(child, nn.BatchNorm2d):
            gn = nn.GroupNorm(group_count(child.num_features, group_channels), child.num_features, eps=child.eps)
            with torch.no_grad():
                gn.weight.copy_(child.weight)
                gn.bias.copy_(child.bias)
            setattr(module, name, gn)
        elif type(child) is nn.Conv2d:
            ws = WSConv2d(
                child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                child.dilation, child.groups, child.bias is not None, child.padding_mode,
            )  # fmt: skip
            ws.load_state_dict(child.state_dict())
            setattr(module, name, ws)
        else:
            groupnorm_ws(child, group_channels, f"{prefix}{name}.")
    return module


@torch.no_grad()
def mimic_batchnorm(module: nn.Module, images: torch.Tensor) -> int:
    """Set every ``GroupNorm``'s affine and every ``ChannelAffine`` from one forward pass of ``images`` so that
    each channel it puts out has zero mean and unit variance over the batch and positions (a channel whose
    scale starts at 0, as a zero-initialised last BatchNorm's, stays 0) — what BatchNorm gives at
    the start of training — layer by layer in the order they run (each layer sees the ones before it
    already set). The data-dependent, BatchNorm-mimicking start of Richemond et al. 2020: a network
    without batch statistics starts where a BatchNorm network starts. Returns how many layers were set."""
    done: set[nn.Module] = set()

    def standardise(norm: nn.GroupNorm | ChannelAffine, _inputs, output: torch.Tensor) -> torch.Tensor | None:
        if norm in done or not getattr(norm, "affine", True):
            return None
        done.add(norm)
        dims = [0, *range(2, output.ndim)]
        var, mean = torch.var_mean(output.float(), dim=dims, unbiased=False)
        scale = torch.rsqrt(var + norm.eps)
        # output = x̂·w + b; (output − mean)·scale = x̂·(w·scale) + (b − mean)·scale
        norm.weight.mul_(scale.to(norm.weight.dtype))
        norm.bias.sub_(mean.to(norm.bias.dtype)).mul_(scale.to(norm.bias.dtype))
        shape = [1, -1] + [1] * (output.ndim - 2)
        return ((output.float() - mean.view(shape)) * scale.view(shape)).to(output.dtype)

    norms = [m for m in module.modules() if isinstance(m, nn.GroupNorm | ChannelAffine)]
    handles = [n.register_forward_hook(standardise) for n in norms]
    try:
        module(images)
    finally:
        for h in handles:
            h.remove()
    return len(done)


def without_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm2d`` (its statistics and its affine) replaced by ``Identity``, in
    place: the encoder of "no normalisation anywhere" (Richemond et al. 2020: 0.1% top-1 without a special
    initialisation) for byol's own backbones, which normalise with BatchNorm2d only. Layers that derive from
    BatchNorm2d (timm's ``BatchNormAct2d``) are refused by name; other norms a timm backbone may hold
    (LayerNorm, GroupNorm, BatchNorm1d) are kept."""
    return _replace_batchnorm(module, lambda bn: nn.Identity(), "none")


def batchnorm_to_affine(module: nn.Module) -> nn.Module:
    """``module`` with every ``BatchNorm2d`` replaced by a ``ChannelAffine`` (its affine kept, its
    statistics gone), in place, refused and kept as ``without_batchnorm`` does."""

    def affine(bn: nn.BatchNorm2d) -> ChannelAffine:
        layer = ChannelAffine(bn.num_features)
        with torch.no_grad():
            layer.weight.copy_(bn.weight)
            layer.bias.copy_(bn.bias)
        return layer

    return _replace_batchnorm(module, affine, "affine")


def _replace_batchnorm(module: nn.Module, make, norm: str, prefix: str = "") -> nn.Module:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and type(child) is not nn.BatchNorm2d:
            kind = type(child)
            raise ValueError(f"--encoder-norm {norm} replaces plain BatchNorm2d layers, and {prefix}{name} is a "
                             f"{kind.__module__}.{kind.__name__}")  # fmt: skip
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, make(child))
        else:
            _replace_batchnorm(child, make, norm, f"{prefix}{name}.")
    return module
