"""``byol neighbours RUN DATA --out gallery.html``: what the encoder finds alike, as a page of pictures.

For each query image, its ``k`` nearest images of ``DATA`` in the run's embedding (cosine similarity),
as one self-contained HTML page of thumbnails, and with ``--png`` the same as one image. Queries:
``--query FILE`` (repeatable), ``--random N``, or by default every class's first image (ten random
ones in a folder without classes). ``--duplicates [THRESHOLD]`` lists the pairs at least that similar
(a CSV and a gallery beside ``--out``; without a value, a threshold from the bank's own scale). The
embeddings are kept beside the gallery (``OUT.npy`` and ``OUT.json``, what ``byol embed`` writes) and
are read instead of recomputed when RUN is such a file.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch

from byol.cli.common import IMAGES, add_device_argument, add_workers_argument
from byol.errors import ByolError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run", help="run folder or encoder (anything byol eval reads), or an embeddings .npy from byol embed"
    )
    p.add_argument("data", nargs="?", help=f"images (not needed with an embeddings file): {IMAGES}")
    p.add_argument("--out", required=True, help="the gallery, an .html file")
    p.add_argument("--k", type=int, default=8, help="neighbours shown per query")
    p.add_argument("--query", action="append", default=[], metavar="FILE", help="a query image of DATA (repeatable)")
    p.add_argument("--random", type=int, metavar="N", help="N random queries (default: every class's first image)")
    p.add_argument("--seed", type=int, default=0, help="of --random's draw")
    p.add_argument("--png", metavar="FILE", help="also the gallery as one PNG grid (for documents)")
    p.add_argument("--backend", default="auto", help="search: auto (faiss for banks of millions), torch or faiss")
    p.add_argument(
        "--duplicates",
        nargs="?",
        const="auto",
        metavar="THRESHOLD",
        help="also list near-duplicate pairs at least this similar (cosine), in OUT-duplicates.csv and "
        "OUT-duplicates.html; without a value (auto), a threshold set from the bank's own scale "
        "(byol.eval.search.duplicate_threshold), which it prints",
    )
    add_workers_argument(p)
    add_device_argument(p)


def run(args: argparse.Namespace) -> int:
    from byol.eval.gallery import Row, write_gallery, write_grid

    out = Path(args.out)
    if out.suffix != ".html":
        raise ByolError(f"--out {out}: the gallery is an .html file")
    emb = _embeddings(args, out)
    queries = _queries(args, emb)
    found = _search(args, emb, queries)
    label = (lambda i: emb.classes[emb.labels[i]]) if emb.labels is not None else (lambda i: None)  # noqa: E731
    rows = [
        Row(emb.paths[q], [(emb.paths[j], s) for j, s in hits], label(q), [label(j) for j, _ in hits])
        for q, hits in zip(queries, found)
    ]
    source = emb.meta.get("run", args.run)
    note = (
        f"The {args.k} nearest images of {len(emb.paths)} in the embedding of {source} (cosine similarity), "
        "each image as its evaluation view. Green: the query's class; red: another."
    )
    write_gallery(rows, out, f"Nearest neighbours: {source}", note)
    if args.png:
        write_grid(rows, Path(args.png))
    print(f"wrote {out}: {len(rows)} queries × {args.k} neighbours" + (f", and {args.png}" if args.png else ""))
    if args.duplicates is not None:
        _duplicates(args, emb, out)
    return 0


def _embeddings(args: argparse.Namespace, out: Path):
    from byol.device import resolve_device
    from byol.eval.embeddings import embed_folder, read_embeddings

    if args.run.endswith(".npy"):
        return read_embeddings(args.run)
    if not args.data:
        raise ByolError("give DATA, the folder of images to search (or an embeddings .npy as RUN)")
    emb = embed_folder(args.run, args.data, resolve_device(args.device), args.workers)
    emb.write(out.with_suffix(".npy"))  # computed once: byol neighbours OUT.npy ... reads it back
    return emb


def _queries(args: argparse.Namespace, emb) -> list[int]:
    """Indices of the query images: chosen files, a random sample, or every class's first image."""
    if args.query:
        where = {str(Path(p).resolve()): i for i, p in enumerate(emb.paths)}
        missing = [q for q in args.query if str(Path(q).resolve()) not in where]
        if missing:
            raise ByolError(f"--query {missing[0]}: not among the {len(emb.paths)} images searched")
        return [where[str(Path(q).resolve())] for q in args.query]
    if args.random is not None or emb.labels is None:
        n = 10 if args.random is None else args.random
        if not 1 <= n <= len(emb.paths):
            raise ByolError(f"--random {n}: give 1 to {len(emb.paths)} queries")
        return sorted(random.Random(args.seed).sample(range(len(emb.paths)), n))
    first: dict[int, int] = {}
    for i, y in enumerate(emb.labels):
        first.setdefault(y, i)
    return [first[y] for y in sorted(first)]


def _search(args: argparse.Namespace, emb, queries: list[int]) -> list[list[tuple[int, float]]]:
    """Each query's ``k`` nearest other images, as (index, similarity)."""
    from byol.eval.search import nearest

    if args.k >= len(emb.paths):
        raise ByolError(f"--k {args.k} is more than the {len(emb.paths) - 1} other images searched")
    own = torch.tensor(queries)
    sims, idx = nearest(emb.vectors[own], emb.vectors, args.k, backend=args.backend, exclude=own)
    return [list(zip(row_i, row_s)) for row_i, row_s in zip(idx.tolist(), sims.tolist())]


def _duplicates(args: argparse.Namespace, emb, out: Path) -> None:
    from byol.eval.gallery import Row, write_gallery, write_pairs_csv
    from byol.eval.search import near_duplicates

    threshold = None if args.duplicates == "auto" else _similarity(args.duplicates)
    found, threshold = near_duplicates(emb.vectors, threshold)
    pairs = [(emb.paths[i], emb.paths[j], s) for i, j, s in found]
    stem = out.with_name(out.stem + "-duplicates")
    write_pairs_csv(pairs, stem.with_suffix(".csv"))
    rows = [Row(a, [(b, s)]) for a, b, s in pairs]
    how = "set from the bank's own scale" if args.duplicates == "auto" else "given"
    note = f"{len(pairs)} pairs of images at cosine similarity {threshold:.4f} ({how}) or more, most similar first."
    write_gallery(rows, stem.with_suffix(".html"), f"Near-duplicates: {emb.meta.get('run', args.run)}", note)
    print(
        f"wrote {stem.with_suffix('.csv')} and {stem.with_suffix('.html')}: {len(pairs)} near-duplicate pairs "
        f"(cosine ≥ {threshold:.4f}, {how})"
    )


def _similarity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise ByolError(f"--duplicates {text}: a cosine similarity in (0, 1], or nothing for auto")
    return value
