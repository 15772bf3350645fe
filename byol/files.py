"""The one way byol writes a file (atomically), and the lock that keeps one run per folder.

Checkpoints, the encoder, config.yaml, summary.json, metrics rewrites, embeddings, exports, reports
and the image cache all go through ``atomic_write``: a crash never leaves a half-written file, and
a failed write (a full disk) is a one-line error that names the file and the free space.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from byol import faults
from byol.errors import ByolError


class WriteFailed(ByolError, OSError):
    """A file could not be written (disk full, permissions...); the previous file is intact."""


@contextmanager
def atomic_write(path: str | Path, mode: str | None = "wb") -> Iterator[IO[Any] | Path]:
    """Write ``path`` all at once or not at all.

    Yields a file opened with ``mode`` on a temporary name in the same folder (``.NAME.tmpPID``);
    when the block ends without error the file is flushed, fsynced and renamed over ``path``, then
    the folder is fsynced. On any error the temporary file is removed and ``path`` is untouched.
    A failure of the file system becomes ``WriteFailed``, whose message names the file and the free
    space, whatever the serializer raised (``write_failure``); any other error keeps its traceback.
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
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if mode is None:
            yield tmp
        else:
            with open(tmp, mode) as f:
                yield f
        if faults.armed(f"mid-write:{path.name}"):
            os.truncate(tmp, tmp.stat().st_size // 2)
            faults.reached(f"mid-write:{path.name}")
        _fsync(tmp)
        faults.reached(f"before-rename:{path.name}")
        os.replace(tmp, path)
        _fsync(path.parent)
    except ByolError:  # WriteFailed included: said already
        raise
    except Exception as e:
        why = write_failure(e, tmp.parent)
        if why is None:
            raise
        raise write_failed(path, e, why) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_failed(path: Path, error: OSError | RuntimeError, why: str | None = None) -> WriteFailed:
    """The one-line ``WriteFailed`` of a write of ``path`` that ``error`` (the file system's) ended:
    the file, why (``write_failure``, or the error's own words) and the free space."""
    why = why or write_failure(error, Path(path).parent) or str(error)
    return WriteFailed(f"cannot write {path}: {why}; {_free_space(Path(path))}")


FULL_BELOW = 2**20
"""A volume with less free space than this (1 MiB) after an errno-less ``OSError`` is taken as full."""


def write_failure(error: BaseException, folder: Path) -> str | None:
    """Why a write into ``folder`` failed, when the file system failed it; None for any other error.

    An ``OSError`` (disk full, permissions, a vanished mount), raised, or met on the way out of a
    serializer: ``torch.save``'s zip writer meets ``ENOSPC`` in ``write`` and raises a ``RuntimeError``
    ("unexpected pos ...") while handling it, so the chain is followed through ``RuntimeError``s only,
    and not past a ``raise ... from None``. numpy's ``tofile`` raises an ``OSError`` without an errno
    ("499968 requested and 49120 written"): on a volume left with less than ``FULL_BELOW`` free, that
    is a full disk. Anything else (a ``KeyError`` raised while handling a missing file, a bad value) is
    the caller's bug and keeps its traceback.
    """
    link = error
    while link is not None:
        if isinstance(link, OSError):
            if link.strerror:
                return link.strerror
            said = " ".join(str(link).split()) or type(link).__name__
            return f"No space left on device ({said})" if _free_bytes(folder) < FULL_BELOW else said
        if not isinstance(link, RuntimeError) or link.__suppress_context__:
            return None
        link = link.__cause__ or link.__context__
    return None


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files that writes interrupted by a crash left in ``folder``."""
    stale = sorted(Path(folder).glob(".*.tmp[0-9]*")) if Path(folder).is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


@contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an OS lock (``flock``) on ``path`` while the block runs; it records this process's PID.

    A second holder gets a one-line error naming the PID that holds it. The kernel drops the lock
    when its process ends, however it ends, so a lock left by a killed run blocks nothing.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise write_failed(path, e) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ByolError(
                f"{what} is in use by another process (PID {holder}); wait for it to end or choose another --out"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            raise write_failed(path, e) from None
        yield
    finally:
        os.close(fd)  # releases the lock


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _existing(folder: Path) -> Path | None:
    return next((f for f in (folder, *folder.parents) if f.exists()), None)


def _free_bytes(folder: Path) -> int:
    where = _existing(Path(folder))
    return shutil.disk_usage(where).free if where is not None else 2**62


def _free_space(path: Path) -> str:
    where = _existing(Path(path).parent)
    if where is None:
        return "free space unknown"
    return f"{shutil.disk_usage(where).free / 2**20:,.1f} MiB free in {where}"
