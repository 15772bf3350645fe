"""A run's metrics file: one JSON line per metrics line in ``RUN_DIR/metrics.jsonl``, and TensorBoard."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from byol.files import write_failed
from byol.run_files import RunFiles

log = logging.getLogger(__name__)


class MetricsWriter:
    """Appends metrics to ``RUN_DIR/metrics.jsonl`` and TensorBoard (``RUN_DIR/tb``) on the main rank only."""

    def __init__(self, run_dir: Path, enabled: bool = True, tensorboard: bool = True):
        self.enabled = enabled
        self.path = RunFiles(run_dir).metrics
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(RunFiles(run_dir).tensorboard))
            except ImportError:  # tensorboard is a dependency, but a trimmed install must still train
                log.warning("tensorboard is not installed; metrics go to metrics.jsonl only")
            except OSError as e:  # its events file cannot be made (a full disk)
                raise write_failed(RunFiles(run_dir).tensorboard, e) from None

    def log(self, step: int, values: dict[str, Any]) -> None:
        """Append one line (whole or not at all: a failed append is cut off again, and raised as
        ``WriteFailed`` naming the file and the free space), then its numbers to TensorBoard."""
        if not self.enabled:
            return
        line = json.dumps({"step": step, **values}) + "\n"
        size = self.path.stat().st_size if self.path.exists() else 0
        try:
            with open(self.path, "a") as f:
                f.write(line)
        except OSError as e:
            if self.path.exists():
                os.truncate(self.path, size)  # no half line for the next reader (a resume reads every line)
            raise write_failed(self.path, e) from None
        if self.writer is not None:
            try:
                for k, v in values.items():
                    if isinstance(v, int | float) and not isinstance(v, bool):
                        self.writer.add_scalar(k, v, step)
            except OSError as e:
                self.writer = None  # its thread has failed; metrics.jsonl holds every line
                raise write_failed(RunFiles(self.path.parent).tensorboard, e) from None

    def close(self) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            try:
                writer.close()
            except OSError as e:
                raise write_failed(RunFiles(self.path.parent).tensorboard, e) from None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = RunFiles(run_dir).metrics
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
