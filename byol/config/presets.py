"""The shipped presets (``byol/presets/*.yaml``), ``--preset auto``, and the ImageNet length rule."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from byol.config.io import config_from_dict, merge, upgrade
from byol.config.registry import registered_methods
from byol.config.schema import Config
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
    """Preset, then the imagenet length rule for values the user did not set, then overrides, then the
    views the method asks for where the user set none (``MethodSpec.views``: ``--method simclr
    --simclr-recipe paper`` brings SimCLR's). Keys that moved (``byol.config.io.MOVED``) are read in their new place."""
    values = preset_dict(preset)
    if values.get("preset") == "imagenet":
        epochs = overrides.get("run", {}).get("epochs", values.get("run", {}).get("epochs", 1000))
        lr, wd, tau = imagenet_schedule_for(epochs)
        values = merge(values, {"optim": {"base_lr": lr, "weight_decay": wd, "tau_base": tau}})
    values = merge(values, upgrade(overrides))
    method = values.get("model", {}).get("method", "byol")
    spec = registered_methods().get(method) if isinstance(method, str) else None  # another value: refused by validate
    if spec is not None:  # the views the method asks for, where the user set none
        values = spec.views(values, keep=set(overrides.get("augment", {})))
    return config_from_dict(values).validate()
