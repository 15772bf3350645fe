"""Small images (≤ 64 px, e.g. CIFAR) decoded once into a uint8 array cached on disk.

Each image is stored as its ``center_view`` (``byol.data.folder``): shorter side resized, centre
crop. The cache file is keyed by the file list, sizes and modification times, the side and the
crop, so a changed folder builds a new one; it is memory-mapped on later runs, which then start in
seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from byol.constants import is_small
from byol.data.folder import UNREADABLE, ImageList, center_view, warn_skipped
from byol.errors import ByolError
from byol.files import atomic_write

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("BYOL_CACHE_DIR", Path.home() / ".cache" / "byol"))


def _key(images: ImageList, size: int, crop: float) -> str:
    h = hashlib.sha256(f"v1 size={size}".encode() + (b"" if crop == 1 else f" crop={crop!r}".encode()))
    if images.rows is not None:  # a dataset's rows: its files' stamp and which rows
        h.update(images.rows.stamp().encode() + images.ids.tobytes())
        return h.hexdigest()[:20]
    for p in images.paths:
        try:
            st = p.stat()
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:  # a broken link or a link loop: unreadable, skipped when decoded
            h.update(f"{p}\0unreadable\n".encode())
    return h.hexdigest()[:20]


def _from_array(images: ImageList, size: int, crop: float) -> tuple[np.ndarray, list[int]]:
    """A named dataset's decoded array, as ``center_view`` would see each image."""
    array = images.array
    if array.shape[1:3] != (size, size) or crop != 1:
        array = np.stack([center_view(Image.fromarray(np.asarray(a)), size, crop) for a in array])
    return array, list(range(len(array)))


def load_cached(
    images: ImageList, size: int, cache_dir: Path | None = None, workers: int = 4, crop: float = 1.0
) -> tuple[np.ndarray, list[int]]:
    """``center_view(image, size, crop)`` of every image as one ``(N, size, size, 3)`` uint8 array.

    Decodes once and writes the cache, or memory-maps the cached array. Returns the array and the
    indices (into ``images``) of the images that were readable.
    """
    if images.array is not None:  # a named dataset: already decoded
        return _from_array(images, size, crop)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = _key(images, size, crop)
    array_path, meta_path = cache_dir / f"{key}.npy", cache_dir / f"{key}.json"
    if array_path.exists() and meta_path.exists():
        try:
            kept = json.loads(meta_path.read_text())["kept"]
            array = np.load(array_path, mmap_mode="r")
            if array.shape == (len(kept), size, size, 3):
                log.info("image cache: %d images from %s", len(kept), array_path)
                return array, kept
        except (ValueError, KeyError, OSError):
            pass
        log.warning("image cache %s is unreadable; rebuilding it", array_path)
    log.info("image cache: decoding %d images from %s (once)", len(images), images.root)
    # Each thread decodes runs of 256 consecutive images: a dataset's rows are then read a row group at a
    # time by one thread (one image each, threads would read every group each; map's chunksize is ignored).
    runs = [range(s, min(s + 256, len(images))) for s in range(0, len(images), 256)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = [v for run in pool.map(lambda r: [images.view(i, size, crop) for i in r], runs) for v in run]
    kept = [i for i, a in enumerate(decoded) if a is not None]
    warn_skipped([images.paths[i] for i, a in enumerate(decoded) if a is None], len(images))
    if not kept:
        raise ByolError(f"no readable image in {images.root}")
    array = np.stack([decoded[i] for i in kept])
    try:
        with atomic_write(array_path) as f:
            np.save(f, array)
        with atomic_write(meta_path, "w") as f:
            json.dump({"root": str(images.root), "size": size, "crop": crop, "kept": kept}, f)
    except OSError as e:  # a read-only cache folder must not stop training
        log.warning("could not write the image cache to %s: %s", cache_dir, e)
    return array, kept


def probe_max_side(images: ImageList, count: int = 16) -> int:
    """Largest side among the first readable images (decides cache vs streaming)."""
    if images.array is not None:
        return max(images.array.shape[1:3])
    sides = []
    for i in range(min(count * 2, len(images))):
        try:
            if images.rows is not None:
                sides.append(max(images.open(i).size))
                continue
            with Image.open(images.paths[i]) as img:
                sides.append(max(img.size))
        except UNREADABLE:
            continue
        if len(sides) >= count:
            break
    if not sides:
        raise ByolError(f"no readable image among the first files of {images.root}")
    return max(sides)


def uses_cache(images: ImageList, size: int, cache: str = "auto") -> bool:
    """Whether ``images`` are read from the uint8 cache (``cache``: auto, on, off) or streamed.

    auto: when both the views and the images are small (``byol.constants.is_small``); a named
    dataset is always an array in memory.
    """
    if images.array is not None or cache == "on":
        return True
    return cache == "auto" and is_small(size) and is_small(probe_max_side(images))
