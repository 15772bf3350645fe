"""An ablation's Markdown report and plots: per variant the paper's figure and ours over seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from byol.ablate.claims import RULE, collapsed_run, gain, knn, per_seed, seed_rows, spread, trained_taus, untrained_top1
from byol.ablate.variants import VARIANTS
from byol.run_report import save_figure
from byol.train.diagnostics import COLLAPSE_RATIO, SPREAD_COLLAPSED, TOP_SHARE_COLLAPSED

COLLAPSED = COLLAPSE_RATIO  # the uncentred ratio's threshold (projection std × √d), kept beside the centred


def _column(results: dict[str, Any], name: str, key: str, scale: float = 100.0) -> str:
    return spread(per_seed(results, (name,), lambda r: r.get(key)), scale)


def report_markdown(results: dict[str, Any]) -> str:
    setup, variants = results.get("setup", {}), results.get("variants", {})
    seeds = setup.get("seeds") or [setup.get("seed")]
    lines = [
        "# BYOL ablations",
        "",
        f"Data `{setup.get('data')}`" + (f", kNN on `{setup['test']}`" if setup.get("test") else "")
        + f"; preset `{setup.get('preset')}`; {_budget(setup, variants)}; seeds {', '.join(map(str, seeds))}; "
        f"base batch {setup.get('base_batch')}, baseline τ_base {setup.get('tau_base')}"
        + ("; τ_base of the τ variants scaled to the run's length" if setup.get("scale_tau") else "") + ".",
        "",
        "Paper figures: ImageNet, ResNet-50, linear top-1 (%), 300 epochs unless the source says otherwise (the "
        "GroupNorm + WS figures are 1000 epochs; the heads' SGD and LayerNorm rows an STL-10 replication); ours: "
        "weighted kNN top-1 (%), mean ± std over seeds. Compare directions, not values. Every variant is also "
        "scored untrained (same architecture, norm and seed): the gain is over that; \"its BN-adapted\" is that "
        "untrained encoder with its BatchNorm statistics adapted to the training images, no training (what "
        "BatchNorm alone gains; — in runs made before it was scored).",
        "",
        f"The rule (`byol.ablate.claims.RULE`; a committed page says which parts changed after its runs): {RULE}.",
        "",
    ]  # fmt: skip
    if not any(knn(r) is not None for n in variants for r in seed_rows(results, n).values()):
        lines += ["No labels (or no `--test`): collapse diagnostics only, no accuracy.", ""]
    lines += [
        "| variant | kNN top-1 | its untrained | its BN-adapted | gain | paper | source | spread (step 0 → end) "
        "| top-direction share | collapsed: end or half the run (seeds) | uncentred std × √d | rank of projections "
        "| rank of representations |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in variants.items():
        v = {**v, **_catalogue(name, results)}  # the paper's figure and source as the catalogue states them now
        rows = seed_rows(results, name)
        start = spread(per_seed(results, (name,), lambda r: (r.get("start") or {}).get("spread")), 1)
        flags = per_seed(results, (name,), collapsed_run)  # at the end or over half the run
        untrained = per_seed(results, (name,), lambda r: untrained_top1(results, r))
        lines.append(
            f"| {name}: {v.get('label', '')} | {_column(results, name, 'knn_top1')} | {spread(untrained)} | "
            f"{_column(results, name, 'bn_adapted_top1')} | "
            f"{spread(per_seed(results, (name,), gain(results)))} | {'—' if v.get('paper') is None else v['paper']} | "
            f"{v.get('source', '')} | {start} → {_column(results, name, 'spread', 1)} | "
            f"{_column(results, name, 'top_share', 1)} | {sum(flags)} of {len(rows)} | "
            f"{_column(results, name, 'collapse_std', 1)} | {_column(results, name, 'projection_rank', 1)} | "
            f"{_column(results, name, 'effective_rank', 1)} |"
        )
    lines += ["", "## Claims", "", "| claim | verdict | figures |", "|---|---|---|"]
    for c in results.get("claims", []):
        word = c.get("verdict") or {True: "reproduced", False: "not reproduced", None: "not run"}[c["reproduced"]]
        lines.append(f"| {c['claim']} | {'**' + word + '**' if word == 'not reproduced' else word} | {c['figures']} |")
    lines += ["", "Not tested here, and why:", "", *(f"- {text}" for text in NOT_TESTED)]
    lines += [
        "",
        f"Collapsed: spread around the batch mean below {SPREAD_COLLAPSED}, or more than {TOP_SHARE_COLLAPSED} of "
        "it along one direction (byol.train.diagnostics.centred_diagnostics); the uncentred std × √d (below "
        f"{COLLAPSED}: collapsed) reads a shared mean as a collapse and is shown for comparison.",
        "",
        "Plots: `collapse.png` (spread and top-direction share over steps, first seed), `accuracy.png`"
        + (", `batch.png`." if any("batch_" in name for name in variants) else "."),  # batch.png only then
        "",
    ]  # fmt: skip
    return "\n".join(lines)


# The paper's ablation findings this suite does not test (the report says so, with why).
NOT_TESTED = (
    "absolute accuracies (74.3% at 1000 epochs, 72.5% at 300): ImageNet and ResNet-50 at the paper's length are "
    "out of a CPU's reach; the table compares directions, kNN against linear top-1",
    "batch 4096: the batch claims hold the top batch's steps for every arm (the paper's emulation), and at 10 "
    "epochs of CIFAR-10 a step of 4096 images leaves 120 steps, too few to learn, so the top batch here is a real "
    "1024 (480 steps); an accumulated batch is large for the optimiser only (BatchNorm and NT-Xent see each pass)",
    "the predictor's learning rate and initialisation, the projector's depth and the target's own BatchNorm "
    "statistics (the paper's appendix): no variant for them yet",
    "transfer and semi-supervised results: other protocols (byol eval finetune covers the semi-supervised one)",
)


def _catalogue(name: str, results: dict[str, Any]) -> dict[str, Any]:
    """A variant's label, paper figure and source from today's catalogue (a run written under an older
    label keeps its own where the catalogue has no such variant), the label saying the τ_base its seeds
    trained where it is not the one the catalogue names."""
    known = VARIANTS.get(name)
    if known is None:
        return {}
    out = {"label": known.label, "paper": known.paper, "source": known.source}
    nominal = (known.overrides.get("optim") or {}).get("tau_base")
    trained = trained_taus(results, name)
    if nominal is not None and trained and trained != [nominal]:
        out["label"] += f" — trained τ_base {', '.join(f'{t:.3g}' for t in trained)} (scaled to the run's length)"
    twins = sorted({r["same_run_as"] for r in seed_rows(results, name).values() if r.get("same_run_as")})
    if twins:  # the baseline's config: its runs, not trained twice (AblationRunner._baseline_twin)
        out["label"] += f" (the {', '.join(twins)} runs, the same config)"
    return out


def _budget(setup: dict[str, Any], variants: dict[str, Any]) -> str:
    """The runs' length; a collapse probe whose rows trained longer than ``probe_epochs`` (a page that reads
    it at its reference's length) named with its own."""
    epochs, probe = setup.get("epochs") or 0, setup.get("probe_epochs")
    if setup.get("minutes") is None:
        text = f"every variant {epochs:.2f} epochs"
    else:
        text = f"the baseline trained {setup['minutes']} minutes ({epochs:.2f} epochs), every variant as many epochs"
    if probe is not None and probe < epochs:
        text += f", the collapse probes (no predictor, τ = 0) {probe:g}"
        longer = {
            name: max(row.get("epochs") or 0 for row in entry.get("seeds", {}).values())
            for name, entry in variants.items()
            if name in VARIANTS and VARIANTS[name].probe and entry.get("seeds")
        }  # fmt: skip
        said = [f"{name} {n:g}" for name, n in longer.items() if n > probe + 0.5]
        text += f" (at the reference's length: {', '.join(said)})" if said else ""
    return text


