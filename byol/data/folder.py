"""Image folders: listing (ImageFolder-style or unlabelled), robust decoding to RGB."""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps

from byol.constants import IMAGE_EXTENSIONS
from byol.data.hf import Rows, is_hf, list_rows
from byol.data.named import datasets_root, load_named, parse_name
from byol.errors import ByolError

log = logging.getLogger(__name__)

UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
"""What ``open_rgb`` raises for a file that is not a usable image: such files are skipped."""


@dataclass
class ImageList:
    """The images of a folder, in a fixed order (sorted), with labels when the folder has classes."""

    root: Path
    paths: list[Path]  # a dataset's rows are named ``FILE[ROW]`` below ``root``
    labels: list[int] | None  # None for unlabelled folders
    classes: list[str]
    array: np.ndarray | None = None  # decoded (N, H, W, 3) uint8 images of a named dataset
    rows: Rows | None = None  # a Hugging Face dataset's rows (``byol.data.hf``), read by ``ids``
    ids: np.ndarray | None = None  # the row of each entry

    def __len__(self) -> int:
        return len(self.paths)

    def open(self, i: int) -> Image.Image:
        """Entry ``i`` decoded to RGB by ``open_rgb``: it raises one of ``UNREADABLE`` when unusable."""
        return open_rgb(self.paths[i]) if self.rows is None else open_rgb(io.BytesIO(self.read_bytes(i)))

    def view(self, i: int, size: int, crop: float = 1.0) -> np.ndarray | None:
        """``center_view`` of entry ``i``, or None when it cannot be read."""
        try:
            return center_view(self.open(i), size, crop)
        except UNREADABLE:
            return None

    def read_bytes(self, i: int) -> bytes:
        """Entry ``i``'s encoded bytes as stored (``OSError`` or ``ValueError`` when unreadable)."""
        return Path(self.paths[i]).read_bytes() if self.rows is None else self.rows.image_bytes(int(self.ids[i]))

    def fingerprint(self) -> dict[str, Any]:
        """Count and SHA-256 of the sorted paths relative to ``root`` (a moved folder keeps it)."""
        h = hashlib.sha256()
        for p in sorted(str(p.relative_to(self.root)) if p.is_relative_to(self.root) else str(p) for p in self.paths):
            h.update(p.encode() + b"\0")
        return {"count": len(self.paths), "sha256": h.hexdigest()}

    def subset(self, indices) -> ImageList:
        indices = list(indices)
        labels = None if self.labels is None else [self.labels[i] for i in indices]
        array = None if self.array is None else self.array[indices]
        ids = None if self.ids is None else self.ids[indices]
        return ImageList(self.root, [self.paths[i] for i in indices], labels, self.classes, array, self.rows, ids)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _walk_images(folder: Path, seen: set[tuple[int, int]], unlisted: list[str]) -> list[Path]:
    """Image files below ``folder`` in sorted order, following links to folders; a folder already
    in ``seen`` (device, inode) is not walked again, so a link loop ends and nothing is listed twice.
    A folder that cannot be read (no permission) is added to ``unlisted`` as ``PATH (why)``."""
    found = []

    def failed(error: OSError) -> None:
        unlisted.append(f"{error.filename} ({error.strerror})")

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=failed):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames.clear()
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames.sort()
        found.extend(Path(dirpath) / f for f in sorted(filenames) if _is_image(f) and not f.startswith("."))
    return found


