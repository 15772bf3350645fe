"""Image folders: listing (ImageFolder-style or unlabelled), robust decoding to RGB."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from byol.data.named import datasets_root, load_named, parse_name
from byol.errors import ByolError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class ImageList:
    """The images of a folder, in a fixed order (sorted), with labels when the folder has classes."""

    root: Path
    paths: list[Path]
    labels: list[int] | None  # None for unlabelled folders
    classes: list[str]
    array: np.ndarray | None = None  # decoded (N, H, W, 3) uint8 images of a named dataset

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices) -> ImageList:
        indices = list(indices)
        labels = None if self.labels is None else [self.labels[i] for i in indices]
        array = None if self.array is None else self.array[indices]
        return ImageList(self.root, [self.paths[i] for i in indices], labels, self.classes, array)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _walk_images(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        found.extend(Path(dirpath) / f for f in sorted(filenames) if _is_image(f) and not f.startswith("."))
    return found


def list_images(root: str | Path) -> ImageList:
    """List the images below ``root`` (or load a named dataset: ``cifar10``, ``cifar10:test``...).

    ImageFolder-style (``root/<class>/...``, no images directly in ``root``): labels are the class
    folders in sorted order. Anything else (flat or nested without that shape): unlabelled.
    """
    named = parse_name(str(root))
    if named is not None and not Path(root).exists():
        array, labels, classes = load_named(*named)
        where = datasets_root() / str(root)
        return ImageList(where, [where / str(i) for i in range(len(array))], labels, classes, array)
    root = Path(root).expanduser()
    if not root.exists():
        raise ByolError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise ByolError(f"data path {root} is not a folder")
    entries = sorted(os.scandir(root), key=lambda e: e.name)
    top_images = [e for e in entries if e.is_file() and _is_image(e.name)]
    class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    if not top_images and class_dirs:
        paths, labels, classes = [], [], []
        for d in class_dirs:
            files = _walk_images(Path(d.path))
            if files:
                labels.extend([len(classes)] * len(files))
                classes.append(d.name)
                paths.extend(files)
        if len(classes) >= 2:
            return ImageList(root, paths, labels, classes)
    paths = _walk_images(root)
    if not paths:
        raise ByolError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
    return ImageList(root, paths, None, [])


def open_rgb(path: Path) -> Image.Image:
    """Decode an image fully and convert it to RGB (grayscale, RGBA, palette, CMYK, 16-bit).

    Raises ``OSError``/``ValueError`` for unreadable or truncated files.
    """
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as img:
            img.load()
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                background = Image.new("RGB", rgba.size, (255, 255, 255))  # composite onto white
                background.paste(rgba, mask=rgba.getchannel("A"))
                return background
            if img.mode == "I;16" or img.mode == "I":
                return img.point(lambda v: v / 256).convert("L").convert("RGB")
            return img.convert("RGB")


def warn_skipped(skipped: list[Path], total: int) -> None:
    """One warning for all unreadable files: their count and the first few paths."""
    if skipped:
        first = ", ".join(str(p) for p in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        log.warning("skipped %d of %d images that could not be read: %s%s", len(skipped), total, first, more)
