"""``byol ablate``: BYOL's ablations and collapse findings on your own data, beside the paper's figures.

Each variant is a set of config overrides on one base config (a preset and the user's options):
the baseline trains for ``--minutes`` and every other variant on as many images (the same epochs),
all with the same seed, each in its own run folder under ``DIR``. Each is then scored by kNN (with
``--test``: the test folder against the training folder; else, on labelled data, the kNN
monitor's held-out training images) and by its collapse diagnostics
(projection std × √d: ≈ 1 healthy, → 0 collapsed; effective rank of the representations). The
untrained encoder is scored too. ``DIR/ablations.json`` and ``DIR/ablations.md`` are written after
every variant, with the paper's figure for each and a line per claim saying whether it reproduced.
A finished variant is not run again; an interrupted one resumes from its checkpoint.

The paper's figures (Grill et al. 2020 unless said; ImageNet, ResNet-50, 300 epochs, linear top-1)
are not comparable in value with a few minutes of CPU training: what can carry over is the
direction of each finding, which the claims test.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byol.config import Config
from byol.config_io import config_from_dict, merge
from byol.errors import ByolError
from byol.files import atomic_write
from byol.train.monitor import COLLAPSE_RATIO, read_metrics

log = logging.getLogger(__name__)

RESULTS_JSON, RESULTS_MD, EVAL_FILE = "ablations.json", "ablations.md", "ablation_eval.json"
GRILL = "Grill et al. 2020"


@dataclass(frozen=True)
class Variant:
    """One ablation: config overrides on the base config, and the paper's figure for it."""

    name: str
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)
    paper: float | None = None  # the paper's top-1 (%), or None where it has none
    source: str = ""  # where the figure is from
    batch: int | None = None  # batch-size variants: the batch BatchNorm (and NT-Xent) sees
    method: str = "byol"


def _batch_variants() -> list[Variant]:
    """Batches of 32 … 512 per forward pass. As the paper emulated small batches (§5.1), a batch
    below the base batch accumulates gradients up to it (one optimiser step and one target update
    per cycle): the steps and learning rate stay, BatchNorm (and SimCLR's negatives) see the small
    batch. Paper figures by batch size: fig. 3a of Grill et al. 2020 (its SimCLR reproduction beside)."""
    byol_paper = {512: 72.2, 256: 71.8, 128: 69.6, 64: 59.7}
    simclr_paper = {512: 66.5, 256: 64.3, 128: 63.6, 64: 59.2}
    out = []
    for b in (32, 64, 128, 256, 512):
        for method, paper in (("byol", byol_paper), ("simclr", simclr_paper)):
            prefix = "" if method == "byol" else "simclr_"
            out.append(
                Variant(
                    f"{prefix}batch_{b}",
                    f"{'SimCLR' if method == 'simclr' else 'BYOL'}, batch {b}",
                    {"model": {"method": method}, "optim": {"batch_size": b}},
                    paper.get(b),
                    f"{GRILL}, fig. 3a" if b in paper else "",
                    batch=b,
                    method=method,
                )  # fmt: skip
            )
    return out


