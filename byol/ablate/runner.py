"""Runs the variants of a suite, for each seed, each in its own run folder, scoring each; resumable."""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byol.ablate.claims import claims
from byol.ablate.report import plots, report_markdown
from byol.ablate.variants import VARIANTS, Variant, suite_variants, variant_config
from byol.config import Config
from byol.data.labels import labelled_splits
from byol.errors import ByolError
from byol.files import atomic_write
from byol.run_files import RunFiles
from byol.train.metrics_file import read_metrics

log = logging.getLogger(__name__)

RESULTS_JSON, RESULTS_MD, EVAL_FILE = "ablations.json", "ablations.md", "ablation_eval.json"
DIAGNOSTICS = ("centred_std_ratio", "spread", "top_share", "effective_rank", "projection_rank")


@dataclass
class AblationRunner:
    """Runs variants one after another under ``out`` (``out/<variant>/seed<N>``), scoring each."""

    base: Config
    out: Path
    minutes: float | None  # the first seed's baseline time; None: every variant trains ``epochs``
    test: str | None = None
    device: str = "auto"
    epochs: float | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    scale_tau: bool = False  # τ variants' τ_base scaled to the run's length (variants.scale_tau)
    probe_epochs: float | None = None  # the collapse probes' length (at most the others'); None: as the others

    def run(self, variants: list[Variant]) -> dict[str, Any]:
        """Seed by seed, the baseline first: the first seed's baseline trains ``minutes``, every other
        run as many epochs, so that a slow variant or a busy machine changes the time, not the budget."""
        if VARIANTS["baseline"] not in variants:
            variants = [VARIANTS["baseline"], *variants]
        variants = sorted(variants, key=lambda v: v.name != "baseline")
        if self.test:  # the test split's classes checked against the training folder's before any training
            labelled_splits(self.base.data.path, self.test, f"--test {self.test}")
        self.out.mkdir(parents=True, exist_ok=True)
        results = self._load()
        setup = results.setdefault("setup", {})
        setup.update({
            "data": self.base.data.path, "test": self.test, "minutes": self.minutes, "seeds": self.seeds,
            "preset": self.base.preset, "base_batch": self.base.optim.batch_size * self.base.optim.accumulate,
            "tau_base": self.base.optim.tau_base, "scale_tau": self.scale_tau, "probe_epochs": self.probe_epochs,
        })  # fmt: skip
        if self.minutes is None:
            setup["epochs"] = self.epochs
        for seed in self.seeds:
            for i, variant in enumerate(variants, 1):
                log.info("ablate: %s, seed %d (%d/%d): %s", variant.name, seed, i, len(variants), variant.label)
                self._one(results, variant, seed)
        return results

    def _one(self, results: dict[str, Any], variant: Variant, seed: int) -> None:
        from byol.train.pretrain import pretrain

        setup, run_dir = results["setup"], self.out / variant.name / f"seed{seed}"
        entry = results.setdefault("variants", {}).setdefault(variant.name, _entry(variant))
        done = entry["seeds"].get(str(seed))
        if done is not None and (run_dir / EVAL_FILE).exists():
            return
        timed = variant.name == "baseline" and self.minutes is not None and "epochs" not in setup
        base = copy.deepcopy(self.base)
        base.run.seed = seed
        steps = setup.get("baseline_steps") if self.scale_tau else None
        if timed:
            cfg = variant_config(base, variant, minutes=self.minutes)
        else:
            epochs = setup["epochs"]
            if variant.probe and self.probe_epochs is not None:
                epochs = min(epochs, self.probe_epochs)
            cfg = variant_config(base, variant, epochs=epochs, tau_steps=steps)
            if self.minutes is None and self._baseline_twin(results, variant, cfg, base, setup["epochs"], seed):
                return
        result = pretrain(cfg, run_dir, resume=True, progress=False)
        if timed:
            setup["epochs"] = result.epochs
        if variant.name == "baseline":
            setup.setdefault("baseline_steps", result.steps)
        row = self._score(run_dir, result, seed, results)
        row["tau_base"] = cfg.optim.tau_base
        with atomic_write(run_dir / EVAL_FILE, "w") as f:
            f.write(results_json(row))
        entry["seeds"][str(seed)] = row
        self._save(results)

    def _baseline_twin(self, results: dict[str, Any], variant: Variant, cfg: Config, base: Config, epochs: float,
                       seed: int) -> bool:  # fmt: skip
        """A variant whose config is the baseline's (``tau_0.9`` under the `cpu` preset, whose τ_base is 0.9) is
        not trained twice: its folder gets the baseline run's files (not its checkpoints) and row, the row
        marked ``same_run_as``. Only where every run trains epochs (a timed baseline's config differs), and not
        under ``--scale-tau`` (the arm's τ_base is scaled, the baseline's is not)."""
        if (
            variant.name == "baseline"
            or cfg.to_dict() != variant_config(base, VARIANTS["baseline"], epochs=epochs).to_dict()
        ):
            return False
        twin, run_dir = self.out / "baseline" / f"seed{seed}", self.out / variant.name / f"seed{seed}"
        if not (twin / EVAL_FILE).exists() or RunFiles(run_dir).checkpoints.exists():  # one begun before: it resumes
            return False
        log.info("ablate: %s trains the baseline's config: its run is the baseline's, seed %d, not trained again",
                 variant.name, seed)  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        for file in twin.iterdir():
            if file.is_file() and file.name != EVAL_FILE and file != RunFiles(twin).lock:
                shutil.copy2(file, run_dir / file.name)
        row = {**json.loads((twin / EVAL_FILE).read_text()), "same_run_as": "baseline"}
        with atomic_write(run_dir / EVAL_FILE, "w") as f:
            f.write(results_json(row))
        results["variants"][variant.name]["seeds"][str(seed)] = row
        self._save(results)
        return True

    def _score(self, run_dir: Path, result, seed: int, results: dict[str, Any]) -> dict[str, Any]:
        rows = [r for r in read_metrics(run_dir) if "projection_std_ratio" in r]
        start = next((r for r in rows if r["step"] == 0), {})
        trained = [r for r in rows if r["step"] > 0]
        last = trained[-1] if trained else {}
        row: dict[str, Any] = {
            "seed": seed, "steps": result.steps, "epochs": result.epochs, "images_seen": result.images_seen,
            "minutes": round(result.seconds / 60, 2), "loss": result.final_loss,
            **_diagnostics(last),
            "start": {"loss": start.get("loss"), **_diagnostics(start)},  # step 0: the untrained network
            "std_curve": [(r["step"], r["projection_std_ratio"]) for r in rows],
            "spread_curve": [(r["step"], r["spread"]) for r in rows if "spread" in r],
            "top_share_curve": [(r["step"], r["top_share"]) for r in rows if "top_share" in r],
        }  # fmt: skip
        if self.test:  # labelled: checked in run()
            row.update(self._knn(run_dir, seed, results))
        elif result.knn:
            row["knn_top1"], row["knn_on"] = result.knn["knn_top1"], "monitor"
        return row

    def _knn(self, run_dir: Path, seed: int, results: dict[str, Any]) -> dict[str, Any]:
        """kNN of the trained encoder, of its own untrained one (same architecture, norm and seed) and of
        that one with its BatchNorm statistics adapted to the training images (``with_baselines``'s two;
        both computed once per architecture and seed)."""
        from byol.eval.runner import EncoderEval, knn_evaluate

        cfg = self.base
        ev = EncoderEval.load(run_dir, device=_device(self.device), seed=seed)
        score = lambda e: knn_evaluate(e, cfg.data.path, self.test, cfg.run.knn_k, cfg.run.knn_temperature)  # noqa: E731
        meta = ev.meta
        key = "|".join(str(meta.get(k)) for k in ("backbone", "width", "small_images", "norm", "timm_args"))
        key += f"|{meta['group_channels']}" if "group_channels" in meta else ""
        cache = results.setdefault("untrained_by_architecture", {}).setdefault(key, {})
        if str(seed) not in cache:
            cache[str(seed)] = score(ev.untrained())["top1"]
        adapted = results.setdefault("bn_adapted_by_architecture", {}).setdefault(key, {})
        if str(seed) not in adapted:
            adapted[str(seed)] = score(ev.bn_adapted(cfg.data.path))["top1"]
        return {"knn_top1": score(ev)["top1"], "knn_on": "test", "untrained_top1": cache[str(seed)],
                "bn_adapted_top1": adapted[str(seed)]}  # fmt: skip

    def report(self) -> dict[str, Any]:
        """Write the report and plots again (after the claims changed, say): each run's row read from
        its run folder's ``ablation_eval.json`` where the folder is kept (``<variant>/seed<N>/``, or
        ``runs/<variant>/seed<N>/`` on a published page), the rest of ``ablations.json`` as it is."""
        results = with_kept_runs(self._load(), self.out)
        if not results:
            raise ByolError(f"no {RESULTS_JSON} and no run folders in {self.out}: nothing to report")
        self._save(results)
        return results

    def _load(self) -> dict[str, Any]:
        path = self.out / RESULTS_JSON
        return json.loads(path.read_text()) if path.exists() else {}

    def _save(self, results: dict[str, Any]) -> None:
        for name, entry in results.get("variants", {}).items():
            if name in VARIANTS:
                entry.update(_described(VARIANTS[name]))
        results["claims"] = claims(results)
        with atomic_write(self.out / RESULTS_JSON, "w") as f:
            f.write(results_json(results))
        with atomic_write(self.out / RESULTS_MD, "w") as f:
            f.write(report_markdown(results))
        plots(results, self.out)


