"""Encoders: a registry of backbones that map images to a feature vector.

Every command builds its encoder through ``build_encoder``, so a name means the same network
everywhere. ResNets keep torchvision's module names, so a width-1 encoder's state dict loads
with ``strict=True`` into ``torchvision.models.resnetXX()`` once its ``fc`` is ``nn.Identity()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from byol.config.registry import register_choices
from byol.constants import GROUP_CHANNELS, TIMM_PREFIX, is_small, is_timm
from byol.models.norms import batchnorm_to_affine, groupnorm_ws, without_batchnorm


@dataclass(frozen=True)
class Encoder:
    """A built backbone and the size of its feature vector."""

    module: nn.Module
    feature_dim: int


_REGISTRY: dict[str, Callable[..., Encoder]] = {}


def register(name: str):
    """Decorator adding a backbone entrypoint ``fn(width, small_images) -> Encoder``."""

    def wrap(fn: Callable[..., Encoder]) -> Callable[..., Encoder]:
        _REGISTRY[name] = fn
        return fn

    return wrap


def available_backbones() -> list[str]:
    return sorted(_REGISTRY)


def timm_module():
    """The ``timm`` package, or a one-line error saying how to install it."""
    try:
        import timm
    except ImportError:
        raise ValueError("timm backbones need the timm package: pip install 'byol[timm]'") from None
    return timm


def check_backbone(name: str) -> None:
    """A ``ValueError`` naming the choices when ``name`` builds no backbone."""
    if is_timm(name):
        timm, model = timm_module(), name[len(TIMM_PREFIX) :]
        if not timm.is_model(model):
            near = timm.list_models(f"*{model.split('.')[0].split('_')[0]}*")[:5]
            hint = f"; similar: {', '.join(near)}" if near else "; see timm.list_models()"
            raise ValueError(f"timm has no model {model!r}{hint}")
    elif name not in _REGISTRY:
        choices = ", ".join(available_backbones())
        raise ValueError(f"unknown backbone {name!r}; choose one of {choices}, or timm:<name> (the byol[timm] extra)")


def build_timm(name: str, image_size: int, args: dict | None = None) -> Encoder:
    """``timm.create_model(name, num_classes=0, **args)``, randomly initialised: pooled features.

    Models with a patch embedding (ViT, DeiT...) are built for ``image_size`` unless ``args`` says
    ``img_size``; their patch size is the user's (``args["patch_size"]``, e.g. 4 at 32 px).
    """
    timm, model = timm_module(), name[len(TIMM_PREFIX) :]
    args = dict(args or {})
    module = timm.create_model(model, pretrained=False, num_classes=0, **args)
    patch_embed = getattr(module, "patch_embed", None)
    built_for = getattr(patch_embed, "img_size", None)
    if built_for is not None and "img_size" not in args and tuple(built_for) != (image_size, image_size):
        module = timm.create_model(model, pretrained=False, num_classes=0, img_size=image_size, **args)
    dim = getattr(module, "head_hidden_size", None) or module.num_features
    return Encoder(module, int(dim))


ENCODER_NORMS = ("batchnorm", "groupnorm-ws", "affine", "none")
register_choices("model.encoder_norm", lambda: ENCODER_NORMS)
register_choices("model.backbone", lambda: [*available_backbones(), f"{TIMM_PREFIX}<name>"], check_backbone)


def build_encoder(
    name: str,
    width: float = 1.0,
    image_size: int = 224,
    small_images: bool | None = None,
    norm: str = "batchnorm",
    timm_args: dict | None = None,
    group_channels: int = GROUP_CHANNELS,
) -> Encoder:
    """Build a registered backbone, or a timm model.

    Args:
        name: one of ``available_backbones()``, or ``timm:<name>`` (``build_timm``).
        width: channel multiplier (e.g. 0.25 for CPU-sized runs).
        image_size: side of the training images; picks the stem when ``small_images`` is None.
        small_images: 3×3 stride-1 stem without max-pool; default: ``byol.constants.is_small(image_size)``.
        norm: ``batchnorm``, or ``groupnorm-ws``: every BatchNorm a GroupNorm and every convolution
            weight-standardised, no batch statistics anywhere (Richemond et al. 2020); ``affine``: every
            BatchNorm a learned per-channel scale and shift, no statistics (``byol.models.norms.ChannelAffine``);
            or ``none``: every BatchNorm removed, no normalisation at all (``byol.models.norms.without_batchnorm``).
        timm_args: keyword arguments of ``timm.create_model`` (timm backbones only; width and
            small_images apply to byol's own backbones).
        group_channels: ``groupnorm-ws`` only: at least this many channels per GroupNorm group
            (``byol.models.norms.group_count``).
    """
    check_backbone(name)
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    if norm not in ENCODER_NORMS:
        raise ValueError(f"unknown encoder norm {norm!r}; choose one of {', '.join(ENCODER_NORMS)}")
    if small_images is None:
        small_images = is_small(image_size)
    if is_timm(name):
        encoder = build_timm(name, image_size, timm_args)
    else:
        encoder = _REGISTRY[name](width=width, small_images=small_images)
    if norm == "groupnorm-ws":
        encoder = Encoder(groupnorm_ws(encoder.module, group_channels), encoder.feature_dim)
    elif norm == "affine":
        encoder = Encoder(batchnorm_to_affine(encoder.module), encoder.feature_dim)
    elif norm == "none":
        encoder = Encoder(without_batchnorm(encoder.module), encoder.feature_dim)
    return encoder


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class ResNet(nn.Module):
    """torchvision's ResNet without the classifier, with a width multiplier and a small-image stem.

    Module names follow ``torchvision.models.ResNet`` so state dicts are interchangeable.
    """

    def __init__(self, block: type[nn.Module], layers: list[int], width: float = 1.0, small_images: bool = False):
        super().__init__()
        self.inplanes = _scaled(64, width)
        # Registered in the order forward runs them, as torchvision's: IntermediateLayerGetter (detection and
        # segmentation backbones, byol.downstream) runs the children in this order.
        if small_images:  # CIFAR stem: 3×3 conv, stride 1, no max-pool
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if small_images else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, _scaled(64, width), layers[0])
        self.layer2 = self._make_layer(block, _scaled(128, width), layers[1], stride=2)
        self.layer3 = self._make_layer(block, _scaled(256, width), layers[2], stride=2)
        self.layer4 = self._make_layer(block, _scaled(512, width), layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = _scaled(512, width) * block.expansion
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)  # (B, feature_dim)


@register("resnet18")
def resnet18(width: float = 1.0, small_images: bool = False) -> Encoder:
    m = ResNet(BasicBlock, [2, 2, 2, 2], width, small_images)
    return Encoder(m, m.feature_dim)


@register("resnet34")
def resnet34(width: float = 1.0, small_images: bool = False) -> Encoder:
    m = ResNet(BasicBlock, [3, 4, 6, 3], width, small_images)
    return Encoder(m, m.feature_dim)


@register("resnet50")
def resnet50(width: float = 1.0, small_images: bool = False) -> Encoder:
    m = ResNet(Bottleneck, [3, 4, 6, 3], width, small_images)
    return Encoder(m, m.feature_dim)


class ConvNet(nn.Module):
    """A 4-stage convnet (conv3×3 → BN → ReLU, max-pool between stages): fast on a CPU.

    Channels are 32-64-128-256 at width 1. For large images a stride-4 stem shrinks them first.
    """

    def __init__(self, width: float = 1.0, small_images: bool = True):
        super().__init__()
        chans = [_scaled(c, width) for c in (32, 64, 128, 256)]
        layers: list[nn.Module] = []
        in_ch = 3
        for i, out_ch in enumerate(chans):
            stride = 4 if (i == 0 and not small_images) else 1
            layers += [
                nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            if i < len(chans) - 1:
                layers.append(nn.MaxPool2d(2))
            in_ch = out_ch
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.feature_dim = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)  # (B, feature_dim)


@register("convnet")
def convnet(width: float = 1.0, small_images: bool = True) -> Encoder:
    m = ConvNet(width, small_images)
    return Encoder(m, m.feature_dim)
