"""BYOL's asymmetric two-view augmentation, batched on the device the images live on.

The ops and probabilities are those of Grill et al. 2020, appendix B, table 6:

==================================  ======  ======
op                                  view 1  view 2
==================================  ======  ======
random resized crop (area 0.08–1)   1.0     1.0
horizontal flip                     0.5     0.5
colour jitter (0.4, 0.4, 0.2, 0.1)  0.8     0.8
grayscale                           0.2     0.2
gaussian blur, σ ~ U[0.1, 2.0]      1.0     0.1
solarise                            0.0     0.2
==================================  ======  ======

Every random parameter is drawn per sample (crop box, flip, jitter factors and order, blur σ, each
probability); all ops are batched tensor ops with no Python loop over images, so they run on CUDA as
well as on the CPU. For small images (≤ 64 px, e.g. CIFAR) the presets turn blur off, as the CIFAR
recipes of solo-learn and lightly do: a 3-pixel kernel mostly destroys 32 px images.

Speed comes from the layout: one view is one pure function (``apply_view_params``) of the images and
the drawn parameters, written over the three colour planes so that ``torch.compile`` fuses crop, flip,
jitter, grayscale, solarise and normalisation into one loop over each image's pixels, with a single
image statistic (the mean luma that contrast needs). See ``benchmarks/augment.py``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace

import torch

from byol.config.views import JITTERS, VIEW1, VIEW2, ViewParams
from byol.constants import IMAGENET_MEAN, IMAGENET_STD, is_small
from byol.data.kernels import (
    BLURS,
    blur_drawn,
    blur_kernel_size,
    colour_jitter_channels,
    crop_channels,
    gaussian_blur_taps,
    gray_channels,
    per_sample,
    resized_crop,
    split_channels,
    where_channels,
)
from byol.data.official_jitter import colour_jitter_official


def default_views(image_size: int, crop_min_scale: float = 0.08) -> tuple[ViewParams, ViewParams]:
    """The paper's two views; blur off for images of at most 64 px (the CIFAR recipes)."""
    v1, v2 = replace(VIEW1, crop_scale=(crop_min_scale, 1.0)), replace(VIEW2, crop_scale=(crop_min_scale, 1.0))
    if is_small(image_size):
        v1, v2 = replace(v1, blur_p=0.0), replace(v2, blur_p=0.0)
    return v1, v2


def _uniform(n: int, lo: float, hi: float, generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) * (hi - lo) + lo


def _bernoulli(n: int, p: float, generator, device) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=device) < p


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    attempts: int = 10,
) -> torch.Tensor:
    """Random-resized-crop boxes ``(n, 4)`` as ``[top, left, h, w]`` (integers), per sample.

    The algorithm of torchvision's ``RandomResizedCrop.get_params``, vectorised: ``attempts`` draws
    of area and log-aspect per sample, the first that fits is kept, else a centre crop.
    """
    area = height * width
    u_area = torch.rand(n, attempts, generator=generator, device=device)
    target_area = area * (u_area * (scale[1] - scale[0]) + scale[0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(torch.rand(n, attempts, generator=generator, device=device) * (log_hi - log_lo) + log_lo)
    w = torch.round(torch.sqrt(target_area * aspect))
    h = torch.round(torch.sqrt(target_area / aspect))
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = ok.float().argmax(dim=1, keepdim=True)  # index of the first fitting attempt
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    found = ok.any(dim=1)
    # Fallback: the largest centre crop whose aspect is within range.
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        fh, fw = height, round(height * ratio[1])
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw))
    h = torch.where(found, h, torch.full_like(h, fh))
    u = torch.rand(n, 2, generator=generator, device=device)
    top = torch.where(found, torch.floor(u[:, 0] * (height - h + 1)), torch.div(height - h, 2, rounding_mode="floor"))
    left = torch.where(found, torch.floor(u[:, 1] * (width - w + 1)), torch.div(width - w, 2, rounding_mode="floor"))
    return torch.stack([top, left, h, w], dim=1).long()