STL10 = "STL-10 replication, 10 epochs (Fetterman & Albrecht 2020); random encoder 28.8"
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("baseline", "BYOL (this preset)", {}, 72.5, f"{GRILL}, table 5a (τ_base 0.99)"),
        Variant("no_predictor", "no predictor", {"model": {"use_predictor": False}}, 0.2, f"{GRILL}, table 5b"),
        Variant("tau_0", "τ = 0 (target = online)", {"optim": {"tau_base": 0.0}}, 0.3, f"{GRILL}, table 5a"),
        Variant("tau_1", "τ = 1 (frozen random target)", {"optim": {"tau_base": 1.0}}, 18.8, f"{GRILL}, table 5a"),
        Variant("tau_0.9", "τ_base 0.9", {"optim": {"tau_base": 0.9}}, 68.4, f"{GRILL}, table 5a"),
        Variant("tau_0.99", "τ_base 0.99", {"optim": {"tau_base": 0.99}}, 72.5, f"{GRILL}, table 5a"),
        Variant("tau_0.999", "τ_base 0.999", {"optim": {"tau_base": 0.999}}, 69.8, f"{GRILL}, table 5a"),
        Variant(
            "heads_none_sgd",
            "heads without norm, SGD (no weight decay)",
            {
                "model": {"norm": "none"},
                "optim": {"optimizer": "sgd", "base_lr": 0.05, "scale_lr": True, "weight_decay": 0.0},
            },
            28.3,
            STL10,
        ),  # fmt: skip
        Variant(
            "heads_none_lars",
            "heads without norm, LARS + weight decay",
            {
                "model": {"norm": "none"},
                "optim": {
                    "optimizer": "lars",
                    "base_lr": 1.0,
                    "scale_lr": True,
                    "weight_decay": 1e-5,
                    "trust_coefficient": 0.02,
                    "clip_lr": True,
                },
            },
            None,
            "the authors' reply: still learns, worse and brittle",
        ),  # fmt: skip
        Variant("heads_layernorm", "heads with LayerNorm", {"model": {"norm": "layernorm"}}, 29.4, STL10),
        Variant("heads_groupnorm", "heads with GroupNorm", {"model": {"norm": "groupnorm"}}),
        Variant(
            "encoder_gn_ws",
            "GroupNorm + weight standardisation, no batch statistics",
            {"model": {"encoder_norm": "groupnorm-ws", "norm": "groupnorm"}},
            73.9,
            "Richemond et al. 2020",
        ),  # fmt: skip
        Variant(
            "simclr",
            "SimCLR (same encoder, heads, views)",
            {"model": {"method": "simclr"}},
            67.9,
            f"{GRILL}, fig. 3a (their SimCLR, batch 4096)",
            method="simclr",
        ),  # fmt: skip
        Variant(
            "no_color", "BYOL, no colour jitter or grayscale", {"augment": {"color": False}}, 63.4, f"{GRILL}, fig. 3b"
        ),  # fmt: skip
        Variant(
            "simclr_no_color",
            "SimCLR, no colour jitter or grayscale",
            {"model": {"method": "simclr"}, "augment": {"color": False}},
            45.7,
            f"{GRILL}, fig. 3b",
            method="simclr",
        ),  # fmt: skip
        *_batch_variants(),
    ]
}
SUITES = {
    "paper": [
        "baseline",
        "no_predictor",
        "tau_0",
        "tau_1",
        "tau_0.9",
        "tau_0.99",
        "tau_0.999",
        "heads_none_sgd",
        "heads_none_lars",
        "heads_layernorm",
        "heads_groupnorm",
        "encoder_gn_ws",
        "simclr",
        "no_color",
        "simclr_no_color",
        "batch_32",
        "batch_64",
        "batch_128",
        "batch_512",
        "simclr_batch_32",
        "simclr_batch_64",
        "simclr_batch_128",
        "simclr_batch_512",
    ],  # fmt: skip
    "collapse": ["baseline", "no_predictor", "tau_0", "tau_1"],
}
COLLAPSED = COLLAPSE_RATIO  # projection std × √d below this: collapsed (the run's own warning uses it too)


def suite_variants(suite: str) -> list[Variant]:
    """The variants of a named suite, or of a comma list of variant names."""
    names = SUITES.get(suite, [n.strip() for n in suite.split(",") if n.strip()])
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise ByolError(
            f"--suite {suite!r}: unknown variant {', '.join(unknown) or '(none given)'}; "
            f"suites: {', '.join(SUITES)}; variants: {', '.join(VARIANTS)}"
        )
    return [VARIANTS[n] for n in names]


