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

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from byol.constants import IMAGENET_MEAN, IMAGENET_STD, is_small

LUMA = (0.2989, 0.587, 0.114)  # rgb_to_grayscale weights (ITU-R 601-2), as torchvision and the official release
# Colour jitter: torchvision's ops (brightness multiplies, contrast and saturation blend with luma), as
# the PyTorch peers; or the official release's, TensorFlow's (brightness adds, contrast per channel,
# saturation scales HSV saturation), with zero-padded blur.
JITTERS = ("torchvision", "official")


@dataclass(frozen=True)
class ViewParams:
    """Probabilities and strengths of one view's augmentation. Defaults are view 1 of the paper."""

    crop_scale: tuple[float, float] = (0.08, 1.0)  # fraction of the image area
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range, sampled log-uniformly
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1  # kernel side ≈ 10% of the image side (23 px at 224)
    solarize_p: float = 0.0

    def __post_init__(self):
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"augment: {name} must be a probability in [0, 1], got {v}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"augment: crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if not 0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ValueError(f"augment: crop_ratio must satisfy 0 < min <= max, got {self.crop_ratio}")
        if min(self.brightness, self.contrast, self.saturation) < 0 or not 0 <= self.hue <= 0.5:
            raise ValueError("augment: jitter strengths must be >= 0 and hue in [0, 0.5]")


VIEW1 = ViewParams(blur_p=1.0, solarize_p=0.0)
VIEW2 = ViewParams(blur_p=0.1, solarize_p=0.2)


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


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Crop each image to its box ``[top, left, h, w]`` and resize to ``size``×``size``, batched.

    Bilinear: ``roi_align(aligned=True)``, the sampling of ``grid_sample(align_corners=False)`` with
    border clamping (compiled: the same values by gathering the four neighbours). Bicubic: one
    ``grid_sample`` over the batch. Float output (uint8 input is scaled to [0, 1]).
    """
    if mode == "bilinear":
        return torch.stack(_crop_channels(images, boxes, size), dim=1)
    images = to_float(images)
    n, _, height, width = images.shape
    boxes = boxes.to(images.dtype)
    top, left, h, w = boxes.unbind(1)
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="border", align_corners=False).clamp_(0, 1)


# The colour ops work on the three channels as separate (N, H, W) tensors. Every op mixes channels
# at one pixel; written this way, torch.compile fuses the whole chain (crop → jitter → grayscale →
# solarise → normalise) into one loop over the pixels of each image, instead of one pass over the
# batch per op. Channels = tuple of three (N, H, W) float tensors.
Channels = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _per_sample(v: torch.Tensor, dims: int = 3) -> torch.Tensor:
    return v.view(-1, *([1] * dims))


def _crop_channels(
    src: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor | None = None, gather: bool | None = None
) -> Channels:
    """Bilinear crop of ``src`` (N×3×H×W, uint8 or float) to ``size`` per box, flipped where ``flip``.

    Pixel centres map as in ``roi_align(aligned=True)``; a box equal to the image at the same size
    is the identity, exactly. Compiled (``gather`` None → while compiling), the four neighbours are
    gathered inside the fused kernel and the flip mirrors the sampling grid, so it costs nothing.
    Eager, torchvision's ``roi_align`` kernel computes the same values several times faster.
    """
    n, _, height, width = src.shape
    if not (torch.compiler.is_compiling() if gather is None else gather):
        x = to_float(src)
        index = torch.arange(n, dtype=x.dtype, device=x.device)
        top, left, h, w = boxes.to(device=x.device, dtype=x.dtype).unbind(1)
        rois = torch.stack([index, left, top, left + w, top + h], dim=1)
        out = roi_align(x, rois, size, spatial_scale=1.0, sampling_ratio=1, aligned=True)
        if flip is not None:
            out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
        return _split(out)
    top, left, h, w = boxes.to(device=src.device, dtype=torch.float32).unbind(1)
    centres = torch.arange(size, device=src.device, dtype=torch.float32) + 0.5
    ys = (top[:, None] + centres * (h[:, None] / size) - 0.5).clamp(0, height - 1)
    xc = centres if flip is None else torch.where(flip[:, None], size - centres, centres)
    xs = (left[:, None] + xc * (w[:, None] / size) - 0.5).clamp(0, width - 1)
    y0, x0 = ys.floor(), xs.floor()
    wy, wx = (ys - y0)[:, :, None], (xs - x0)[:, None, :]
    y0, x0 = y0.long()[:, :, None], x0.long()[:, None, :]
    y1, x1 = (y0 + 1).clamp(max=height - 1), (x0 + 1).clamp(max=width - 1)
    index = torch.arange(n, device=src.device).view(-1, 1, 1)
    scale = 1 / 255 if src.dtype == torch.uint8 else 1.0
    out = []
    for c in range(3):
        plane = src[:, c]
        upper = plane[index, y0, x0].float() * (1 - wx) + plane[index, y0, x1].float() * wx
        lower = plane[index, y1, x0].float() * (1 - wx) + plane[index, y1, x1].float() * wx
        out.append((upper * (1 - wy) + lower * wy) * scale)
    return out[0], out[1], out[2]


def _gray(c: Channels) -> torch.Tensor:
    return LUMA[0] * c[0] + LUMA[1] * c[1] + LUMA[2] * c[2]


def _linear(c: Channels, a: torch.Tensor, b: torch.Tensor, gray: torch.Tensor | None = None) -> Channels:
    """``clamp(a·x + b·gray, 0, 1)`` with per-sample ``a``, ``b``; ``gray`` defaults to each pixel's luma."""
    gray = _gray(c) if gray is None else gray
    a, b = _per_sample(a, 2), _per_sample(b, 2)
    return tuple((a * ch + b * gray).clamp(0, 1) for ch in c)


