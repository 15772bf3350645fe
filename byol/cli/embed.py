"""``byol embed RUN_DIR DATA --out FILE``: one embedding per image, in the folder's order."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from byol.cli.common import add_device_argument, add_workers_argument
from byol.errors import ByolError
from byol.files import atomic_write


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder, or an encoder file (.safetensors / .pt)")
    p.add_argument("data", help="folder of images (labelled or not)")
    p.add_argument("--out", required=True, help=".npy (with a .json sidecar of paths and labels) or .parquet")
    p.add_argument("--batch-size", type=int, default=512)
    add_workers_argument(p)
    add_device_argument(p)


def run(args: argparse.Namespace) -> int:
    from byol.data.eval_stream import eval_images
    from byol.data.folder import list_images
    from byol.dist import resolve_device
    from byol.encoder_io import load_encoder_with_meta
    from byol.eval.features import extract_features

    out = Path(args.out)
    if out.suffix not in (".npy", ".parquet"):
        raise ByolError(f"--out {out}: use a .npy or .parquet file name")
    if args.batch_size < 1:
        raise ByolError("--batch-size must be at least 1")
    device = resolve_device(args.device)
    encoder, meta = load_encoder_with_meta(args.run, device)
    images = list_images(args.data)
    batches = eval_images(
        images, meta["image_size"], meta["eval_crop"], workers=args.workers, batch_size=args.batch_size
    )
    feats, labels, idx = extract_features(
        encoder, batches, device, meta["mean"], meta["std"], progress=True, desc="embed", return_indices=True
    )
    paths = [str(images.paths[i]) for i in idx.tolist()]
    label_list = labels.tolist() if images.labels is not None else None
    if out.suffix == ".npy":
        with atomic_write(out) as f:
            np.save(f, feats.numpy().astype(np.float32))
        sidecar = {"run": str(args.run), "data": str(args.data), "encoder": meta, "classes": images.classes}
        sidecar.update({"paths": paths, "labels": label_list})
        with atomic_write(out.with_suffix(".json"), "w") as f:
            json.dump(sidecar, f)
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ByolError("--out .parquet needs pyarrow: pip install pyarrow (or write .npy)") from None
        columns = {"path": paths, "embedding": list(feats.numpy().astype(np.float32))}
        if label_list is not None:
            columns["label"] = label_list
            columns["class"] = [images.classes[y] for y in label_list]
        table = pa.table(columns).replace_schema_metadata({"byol": json.dumps(meta)})
        with atomic_write(out) as f:
            pq.write_table(table, f)
    print(f"wrote {out}: {len(paths)} embeddings of size {feats.shape[1]}")
    return 0