def plots(results: dict[str, Any], out: Path) -> None:
    """collapse.png, accuracy.png and batch.png beside the report (what the results allow)."""
    import matplotlib.pyplot as plt

    variants = results.get("variants", {})
    if not variants:
        return
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    drawn = False  # results written before the curves existed have none: no plot then
    for i, name in enumerate(variants):
        rows = seed_rows(results, name)
        row = rows[min(rows, key=str)] if rows else {}
        style = "--" if variants[name].get("method") == "simclr" else "-"  # SimCLR dashed, BYOL solid
        for ax, key in zip(axes, ("spread_curve", "top_share_curve")):
            if row.get(key):
                steps, values = zip(*row[key])
                ax.plot(steps, values, style, label=name, lw=1.2, color=plt.cm.tab20(i % 20))
                drawn = True
    axes[0].axhline(SPREAD_COLLAPSED, color="k", ls=":", lw=1)
    axes[0].set(yscale="log", xlabel="step", ylabel="spread around the mean (→ 0: collapsed)", title="Spread")
    axes[1].axhline(TOP_SHARE_COLLAPSED, color="k", ls=":", lw=1)
    axes[1].set(xlabel="step", ylabel="share of the top direction (→ 1: collapsed)", title="Dimensional collapse")
    if drawn:
        axes[1].legend(fontsize=6, ncol=2)
        save_figure(fig, out / "collapse.png", dpi=110)
    else:
        plt.close(fig)
    _accuracy_plot(results, out)
    _batch_plot(results, out)


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5


