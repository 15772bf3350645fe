"""Small images (≤ 64 px, e.g. CIFAR) decoded once into a uint8 array cached on disk.

The cache file is keyed by the file list, sizes and modification times and by the image side, so
a changed folder builds a new one; it is memory-mapped on later runs, which then start in seconds.
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

from byol.data.folder import ImageList, open_rgb, warn_skipped
from byol.errors import ByolError

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return Path(os.environ.get("BYOL_CACHE_DIR", Path.home() / ".cache" / "byol"))


def _key(images: ImageList, size: int) -> str:
    h = hashlib.sha256(f"v1 size={size}".encode())
    for p in images.paths:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _decode_square(path: Path, size: int) -> np.ndarray | None:
    try:
        img = open_rgb(path)
    except (OSError, ValueError, Image.DecompressionBombWarning, SyntaxError):
        return None
    if img.size != (size, size):  # shorter side to `size`, centre crop
        w, h = img.size
        scale = size / min(w, h)
        img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
        left, top = (img.width - size) // 2, (img.height - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def load_cached(
    images: ImageList, size: int, cache_dir: Path | None = None, workers: int = 4
) -> tuple[np.ndarray, list[int]]:
    """Decode ``images`` to a ``(N, size, size, 3)`` uint8 array, or memory-map the cached one.

    Returns the array and the indices (into ``images``) of the images that were readable.
    """
    if images.array is not None:  # a named dataset: already decoded
        if images.array.shape[1:3] != (size, size):
            raise ByolError(
                f"{images.root}: its images are {images.array.shape[1]} px; use --image-size {images.array.shape[1]}"
            )
        return images.array, list(range(len(images.array)))
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    key = _key(images, size)
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
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = list(pool.map(lambda p: _decode_square(p, size), images.paths, chunksize=256))
    kept = [i for i, a in enumerate(decoded) if a is not None]
    warn_skipped([images.paths[i] for i, a in enumerate(decoded) if a is None], len(images))
    if not kept:
        raise ByolError(f"no readable image in {images.root}")
    array = np.stack([decoded[i] for i in kept])
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = array_path.with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, array)
        os.replace(tmp, array_path)
        meta_tmp = meta_path.with_suffix(f".tmp{os.getpid()}")
        meta_tmp.write_text(json.dumps({"root": str(images.root), "size": size, "kept": kept}))
        os.replace(meta_tmp, meta_path)
    except OSError as e:  # a read-only cache folder must not stop training
        log.warning("could not write the image cache to %s: %s", cache_dir, e)
    return array, kept