# A value that is a list of numbers, or of lists of them (the curves): after a key or at a line's start, so that
# brackets inside a string are never touched.
NUMBERS = re.compile(r"(?m)(: |^\s*)(\[[\d\s.,eE+\-\[\]]*\])")


def results_json(results: dict[str, Any]) -> str:
    """Results as JSON text, one key a line (indent 1), every list of numbers on one line: the curves
    (hundreds of [step, value] pairs a run) stay one line each instead of four lines a pair."""

    def inline(match: re.Match[str]) -> str:
        return match.group(1) + json.dumps(json.loads(match.group(2)), separators=(",", ":"))

    return NUMBERS.sub(inline, json.dumps(results, indent=1)) + "\n"


def kept_runs(out: Path) -> dict[tuple[str, str], Path]:
    """The scored run folders under ``out`` by (variant, seed): ``runs/<variant>/seed<N>/`` as a
    published page keeps them and ``<variant>/seed<N>/`` as the runner writes them (the latter wins
    where both hold a seed). Folders of no catalogued variant, or not named seed<N>, are not runs."""
    found = {}
    for root in (out / "runs", out):
        for run in sorted(root.glob(f"*/seed*/{EVAL_FILE}")):
            name, seed = run.parent.parent.name, run.parent.name.removeprefix("seed")
            if name in VARIANTS and seed.isdigit():
                found[(name, str(int(seed)))] = run.parent
    return found


