"""Off-the-shelf encoders to hold a run against: torchvision's and timm's pretrained weights.

``torchvision:<name>`` is torchvision's model with its default weights (``weights="DEFAULT"``, ImageNet),
read from the torch hub cache (``$TORCH_HOME``, ``torch.hub.get_dir()``); ``timm:<name>`` is timm's
with ``pretrained=True``, read from the Hugging Face cache (``$HF_HOME``; ``HF_HUB_OFFLINE=1`` keeps
it from trying the network). Nothing is downloaded here that the libraries would not download
themselves, and a file missing from its cache is a one-line error saying where to put it.

Each encoder comes with its own preprocessing, from its pretrained config: the view's size, the
share of the shorter side its centre crop keeps, and its normalisation. The classifier is dropped:
the features are what its last linear layer read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from byol.errors import ByolError

TORCHVISION, TIMM = "torchvision:", "timm:"


def is_pretrained(spec: str) -> bool:
    """Whether ``spec`` names an off-the-shelf encoder (``torchvision:<name>``, ``timm:<name>``)."""
    return str(spec).startswith((TORCHVISION, TIMM))


def load_pretrained(spec: str, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The encoder ``spec`` names, in eval mode on ``device``, and its metadata as byol's evaluations
    read it (``image_size``, ``eval_crop``, ``mean``, ``std``, ``feature_dim``, ``backbone``)."""
    if spec.startswith(TORCHVISION):
        encoder, meta = _torchvision(spec[len(TORCHVISION) :])
    elif spec.startswith(TIMM):
        encoder, meta = _timm(spec[len(TIMM) :])
    else:
        raise ByolError(f"{spec}: not an off-the-shelf encoder; name one as torchvision:<name> or timm:<name>")
    return encoder.eval().to(device), {"backbone": spec, **meta}


def _torchvision(name: str) -> tuple[nn.Module, dict[str, Any]]:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError):
        names = [n for n in torchvision.models.list_models() if name.split("_")[0] in n][:5]
        hint = f"; similar: {', '.join(names)}" if names else "; see torchvision.models.list_models()"
        raise ByolError(f"torchvision:{name}: torchvision has no model of that name with weights{hint}") from None
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if not path.is_file():
        raise ByolError(
            f"torchvision:{name}: its weights ({weights}) are not in the torch hub cache: put {weights.url} "
            f"at {path} (or, online, torchvision.models.get_model({name!r}, weights='DEFAULT') fetches it there; "
            "$TORCH_HOME moves the cache)"
        )
    model = torchvision.models.get_model(name, weights=None)
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # a truncated or foreign file
        raise ByolError(f"torchvision:{name}: {path} does not load ({type(e).__name__}: {str(e)[:200]})") from None
    dim = drop_classifier(model)
    t = weights.transforms()
    crop, resize = t.crop_size[0], t.resize_size[0]
    meta = {
        "feature_dim": dim,
        "image_size": crop,
        "eval_crop": crop / resize,
        "mean": list(t.mean),
        "std": list(t.std),
    }
    return model, {**meta, "weights": str(weights)}


def _timm(name: str) -> tuple[nn.Module, dict[str, Any]]:
    from byol.models.backbones import check_backbone, timm_module

    try:
        timm = timm_module()  # without the byol[timm] extra: how to install it
        check_backbone(TIMM + name)  # the same check and hint as --backbone timm:<name>
    except ValueError as e:
        raise ByolError(f"timm:{name}: {e}") from None
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as e:  # not in the cache and no network (OSError, huggingface_hub's errors), or a bad file
        from huggingface_hub import constants

        repo = f"models--{(_hf_repo(timm, name) or 'timm/' + name).replace('/', '--')}"
        raise ByolError(
            f"timm:{name}: its pretrained weights are not in the Hugging Face cache {constants.HF_HUB_CACHE} "
            f"({type(e).__name__}); where there is internet, timm.create_model({name!r}, pretrained=True) fetches "
            f"them, then copy {repo} into that cache ($HF_HOME moves it; HF_HUB_OFFLINE=1 reads only the cache)"
        ) from None
    cfg = model.pretrained_cfg
    meta = {
        "feature_dim": model.num_features,
        "image_size": int(cfg["input_size"][-1]),
        "eval_crop": float(cfg.get("crop_pct") or 1.0),
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
    }
    return model, {**meta, "weights": cfg.get("hf_hub_id") or cfg.get("url") or name}


def _hf_repo(timm, name: str) -> str | None:
    try:
        return timm.models.get_pretrained_cfg(name).hf_hub_id
    except Exception:  # a name without a pretrained config
        return None


def drop_classifier(model: nn.Module) -> int:
    """Replace ``model``'s last linear layer (its classifier) by the identity; the size of what it read."""
    linears = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ByolError(f"{type(model).__name__} has no linear classifier to drop")
    name, last = linears[-1]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return last.in_features


def preprocessing(meta: dict[str, Any]) -> str:
    """How an encoder's images are prepared, in a few words (for the comparison table)."""
    mean = "ImageNet" if [round(m, 3) for m in meta["mean"]] == [0.485, 0.456, 0.406] else "own"
    return f"{meta['image_size']}px, crop {meta['eval_crop']:.3g}, {mean} mean/std"
