"""Checkpoint files: a typed record (``Checkpoint``: the one place its keys are written and read),
atomic (``byol.files.atomic_write``), strict loading.

A checkpoint holds the whole method module (online, target, predictor), the optimiser, the online
classifier, the step, the schedule, the run's config and RNG states, and the clock;
``byol.train.state`` fills it from a run and its ``TrainState`` and reads a run back from it. It never
holds pickled objects: ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from byol.constants import VERSION
from byol.errors import ByolError
from byol.files import atomic_write
from byol.optim import with_kernels_of
from byol.run_files import CHECKPOINT_PATTERN, RunFiles

log = logging.getLogger(__name__)

_NAME = re.compile(f"^{CHECKPOINT_PATTERN}$")


@dataclass
class Checkpoint:
    """What a checkpoint file holds, key by key. The keys without a default are required: a file
    without one is refused (``load_checkpoint``); the others were added later, and a file written
    before them reads with their default."""

    model: dict[str, Any]  # the method module's state dict (online, target, predictor)
    optimizer: dict[str, Any]
    step: int
    schedule: dict[str, Any]  # ``Plan.as_dict``: the lr and τ plan, as laid
    config: dict[str, Any]  # the run's resolved config
    rng: dict[str, Any]  # ``rng_state``
    data: dict[str, Any] | None = None  # the source's fingerprint: a resume on other data is refused
    elapsed: float = 0.0  # seconds of training, all sittings
    compile_seconds: float = 0.0  # seconds to each sitting's first step, all sittings
    timed_steps: int = 0  # steps the clock counted
    extensions: list[dict[str, Any]] = field(default_factory=list)  # each change of the run's length
    precision: str | None = None  # what a resume trains in (auto measured it once); None before 2026-12-07
    byol_version: str = VERSION
    classifier: dict[str, Any] | None = None  # the online classifier (labelled data)
    classes: list[str] | None = None  # what its rows stand for; None before 2026-12-06

    def to_dict(self) -> dict[str, Any]:
        """The file's content: every key (a classifier's two only with a classifier)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in values.items() if k not in ("classifier", "classes") or self.classifier is not None}

    @classmethod
    def from_dict(cls, values: Any, where: Path | str) -> Checkpoint:
        """The record of a file's content; a one-line error naming the file when a required key is missing."""
        missing = [k for k in REQUIRED_KEYS if not isinstance(values, dict) or k not in values]
        if missing:
            raise ByolError(f"checkpoint {where} is missing {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


REQUIRED_KEYS = tuple(f.name for f in fields(Checkpoint) if f.default is MISSING and f.default_factory is MISSING)


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through ``atomic_write``: the file is whole or absent."""
    with atomic_write(path) as f:
        torch.save(obj, f)


def to_host(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples of tensors and plain values) with every tensor on the
    CPU and detached from the live one, so training may go on changing the original."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_host(v) for v in obj)
    return obj


class CheckpointWriter:
    """Writes checkpoints (``atomic_save``, then ``prune``), in a background thread when asked.

    In the background, ``write`` copies the checkpoint to the host (the only part the caller waits
    for) and returns while the file is written, one at a time: the next ``write`` and ``close`` wait
    for the one in flight and raise its error, if any. A file is whole or absent either way, and
    a crash during a background write leaves the checkpoints before it as they were. On a GPU this
    takes the seconds of serialising and fsyncing hundreds of MB off the training loop; on a CPU,
    where the step is the cost and a writer thread would take a core from it, writes stay inline.
    """

    def __init__(self, run_dir: Path, keep: int, background: bool = False):
        self.run_dir, self.keep = Path(run_dir), keep
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="byol-checkpoint") if background else None
        self.pending: Future | None = None

    def write(self, ckpt: Checkpoint, step: int) -> None:
        self.wait()
        if self.executor is None:
            self._write(ckpt.to_dict(), step)
        else:
            self.pending = self.executor.submit(self._write, to_host(ckpt.to_dict()), step)

    def _write(self, ckpt: dict[str, Any], step: int) -> None:
        atomic_save(ckpt, checkpoint_path(self.run_dir, step))
        prune(self.run_dir, self.keep)

    def wait(self) -> None:
        """Until the write in flight is on disk; its error, if it failed."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self.executor is not None:
                self.executor.shutdown(wait=True)


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": torch.from_numpy(np.frombuffer(np.random.get_state()[1].tobytes(), dtype=np.uint8).copy()),
        "python": torch.tensor(list(random.getstate()[1]), dtype=torch.int64),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = np.frombuffer(state["numpy"].numpy().tobytes(), dtype=np.uint32)
    np.random.set_state(("MT19937", keys, 624, 0, 0.0))
    random.setstate((3, tuple(int(v) for v in state["python"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return RunFiles(run_dir).checkpoint(step)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first."""
    folder = RunFiles(run_dir).checkpoints
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def prune(run_dir: Path, keep: int) -> None:
    for p in list_checkpoints(run_dir)[:-keep]:
        p.unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint file safely (no unpickling of arbitrary objects), its required keys checked
    (``Checkpoint``); one-line error if it is bad."""
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated, corrupted or not a checkpoint at all
        raise ByolError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    Checkpoint.from_dict(ckpt, path)
    return ckpt


def saved_precision(run_dir: Path) -> str | None:
    """The precision (fp32, bf16) the newest readable checkpoint in ``run_dir`` was trained in; None
    where there is none, or it was saved before checkpoints said (2026-12-07). Memory-mapped: the
    weights are not read."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # unreadable: latest_checkpoint says so when it resumes
            continue
        try:
            return Checkpoint.from_dict(ckpt, path).precision
        except ByolError:  # not a whole checkpoint: latest_checkpoint resumes from the one before, so do we
            continue
    return None


def latest_checkpoint(
    run_dir: Path, map_location="cpu", restore: Callable[[Path, Checkpoint], None] | None = None
) -> tuple[Path, Checkpoint] | None:
    """The newest checkpoint that reads (and that ``restore`` accepts), or None when there is none.

    A newest file that is corrupt, or that ``restore`` refuses with a ``ByolError`` (weights of
    another model, say), falls back to the one before, with a warning naming both. When none is
    usable: a one-line error with the newest one's problem.
    """
    errors: list[tuple[Path, str]] = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            ckpt = Checkpoint.from_dict(load_checkpoint(path, map_location), path)
            if restore is not None:
                restore(path, ckpt)
        except ByolError as e:
            errors.append((path, str(e)))
            continue
        if errors:
            log.warning("%s; resuming from the checkpoint before it, %s", errors[0][1], path)
        return path, ckpt
    if errors:
        raise ByolError(f"no usable checkpoint in {run_dir}: {errors[0][1]}")
    return None


def load_state_strict(module: nn.Module | torch.optim.Optimizer, state: dict[str, Any], what: str) -> None:
    """``load_state_dict`` (strict for modules) with a one-line error naming what did not match."""
    try:
        if isinstance(module, nn.Module):
            module.load_state_dict(state, strict=True)
        else:
            module.load_state_dict(with_kernels_of(module, state))
    except (RuntimeError, ValueError, KeyError) as e:
        first = " ".join(str(e).split())[:300]
        raise ByolError(f"{what} does not match the model built from its config: {first}") from None
