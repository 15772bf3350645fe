"""The files of a run folder, named in one place (issue 42): every reader and writer asks ``RunFiles``.

A run folder (``byol pretrain --out RUN``) holds:

- ``config.yaml``: the run's configuration (the saved one wins on a resume);
- ``config_history.jsonl``: one line per resume that changed a resumable option;
- ``.lock``: held while a process trains in the folder;
- ``metrics.jsonl`` and ``tb/`` (TensorBoard): the training curves;
- ``checkpoints/step-NNNNNNNNN.pt``: the resumable state;
- ``skipped-rankR.txt``: tar shards' samples that did not decode, as rank R met them;
- ``encoder.safetensors`` and ``encoder.json``: the encoder users keep;
- ``summary.json``: written last, so its presence (with the encoder) means the run finished;
- ``eval/PROTOCOL.json``: what ``byol eval`` measured, for ``byol push``'s model card;
- ``report/``: ``byol report``'s page and plots.

A folder is a run when it holds ``config.yaml``, a finished run when it also holds the summary and
the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_PATTERN = r"step-(\d+)\.pt"
"""A checkpoint's file name in ``checkpoints/``: its step (written with nine digits)."""


@dataclass(frozen=True)
class RunFiles:
    """The paths of one run folder's files (nothing is created or read here)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def history(self) -> Path:
        return self.root / "config_history.jsonl"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tb"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def encoder(self) -> Path:
        """The encoder's weights; its metadata is the same name as ``.json`` (``encoder_meta``)."""
        return self.root / "encoder.safetensors"

    @property
    def encoder_meta(self) -> Path:
        return self.encoder.with_suffix(".json")

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"step-{step:09d}.pt"

    def skip_log(self, rank: int) -> Path:
        return self.root / f"skipped-rank{rank}.txt"

    @property
    def report(self) -> Path:
        """``byol report RUN``'s folder: the HTML page and its plots."""
        return self.root / "report"

    @property
    def evals(self) -> Path:
        return self.root / "eval"

    def eval_record(self, protocol: str) -> Path:
        return self.evals / f"{protocol}.json"

    def is_run(self) -> bool:
        """Whether the folder holds a run (its ``config.yaml``), finished or not."""
        return self.root.is_dir() and self.config.exists()

    def is_finished(self) -> bool:
        """Whether the run finished: the summary is written after the encoder, so both are there."""
        return self.summary.exists() and self.encoder.exists()