def _hue(c: Channels, shift: torch.Tensor) -> Channels:
    """Rotate the hue by ``shift`` (fraction of a turn) in HSV space, as torchvision's ``adjust_hue``.

    Value and chroma are kept; the hexagonal hue ``H ∈ [0, 6)`` moves by ``6·shift`` and RGB is
    rebuilt as ``f(n) = V − C·clamp(min(k, 4 − k), 0, 1)``, ``k = (n + H) mod 6``. Ties pick red,
    then green, as torchvision does.
    """
    r, g, b = c
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)  # chroma
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    num = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    base = torch.where(is_r, 0.0, torch.where(is_g, 2.0, 4.0))
    h6 = torch.where(delta > 0, num / delta.clamp(min=1e-12) + base, torch.zeros_like(delta))
    h6 = h6 + 6 * _per_sample(shift, 2)  # in [-4, 9): wrap into [0, 6) without a division
    h6 = torch.where(h6 < 0, h6 + 6, h6)
    h6 = torch.where(h6 >= 6, h6 - 6, h6)
    out = []
    for offset in (5.0, 3.0, 1.0):
        k = h6 + offset
        k = torch.where(k >= 6, k - 6, k)
        out.append(maxc - delta * torch.minimum(k, 4 - k).clamp(0, 1))
    return out[0], out[1], out[2]


def _where(mask: torch.Tensor, a: Channels, b: Channels) -> Channels:
    m = _per_sample(mask, 2)
    return tuple(torch.where(m, x, y) for x, y in zip(a, b))


def _split(x: torch.Tensor) -> Channels:
    return x[:, 0], x[:, 1], x[:, 2]


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma ``(N, 1, H, W)`` of float RGB images, as ``torchvision``'s ``rgb_to_grayscale``."""
    return _gray(_split(x)).unsqueeze(1)


def linear_colour(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``clamp(a·x + b·gray(x) + c·mean(gray(x)), 0, 1)`` with per-sample coefficients (N×3×H×W).

    Brightness f is (f, 0, 0), contrast (f, 0, 1 − f), saturation (f, 1 − f, 0), identity (1, 0, 0).
    """
    ch = _split(x)
    gray = _gray(ch)
    mix = _per_sample(b, 2) * gray + _per_sample(c, 2) * gray.mean(dim=(1, 2), keepdim=True)
    return torch.stack(_linear(ch, a, torch.ones_like(b), mix), dim=1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, torch.zeros_like(factor), torch.zeros_like(factor))


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, torch.zeros_like(factor), 1 - factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, 1 - factor, torch.zeros_like(factor))


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each image (N×3×H×W floats) by ``shift`` ∈ [-0.5, 0.5] of a turn."""
    return torch.stack(_hue(_split(x), shift), dim=1)


def _blur_weights(sigma: torch.Tensor, kernel_size: int, dtype: torch.dtype) -> torch.Tensor:
    """Normalised 1-D gaussian taps ``(N, K)``, one row per sample; σ→0 gives a delta."""
    half = (kernel_size - 1) / 2
    coords = torch.linspace(-half, half, kernel_size, dtype=dtype, device=sigma.device)
    s = sigma.to(dtype).view(-1, 1)
    kernel = torch.exp(-0.5 * (coords / s.clamp(min=1e-6)) ** 2)
    return kernel / kernel.sum(dim=1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int, padding: str = "reflect") -> torch.Tensor:
    """Separable gaussian blur with a per-sample σ (σ = 0 leaves the image unchanged), ``reflect``
    padding, or ``zeros`` as the official release (its convolutions pad 'SAME'): two grouped
    1-D convolutions, one group per image and channel."""
    n, c, h, w = x.shape
    kernel = _blur_weights(sigma, kernel_size, x.dtype).repeat_interleave(c, dim=0)  # (N·C, K)
    pad = kernel_size // 2
    mode = "constant" if padding == "zeros" else "reflect"
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode=mode)
    y = F.conv2d(y, kernel.view(n * c, 1, 1, kernel_size), groups=n * c)
    y = F.conv2d(y, kernel.view(n * c, 1, kernel_size, 1), groups=n * c)
    return y.view(n, c, h, w)


