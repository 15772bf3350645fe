"""``byol embed RUN_DIR DATA --out FILE``: one embedding per image, in the folder's order."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from byol.cli.common import IMAGES, add_device_argument, add_workers_argument
from byol.errors import ByolError
from byol.files import atomic_write


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run", help="run folder, encoder file (.safetensors / .pt), Hub folder, hf-hub:, torchvision: or timm: name"
    )
    p.add_argument("data", help=f"images (labelled or not): {IMAGES}")
    p.add_argument("--out", required=True, help=".npy (with a .json sidecar of paths and labels) or .parquet")
    p.add_argument("--batch-size", type=int, default=512)
    add_workers_argument(p)
    add_device_argument(p)


def run(args: argparse.Namespace) -> int:
    from byol.device import resolve_device
    from byol.eval.embeddings import embed_folder

    out = Path(args.out)
    if out.suffix not in (".npy", ".parquet"):
        raise ByolError(f"--out {out}: use a .npy or .parquet file name")
    if args.batch_size < 1:
        raise ByolError("--batch-size must be at least 1")
    emb = embed_folder(args.run, args.data, resolve_device(args.device), args.workers, args.batch_size)
    if out.suffix == ".npy":
        emb.write(out)
    else:
        _write_parquet(emb, out)
    print(f"wrote {out}: {len(emb.paths)} embeddings of size {emb.vectors.shape[1]}")
    return 0


def _write_parquet(emb, out: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ByolError("--out .parquet needs pyarrow: pip install pyarrow (or write .npy)") from None
    columns = {"path": emb.paths, "embedding": list(emb.vectors.numpy().astype(np.float32))}
    if emb.labels is not None:
        columns["label"] = emb.labels
        columns["class"] = [emb.classes[y] for y in emb.labels]
    table = pa.table(columns).replace_schema_metadata({"byol": json.dumps(emb.meta["encoder"])})
    with atomic_write(out) as f:
        pq.write_table(table, f)
