"""``byol augment DATA --out grid.png``: original images beside their two augmented views."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from byol.cli.common import IMAGES, pick_preset
from byol.config.presets import resolve
from byol.errors import ByolError
from byol.files import atomic_write


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help=f"images: {IMAGES}")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument(
        "--preset",
        default="auto",
        help="whose augmentation to show: cifar10, imagenet, cpu or a YAML file; auto: as byol pretrain picks it",
    )
    p.add_argument("--image-size", type=int, default=None, help="side of the views (default: the preset's)")
    p.add_argument("-n", "--num-images", type=int, default=8, help="rows in the grid")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from byol.data.augment import TwoViewAugment
    from byol.data.cache import uses_cache
    from byol.data.crops import TwoCropDataset
    from byol.data.folder import list_images, warn_skipped

    if args.num_images < 1:
        raise ByolError("--num-images must be at least 1")
    preset = pick_preset(args.preset, args.data)
    cfg = resolve(preset, {"data": {"image_size": args.image_size}} if args.image_size else {})
    size, (v1, v2) = cfg.data.image_size, cfg.augment.views()
    images = list_images(args.data)
    g = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(images), generator=g)[: args.num_images].tolist()
    aug = TwoViewAugment(size, v1, v2, mean=None, std=None, interpolation=cfg.augment.interpolation,
                         jitter=cfg.augment.jitter)  # fmt: skip
    decoded = {i: images.view(i, size) for i in order}  # the whole image, as the training cache holds it
    warn_skipped([images.paths[i] for i, view in decoded.items() if view is None], len(order))
    order = [i for i, view in decoded.items() if view is not None]
    if not order:
        raise ByolError(f"none of the {len(decoded)} images drawn from {args.data} could be read")
    originals_t = torch.stack([torch.from_numpy(decoded[i].copy()).permute(2, 0, 1) for i in order])
    if uses_cache(images, size):
        view1, view2 = aug(originals_t, g)  # batched crop, as training does for small images
    else:
        ds = TwoCropDataset(images, size, v1, v2, args.seed)
        crops = [ds[(0, i)] for i in order]
        crops = [c for c in crops if c is not None]
        view1, view2 = aug(generator=g, crops=(torch.stack([c[0] for c in crops]), torch.stack([c[1] for c in crops])))
    write_grid(originals_t.float() / 255, view1, view2, Path(args.out))
    print(f"wrote {args.out}: {len(order)} images, preset {preset} (columns: original, view 1, view 2)")
    return 0


def write_grid(
    originals: torch.Tensor, view1: torch.Tensor, view2: torch.Tensor, out: Path, min_side: int = 128
) -> None:
    from torchvision.utils import make_grid

    rows = torch.stack([originals, view1, view2], dim=1).flatten(0, 1)  # (3N, 3, S, S): row per image
    scale = max(1, min_side // rows.shape[-1])
    if scale > 1:
        rows = torch.nn.functional.interpolate(rows, scale_factor=scale, mode="nearest")
    grid = make_grid(rows.clamp(0, 1), nrow=3, padding=2, pad_value=1.0)
    with atomic_write(out) as f:
        Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(f, format="PNG")
