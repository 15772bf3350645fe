"""Runs the variants of a suite one after another, each in its own run folder, scoring each; resumable."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from byol.ablate.report import claims, plots, report_markdown
from byol.ablate.variants import VARIANTS, Variant, suite_variants, variant_config
from byol.config import Config
from byol.errors import ByolError
from byol.files import atomic_write
from byol.train.monitor import read_metrics

log = logging.getLogger(__name__)

RESULTS_JSON, RESULTS_MD, EVAL_FILE = "ablations.json", "ablations.md", "ablation_eval.json"


@dataclass
class AblationRunner:
    """Runs variants one after another under ``out``, scoring each; resumable at every point."""

    base: Config
    out: Path
    minutes: float | None  # the baseline's time; None: every variant trains ``epochs``
    test: str | None = None
    device: str = "auto"
    epochs: float | None = None

    def run(self, variants: list[Variant]) -> dict[str, Any]:
        """The baseline first, for ``minutes``: every other variant then trains on as many images
        (the same epochs), so that a slow variant or a busy machine changes the time, not the budget."""
        from byol.train.pretrain import pretrain

        if VARIANTS["baseline"] not in variants:
            variants = [VARIANTS["baseline"], *variants]
        variants = sorted(variants, key=lambda v: v.name != "baseline")
        self.out.mkdir(parents=True, exist_ok=True)
        results = self._load()
        setup = results.setdefault("setup", {})
        setup.update({
            "data": self.base.data.path, "test": self.test, "minutes": self.minutes, "seed": self.base.run.seed,
            "preset": self.base.preset, "base_batch": self.base.optim.batch_size * self.base.optim.accumulate,
            "tau_base": self.base.optim.tau_base,
        })  # fmt: skip
        if self.minutes is None:
            setup["epochs"] = self.epochs
        if "untrained" not in results and self._labelled():
            results["untrained"] = self._untrained()
            self._save(results)
        for i, variant in enumerate(variants, 1):
            run_dir = self.out / variant.name
            done = results.get("variants", {}).get(variant.name)
            if variant.name == "baseline" and done is not None and self.minutes is not None:
                setup["epochs"] = done["epochs"]
            if done is not None and (run_dir / EVAL_FILE).exists():
                log.info("ablate: %s done already (%d/%d)", variant.name, i, len(variants))
                continue
            log.info("ablate: %s (%d/%d): %s", variant.name, i, len(variants), variant.label)
            timed = variant.name == "baseline" and self.minutes is not None
            if timed:
                cfg = variant_config(self.base, variant, minutes=self.minutes)
            else:
                cfg = variant_config(self.base, variant, epochs=setup["epochs"])
            result = pretrain(cfg, run_dir, resume=True, progress=False)
            if timed:
                setup["epochs"] = result.epochs
            row = self._score(variant, run_dir, result)
            with atomic_write(run_dir / EVAL_FILE, "w") as f:
                f.write(json.dumps(row, indent=1) + "\n")
            results.setdefault("variants", {})[variant.name] = row
            self._save(results)
        return results

    def _labelled(self) -> bool:
        from byol.data.folder import list_images

        return list_images(self.base.data.path).labels is not None

    def _untrained(self) -> dict[str, float] | None:
        if not self.test:
            return None
        from byol.encoder_io import build_configured_encoder, run_encoder_meta
        from byol.eval.runner import EncoderEval, knn_evaluate

        cfg = self.base
        enc = build_configured_encoder(cfg.model, cfg.data.image_size)
        ev = EncoderEval(enc.module, run_encoder_meta(cfg, enc.feature_dim), seed=cfg.run.seed).untrained()
        return knn_evaluate(ev, self.base.data.path, self.test, cfg.run.knn_k, cfg.run.knn_temperature)

    def _score(self, variant: Variant, run_dir: Path, result) -> dict[str, Any]:
        rows = [r for r in read_metrics(run_dir) if "projection_std_ratio" in r]
        last = rows[-1] if rows else {}
        row: dict[str, Any] = {
            "label": variant.label, "method": variant.method, "batch": variant.batch,
            "steps": result.steps, "epochs": result.epochs, "images_seen": result.images_seen,
            "minutes": round(result.seconds / 60, 2),
            "loss": result.final_loss, "collapse_std": last.get("projection_std_ratio"),
            "effective_rank": last.get("effective_rank"), "projection_rank": last.get("projection_rank"),
            "paper": variant.paper, "source": variant.source,
            "std_curve": [(r["step"], r["projection_std_ratio"]) for r in rows],
        }  # fmt: skip
        if self.test and self._labelled():
            from byol.eval.runner import EncoderEval, knn_evaluate

            cfg = self.base
            ev = EncoderEval.load(run_dir, device=_device(self.device), seed=cfg.run.seed)
            knn = knn_evaluate(ev, cfg.data.path, self.test, cfg.run.knn_k, cfg.run.knn_temperature)
            row["knn_top1"], row["knn_on"] = knn["top1"], "test"
        elif result.knn:
            row["knn_top1"], row["knn_on"] = result.knn["knn_top1"], "monitor"
        return row

    def report(self) -> dict[str, Any]:
        """Write the report and plots again from ``ablations.json`` (after the claims changed, say)."""
        results = self._load()
        if not results:
            raise ByolError(f"no {RESULTS_JSON} in {self.out}: nothing to report")
        self._save(results)
        return results

    def _load(self) -> dict[str, Any]:
        path = self.out / RESULTS_JSON
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self, results: dict[str, Any]) -> None:
        results["claims"] = claims(results)
        with atomic_write(self.out / RESULTS_JSON, "w") as f:
            f.write(json.dumps(results, indent=1) + "\n")
        with atomic_write(self.out / RESULTS_MD, "w") as f:
            f.write(report_markdown(results))
        plots(results, self.out)


def _device(setting: str):
    from byol.dist import resolve_device

    return resolve_device(setting)


def run_ablations(
    base: Config,
    out: str | Path,
    suite: str = "paper",
    minutes: float | None = 4.0,
    test: str | None = None,
    epochs: float | None = None,
) -> dict[str, Any]:
    """Run a suite (or a comma list of variants) under ``out``; returns what ``ablations.json`` holds.

    The budget: the baseline's ``minutes`` (then as many epochs for every other variant), or
    ``epochs`` for every variant when ``minutes`` is None.
    """
    if minutes is None and (epochs is None or epochs <= 0):
        raise ByolError("ablate: give --minutes, or --epochs for every variant")
    if minutes is not None and minutes <= 0:
        raise ByolError(f"--minutes must be positive, got {minutes}")
    variants = suite_variants(suite)
    return AblationRunner(base, Path(out), minutes, test, base.run.device, epochs).run(variants)
