"""The metrics line every ``run.log_every`` steps, and the online classifier whose accuracy it reports."""

from __future__ import annotations

import logging
import math
from typing import Any

import torch

from byol.dist import all_reduce_mean
from byol.train.diagnostics import batch_diagnostics, is_collapsed
from byol.train.hooks.base import Hook, StepEvent
from byol.train.metrics_file import MetricsWriter
from byol.train.setup import Run

log = logging.getLogger(__name__)


class OnlineClassifierHook(Hook):
    """Trains the online linear classifier (``run.classifier``) on each labelled step's detached
    representations, counting its hits on the device; ``MetricsLog`` takes the counts at its log
    steps (``take``), so that the host still waits only there."""

    def __init__(self, run: Run):
        self.classifier, self.device = run.classifier, run.device
        self.correct = torch.zeros((), device=run.device, dtype=torch.long)
        self.labels_seen = 0

    @staticmethod
    def wanted(run: Run) -> bool:
        return run.classifier is not None

    def after_step(self, event: StepEvent) -> None:
        if event.labels is None:
            return
        y = event.labels.to(self.device, non_blocking=True)
        self.correct += self.classifier.step(event.result.output.representation_view1, y)
        self.labels_seen += len(y)

    def take(self) -> tuple[torch.Tensor, int]:
        """The hits (a device tensor) and labels counted since the last call; the counts restart."""
        counts = self.correct.clone(), self.labels_seen
        self.correct.zero_()
        self.labels_seen = 0
        return counts


class MetricsLog(Hook):
    """Training figures every ``log_every`` steps (and at the last step), averaged over all ranks.

    The losses, the online classifier's hits and the steps skipped for a non-finite loss or gradient
    are counted on the device in between. At a log step the counters and the batch's outputs are
    copied to the host without waiting (``_Pending``); the line is written once the copy has landed,
    a step or two later (at once on a CPU), and the collapse diagnostics are computed there, on the
    host: logging never stalls the device. With an ``OnlineClassifierHook`` (run before this hook), its
    accuracy over the interval is in the line. A sitting that resumed from a checkpoint says so in its
    first line (``resumed_at``: the checkpoint's step), so the file shows where each sitting began.
    The line written last is ``last_line`` (``CollapseWatch`` and the progress bar are wired to it), its
    mean loss ``final_loss`` (the run's result). Stopping a run that no longer steps is ``NonFiniteGuard``'s.
    """

    runs_after = ("Preemption", "TimeBudget", "OnlineClassifierHook")  # the last step's line; the probe's hits

    def __init__(self, run: Run, logger: MetricsWriter, start_step: int, probe: OnlineClassifierHook | None = None):
        self.run, self.logger, self.log_every = run, logger, run.cfg.run.log_every
        zeros = lambda dtype: torch.zeros((), device=run.device, dtype=dtype)  # noqa: E731
        self.loss_sum, self.good = zeros(torch.float32), zeros(torch.long)
        self.skipped = zeros(torch.long)
        self.probe = probe
        self.since: tuple[float, int] | None = None  # (training seconds, timed steps) at the last line
        self.pending: _Pending | None = None
        self.resumed_at = start_step or None  # said in this sitting's first line, then cleared
        self.last_line: dict[str, Any] | None = None  # the line written last, with its step
        self.final_loss = math.nan  # the last logged mean loss

    def after_step(self, event: StepEvent) -> None:
        run, result = self.run, event.result
        if self.since is None:
            self.since = (event.state.elapsed(), event.state.timed_steps)
        if event.step == 1:  # a fresh run: its first outputs were computed by the untrained network
            self._write_start(event)
        skipped = result.skipped if result.skipped is not None else torch.zeros((), dtype=torch.bool, device=run.device)
        self.loss_sum += torch.where(skipped, 0.0, result.loss)
        self.good += ~skipped
        self.skipped += skipped
        if self.pending is not None and (event.last or self.pending.ready()):
            self._write(self.pending)
        if event.step % self.log_every == 0 or event.step == event.state.plan.total_steps:
            self._start(event)
            if event.last or self.run.device.type != "cuda":
                self._write(self.pending)

    def _start(self, event: StepEvent) -> None:
        """Copy what the line needs to the host, without waiting; then reset the counters."""
        if self.pending is not None:  # the last copy has not landed in log_every steps: wait for it
            self._write(self.pending)
        info, state, out = self.run.info, event.state, event.result.output
        elapsed, timed = state.elapsed(), state.timed_steps
        correct, labels_seen = self.probe.take() if self.probe is not None else (torch.zeros_like(self.good), 0)
        # The sums over all ranks (they skip the same steps and see as many labels): one tensor.
        sums = all_reduce_mean(torch.stack([self.loss_sum, correct.float()]), info)
        counts = torch.stack([self.good, self.skipped]).float()
        outputs = (out.representation_view1.detach().float(), out.projection_view1.detach().float())
        values: dict[str, Any] = {
            "epoch": state.epoch,
            "lr": event.lr,
            "tau": event.tau,
            # Over the steps the training clock counted: a sitting's first step (compilation) is not one.
            "images_per_sec": (timed - self.since[1]) * self.run.images_per_step / max(elapsed - self.since[0], 1e-9)
            if timed > self.since[1]
            else None,
            "elapsed": elapsed,
        }
        self.pending = _Pending(event.step, values, labels_seen, (torch.cat([sums, counts]), *outputs))
        for counter in (self.loss_sum, self.good, self.skipped):
            counter.zero_()
        self.since = (elapsed, timed)

    def _write_start(self, event: StepEvent) -> None:
        """A line for step 0: where the collapse diagnostics (and the loss) started (one host sync)."""
        out = event.result.output
        skipped = event.result.skipped is not None and bool(event.result.skipped)
        values = {"epoch": 0.0, "loss": None if skipped else float(event.result.loss)}
        values.update(
            batch_diagnostics(
                out.representation_view1.detach().float().cpu(), out.projection_view1.detach().float().cpu()
            )
        )
        self.logger.log(0, values)

    def _write(self, pending: _Pending) -> None:
        self.pending = None
        (loss_sum, correct, good, skipped), representation, projection = pending.host()
        step, values = pending.step, pending.values
        good, skipped = int(good), int(skipped)
        mean_loss = loss_sum / good if good else None  # the mean loss of the steps that counted
        values = {
            "epoch": values["epoch"],
            "loss": mean_loss,
            **{k: values[k] for k in ("lr", "tau", "images_per_sec")},
            **batch_diagnostics(representation, projection),
            "elapsed": values["elapsed"],
            "skipped_steps": skipped,
        }
        if pending.labels_seen:
            values["online_top1"] = correct / pending.labels_seen
        if self.resumed_at is not None:
            values["resumed_at"], self.resumed_at = self.resumed_at, None
        self.logger.log(step, values)
        if mean_loss is not None:
            self.final_loss = mean_loss
        self.last_line = {"step": step, **values}

    def close(self) -> None:
        self.pending = None  # a line not yet written when the loop broke off: it is not waited for
        self.logger.close()


