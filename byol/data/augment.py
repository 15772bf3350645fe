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
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.2989, 0.587, 0.114)  # rgb_to_grayscale weights (ITU-R 601-2), as torchvision


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
    if image_size <= 64:
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

    Bilinear: torchvision's ``roi_align`` with one sample per output pixel (the same values as
    ``grid_sample`` with align_corners=False, about twice as fast on a CPU). Bicubic: one
    ``grid_sample`` over the batch. Float input.
    """
    n, _, height, width = images.shape
    boxes = boxes.to(images.dtype)
    top, left, h, w = boxes.unbind(1)
    if mode == "bilinear":
        index = torch.arange(n, dtype=images.dtype, device=images.device)
        rois = torch.stack([index, left, top, left + w, top + h], dim=1)
        return roi_align(images, rois, size, spatial_scale=1.0, sampling_ratio=1, aligned=True)
    theta = torch.zeros(n, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = w / width
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode=mode, padding_mode="border", align_corners=False).clamp_(0, 1)


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma ``(N, 1, H, W)`` of float RGB images, as ``torchvision``'s ``rgb_to_grayscale``."""
    r, g, b = x.unbind(1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, torch.zeros_like(factor), torch.zeros_like(factor))


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, torch.zeros_like(factor), 1 - factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, 1 - factor, torch.zeros_like(factor))


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each image by ``shift`` (fraction of a turn, in [-0.5, 0.5]) in HSV space.

    Value and chroma are kept; the hexagonal hue ``H ∈ [0, 6)`` moves by ``6·shift`` and the RGB
    values are rebuilt as ``f(n) = V − C·clamp(min(k, 4 − k), 0, 1)``, ``k = (n + H) mod 6``.
    """
    maxc, argmax = x.max(dim=1)  # (N, H, W)
    delta = maxc - x.min(dim=1).values  # chroma
    r, g, b = x.unbind(1)
    num = torch.where(argmax == 0, g - b, torch.where(argmax == 1, b - r, r - g))
    h6 = torch.where(delta > 0, num / delta.clamp(min=1e-12) + 2 * argmax.to(x.dtype), torch.zeros_like(delta))
    h6 = torch.remainder(h6 + 6 * shift.view(-1, 1, 1), 6).unsqueeze(1)  # (N, 1, H, W)
    k = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1) + h6
    k = torch.where(k >= 6, k - 6, k)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return maxc.unsqueeze(1) - delta.unsqueeze(1) * ramp


def linear_colour(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``clamp(a·x + b·gray(x) + c·mean(gray(x)), 0, 1)`` with per-sample coefficients.

    Brightness f is (f, 0, 0), contrast (f, 0, 1 − f), saturation (f, 1 − f, 0), identity (1, 0, 0):
    one fused op serves the three, so a jitter round costs one pass whatever op each sample draws.
    """
    gray = grayscale(x)
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    return (_per_sample(a) * x + _per_sample(b) * gray + _per_sample(c) * mean).clamp_(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Separable gaussian blur with a per-sample σ (σ = 0 leaves the image unchanged), reflect padding."""
    n, c, h, w = x.shape
    half = (kernel_size - 1) / 2
    coords = torch.linspace(-half, half, kernel_size, dtype=x.dtype, device=x.device)
    s = sigma.to(x.dtype).view(-1, 1)
    kernel = torch.exp(-0.5 * (coords / s.clamp(min=1e-6)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (N, K); σ→0 gives a delta
    kernel = kernel.repeat_interleave(c, dim=0)  # (N·C, K)
    pad = kernel_size // 2
    y = F.pad(x.reshape(1, n * c, h, w), (pad, pad, pad, pad), mode="reflect")
    y = F.conv2d(y, kernel.view(n * c, 1, 1, kernel_size), groups=n * c)
    y = F.conv2d(y, kernel.view(n * c, 1, kernel_size, 1), groups=n * c)
    return y.view(n, c, h, w)


def blur_kernel_size(image_size: int, fraction: float = 0.1) -> int:
    """Odd kernel side ≈ ``fraction`` of the image side: 23 at 224 px, 3 at 32 px."""
    k = int(round(image_size * fraction))
    return max(3, k + 1 - k % 2)


class TwoViewAugment:
    """Turns a batch of images into BYOL's two augmented views, per-sample random, batched.

    Args:
        size: output side in pixels.
        view1, view2: ``ViewParams`` of each view (default: the paper's table 6).
        mean, std: normalisation (ImageNet's by default); ``None`` leaves values in [0, 1].
        interpolation: ``"bilinear"`` or ``"bicubic"`` (the paper's) for the batched crop.
        compile: ``torch.compile`` the per-sample ops (fused kernels; first call compiles).

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
    ):
        if interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"augment: interpolation must be bilinear or bicubic, got {interpolation!r}")
        self.size, self.view1, self.view2 = size, view1, view2
        self.mean, self.std, self.interpolation = mean, std, interpolation
        # The per-sample ops are one pure function; compiling it fuses them (several times faster).
        self._apply_fn = torch.compile(apply_view_params, dynamic=True) if compile else apply_view_params

    def __call__(
        self,
        images: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        crops: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if crops is None:
            if images is None:
                raise ValueError("augment: give images or crops")
            x = to_float(images)
            c1 = self.crop(x, self.view1, generator)
            c2 = self.crop(x, self.view2, generator)
        else:
            c1, c2 = to_float(crops[0]), to_float(crops[1])
        return self.apply(c1, self.view1, generator), self.apply(c2, self.view2, generator)

    def crop(self, x: torch.Tensor, p: ViewParams, generator=None) -> torch.Tensor:
        """Per-sample random resized crop of float images to ``size``."""
        n, _, h, w = x.shape
        boxes = sample_crop_boxes(n, h, w, p.crop_scale, p.crop_ratio, generator, x.device)
        return resized_crop(x, boxes, self.size, self.interpolation)

    def apply(self, x: torch.Tensor, p: ViewParams, generator=None) -> torch.Tensor:
        """Flip, colour jitter (random order), grayscale, blur, solarise, normalise: all per sample."""
        params = sample_view_params(x.shape[0], p, generator, x.device)
        kernel = blur_kernel_size(x.shape[-1], p.blur_kernel_fraction) if p.blur_p > 0 else 0
        mean = std = None
        if self.mean is not None:
            mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return self._apply_fn(x, params, kernel, mean, std)


def sample_view_params(n: int, p: ViewParams, generator=None, device="cpu") -> dict[str, torch.Tensor]:
    """Draw every random parameter of one view, per sample, as tensors on ``device``.

    Samples that skip an op get its neutral value (factor 1, hue shift 0, σ 0), so the ops that
    follow run over the whole batch in one path, with no Python loop and no host sync.
    """
    dev = device
    jitter = _bernoulli(n, p.jitter_p, generator, dev)
    one = torch.ones(n, device=dev)

    def factor(strength: float) -> torch.Tensor:
        return torch.where(jitter, _uniform(n, max(0.0, 1 - strength), 1 + strength, generator, dev), one)

    # Order of brightness (0), contrast (1), saturation (2), hue (3): a random permutation per sample.
    order = torch.argsort(torch.rand(n, 4, generator=generator, device=dev), dim=1)
    params = {
        "flip": _bernoulli(n, p.flip_p, generator, dev),
        "jitter_factors": torch.stack([factor(p.brightness), factor(p.contrast), factor(p.saturation)], 1),
        "hue_shift": torch.where(jitter, _uniform(n, -p.hue, p.hue, generator, dev), one * 0),
        "jitter_order": order,
        "grayscale": _bernoulli(n, p.grayscale_p, generator, dev),
        "blur_sigma": _uniform(n, *p.blur_sigma, generator, dev) * _bernoulli(n, p.blur_p, generator, dev),
        "solarize": _bernoulli(n, p.solarize_p, generator, dev),
    }
    return params


def _jitter_round(x: torch.Tensor, op: torch.Tensor, active: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """One colour-jitter round: each active sample applies its op ``op`` (0, 1 or 2) with its factor."""
    f = factors.gather(1, op.clamp(max=2).unsqueeze(1)).squeeze(1)
    f = torch.where(active & (op < 3), f, torch.ones_like(f))
    zero = torch.zeros_like(f)
    b = torch.where(op == 2, 1 - f, zero)
    c = torch.where(op == 1, 1 - f, zero)
    return linear_colour(x, f, b, c)


def apply_view_params(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    blur_kernel: int = 0,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> torch.Tensor:
    """Apply drawn parameters to float images in [0, 1]: a pure tensor function (``torch.compile``-able)."""
    x = torch.where(_per_sample(params["flip"]), x.flip(-1), x)
    # Colour jitter in each sample's own order. Hue, the costly op, runs once for the whole batch;
    # the cheap linear ops run in up to three rounds before it and three after, per that order.
    order = params["jitter_order"]
    hue_pos = (order == 3).float().argmax(dim=1)
    factors = params["jitter_factors"]
    for r in range(3):
        x = _jitter_round(x, order[:, r], r < hue_pos, factors)
    x = adjust_hue(x, params["hue_shift"])
    for r in range(1, 4):
        x = _jitter_round(x, order[:, r], r > hue_pos, factors)
    x = torch.where(_per_sample(params["grayscale"]), grayscale(x).expand_as(x), x)
    if blur_kernel:
        x = gaussian_blur(x, params["blur_sigma"], blur_kernel)
    x = torch.where(_per_sample(params["solarize"]) & (x >= 0.5), 1 - x, x)
    if mean is not None:
        x = (x - mean) / std
    return x.contiguous()


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [0, 1]; float input is returned as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()
