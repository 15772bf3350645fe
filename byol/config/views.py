"""One view's augmentation parameters: a value type of the schema (``augment.view1`` / ``view2``), with
the paper's two views (appendix B, table 6). ``byol.data.augment`` applies them."""

from __future__ import annotations

from dataclasses import dataclass

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
