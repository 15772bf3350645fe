"""Two-view augmentation throughput: byol's batched tensor ops against a per-image PIL pipeline.

Both sides apply the same ops with the paper's probabilities (table 6) to already-decoded images:
the baseline is torchvision's PIL transforms, one image at a time (what DataLoader workers run in
most BYOL implementations); ours is byol.data.augment.TwoViewAugment on a uint8 batch, eager and
torch.compile'd. Images/s count images for which *both* views were made. Each repeat times the
baseline and then ours back to back, so that a slow spell of this shared machine hits both; the
table shows medians of --repeats, and the ratio column the median of the per-repeat ratios.

    python benchmarks/augment.py [--sizes 32 224] [--batch 256] [--repeats 5]
    python benchmarks/augment.py --sizes 224 --cuda-only --cuda-batch 1024     # the GPU rows alone
    python benchmarks/augment.py --sizes 224 --cuda-only --blurs conv taps --profile   # blur forms, profiled

Prints a table, then one JSON line with every figure and the ratios.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from byol.data.augment import TwoViewAugment, default_views
from byol.data.kernels import BLURS, blur_kernel_size

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10" / "train"


def source_images(n: int, side: int, data: Path) -> list[Image.Image]:
    """Real CIFAR images (resized to ``side`` for the large case), or noise when the data is absent."""
    files = sorted(data.rglob("*.jpg"))[:n] if data.is_dir() else []
    if files:
        imgs = [Image.open(f).convert("RGB") for f in files]
    else:
        rng = np.random.default_rng(0)
        imgs = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]
    return [im.resize((side, side), Image.BICUBIC) if im.size != (side, side) else im for im in imgs]


def pil_pipeline(size: int, blur_p: float, solarize_p: float) -> T.Compose:
    ops = [
        T.RandomResizedCrop(size, scale=(0.08, 1.0), interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
    ]
    if blur_p > 0:
        k = blur_kernel_size(size)
        ops.append(T.RandomApply([T.GaussianBlur(k, sigma=(0.1, 2.0))], p=blur_p))
    ops += [
        T.RandomSolarize(128, p=solarize_p),
        T.ToTensor(),
        T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ]
    return T.Compose(ops)


def _pil_two_views(args):
    images, size = args
    torch.set_num_threads(1)
    v1, v2 = default_views(size)
    t1, t2 = pil_pipeline(size, v1.blur_p, v1.solarize_p), pil_pipeline(size, v2.blur_p, v2.solarize_p)
    for im in images:
        t1(im)
        t2(im)
    return len(images)


def time_pil(images, size, processes: int) -> float:
    start = time.perf_counter()
    if processes == 1:
        _pil_two_views((images, size))
    else:
        chunks = [(images[i::processes], size) for i in range(processes)]
        with mp.get_context("fork").Pool(processes) as pool:
            start = time.perf_counter()
            pool.map(_pil_two_views, chunks)
    return len(images) / (time.perf_counter() - start)


def time_batched(aug, batch: torch.Tensor, device, min_seconds: float = 0.1) -> float:
    """Images/s of ``aug`` on ``batch`` (already warmed up), over calls lasting ``min_seconds``."""
    g = torch.Generator(device=device).manual_seed(0)
    x = batch.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    calls, start = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - start < min_seconds:
        aug(x, g)
        calls += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
    return calls * len(batch) / (time.perf_counter() - start)


def warm_up(aug, batch: torch.Tensor, device) -> float:
    """Seconds of the first call (it compiles, when compiled)."""
    start = time.perf_counter()
    aug(batch.to(device), torch.Generator(device=device).manual_seed(0))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def profile(aug, batch: torch.Tensor, device, label: str, calls: int = 5) -> None:
    """The GPU kernels of ``calls`` calls, longest first, on stderr (the JSON line stays last)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    g = torch.Generator(device=device).manual_seed(0)
    x = batch.to(device)
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            aug(x, g)
        torch.cuda.synchronize()
    print(f"--- profile: {label}, {calls} calls", file=sys.stderr)
    print(
        prof.key_averages().table(sort_by="self_device_time_total", row_limit=15, max_name_column_width=70),
        file=sys.stderr,
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 224])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--pil-images", type=int, default=512, help="images per PIL timing")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--cuda-only", action="store_true", help="skip the CPU rows (and the PIL baseline)")
    p.add_argument("--cuda-batch", type=int, default=1024, help="batch of the CUDA rows")
    p.add_argument(
        "--blurs", nargs="+", default=["auto"], choices=BLURS, help="blur forms of the compiled CUDA rows (BLURS)"
    )
    p.add_argument("--profile", action="store_true", help="profile the CUDA rows' kernels (stderr)")
    args = p.parse_args(argv)
    cores = os.cpu_count() or 1
    rows, figures = [], {"cores": cores, "torch": torch.__version__}
    for size in args.sizes:
        source_side = 32 if size <= 64 else 256
        n_pil = args.pil_images if size <= 64 else max(64, args.pil_images // 8)
        pil_imgs = source_images(max(n_pil, args.batch), source_side, args.data)
        batch = torch.stack([torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1) for im in pil_imgs[: args.batch]])
        modes = [("eager", False)] + ([] if args.no_compile else [("compiled", True)])
        cpu = torch.device("cpu")
        for threads in [] if args.cuda_only else sorted({1, cores}):
            torch.set_num_threads(threads)
            augs = {name: TwoViewAugment(size, *default_views(size), compile=comp) for name, comp in modes}
            for aug in augs.values():
                warm_up(aug, batch, cpu)
            pil_runs, our_runs = [], {name: [] for name in augs}
            for _ in range(args.repeats):  # interleaved: the baseline, then ours, in every repeat
                pil_runs.append(time_pil(pil_imgs[:n_pil], size, threads))
                for name, aug in augs.items():
                    our_runs[name].append(time_batched(aug, batch, cpu))
            pil = statistics.median(pil_runs)
            rows.append((size, f"cpu x{threads}", "per-image PIL (torchvision)", pil, 1.0))
            figures[f"pil_{size}px_{threads}t"] = pil
            for name, runs in our_runs.items():
                ratios = [o / b for o, b in zip(runs, pil_runs)]
                ours = statistics.median(runs)
                rows.append((size, f"cpu x{threads}", f"byol batched ({name})", ours, statistics.median(ratios)))
                figures[f"byol_{name}_{size}px_{threads}t"] = ours
                figures[f"ratio_{name}_{size}px_{threads}t"] = statistics.median(ratios)
                figures[f"ratio_{name}_{size}px_{threads}t_min"] = min(ratios)
        if torch.cuda.is_available():
            dev = torch.device("cuda")
            big = batch.repeat(-(-args.cuda_batch // len(batch)), 1, 1, 1)[: args.cuda_batch]
            variants = [("eager", False, "auto")] + [
                ("compiled" if blur == "auto" else f"compiled, blur {blur}", True, blur) for blur in args.blurs
            ]
            for name, comp, blur in variants if not args.no_compile else variants[:1]:
                aug = TwoViewAugment(size, *default_views(size), compile=comp, blur=blur)
                key = f"byol_{name.replace(', blur ', '_blur_')}_{size}px_cuda"
                figures[f"{key}_first_call_s"] = warm_up(aug, big, dev)
                ours = statistics.median(time_batched(aug, big, dev, 1.0) for _ in range(args.repeats))
                rows.append(
                    (size, torch.cuda.get_device_name(), f"byol batched ({name}), batch {len(big)}", ours, float("nan"))
                )
                figures[key] = ours
                if args.profile:
                    profile(aug, big, dev, f"{name}, {size} px, batch {len(big)}")
    print(f"{'px':>4}  {'where':<24}{'pipeline':<44}{'images/s':>12}{'× PIL':>8}")
    for size, where, name, ips, ratio in rows:
        print(f"{size:>4}  {where:<24}{name:<44}{ips:>12.0f}{ratio:>8.1f}")
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
