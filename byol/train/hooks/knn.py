"""The kNN monitor: accuracy of a held-out part of a labelled training set during training."""

from __future__ import annotations

import functools
import logging

import torch

from byol import faults
from byol.data.loader import TrainData
from byol.data.seeding import seeded_generator
from byol.eval.features import extract_features
from byol.eval.knn import knn_accuracy
from byol.train.hooks.base import Hook, StepEvent
from byol.train.monitor import MetricsLogger
from byol.train.setup import Run

log = logging.getLogger(__name__)


class KnnMonitor(Hook):
    """Weighted kNN accuracy of a fixed held-out part of a labelled training set (rank 0 only).

    Queries: ``data.monitor_fraction`` of the images (at most 5,000); memory bank: up to
    ``run.knn_max_bank`` of the others. Both are seen as evaluation views (``data.eval_crop``).
    """

    def __init__(self, run: Run, logger: MetricsLogger):
        cfg, data = run.cfg, run.data
        self.run, self.logger = run, logger
        self.every = max(1, round(cfg.run.knn_every * run.steps_per_epoch))
        self.query_idx, self.bank_idx = monitor_split(
            data, cfg.run.seed, cfg.data.monitor_fraction, cfg.run.knn_max_bank
        )

    @staticmethod
    def wanted(run: Run) -> bool:
        labelled = run.data.labelled and run.data.random_access  # tar shards: no images by index
        return labelled and run.cfg.run.knn_every > 0 and run.info.is_main

    def after_step(self, event: StepEvent) -> None:
        if event.step % self.every == 0 or (event.last and event.state.preempted is None):  # no kNN in a grace period
            knn = self.evaluate(event.step)
            self.logger.log(event.step, {"epoch": event.state.epoch, **knn})
            log.info("step %d: kNN top-1 %.4f", event.step, knn["knn_top1"])
            event.state.knn = knn

    def evaluate(self, step: int = 0) -> dict[str, float]:
        run, data, cfg = self.run, self.run.data, self.run.cfg
        encoder, mean, std = run.method.online_encoder, cfg.augment.mean, cfg.augment.std
        # In the run's precision, features and the kNN on the device: no host sync but the result.
        extract = functools.partial(
            extract_features,
            encoder,
            device=run.device,
            mean=mean,
            std=std,
            autocast=run.autocast,
            out_device=run.device,
        )
        bank, bank_y = extract(data.eval_batches(self.bank_idx))
        faults.reached(f"knn:{step}")
        query, query_y = extract(data.eval_batches(self.query_idx))
        bank_y, query_y = bank_y.to(run.device), query_y.to(run.device)
        acc = knn_accuracy(bank, bank_y, query, query_y, cfg.run.knn_k, cfg.run.knn_temperature, data.num_classes)
        return {"knn_top1": acc["top1"], "knn_top5": acc["top5"]}


def monitor_split(data: TrainData, seed: int, fraction: float, max_bank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices of the monitor's queries and memory bank, fixed by ``seed``."""
    perm = torch.randperm(len(data.labels), generator=seeded_generator(seed, 91))
    n_query = min(max(1, int(len(perm) * fraction)), 5000)
    return perm[:n_query].sort().values, perm[n_query : n_query + max_bank].sort().values