def _accuracy_plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib.pyplot as plt

    scored = {n: per_seed(results, (n,), knn) for n in results.get("variants", {})}
    scored = {n: _mean_std(v) for n, v in scored.items() if v}
    if not scored:
        return
    own = {n: per_seed(results, (n,), lambda r: untrained_top1(results, r)) for n in scored}
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(scored) + 1.5))
    names = list(scored)
    ax.barh(names, [100 * m for m, _ in scored.values()], xerr=[100 * s for _, s in scored.values()],
            color="tab:blue", label="trained (mean ± std over seeds)")  # fmt: skip
    marks = [(100 * sum(v) / len(v), n) for n, v in own.items() if v]
    if marks:
        ax.plot([m for m, _ in marks], [n for _, n in marks], "r|", ms=12, mew=2, label="its untrained encoder")
    ax.invert_yaxis()
    ax.set(xlabel="kNN top-1 (%)", title="Accuracy per variant")
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(fontsize=7)
    save_figure(fig, out / "accuracy.png", dpi=110)


def batch_curves(results: dict[str, Any]) -> dict[tuple[str, str], list[tuple[int, float]]]:
    """Mean kNN by the batch BatchNorm (and NT-Xent) sees, per method and design: real batches at equal
    images, or accumulated up to a step's batch (the paper's emulation: the steps and lr held); a run
    that is the top of an accumulated line (the baseline, a real 1024) stands in both. Two points at least."""
    base = results.get("setup", {}).get("base_batch")
    curves: dict[tuple[str, str], dict[int, float]] = {}
    for name in results.get("variants", {}):
        known, accs = VARIANTS.get(name), per_seed(results, (name,), knn)
        if known is None or not accs or not base or (known.batch is None and name not in ("baseline", "simclr")):
            continue
        batch, step = known.batch or base, known.step_batch or base
        if known.equal == "steps":
            designs = ["real batches, as many steps"]
        elif known.equal == "real" or known.batch is None or batch >= step:
            designs = ["real batches, as many images", f"accumulated to {batch}"]
        else:
            designs = [f"accumulated to {step}"]
        for design in designs:
            curves.setdefault((known.method, design), {})[batch] = sum(accs) / len(accs)
    return {key: sorted(pts.items()) for key, pts in sorted(curves.items()) if len(pts) > 1}


def _batch_plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib.pyplot as plt

    curves = batch_curves(results)
    if not curves:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    colours, styles = {"byol": "C0", "simclr": "C1"}, ["o-", "s--", "^:", "d-."]
    designs = sorted({design for _, design in curves})
    for (method, design), pts in curves.items():
        label = f"{'BYOL' if method == 'byol' else 'SimCLR'}, {design}"
        style = styles[designs.index(design) % len(styles)]
        ax.plot([b for b, _ in pts], [100 * a for _, a in pts], style, color=colours.get(method), label=label)
    ax.set_xscale("log", base=2)
    ticks = sorted({b for pts in curves.values() for b, _ in pts})
    ax.set_xticks(ticks, [str(b) for b in ticks])
    ax.set(xlabel="batch BatchNorm and NT-Xent see", ylabel="kNN top-1 (%), mean over seeds", title="Batch size")
    ax.legend(fontsize=7)
    save_figure(fig, out / "batch.png", dpi=110)
