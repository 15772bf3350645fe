"""Options shared by several subcommands."""

from __future__ import annotations

import argparse
import logging

import yaml

from byol.errors import ByolError

log = logging.getLogger(__name__)

IMAGES = (
    "a folder of images (<class>/*.jpg, or unlabelled), cifar10 / cifar100 / stl10[:SPLIT] from torchvision's files "
    "under $BYOL_DATASETS, or a Hugging Face dataset (Parquet files, a save_to_disk folder, hf:NAME; #split=, "
    "#image=, #label=)"
)
"""What every subcommand that reads images (not tar shards: those are pretraining's stream) accepts:
one text for their ``DATA``, ``--train`` and ``--test`` (``byol pretrain``'s is the schema's ``data.path``)."""


def parse_assignment(text: str) -> tuple[list[str], object]:
    """``section.key=value`` (value parsed as YAML) → (["section", "key"], value)."""
    if "=" not in text:
        raise ByolError(f"--set {text!r}: expected section.key=value, e.g. augment.view2.solarize_p=0")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def nested(path: list[str], value: object) -> dict:
    out: dict = {}
    cur = out
    for k in path[:-1]:
        cur = cur.setdefault(k, {})
    cur[path[-1]] = value
    return out


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device`` with ``run.device``'s one text (``byol.config.docs.option_help``), as pretrain's."""
    from byol.config.docs import option_help

    parser.add_argument("--device", default="auto", help=option_help("run.device"))


def add_workers_argument(parser: argparse.ArgumentParser) -> None:
    """``--workers`` with ``data.workers``' one text."""
    from byol.config.docs import option_help

    parser.add_argument("--workers", type=int, default=None, help=option_help("data.workers"))


def pick_preset(name: str, data: str) -> str:
    """``--preset auto`` resolved from the images of ``data`` (``byol.config.presets.auto_preset``); else ``name``."""
    if name != "auto":
        return name
    from byol.config.presets import auto_preset
    from byol.data.cache import probe_max_side
    from byol.data.folder import list_images
    from byol.data.shards import is_shards, probe_shard_side

    side = probe_shard_side(data) if is_shards(data) else probe_max_side(list_images(data))
    chosen = auto_preset(side)
    log.info("preset: %s (images of %d px); choose with --preset", chosen, side)
    return chosen