def list_images(root: str | Path, min_classes: int = 2) -> ImageList:
    """List the images below ``root`` (or load a named dataset: ``cifar10``, ``cifar10:test``...; or
    list a Hugging Face dataset's rows: ``byol.data.hf``).

    ImageFolder-style (``root/<class>/...``, no images directly in ``root``, at least ``min_classes``
    class folders with images): labels are the class folders in sorted order. Anything else (flat or
    nested without that shape): unlabelled. A training folder needs two classes to be labelled (one
    folder of images is how unlabelled data is often kept); a split scored against another's classes
    may hold one (``byol.data.labels``).
    """
    if is_hf(str(root)):
        where, names, labels, classes, rows = list_rows(str(root))
        return ImageList(where, names, labels, classes, rows=rows, ids=np.arange(len(names)))
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
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        raise ByolError(f"cannot read the data folder {root}: {e.strerror}") from None
    st = root.stat()
    seen = {(st.st_dev, st.st_ino)}
    top_images = [e for e in entries if e.is_file() and _is_image(e.name)]
    class_dirs = [e for e in entries if e.is_dir() and not e.name.startswith(".")]
    if not top_images and class_dirs:
        paths, labels, classes, unlisted = [], [], [], []
        for d in class_dirs:
            files = _walk_images(Path(d.path), seen, unlisted)
            if files:
                labels.extend([len(classes)] * len(files))
                classes.append(d.name)
                paths.extend(files)
        if len(classes) >= min_classes:
            _warn_unlisted(unlisted, root)
            return ImageList(root, paths, labels, classes)
    seen, unlisted = set(), []
    paths = _walk_images(root, seen, unlisted)
    _warn_unlisted(unlisted, root)
    if not paths:
        raise ByolError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {root}")
    return ImageList(root, paths, None, [])


def _warn_unlisted(unlisted: list[str], root: Path) -> None:
    """One warning for the folders below ``root`` that could not be listed (their images are left out)."""
    if unlisted:
        log.warning("skipped %d folders of %s that could not be read: %s", len(unlisted), root, _first_few(unlisted))


def open_rgb(path: Path | BinaryIO) -> Image.Image:
    """Decode an image fully and convert it to RGB (grayscale, RGBA, palette, CMYK, 16-bit).

    The EXIF orientation of photos is applied. Raises one of ``UNREADABLE`` for unreadable or
    truncated files (PIL's default ``LOAD_TRUNCATED_IMAGES = False``, which byol never changes) and
    ``ValueError`` for images of more than ``Image.MAX_IMAGE_PIXELS`` pixels (decompression bombs),
    checked from the header before decoding. Safe to call from several threads: no global state is
    touched.
    """
    with Image.open(path) as img:
        limit = Image.MAX_IMAGE_PIXELS
        if limit and img.width * img.height > limit:
            raise ValueError(f"{path}: {img.width}×{img.height} pixels is over PIL's limit of {limit}")
        img.load()
        img = ImageOps.exif_transpose(img)  # photos stored sideways come out upright
        if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            background = Image.new("RGB", rgba.size, (255, 255, 255))  # composite onto white
            background.paste(rgba, mask=rgba.getchannel("A"))
            return background
        if img.mode == "I;16" or img.mode == "I":
            return img.point(lambda v: v / 256).convert("L").convert("RGB")
        return img.convert("RGB")


def center_view(img: Image.Image, size: int, crop: float = 1.0) -> np.ndarray:
    """The evaluation view of an image, the one rule every evaluation and the monitor use.

    The shorter side is resized (bicubic) to ``round(size / crop)``, then the central ``size × size``
    pixels are kept: ``crop`` is the fraction of the shorter side kept, 224/256 in the paper
    (``byol.constants.PAPER_EVAL_CROP``) and 1.0 for small images such as CIFAR's. An image that is
    already ``size × size`` with ``crop = 1`` is taken as it is. Returns ``(size, size, 3)`` uint8.
    The training cache of small images stores the same view with ``crop = 1``.
    """
    if not 0 < crop <= 1:
        raise ValueError(f"crop must be in (0, 1], got {crop}")
    short = round(size / crop)
    w, h = img.size
    if min(w, h) != short:
        scale = short / min(w, h)
        img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BICUBIC)
    if img.size != (size, size):
        left, top = (img.width - size) // 2, (img.height - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def warn_skipped(skipped: list[str] | list[Path], total: int) -> None:
    """One warning for all unreadable files: their count and the first few paths."""
    if skipped:
        log.warning("skipped %d of %d images that could not be read: %s", len(skipped), total, _first_few(skipped))


def _first_few(items: list[str] | list[Path], shown: int = 5) -> str:
    """The first ``shown`` of ``items``, and how many more there are."""
    more = f" (and {len(items) - shown} more)" if len(items) > shown else ""
    return ", ".join(str(p) for p in items[:shown]) + more