def gaussian_blur_taps(
    x: torch.Tensor, sigma: torch.Tensor, kernel_size: int, padding: str = "reflect"
) -> torch.Tensor:
    """``gaussian_blur`` as sums of shifted copies, one per tap and direction: the same numbers in a
    form ``torch.compile`` fuses into the view's kernels (no convolution, no graph break). Eager,
    it is ``2·K`` passes over the batch: use it compiled."""
    n, _, h, w = x.shape
    taps = _blur_weights(sigma, kernel_size, x.dtype).view(n, 1, 1, 1, kernel_size)
    pad = kernel_size // 2
    mode = "constant" if padding == "zeros" else "reflect"
    y = F.pad(x, (pad, pad, 0, 0), mode=mode)
    x = sum(taps[..., k] * y[..., k : k + w] for k in range(kernel_size))
    y = F.pad(x, (0, 0, pad, pad), mode=mode)
    return sum(taps[..., k] * y[..., k : k + h, :] for k in range(kernel_size))


BLURS = ("auto", "conv", "taps")  # TwoViewAugment(blur=...): how the drawn blur is computed


@torch.compiler.disable
def _blur_drawn(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int, padding: str = "reflect") -> torch.Tensor:
    """``gaussian_blur`` of the samples drawn for it (σ > 0); the others are returned unchanged.

    Kept out of compiled graphs: a compiled grouped convolution is slower than the eager one on a
    CPU. On a CPU only the drawn samples are blurred (view 2 draws 10% of them); on a GPU the whole
    batch is, which costs less than the host sync a selection would need.
    """
    if x.device.type != "cpu":
        return gaussian_blur(x, sigma, kernel_size, padding)
    drawn = (sigma > 0).nonzero().squeeze(1)
    if len(drawn) == len(sigma):
        return gaussian_blur(x, sigma, kernel_size, padding)
    if len(drawn) == 0:
        return x
    blurred = gaussian_blur(x.index_select(0, drawn), sigma.index_select(0, drawn), kernel_size, padding)
    return x.index_copy(0, drawn, blurred)


def blur_kernel_size(image_size: int, fraction: float = 0.1, jitter: str = "torchvision") -> int:
    """Odd kernel side ≈ ``fraction`` of the image side: 23 at 224 px, 3 at 32 px. ``official``:
    the release's ``2·int(side·fraction/2) + 1`` (the same at 32, 64, 128 and 224 px; 9, not 11, at 96)."""
    if jitter == "official":
        return max(3, 2 * int(image_size * fraction / 2) + 1)
    k = int(round(image_size * fraction))
    return max(3, k + 1 - k % 2)


