"""A run's report: PNG plots of its metrics and a 2-D map of embeddings, in one self-contained HTML."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from byol.errors import ByolError  # noqa: E402
from byol.files import atomic_write  # noqa: E402
from byol.run_files import RunFiles
from byol.train.metrics_file import read_metrics  # noqa: E402


def _series(rows: list[dict[str, Any]], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    pts = [(r[x], r[key]) for r in rows if key in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def save_figure(fig, path: Path, dpi: int = 100) -> Path:
    """A matplotlib figure as a PNG, written atomically; the figure is closed."""
    fig.tight_layout()
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=dpi)
    plt.close(fig)
    return path


def plot_metrics(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, Path]:
    """loss.png, schedules.png, collapse.png and (when monitored) knn.png under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(*_series(rows, "loss"), color="tab:blue")
    ax.set(xlabel="step", ylabel="loss (2 view orders summed)", title="BYOL loss")
    ax.grid(alpha=0.3)
    plots["loss"] = save_figure(fig, out_dir / "loss.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(*_series(rows, "lr"), color="tab:orange")
    a1.set(xlabel="step", ylabel="learning rate", title="learning rate")
    a2.plot(*_series(rows, "tau"), color="tab:green")
    a2.set(xlabel="step", ylabel="τ", title="target decay rate τ")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    plots["schedules"] = save_figure(fig, out_dir / "schedules.png")

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(*_series(rows, "projection_std_ratio"), color="tab:purple")
    a1.axhline(1.0, color="gray", ls="--", lw=1)
    a1.set(xlabel="step", ylabel="std × √d", title="projection spread (1 healthy, 0 collapsed)", ylim=(0, None))
    a2.plot(*_series(rows, "effective_rank"), color="tab:red")
    a2.set(xlabel="step", ylabel="effective rank", title="effective rank of representations", ylim=(0, None))
    for a in (a1, a2):
        a.grid(alpha=0.3)
    plots["collapse"] = save_figure(fig, out_dir / "collapse.png")

    knn_x, knn_y = _series(rows, "knn_top1", x="epoch")
    online_x, online_y = _series(rows, "online_top1", x="epoch")
    if knn_y or online_y:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if knn_y:
            ax.plot(knn_x, [100 * v for v in knn_y], "o-", label="kNN top-1 (held-out)")
        if online_y:
            ax.plot(online_x, [100 * v for v in online_y], alpha=0.6, label="online linear top-1 (train views)")
        ax.set(xlabel="epoch", ylabel="accuracy (%)", title="monitors")
        ax.legend()
        ax.grid(alpha=0.3)
        plots["knn"] = save_figure(fig, out_dir / "knn.png")
    return plots


def embedding_map(features: torch.Tensor, labels: torch.Tensor, classes: list[str], path: Path, seed: int = 0) -> Path:
    """t-SNE (scikit-learn), or UMAP when installed, of ``features`` coloured by label."""
    x = torch.nn.functional.normalize(features.float(), dim=1).numpy()
    try:
        import umap  # type: ignore[import-not-found]

        xy = umap.UMAP(random_state=seed).fit_transform(x)
        method = "UMAP"
    except ImportError:
        from sklearn.manifold import TSNE

        xy = TSNE(n_components=2, init="pca", perplexity=min(30, max(2, len(x) // 4)), random_state=seed).fit_transform(
            x
        )
        method = "t-SNE"
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    if classes:
        for c, name in enumerate(classes):
            m = (labels == c).numpy()
            if m.any():
                ax.scatter(xy[m, 0], xy[m, 1], s=6, color=cmap(c % cmap.N), label=name)
        ax.legend(markerscale=3, fontsize=8, loc="best")
    else:
        ax.scatter(xy[:, 0], xy[:, 1], s=6)
    ax.set(title=f"{method} of {len(x)} embeddings", xticks=[], yticks=[])
    return save_figure(fig, path)


def write_html(run_dir: Path, plots: dict[str, Path], facts: dict[str, Any]) -> Path:
    """``RUN_DIR/report.html`` with every PNG embedded (base64): one file to share."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>byol report</title>",
        "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td{border:1px solid #ccc;padding:3px 8px}img{max-width:100%}</style>",
        f"</head><body><h1>byol run: {html.escape(str(run_dir))}</h1><table>",
    ]
    for k, v in facts.items():
        parts.append(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>")
    parts.append("</table>")
    titles = {"loss": "Loss", "schedules": "Schedules", "collapse": "Collapse diagnostics", "knn": "Monitors"}
    titles["embedding"] = "Embeddings of test images"
    for name, path in plots.items():
        data = base64.b64encode(path.read_bytes()).decode()
        parts.append(f"<h2>{titles.get(name, name)}</h2><img alt='{name}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    out = run_dir / "report.html"
    with atomic_write(out, "w") as f:
        f.write("\n".join(parts))
    return out


def build_report(run_dir: str | Path, test: str | None = None, max_points: int = 2000, device="cpu") -> Path:
    """Plots of ``metrics.jsonl`` and, when an encoder and labelled test images exist, an embedding map."""
    from byol.config.io import load_yaml

    run_dir = Path(run_dir)
    rows = read_metrics(run_dir)
    if not rows:
        raise ByolError(f"{run_dir} has no metrics.jsonl; is it a byol run folder?")
    files = RunFiles(run_dir)
    out_dir = files.report
    plots = plot_metrics(rows, out_dir)
    cfg = load_yaml(files.config) if files.config.exists() else None
    facts: dict[str, Any] = {}
    if cfg is not None:
        facts.update({"data": cfg.data.path, "backbone": f"{cfg.model.backbone} ×{cfg.model.width}"})
        facts.update({"optimizer": cfg.optim.optimizer, "batch": cfg.optim.batch_size, "τ_base": cfg.optim.tau_base})
    summary = files.summary
    if summary.exists():
        facts.update(json.loads(summary.read_text()))
    if test is None and cfg is not None and Path(cfg.data.path).parent.joinpath("test").is_dir():
        test = str(Path(cfg.data.path).parent / "test")
    if test and files.encoder.exists():
        from byol.data.eval_stream import eval_images
        from byol.data.folder import list_images
        from byol.encoder_io import load_encoder_with_meta
        from byol.eval.features import extract_features

        encoder, meta = load_encoder_with_meta(run_dir, device)
        images = list_images(test)
        g = torch.Generator().manual_seed(0)
        pick = torch.randperm(len(images), generator=g)[:max_points].sort().values.tolist()
        sub = images.subset(pick)
        batches = eval_images(sub, meta["image_size"], meta["eval_crop"])
        feats, labels = extract_features(encoder, batches, device, meta["mean"], meta["std"])
        plots["embedding"] = embedding_map(feats, labels, sub.classes, out_dir / "embedding.png")
        facts["embedding map"] = f"{len(feats)} images of {test}"
    return write_html(run_dir, plots, facts)