class TwoViewAugment:
    """Turns a batch of images into BYOL's two augmented views, per-sample random, batched.

    Args:
        size: output side in pixels.
        view1: ``ViewParams`` of the first view (default: the paper's table 6: blur 1.0, solarise 0.0).
        view2: ``ViewParams`` of the second view (blur 0.1, solarise 0.2).
        mean: per-channel mean of the normalisation (ImageNet's by default); ``None`` (with ``std``)
            leaves values in [0, 1].
        std: per-channel standard deviation of the normalisation.
        interpolation: ``"bilinear"`` or ``"bicubic"`` (the paper's) for the batched crop.
        compile: ``torch.compile`` the per-view function (one fused kernel; first call compiles,
            once per batch shape).
        jitter: ``torchvision`` or ``official`` colour ops (``JITTERS``).
        blur: how the blur is computed (``BLURS``; see ``apply_view_params``); ``auto`` is right
            everywhere, the others are for benchmarks.

    Call it with ``images`` (``N×3×H×W``, uint8 or float in [0, 1], any device) to crop both views
    batched, or with ``crops=(c1, c2)`` already cropped to ``size`` (e.g. per sample in a data
    loader for images of different sizes). Returns two float32 tensors ``N×3×size×size``.

    Example:
        >>> aug = TwoViewAugment(32)
        >>> v1, v2 = aug(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8))
        >>> v1.shape, v1.dtype
        (torch.Size([4, 3, 32, 32]), torch.float32)
    """

    def __init__(
        self,
        size: int,
        view1: ViewParams = VIEW1,
        view2: ViewParams = VIEW2,
        mean: tuple[float, ...] | None = IMAGENET_MEAN,
        std: tuple[float, ...] | None = IMAGENET_STD,
        interpolation: str = "bilinear",
        compile: bool = False,
        jitter: str = "torchvision",
        blur: str = "auto",
    ):
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"augment: interpolation must be bilinear or bicubic, got {interpolation!r}")
        if (mean is None) != (std is None):
            raise ValueError("augment: give both mean and std, or neither")
        self.size, self.view1, self.view2 = size, view1, view2
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)
        if jitter not in JITTERS:
            raise ValueError(f"augment: jitter must be one of {', '.join(JITTERS)}, got {jitter!r}")
        if blur not in BLURS:
            raise ValueError(f"augment: blur must be one of {', '.join(BLURS)}, got {blur!r}")
        self.interpolation, self.jitter, self.blur = interpolation, jitter, blur
        # Static shapes: a dynamic-shape kernel is about twice as slow here and compiles far longer.
        self._apply_fn = torch.compile(apply_view_params, dynamic=False) if compile else apply_view_params

    def eager(self) -> TwoViewAugment:
        """The same augmentation, not compiled (for a pass or two at another batch size, such as the
        memory probe's, that a static-shape compile would compile anew)."""
        eager = copy.copy(self)
        eager._apply_fn = apply_view_params
        return eager

    def __call__(
        self,
        images: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        crops: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if crops is not None:
            return self.view(crops[0], self.view1, generator, crop=False), self.view(
                crops[1], self.view2, generator, crop=False
            )
        if images is None:
            raise ValueError("augment: give images or crops")
        return self.view(images, self.view1, generator), self.view(images, self.view2, generator)

    def view(self, images: torch.Tensor, p: ViewParams, generator=None, crop: bool = True) -> torch.Tensor:
        """One view of ``images``: random resized crop (unless ``crop=False``: already ``size``),
        flip, colour jitter in random order, grayscale, blur, solarise, normalise, all per sample."""
        n, _, h, w = images.shape
        if not crop and (h, w) != (self.size, self.size):
            raise ValueError(f"augment: pre-cropped images must be {self.size}×{self.size}, got {h}×{w}")
        params = sample_view_params(n, p, generator, images.device, self.jitter)
        if crop:
            boxes = sample_crop_boxes(n, h, w, p.crop_scale, p.crop_ratio, generator, images.device)
            if self.interpolation == "bicubic":
                images = resized_crop(images, boxes, self.size, "bicubic")
            else:
                params["box"] = boxes
        kernel = blur_kernel_size(self.size, p.blur_kernel_fraction, self.jitter) if p.blur_p > 0 else 0
        return self._apply_fn(images, params, self.size, kernel, self.mean, self.std, self.jitter, self.blur)


def sample_view_params(
    n: int, p: ViewParams, generator=None, device="cpu", jitter: str = "torchvision"
) -> dict[str, torch.Tensor]:
    """Draw every random parameter of one view but the crop box, per sample, on ``device``.

    Samples that skip an op get its neutral value (factor 1, hue shift 0, σ 0), so the ops that
    follow run over the whole batch in one path, with no Python loop and no host sync. With
    ``jitter="official"`` brightness is an offset δ ∈ [−b, b] (neutral 0), not a factor. An op whose
    probability is 0 gets no entry at all, and ``apply_view_params`` leaves it out (e.g. the
    crop-and-flip views of the linear-probe protocol cost a crop and nothing else).
    """
    dev = device
    params = {"flip": _bernoulli(n, p.flip_p, generator, dev)}
    if p.jitter_p > 0:
        jitter_on = _bernoulli(n, p.jitter_p, generator, dev)
        one = torch.ones(n, device=dev)

        def factor(strength: float) -> torch.Tensor:
            return torch.where(jitter_on, _uniform(n, max(0.0, 1 - strength), 1 + strength, generator, dev), one)

        if jitter == "official":
            brightness = torch.where(jitter_on, _uniform(n, -p.brightness, p.brightness, generator, dev), one * 0)
        else:
            brightness = factor(p.brightness)
        params["jitter_factors"] = torch.stack([brightness, factor(p.contrast), factor(p.saturation)], 1)
        params["hue_shift"] = torch.where(jitter_on, _uniform(n, -p.hue, p.hue, generator, dev), one * 0)
        # Order of brightness (0), contrast (1), saturation (2), hue (3): a random permutation per sample.
        params["jitter_order"] = torch.argsort(torch.rand(n, 4, generator=generator, device=dev), dim=1)
    if p.grayscale_p > 0:
        params["grayscale"] = _bernoulli(n, p.grayscale_p, generator, dev)
    if p.blur_p > 0:
        params["blur_sigma"] = _uniform(n, *p.blur_sigma, generator, dev) * _bernoulli(n, p.blur_p, generator, dev)
    if p.solarize_p > 0:
        params["solarize"] = _bernoulli(n, p.solarize_p, generator, dev)
    return params


def apply_view_params(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    size: int | None = None,
    blur_kernel: int = 0,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    jitter: str = "torchvision",
    blur: str = "auto",
) -> torch.Tensor:
    """Apply drawn parameters to images: a pure tensor function (``torch.compile``-able).

    ``x`` is N×3×H×W, uint8 or float in [0, 1]. With ``params["box"]`` (N×4 ``[top, left, h, w]``)
    each image is first cropped to its box and resized to ``size`` (bilinear); without it ``x`` is
    already the crop. Then flip, colour jitter, grayscale, blur (``blur_kernel`` > 0), solarise and
    normalise (``mean``/``std``); an op without its entry in ``params`` is skipped. ``jitter``
    picks the colour ops and the blur's padding (``JITTERS``); ``blur`` how the blur is computed
    (``BLURS``: ``conv``, grouped convolutions outside the compiled graph; ``taps``, shifted sums
    inside it; ``auto``, taps when compiling for a GPU, else conv). Returns float32 N×3×size×size.
    """
    n, _, h, w = x.shape
    size = size or h
    box = params.get("box")
    if box is None:  # the identity box: exact, and the flip still rides on the sampling grid
        box = torch.tensor([0, 0, h, w], device=x.device).expand(n, 4)
    c = crop_channels(x, box, size, params["flip"])
    if "jitter_order" in params:
        jitter_fn = colour_jitter_official if jitter == "official" else colour_jitter_channels
        c = jitter_fn(c, params["jitter_order"], params["jitter_factors"], params["hue_shift"])
    if "grayscale" in params:
        gray = gray_channels(c)
        c = where_channels(params["grayscale"], (gray, gray, gray), c)
    if blur_kernel and "blur_sigma" in params:
        padding = "zeros" if jitter == "official" else "reflect"
        x = torch.stack(c, dim=1)
        in_graph = blur == "taps" or (blur == "auto" and x.device.type == "cuda" and torch.compiler.is_compiling())
        blur_fn = gaussian_blur_taps if in_graph else blur_drawn
        c = split_channels(blur_fn(x, params["blur_sigma"], blur_kernel, padding))
    if "solarize" in params:
        solarize = per_sample(params["solarize"], 2)
        c = tuple(torch.where(solarize & (ch >= 0.5), 1 - ch, ch) for ch in c)
    if mean is not None:
        c = tuple((ch - m) * (1 / s) for ch, m, s in zip(c, mean, std))
    return torch.stack(c, dim=1)
