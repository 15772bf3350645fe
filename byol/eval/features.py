"""Features of a frozen encoder: the one extractor every evaluation uses."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn

from byol.constants import IMAGENET_MEAN, IMAGENET_STD
from byol.data.kernels import to_float


def normalize_images(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8/float ``(B, 3, H, W)`` → float normalised with ``mean``/``std``."""
    x = to_float(images)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device | str = "cpu",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    progress: bool = False,
    desc: str = "features",
    return_indices: bool = False,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    out_device: torch.device | str = "cpu",
):
    """Run ``encoder`` in eval mode over ``(images, labels[, indices])`` batches.

    Returns features ``(N, D)`` float32 and labels ``(N,)`` on ``out_device`` (the CPU by default)
    (and the batches' indices with ``return_indices``). ``autocast`` makes the context each forward
    runs in (the training monitor passes the run's bf16 autocast). Features kept on ``device``
    (``out_device=device``) cost no host sync per batch. The encoder's train/eval mode is restored
    afterwards.
    """
    was_training = encoder.training
    encoder.eval()
    feats, labels, indices = [], [], []
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc=desc, leave=False, unit="batch")
    try:
        for batch in batches:
            x = normalize_images(batch[0].to(device, non_blocking=True), mean, std)
            with autocast() if autocast is not None else contextlib.nullcontext():
                out = encoder(x)
            feats.append(out.float().to(out_device))
            labels.append(batch[1])  # where the batches hold them (a GPU-kept cache: on the GPU)
            if return_indices:
                indices.append(batch[2].cpu())
    finally:
        encoder.train(was_training)
    empty = torch.empty(0, dtype=torch.long)
    if feats:
        out = torch.cat(feats), torch.cat(labels).to(out_device)
    else:
        out = torch.empty(0, 0, device=out_device), empty
    if return_indices:
        return (*out, torch.cat(indices) if indices else empty)
    return out


@torch.no_grad()
def adapt_batchnorm(
    encoder: nn.Module,
    batches: Iterable[tuple[torch.Tensor, ...]],
    device: torch.device | str = "cpu",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
) -> nn.Module:
    """Re-estimate ``encoder``'s BatchNorm running statistics on ``batches`` (images first), in place.

    Forward passes in train mode, no optimiser step: the statistics become the exact average over
    the images (``torch.optim.swa_utils.update_bn``). An untrained encoder so adapted is the baseline
    that isolates what BatchNorm alone gains on these images from what training learned. The
    encoder's train/eval mode is restored afterwards; an encoder without BatchNorm is unchanged.
    """
    from torch.optim.swa_utils import update_bn

    normalised = (normalize_images(batch[0].to(device), mean, std) for batch in batches)
    update_bn(normalised, encoder)
    return encoder
