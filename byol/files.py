"""The one way byol writes a file: atomically, so that a crash never leaves a half-written one.

Checkpoints, the encoder, config.yaml, summary.json, metrics rewrites, embeddings, exports and the
image cache all go through ``atomic_write``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: str | Path, mode: str | None = "wb") -> Iterator[IO[Any] | Path]:
    """Write ``path`` all at once or not at all.

    Yields a file opened with ``mode`` on a temporary name in the same folder (``.NAME.tmpPID``);
    when the block ends without error the file is flushed, fsynced and renamed over ``path``, then
    the folder is fsynced. On any error the temporary file is removed and ``path`` is untouched.
    ``mode=None`` yields the temporary path instead, for writers that take a file name.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "summary.json"
        >>> with atomic_write(target, "w") as f:
        ...     _ = f.write("{}")
        >>> target.read_text()
        '{}'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        if mode is None:
            yield tmp
        else:
            with open(tmp, mode) as f:
                yield f
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