def variant_config(base: Config, variant: Variant, minutes: float | None = None, epochs: float | None = None) -> Config:
    """The base config with the variant's overrides, trained for ``minutes`` (the baseline) or
    ``epochs`` (every other variant: as many images as the baseline saw), and, for batch variants
    below the base batch, gradient accumulation back up to it."""
    values = merge(base.to_dict(), variant.overrides)
    length = {"time_budget": minutes} if minutes is not None else {"time_budget": None, "epochs": epochs}
    values = merge(values, {"run": length})
    if variant.batch is not None:
        base_batch = base.optim.batch_size * base.optim.accumulate
        accumulate = max(1, base_batch // variant.batch)
        values = merge(values, {"optim": {"accumulate": accumulate, "micro_batch": "auto"}})
    return config_from_dict(values).validate()


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


def _knn(results: dict[str, Any], name: str) -> float | None:
    if name == "untrained":
        return (results.get("untrained") or {}).get("top1")
    return results.get("variants", {}).get(name, {}).get("knn_top1")


def _collapsed(results: dict[str, Any], name: str) -> bool | None:
    std = results.get("variants", {}).get(name, {}).get("collapse_std")
    return None if std is None else std < COLLAPSED


def claims(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The paper's findings, each checked on this run's figures: reproduced True / False, or None
    when a variant it needs is missing (not run, or no labels for accuracy)."""
    k = lambda name: _knn(results, name)  # noqa: E731
    out = []

    def claim(text: str, ok, why: str) -> None:
        out.append({"claim": text, "reproduced": ok, "figures": why})

    def fmt(v):
        return "—" if v is None else f"{100 * v:.1f}"

    collapses = (("no_predictor", "Without the predictor BYOL collapses"), ("tau_0", "With τ = 0 BYOL collapses"))
    for name, text in collapses:
        c, base = _collapsed(results, name), _collapsed(results, "baseline")
        ok = None if c is None or base is None else bool(c and not base)
        std = results.get("variants", {}).get(name, {}).get("collapse_std")
        bstd = results.get("variants", {}).get("baseline", {}).get("collapse_std")
        claim(text, ok, f"collapse std × √d {std if std is None else round(std, 3)} vs baseline "
                        f"{bstd if bstd is None else round(bstd, 3)} (collapsed below {COLLAPSED})")  # fmt: skip
    t1, base, un = k("tau_1"), k("baseline"), k("untrained")
    ok = None if None in (t1, base, un) else bool(base > t1 >= un)
    claim("τ = 1 (a frozen random target) learns a little: below BYOL, at or above the untrained encoder", ok,
          f"kNN: baseline {fmt(base)}, τ = 1 {fmt(t1)}, untrained {fmt(un)}")  # fmt: skip
    taus = {n: k(n) for n in ("tau_0.9", "tau_0.99", "tau_0.999")}
    ok = None if None in taus.values() else bool(taus["tau_0.99"] >= max(taus["tau_0.9"], taus["tau_0.999"]))
    claim("τ_base 0.99 beats 0.9 and 0.999", ok, ", ".join(f"{n[4:]}: {fmt(v)}" for n, v in taus.items()))
    margin = 0.02  # within 2 points of the untrained encoder: learned nothing worth the name
    for name, text in (("heads_none_sgd", "Heads without BatchNorm collapse (plain SGD)"),
                       ("heads_layernorm", "LayerNorm in the heads does not save it")):  # fmt: skip
        acc, collapsed = k(name), _collapsed(results, name)
        # Collapsed outputs, or an encoder no better than an untrained one.
        ok = None if None in (acc, un, base) else bool(acc < base and (collapsed or acc - un < margin))
        std = results.get("variants", {}).get(name, {}).get("collapse_std")
        std_text = "—" if std is None else f"{std:.3f}"
        claim(text, ok, f"kNN {fmt(acc)} vs untrained {fmt(un)}, baseline {fmt(base)}; collapse std × √d {std_text}")
    lars = k("heads_none_lars")
    ok = None if None in (lars, un, base) else bool(un + margin <= lars < base)
    claim("Heads without norm under LARS + weight decay still learn, worse", ok,
          f"kNN {fmt(lars)} vs untrained {fmt(un)}, baseline {fmt(base)}")  # fmt: skip
    gn = k("encoder_gn_ws")
    ok = None if None in (gn, un, base) else bool(gn - un >= margin)
    claim("GroupNorm + weight standardisation (no batch statistics) learns", ok,
          f"kNN {fmt(gn)} vs untrained {fmt(un)}, baseline {fmt(base)}")  # fmt: skip
    drops = {}
    for method, prefix, full in (("BYOL", "", "baseline"), ("SimCLR", "simclr_", "simclr")):
        small, ref = k(f"{prefix}batch_32"), k(full)
        drops[method] = None if None in (small, ref) else ref - small
    ok = None if None in drops.values() else bool(drops["BYOL"] < drops["SimCLR"])
    claim("BYOL is more robust to small batches than SimCLR (base batch → 32)", ok,
          ", ".join(f"{m} loses {fmt(d)} points" for m, d in drops.items()))  # fmt: skip
    color = {}
    for method, full, ablated in (("BYOL", "baseline", "no_color"), ("SimCLR", "simclr", "simclr_no_color")):
        a, b = k(full), k(ablated)
        color[method] = None if None in (a, b) else a - b
    ok = None if None in color.values() else bool(color["BYOL"] < color["SimCLR"])
    claim("Removing colour hurts BYOL less than SimCLR", ok,
          ", ".join(f"{m} loses {fmt(d)} points" for m, d in color.items()))  # fmt: skip
    return out


def report_markdown(results: dict[str, Any]) -> str:
    setup, variants = results.get("setup", {}), results.get("variants", {})
    un = results.get("untrained")
    lines = [
        "# BYOL ablations",
        "",
        f"Data `{setup.get('data')}`" + (f", kNN on `{setup['test']}`" if setup.get("test") else "")
        + f"; preset `{setup.get('preset')}`; {_budget(setup)}; seed {setup.get('seed')}, "
        f"base batch {setup.get('base_batch')}, baseline τ_base {setup.get('tau_base')}.",
        "",
        "Paper figures: ImageNet, ResNet-50, 300 epochs, linear top-1 (%) unless the source says otherwise; ours: "
        "weighted kNN top-1 (%) after minutes of training. Compare directions, not values.",
        "",
    ]  # fmt: skip
    if not any(v.get("knn_top1") is not None for v in variants.values()):
        lines += ["No labels (or no `--test`): collapse diagnostics only, no accuracy.", ""]
    lines += [
        "| variant | kNN top-1 | paper | source | collapse std × √d | rank of projections | rank of representations "
        "| loss | steps | images seen |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    if un:
        lines.append(f"| untrained encoder | {100 * un['top1']:.1f} | 1.4 | {GRILL}, table 5a | | | | | 0 | 0 |")
    for name, v in variants.items():
        knn = "—" if v.get("knn_top1") is None else f"{100 * v['knn_top1']:.1f}"
        paper = "—" if v.get("paper") is None else f"{v['paper']}"
        std = "—" if v.get("collapse_std") is None else f"{v['collapse_std']:.3f}"
        rank = "—" if v.get("effective_rank") is None else f"{v['effective_rank']:.1f}"
        prank = "—" if v.get("projection_rank") is None else f"{v['projection_rank']:.1f}"
        loss = "—" if v.get("loss") is None else f"{v['loss']:.3f}"
        lines.append(
            f"| {name}: {v['label']} | {knn} | {paper} | {v.get('source', '')} | {std} | {prank} | {rank} | {loss} | "
            f"{v['steps']} | {v['images_seen']:,} |"
        )
    lines += ["", "## Claims", "", "| claim | reproduced here | figures |", "|---|---|---|"]
    for c in results.get("claims", []):
        word = {True: "yes", False: "**no**", None: "not run"}[c["reproduced"]]
        lines.append(f"| {c['claim']} | {word} | {c['figures']} |")
    lines += ["", "Plots: `collapse.png` (collapse std over steps), `accuracy.png`, `batch.png`.", ""]
    return "\n".join(lines)


def _budget(setup: dict[str, Any]) -> str:
    epochs = setup.get("epochs") or 0
    if setup.get("minutes") is None:
        return f"every variant {epochs:.2f} epochs"
    return f"the baseline trained {setup['minutes']} minutes ({epochs:.2f} epochs), every variant as many epochs"


def plots(results: dict[str, Any], out: Path) -> None:
    """collapse.png, accuracy.png and batch.png beside the report (what the results allow)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = results.get("variants", {})
    if not variants:
        return
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (name, v) in enumerate(variants.items()):
        if v.get("std_curve"):
            steps, std = zip(*v["std_curve"])
            style = "--" if v.get("method") == "simclr" else "-"  # SimCLR dashed, BYOL solid
            ax.plot(steps, std, style, label=name, lw=1.2, color=plt.cm.tab20(i % 20))
    ax.axhline(COLLAPSED, color="k", ls=":", lw=1)
    ax.set(xlabel="step", ylabel="projection std × √d (1: spread, 0: collapsed)", title="Collapse diagnostics")
    ax.legend(fontsize=6, ncol=3)
    _save_fig(fig, out / "collapse.png")
    scored = {n: v["knn_top1"] for n, v in variants.items() if v.get("knn_top1") is not None}
    if scored:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.barh(list(scored), [100 * s for s in scored.values()], color="tab:blue")
        un = (results.get("untrained") or {}).get("top1")
        if un is not None:
            ax.axvline(100 * un, color="tab:red", ls="--", label="untrained encoder")
            ax.legend(fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="kNN top-1 (%)", title="Accuracy per variant")
        ax.tick_params(axis="y", labelsize=7)
        _save_fig(fig, out / "accuracy.png")
    base_batch = results.get("setup", {}).get("base_batch")
    curves = {}
    for method, prefix, full in (("BYOL", "", "baseline"), ("SimCLR", "simclr_", "simclr")):
        pts = {v["batch"]: v["knn_top1"] for n, v in variants.items() if n.startswith(f"{prefix}batch_")
               and v.get("knn_top1") is not None and v.get("method") == method.lower()}  # fmt: skip
        if full in variants and variants[full].get("knn_top1") is not None and base_batch:
            pts.setdefault(base_batch, variants[full]["knn_top1"])
        if pts:
            curves[method] = sorted(pts.items())
    if curves:
        fig, ax = plt.subplots(figsize=(6, 4))
        for method, pts in curves.items():
            ax.plot([b for b, _ in pts], [100 * a for _, a in pts], "o-", label=method)
        ax.set_xscale("log", base=2)
        ax.set(xlabel="batch size (BatchNorm / negatives)", ylabel="kNN top-1 (%)", title="Batch size")
        ax.legend()
        _save_fig(fig, out / "batch.png")


def _save_fig(fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_write(path, None) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)


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