def with_kept_runs(results: dict[str, Any], out: Path) -> dict[str, Any]:
    """``results`` with every kept run's row taken from its folder (a variant not in ``results`` yet
    added after the others, in the catalogue's order), so the report reads the runs' own files."""
    runs = kept_runs(out)
    if not runs:
        return results
    variants = results.setdefault("variants", {})
    for name, seed in sorted(runs, key=lambda k: (list(VARIANTS).index(k[0]), int(k[1]))):
        entry = variants.setdefault(name, _entry(VARIANTS[name]))
        entry.setdefault("seeds", {})[seed] = json.loads((runs[name, seed] / EVAL_FILE).read_text())
    for entry in variants.values():  # seeds in order, however the folders were found
        if "seeds" in entry:
            entry["seeds"] = dict(sorted(entry["seeds"].items(), key=lambda kv: int(kv[0])))
    return results


def _diagnostics(line: dict[str, Any]) -> dict[str, Any]:
    """A metrics line's collapse diagnostics; ``collapse_std`` is its uncentred projection std × √d."""
    return {"collapse_std": line.get("projection_std_ratio"), **{k: line.get(k) for k in DIAGNOSTICS}}


def _entry(variant: Variant) -> dict[str, Any]:
    return {**_described(variant), "method": variant.method, "batch": variant.batch, "seeds": {}}


def _described(variant: Variant) -> dict[str, Any]:
    """How the catalogue words a variant (label, the paper's figure, its source): written with each save, so
    no results file keeps a wording the catalogue has since corrected. What ran (method, batch) stays."""
    return {"label": variant.label, "paper": variant.paper, "source": variant.source}


def _device(setting: str):
    from byol.device import resolve_device

    return resolve_device(setting)


def run_ablations(
    base: Config,
    out: str | Path,
    suite: str = "paper",
    minutes: float | None = 4.0,
    test: str | None = None,
    epochs: float | None = None,
    seeds: int = 1,
    scale_tau: bool = False,
    probe_epochs: float | None = None,
) -> dict[str, Any]:
    """Run a suite (or a comma list of variants) under ``out`` for ``seeds`` seeds (the base config's
    seed and the ones after it); returns what ``ablations.json`` holds.

    The budget: the first seed's baseline trains ``minutes`` (then as many epochs for every other
    run), or ``epochs`` for every run when ``minutes`` is None. The collapse probes (no predictor,
    τ = 0) train at most ``probe_epochs``: their verdict reads a collapse, which shows early.
    """
    if minutes is None and (epochs is None or epochs <= 0):
        raise ByolError("ablate: give --minutes, or --epochs for every variant")
    if minutes is not None and minutes <= 0:
        raise ByolError(f"--minutes must be positive, got {minutes}")
    if seeds < 1:
        raise ByolError(f"--seeds must be at least 1, got {seeds}")
    if probe_epochs is not None and probe_epochs <= 0:
        raise ByolError(f"--probe-epochs must be positive, got {probe_epochs}")
    variants = suite_variants(suite)
    seed_list = [base.run.seed + i for i in range(seeds)]
    runner = AblationRunner(base, Path(out), minutes, test, base.run.device, epochs, seed_list, scale_tau, probe_epochs)
    return runner.run(variants)
