"""The kNN monitor: weighted kNN accuracy during training, on a labelled test folder or a held-out part of train."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator

import torch

from byol import faults
from byol.config.flags import option_name
from byol.data.eval_stream import eval_images
from byol.data.folder import ImageList, list_images
from byol.data.labels import labelled_as
from byol.data.seeding import seeded_generator
from byol.data.source import LabelledImages
from byol.errors import ByolError
from byol.eval.features import extract_features
from byol.eval.knn import knn_accuracy
from byol.train.hooks.base import Hook, StepEvent
from byol.train.metrics_file import MetricsWriter
from byol.train.setup import Run

log = logging.getLogger(__name__)

TEST_PROTOCOL, HELD_OUT_PROTOCOL = "test", "held-out"


class KnnMonitor(Hook):
    """Weighted kNN accuracy (rank 0 only), every ``run.knn_every`` epochs and at the end.

    With ``data.knn_test``, the protocol of ``byol eval knn`` (and of lightly's and solo-learn's
    curves): every training image in the memory bank, the test folder's images as queries. Without
    it, a fixed held-out part of the training images (``data.monitor_fraction``, at most 5,000) is
    scored against up to ``run.knn_max_bank`` of the others, for data without a test split. Both are
    seen as evaluation views (``data.eval_crop``); k and T are ``run.knn_k`` / ``run.knn_temperature``.
    Each metrics line names its protocol (``knn_protocol``) and the seconds it took (``knn_seconds``);
    ``last`` holds the last figures (the run's result).
    """

    runs_after = ("Preemption", "TimeBudget")  # the last step: scored, but not in a grace period

    def __init__(self, run: Run, logger: MetricsWriter):
        cfg, data = run.cfg, run.data
        self.run, self.logger = run, logger
        self.last: dict[str, float] = {}
        self.every = max(1, round(cfg.run.knn_every * run.steps_per_epoch))
        self.test = labelled_test_folder(cfg.data.knn_test, data, cfg.data.path) if cfg.data.knn_test else None
        if self.test is not None:
            self.protocol = TEST_PROTOCOL
            self.query_idx, self.bank_idx = None, torch.arange(len(data.labels))
        else:
            self.protocol = HELD_OUT_PROTOCOL
            self.query_idx, self.bank_idx = monitor_split(
                data, cfg.run.seed, cfg.data.monitor_fraction, cfg.run.knn_max_bank
            )

    @staticmethod
    def wanted(run: Run) -> bool:
        labelled = isinstance(run.data, LabelledImages) and run.data.labelled  # tar shards: no images by index
        if run.cfg.data.knn_test and not labelled:
            raise ByolError(
                f"{option_name('data.knn_test')} needs a labelled training folder of images (<class>/*.jpg) "
                f"as the kNN memory bank; {run.cfg.data.path} is not one"
            )
        wanted = labelled and run.cfg.run.knn_every > 0 and run.info.is_main
        if run.cfg.data.knn_test and not wanted:  # every rank refuses a test folder that does not fit (the
            # monitor's own rank checks it as it starts), whether the monitor runs or not: no rank trains on alone
            labelled_test_folder(run.cfg.data.knn_test, run.data, run.cfg.data.path)
        return wanted

    def after_step(self, event: StepEvent) -> None:
        if event.step % self.every == 0 or (event.last and event.state.preempted is None):  # no kNN in a grace period
            knn = self.evaluate(event.step)
            self.logger.log(event.step, {"epoch": event.state.epoch, **knn})
            log.info("step %d: kNN top-1 %.4f (%s, %.1f s)", event.step, knn["knn_top1"], self.protocol,
                     knn["knn_seconds"])  # fmt: skip
            self.last = {k: knn[k] for k in ("knn_top1", "knn_top5")}

    def evaluate(self, step: int = 0) -> dict[str, float | str]:
        run, data, cfg = self.run, self.run.data, self.run.cfg
        start = time.perf_counter()
        encoder, mean, std = run.method.encoder, cfg.augment.mean, cfg.augment.std
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
        query, query_y = extract(self._queries())
        bank_y, query_y = bank_y.to(run.device), query_y.to(run.device)
        acc = knn_accuracy(bank, bank_y, query, query_y, cfg.run.knn_k, cfg.run.knn_temperature, data.num_classes)
        seconds = time.perf_counter() - start
        return {"knn_top1": acc["top1"], "knn_top5": acc["top5"], "knn_protocol": self.protocol, "knn_seconds": seconds}

    def _queries(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.test is None:
            return self.run.data.eval_batches(self.query_idx)
        d = self.run.cfg.data
        batches = eval_images(self.test, d.image_size, d.eval_crop, d.cache_dir or None, d.workers)
        return ((images, labels) for images, labels, _ in batches)


def labelled_test_folder(folder: str, data: LabelledImages, data_path: str) -> ImageList:
    """The labelled test folder of ``data.knn_test``, labelled as the training folder's classes by
    name (``byol.data.labels``): it may hold some of them, not one that training lacks."""
    option = f"{option_name('data.knn_test')} {folder}"
    try:
        images = list_images(folder, min_classes=1)
    except (ByolError, OSError) as e:
        raise ByolError(f"{option}: {e}") from None
    return labelled_as(images, data.classes, option, str(data_path))


def monitor_split(data: LabelledImages, seed: int, fraction: float, max_bank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices of the held-out monitor's queries and memory bank, fixed by ``seed``."""
    perm = torch.randperm(len(data.labels), generator=seeded_generator(seed, 91))
    n_query = min(max(1, int(len(perm) * fraction)), 5000)
    return perm[:n_query].sort().values, perm[n_query : n_query + max_bank].sort().values


def knn_summary(rows: list[dict]) -> dict[str, dict]:
    """``knn_final`` and ``knn_max`` of a run's metrics lines, for summary.json (nothing without a kNN line).

    byol's figure is the final one (the paper's rule: PAPER.md). The maximum over the monitor's passes
    is kept beside it, labelled, because lightly publishes that one: compare like with like. Both are
    of the last line's protocol (a resume may switch it with ``data.knn_test``).
    """
    lines = [r for r in rows if "knn_top1" in r]
    if not lines:
        return {}
    protocol = lines[-1].get("knn_protocol", HELD_OUT_PROTOCOL)
    same = [r for r in lines if r.get("knn_protocol", HELD_OUT_PROTOCOL) == protocol]
    best = max(same, key=lambda r: (r["knn_top1"], -r["step"]))  # the first pass that reached it
    pick = lambda r, what: {"top1": r["knn_top1"], "top5": r.get("knn_top5"), "step": r["step"],  # noqa: E731
                            "epoch": r.get("epoch"), "protocol": protocol, "what": what}  # fmt: skip
    return {
        "knn_final": pick(lines[-1], "the last pass: byol's figure"),
        "knn_max": pick(best, f"the best of {len(same)} passes: what lightly publishes"),
    }