class TwoViewAugment:
    """Turns a batch of images into BYOL's two augmented views, per-sample random, batched.

    Args:
        size: output side in pixels.
        view1, view2: ``ViewParams`` of each view (default: the paper's table 6).
        mean, std: normalisation (ImageNet's by default); ``None`` leaves values in [0, 1].
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


def _colour_jitter(c: Channels, order: torch.Tensor, factors: torch.Tensor, shift: torch.Tensor) -> Channels:
    """Brightness (0), contrast (1), saturation (2), hue (3) in each sample's ``order``, with one reduction.

    Only contrast needs an image statistic (the mean luma just before it), so the chain is cut there:
    the ops each sample runs before its contrast, the mean, contrast, then the ops after it. Hue, the
    costly op, runs once before and once after that cut (masked per sample); brightness and saturation
    run in the slots between, each slot active only for the samples whose op it holds.
    """
    hue_at = (order == 3).long().argmax(dim=1)
    contrast_at = (order == 1).long().argmax(dim=1)
    first, last = torch.minimum(hue_at, contrast_at), torch.maximum(hue_at, contrast_at)

    def slot(c: Channels, r: int, active: torch.Tensor) -> Channels:
        op = order[:, r]
        f = factors.gather(1, op.clamp(max=2).unsqueeze(1)).squeeze(1)
        a = torch.where(active & ((op == 0) | (op == 2)), f, torch.ones_like(f))
        b = torch.where(active & (op == 2), 1 - f, torch.zeros_like(f))
        return _linear(c, a, b)

    def hue(c: Channels, active: torch.Tensor) -> Channels:
        return _where(active & (shift != 0), _hue(c, shift), c)

    # A slot r before `first` or after `last` holds brightness or saturation; so do the slots between.
    for r in (0, 1):
        c = slot(c, r, r < first)
    c = hue(c, hue_at < contrast_at)
    for r in (1, 2):
        c = slot(c, r, (hue_at < r) & (r < contrast_at))
    f = factors[:, 1]
    c = _linear(c, f, 1 - f, _gray(c).mean(dim=(1, 2), keepdim=True))
    for r in (1, 2):
        c = slot(c, r, (contrast_at < r) & (r < hue_at))
    c = hue(c, hue_at > contrast_at)
    for r in (2, 3):
        c = slot(c, r, r > last)
    return c


def _saturation_hsv(c: Channels, factor: torch.Tensor) -> Channels:
    """Scale the HSV saturation by ``factor`` (clipped to 1), hue and value kept: TensorFlow's
    ``adjust_saturation``. With V = max, C = max − min and S = C/V, each channel becomes
    ``V − (V − x)·min(S·f, 1)/S``, i.e. ``V − (V − x)·min(f, V/C)``; grey pixels (C = 0) stay."""
    r, g, b = c
    v = torch.maximum(torch.maximum(r, g), b)
    chroma = v - torch.minimum(torch.minimum(r, g), b)
    k = torch.minimum(_per_sample(factor, 2).expand_as(v), v / chroma.clamp(min=1e-12))
    k = torch.where(chroma > 0, k, torch.ones_like(k))
    return tuple(v - (v - ch) * k for ch in c)


def _colour_jitter_official(c: Channels, order: torch.Tensor, factors: torch.Tensor, shift: torch.Tensor) -> Channels:
    """The official release's colour jitter: brightness ``x + δ``, contrast ``f·(x − mean) + mean``
    with each channel's own mean, saturation scaling HSV saturation (``_saturation_hsv``), hue
    rotation, in each sample's ``order``, each result clipped to [0, 1]. Every slot computes the four
    ops and keeps the sample's (simple, 4× the arithmetic of the torchvision path's chain)."""
    delta, contrast, saturation = _per_sample(factors[:, 0], 2), _per_sample(factors[:, 1], 2), factors[:, 2]
    for r in range(4):
        op = order[:, r]
        c = _where(op == 0, tuple((ch + delta).clamp(0, 1) for ch in c), c)
        means = [ch.mean(dim=(1, 2), keepdim=True) for ch in c]
        c = _where(op == 1, tuple(((ch - m) * contrast + m).clamp(0, 1) for ch, m in zip(c, means)), c)
        c = _where(op == 2, tuple(ch.clamp(0, 1) for ch in _saturation_hsv(c, saturation)), c)
        c = _where((op == 3) & (shift != 0), _hue(c, shift), c)
    return c


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
    c = _crop_channels(x, box, size, params["flip"])
    if "jitter_order" in params:
        jitter_fn = _colour_jitter_official if jitter == "official" else _colour_jitter
        c = jitter_fn(c, params["jitter_order"], params["jitter_factors"], params["hue_shift"])
    if "grayscale" in params:
        gray = _gray(c)
        c = _where(params["grayscale"], (gray, gray, gray), c)
    if blur_kernel and "blur_sigma" in params:
        padding = "zeros" if jitter == "official" else "reflect"
        x = torch.stack(c, dim=1)
        in_graph = blur == "taps" or (blur == "auto" and x.device.type == "cuda" and torch.compiler.is_compiling())
        blur_fn = gaussian_blur_taps if in_graph else _blur_drawn
        c = _split(blur_fn(x, params["blur_sigma"], blur_kernel, padding))
    if "solarize" in params:
        solarize = _per_sample(params["solarize"], 2)
        c = tuple(torch.where(solarize & (ch >= 0.5), 1 - ch, ch) for ch in c)
    if mean is not None:
        c = tuple((ch - m) * (1 / s) for ch, m, s in zip(c, mean, std))
    return torch.stack(c, dim=1)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [0, 1]; float input is returned as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()