class _Pending:
    """A metrics line on its way to the host: its tensors copied without waiting, an event to ask."""

    def __init__(self, step: int, values: dict[str, Any], labels_seen: int, tensors: tuple[torch.Tensor, ...]):
        self.step, self.values, self.labels_seen = step, values, labels_seen
        cuda = tensors[0].device.type == "cuda"
        self.tensors = [
            torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True) if cuda else t
            for t in tensors
        ]  # fmt: skip
        self.event = torch.cuda.Event() if cuda else None
        if self.event is not None:
            self.event.record()

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def host(self) -> tuple[list[float], torch.Tensor, torch.Tensor]:
        if self.event is not None:
            self.event.synchronize()
        scalars, *outputs = self.tensors
        return scalars.tolist(), *outputs


class CollapseWatch(Hook):
    """One warning at the first metrics line (``MetricsLog.last_line``, the line of this step written
    before this hook) whose collapse diagnostics say the representation looks collapsed."""

    runs_after = ("MetricsLog",)

    def __init__(self, metrics: MetricsLog):
        self.metrics = metrics
        self.seen: int | None = None  # the step of the last line looked at

    def after_step(self, event: StepEvent) -> None:
        line = self.metrics.last_line
        if line is None or line["step"] == self.seen or self.seen == -1:
            return
        self.seen = line["step"]
        if is_collapsed(line):
            log.warning(
                "step %d: the representation looks collapsed (spread around the mean %.2g, share of the top "
                "direction %.2f; healthy: spread ≫ 0.01, share ≪ 0.9)", line["step"], line["spread"], line["top_share"],
            )  # fmt: skip
            self.seen = -1  # said once
