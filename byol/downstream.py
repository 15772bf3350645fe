"""The pretrained encoder inside torchvision's detection and segmentation models.

byol's ResNets name their modules as ``torchvision.models.ResNet`` does (``conv1``, ``bn1``, ``layer1`` …
``layer4``), so torchvision's own pieces take them as they are:

- ``feature_maps(source, layers)``: the encoder's stages as a dict of feature maps
  (``IntermediateLayerGetter``), the pyramid's inputs;
- ``detection_backbone(source)``: an FPN backbone for ``FasterRCNN``, ``RetinaNet``, ``MaskRCNN`` …, built as
  ``torchvision.models.detection.backbone_utils.resnet_fpn_backbone`` builds one from ImageNet weights:
  BatchNorm frozen (statistics and affine, ``FrozenBatchNorm2d``) and the stem and ``layer1`` frozen;
- ``segmentation_backbone(source)``: ``layer4`` as ``"out"`` (and ``layer3`` as ``"aux"``) for
  ``DeepLabV3`` / ``FCN`` heads, BatchNorm trained as torchvision's segmentation models train it.

Why BatchNorm is frozen for detection: a detector trains on a few large images per device, and
statistics of two images are noise; the pretrained ones are kept. Segmentation batches are larger
crops, so torchvision trains BatchNorm there (on several GPUs, ``nn.SyncBatchNorm.convert_sync_batchnorm``).
timm users take ``timm.create_model(name, features_only=True)`` and load the exported weights: the guide,
docs/guide/downstream.md, shows each path.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from byol.encoder_io import load_encoder_with_meta
from byol.errors import ByolError

STAGES = ("layer1", "layer2", "layer3", "layer4")
TRAINED_FIRST = ("layer4", "layer3", "layer2", "layer1", "conv1")  # torchvision's order: the top trains first


def resnet_encoder(source: str | Path | nn.Module) -> nn.Module:
    """The encoder of a run folder, encoder file or Hub name (or a module given as is), checked to be a
    ResNet with torchvision's module names: one line naming the backbone where it is not."""
    if isinstance(source, nn.Module):
        encoder, backbone, where = source, type(source).__name__, "the module given"
    else:
        encoder, meta = load_encoder_with_meta(source)
        backbone, where = meta["backbone"], str(source)
    if not all(isinstance(getattr(encoder, name, None), nn.Module) for name in ("conv1", "bn1", *STAGES)):
        raise ByolError(
            f"{where}: a {backbone} encoder has no ResNet stages (conv1, layer1 … layer4); detection and "
            "segmentation backbones need resnet18/34/50, or a timm model with features_only=True"
        )
    return encoder


def feature_maps(source: str | Path | nn.Module, layers: tuple[str, ...] = STAGES) -> nn.Module:
    """A module returning ``{name: feature map}`` for ``layers`` of the encoder (torchvision's
    ``IntermediateLayerGetter``; the names are the stages', in order)."""
    from torchvision.models._utils import IntermediateLayerGetter

    return IntermediateLayerGetter(resnet_encoder(source), {name: name for name in layers})


def frozen_batchnorm(module: nn.Module) -> nn.Module:
    """Every ``BatchNorm2d`` (or ``SyncBatchNorm``) replaced by torchvision's ``FrozenBatchNorm2d`` with its
    statistics and affine parameters (what torchvision's detection backbones use); a norm without affine
    parameters or running statistics keeps the frozen one's 1 and 0 there. In place, returned for chaining."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d | nn.SyncBatchNorm):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            with torch.no_grad():
                for key in ("weight", "bias", "running_mean", "running_var"):
                    if getattr(child, key) is not None:
                        getattr(frozen, key).copy_(getattr(child, key))
            setattr(module, name, frozen)
        else:
            frozen_batchnorm(child)
    return module


def detection_backbone(
    source: str | Path | nn.Module,
    trainable_layers: int = 3,
    returned_layers: tuple[int, ...] = (1, 2, 3, 4),
    out_channels: int = 256,
    freeze_batchnorm: bool = True,
    extra_blocks: nn.Module | None = None,
) -> nn.Module:
    """The encoder as an FPN backbone (``BackboneWithFPN``) for torchvision's detectors, as
    ``resnet_fpn_backbone`` makes one: ``trainable_layers`` of the five stages counted from ``layer4``
    down train (3: ``layer2`` to ``layer4``; torchvision's default), the others' parameters are frozen;
    BatchNorm frozen unless ``freeze_batchnorm=False`` (then, in train mode, the frozen stages' BatchNorm
    still updates its running statistics, as in torchvision); the pyramid over ``returned_layers`` plus
    ``extra_blocks`` (a max-pooled level by default; RetinaNet's ``LastLevelP6P7(256, 256)`` with
    ``returned_layers=(2, 3, 4)``). A module given as ``source`` is changed in place.
    """
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    if not 0 <= trainable_layers <= 5:
        raise ByolError(f"trainable_layers must be 0 to 5, got {trainable_layers}")
    if not returned_layers or not set(returned_layers) <= {1, 2, 3, 4}:
        raise ByolError(f"returned_layers must be among 1, 2, 3, 4, got {returned_layers}")
    encoder = resnet_encoder(source)
    if freeze_batchnorm:
        frozen_batchnorm(encoder)
    trained = (*TRAINED_FIRST[:trainable_layers], *(("bn1",) if trainable_layers == 5 else ()))
    for name, param in encoder.named_parameters():
        param.requires_grad_(name.startswith(trained))
    layers = [f"layer{i}" for i in sorted(returned_layers)]
    channels = [_out_channels(getattr(encoder, name)) for name in layers]
    return BackboneWithFPN(encoder, {name: str(i) for i, name in enumerate(layers)}, channels, out_channels,
                           extra_blocks=LastLevelMaxPool() if extra_blocks is None else extra_blocks)  # fmt: skip


def segmentation_backbone(source: str | Path | nn.Module, aux: bool = False, freeze_batchnorm: bool = False):
    """``layer4`` as ``"out"`` (and ``layer3`` as ``"aux"``) for ``DeepLabV3`` / ``FCN``, with the channels a
    head needs: ``(backbone, out_channels, aux_channels or None)``. Output stride 32: byol's ResNets have no
    dilated variant (torchvision's DeepLabV3 dilates layer3 and layer4 to stride 8)."""
    from torchvision.models._utils import IntermediateLayerGetter

    encoder = resnet_encoder(source)
    if freeze_batchnorm:
        frozen_batchnorm(encoder)
    layers = {"layer4": "out", **({"layer3": "aux"} if aux else {})}
    aux_channels = _out_channels(encoder.layer3) if aux else None
    return IntermediateLayerGetter(encoder, layers), _out_channels(encoder.layer4), aux_channels


def _out_channels(stage: nn.Sequential) -> int:
    """The channels a ResNet stage puts out: its last block's last norm (``bn3`` of a Bottleneck, ``bn2`` of
    a BasicBlock; frozen or not)."""
    block = stage[-1]
    return int((block.bn3 if hasattr(block, "bn3") else block.bn2).weight.numel())
