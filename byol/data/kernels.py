"""The image kernels of the augmentation: crop, colour ops, blur, over three colour planes.

The colour ops work on the three channels as separate (N, H, W) tensors (``Channels``). Every op
mixes channels at one pixel; written this way, torch.compile fuses the whole chain (crop → jitter →
grayscale → solarise → normalise) into one loop over the pixels of each image, instead of one pass
over the batch per op. ``augment`` draws the parameters and chains these; the official release's
TensorFlow-faithful colour jitter is in ``official_jitter``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

LUMA = (0.2989, 0.587, 0.114)  # rgb_to_grayscale weights (ITU-R 601-2), as torchvision and the official release


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Crop each image to its box ``[top, left, h, w]`` and resize to ``size``×``size``, batched.

    Bilinear: ``roi_align(aligned=True)``, the sampling of ``grid_sample(align_corners=False)`` with
    border clamping (compiled: the same values by gathering the four neighbours). Bicubic: one
    ``grid_sample`` over the batch. Float output (uint8 input is scaled to [0, 1]).
    """
    if mode == "bilinear":
        return torch.stack(crop_channels(images, boxes, size), dim=1)
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


def per_sample(v: torch.Tensor, dims: int = 3) -> torch.Tensor:
    return v.view(-1, *([1] * dims))


def crop_channels(
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
        return split_channels(out)
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


def gray_channels(c: Channels) -> torch.Tensor:
    return LUMA[0] * c[0] + LUMA[1] * c[1] + LUMA[2] * c[2]


def _linear(c: Channels, a: torch.Tensor, b: torch.Tensor, gray: torch.Tensor | None = None) -> Channels:
    """``clamp(a·x + b·gray, 0, 1)`` with per-sample ``a``, ``b``; ``gray`` defaults to each pixel's luma."""
    gray = gray_channels(c) if gray is None else gray
    a, b = per_sample(a, 2), per_sample(b, 2)
    return tuple((a * ch + b * gray).clamp(0, 1) for ch in c)


def hue_channels(c: Channels, shift: torch.Tensor) -> Channels:
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
    h6 = h6 + 6 * per_sample(shift, 2)  # in [-4, 9): wrap into [0, 6) without a division
    h6 = torch.where(h6 < 0, h6 + 6, h6)
    h6 = torch.where(h6 >= 6, h6 - 6, h6)
    out = []
    for offset in (5.0, 3.0, 1.0):
        k = h6 + offset
        k = torch.where(k >= 6, k - 6, k)
        out.append(maxc - delta * torch.minimum(k, 4 - k).clamp(0, 1))
    return out[0], out[1], out[2]


def where_channels(mask: torch.Tensor, a: Channels, b: Channels) -> Channels:
    m = per_sample(mask, 2)
    return tuple(torch.where(m, x, y) for x, y in zip(a, b))


def split_channels(x: torch.Tensor) -> Channels:
    return x[:, 0], x[:, 1], x[:, 2]


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Luma ``(N, 1, H, W)`` of float RGB images, as ``torchvision``'s ``rgb_to_grayscale``."""
    return gray_channels(split_channels(x)).unsqueeze(1)


def linear_colour(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``clamp(a·x + b·gray(x) + c·mean(gray(x)), 0, 1)`` with per-sample coefficients (N×3×H×W).

    Brightness f is (f, 0, 0), contrast (f, 0, 1 − f), saturation (f, 1 − f, 0), identity (1, 0, 0).
    """
    ch = split_channels(x)
    gray = gray_channels(ch)
    mix = per_sample(b, 2) * gray + per_sample(c, 2) * gray.mean(dim=(1, 2), keepdim=True)
    return torch.stack(_linear(ch, a, torch.ones_like(b), mix), dim=1)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, torch.zeros_like(factor), torch.zeros_like(factor))


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, torch.zeros_like(factor), 1 - factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return linear_colour(x, factor, 1 - factor, torch.zeros_like(factor))


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each image (N×3×H×W floats) by ``shift`` ∈ [-0.5, 0.5] of a turn."""
    return torch.stack(hue_channels(split_channels(x), shift), dim=1)


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
def blur_drawn(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int, padding: str = "reflect") -> torch.Tensor:
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


def colour_jitter_channels(c: Channels, order: torch.Tensor, factors: torch.Tensor, shift: torch.Tensor) -> Channels:
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
        return where_channels(active & (shift != 0), hue_channels(c, shift), c)

    # A slot r before `first` or after `last` holds brightness or saturation; so do the slots between.
    for r in (0, 1):
        c = slot(c, r, r < first)
    c = hue(c, hue_at < contrast_at)
    for r in (1, 2):
        c = slot(c, r, (hue_at < r) & (r < contrast_at))
    f = factors[:, 1]
    c = _linear(c, f, 1 - f, gray_channels(c).mean(dim=(1, 2), keepdim=True))
    for r in (1, 2):
        c = slot(c, r, (contrast_at < r) & (r < hue_at))
    c = hue(c, hue_at > contrast_at)
    for r in (2, 3):
        c = slot(c, r, r > last)
    return c


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [0, 1]; float input is returned as float32."""
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()
