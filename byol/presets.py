"""The shipped presets (``byol/presets/*.yaml``), ``--preset auto``, and the ImageNet length rule."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from byol.config import Config
from byol.config_io import config_from_dict, merge
from byol.constants import is_small
from byol.errors import ByolError

PRESETS = ("imagenet", "cifar10", "cpu")


def auto_preset(max_side: int) -> str:
    """``--preset auto``: the CIFAR recipe for small images, the paper's for the others."""
    return "cifar10" if is_small(max_side) else "imagenet"


def preset_dict(name: str) -> dict[str, Any]:
    """The YAML of a shipped preset, or of a user's YAML file."""
    if name in PRESETS:
        text = resources.files("byol").joinpath("presets", f"{name}.yaml").read_text()
    elif Path(name).is_file():
        text = Path(name).read_text()
    else:
        raise ByolError(f"--preset {name!r} is neither a preset ({', '.join(PRESETS)}) nor a YAML file")
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ByolError(f"preset {name}: invalid YAML: {e}") from None
    values.setdefault("preset", name)
    return values


# The official release ties (base lr, weight decay, τ_base) to the run length (ImageNet, batch 4096).
IMAGENET_BY_EPOCHS = {
    40: (0.45, 1e-6, 0.97),
    100: (0.45, 1e-6, 0.99),
    300: (0.3, 1e-6, 0.99),
    1000: (0.2, 1.5e-6, 0.996),
}


def imagenet_schedule_for(epochs: float) -> tuple[float, float, float]:
    """The official (base lr, weight decay, τ_base) of the run length nearest to ``epochs`` (log scale)."""
    nearest = min(IMAGENET_BY_EPOCHS, key=lambda e: abs(math.log(e) - math.log(max(epochs, 1e-9))))
    return IMAGENET_BY_EPOCHS[nearest]


def resolve(preset: str, overrides: dict[str, Any]) -> Config:
    """Preset, then the imagenet length rule for values the user did not set, then overrides (and, for
    ``--method simclr --simclr-recipe paper``, SimCLR's views where the user set none)."""
    values = preset_dict(preset)
    if values.get("preset") == "imagenet":
        epochs = overrides.get("run", {}).get("epochs", values.get("run", {}).get("epochs", 1000))
        lr, wd, tau = imagenet_schedule_for(epochs)
        values = merge(values, {"optim": {"base_lr": lr, "weight_decay": wd, "tau_base": tau}})
    values = simclr_paper_views(merge(values, overrides), keep=set(overrides.get("augment", {})))
    return config_from_dict(values).validate()


# SimCLR's augmentation (Chen et al. 2020, appendix A): colour jitter at strength s = 1 (0.8, 0.8, 0.8,
# 0.2) with p 0.8, grayscale 0.2, blur 0.5 (none on CIFAR), no solarisation; the same for both views.
SIMCLR_VIEW = {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2, "jitter_p": 0.8,
               "grayscale_p": 0.2, "blur_p": 0.5, "solarize_p": 0.0}  # fmt: skip


def simclr_paper_views(values: dict[str, Any], keep: set[str] = frozenset()) -> dict[str, Any]:
    """``values`` (a config as a dict) with SimCLR's symmetric views when it asks for SimCLR's own
    recipe; the crop of each view stays, blur stays off for small images, views named in ``keep`` stay."""
    model = values.get("model", {})
    if model.get("method") != "simclr" or model.get("simclr_recipe") != "paper":
        return values
    augment = dict(values.get("augment", {}))
    small = is_small(values.get("data", {}).get("image_size", 224))
    for name in ("view1", "view2"):
        if name not in keep:
            view = {k: v for k, v in augment.get(name, {}).items() if k in ("crop_scale", "crop_ratio", "flip_p")}
            augment[name] = {**view, **SIMCLR_VIEW, **({"blur_p": 0.0} if small else {})}
    return {**values, "augment": augment}
