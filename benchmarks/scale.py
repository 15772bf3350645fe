"""How the cost of a byol step grows with the batch and the image side.

The real step of ``byol pretrain`` (``step.byol_step``: the preset's model, optimiser, memory format
and precision) on random views, for every batch size and image side asked; median seconds per step
of ``--steps`` after ``--warmup``. Sides up to 64 px use the small-image stem, larger ones the
ImageNet stem (stride 4), as ``byol pretrain`` would.

    python benchmarks/scale.py [--preset cpu] [--batches 32 64 128 256 512] [--sides 32 64 96 224]
        [--out docs/results/scale-cpu]

Prints a table and one JSON line; with ``--out``, also writes OUT.md (the table and the command)
and OUT.png (seconds per step and images/s against the batch, one line per side).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from byol.config.presets import resolve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from step import byol_step, time_steps  # noqa: E402


def measure(preset: str, batch: int, side: int, device: torch.device, warmup: int, steps: int) -> float:
    cfg = resolve(
        preset, {"data": {"image_size": side}, "optim": {"batch_size": batch}, "run": {"device": str(device)}}
    )
    g = torch.Generator().manual_seed(0)
    views = tuple(torch.randn(batch, 3, side, side, generator=g).to(device) for _ in range(2))
    torch.manual_seed(0)
    step = byol_step(cfg, device, views)
    time_steps(step, device, warmup)
    return statistics.median(time_steps(step, device, steps))


def plot(rows: list[tuple[int, int, float]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from byol.files import atomic_write

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for side in sorted({r[1] for r in rows}):
        pts = sorted((b, s) for b, sd, s in rows if sd == side)
        batches, secs = [p[0] for p in pts], [p[1] for p in pts]
        a1.plot(batches, secs, marker="o", label=f"{side} px")
        a2.plot(batches, [b / s for b, s in pts], marker="o", label=f"{side} px")
    a1.set(xscale="log", yscale="log", xlabel="batch (per view)", ylabel="seconds per step", title=title)
    a2.set(xscale="log", xlabel="batch (per view)", ylabel="images per second", title="throughput")
    for a in (a1, a2):
        a.minorticks_off()
        a.set_xticks(sorted({r[0] for r in rows}), labels=[str(b) for b in sorted({r[0] for r in rows})])
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    with atomic_write(out) as f:
        fig.savefig(f, format="png", dpi=90)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--batches", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    p.add_argument("--sides", type=int, nargs="+", default=[32, 64, 96, 224])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", type=Path, default=None, help="write OUT.md and OUT.png")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for side in args.sides:
        for batch in args.batches:
            rows.append((batch, side, measure(args.preset, batch, side, device, args.warmup, args.steps)))
            print(f"# {side} px, batch {batch}: {rows[-1][2]:.3f} s/step", file=sys.stderr)
    where = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    lines = ["| side | batch | s/step | images/s |", "|---:|---:|---:|---:|"]
    lines += [f"| {side} | {batch} | {s:.3f} | {batch / s:,.0f} |" for batch, side, s in rows]
    print("\n".join(lines))
    figures = {"preset": args.preset, "where": where, "torch": torch.__version__}
    figures.update({f"{side}px_b{batch}_s": round(s, 4) for batch, side, s in rows})
    if args.out:
        from byol.files import atomic_write

        command = "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
        title = f"byol step, {args.preset} preset, {where}"
        with atomic_write(args.out.with_suffix(".md"), "w") as f:
            f.write(f"# Step cost against batch and image side ({title})\n\n`{command}`\n\n" + "\n".join(lines))
            f.write(f"\n\n![seconds per step and images/s]({args.out.with_suffix('.png').name})\n")
        plot(rows, args.out.with_suffix(".png"), title)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
