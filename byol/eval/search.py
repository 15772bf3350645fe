"""Nearest neighbours in an embedding, by cosine similarity: exact on the torch side for banks that
fit, a faiss index (``faiss-cpu``, the ``byol[index]`` extra) for banks of millions.

``nearest`` picks the backend by the work: a bank of ``INDEX_FROM`` rows or more searched by
``INDEX_QUERIES`` queries or more goes to faiss, when it is installed (building the index of a
million rows takes minutes on a small CPU, while the exact search answers a thousand queries in
seconds: a gallery's few queries never need it, a bank's duplicates do). The faiss index is an
inverted file (``IndexIVFFlat``, inner product on L2-normalised vectors): ``nlist`` cells of the bank,
``nprobe`` of them searched per query. With ``nprobe == nlist`` it searches everything and returns
what the torch side returns; the default probes 32 (``benchmarks/search.py``: on a clustered bank of
a million 512-d vectors, recall@10 1.000 at 8× the exact search's speed; on random vectors, which
have no clusters to find, 0.05).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from byol.errors import ByolError

INDEX_FROM = 1_000_000  # bank rows from which ``nearest`` searches with a faiss index (when installed) ...
INDEX_QUERIES = 10_000  # ... for at least this many queries
QUERY_CHUNK = 4096  # queries per matrix product on the torch side (a chunk × bank similarity matrix)


def nearest(
    queries: torch.Tensor,
    bank: torch.Tensor,
    k: int,
    backend: str = "auto",
    exclude_self: bool = False,
    nprobe: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most similar rows of ``bank`` for each query (cosine), most similar first: their
    similarities and indices, each ``(Q, k)``. ``exclude_self``: queries are the bank's first rows in
    order (a bank searched against itself), and a query's own row is not its neighbour. ``backend``:
    ``auto``, ``torch`` or ``faiss``; ``nprobe``: the faiss index's cells searched per query."""
    n = len(bank)
    wanted = k + int(exclude_self)
    if k < 1 or wanted > n:
        raise ByolError(f"--k {k} is more than the {n - int(exclude_self)} other images of the bank" if k >= 1
                        else f"--k must be at least 1, got {k}")  # fmt: skip
    if backend == "auto":
        backend = "faiss" if n >= INDEX_FROM and len(queries) >= INDEX_QUERIES and faiss_available() else "torch"
    queries, bank = F.normalize(queries.float(), dim=1), F.normalize(bank.float(), dim=1)
    if backend == "torch":
        sims, idx = exact_search(queries, bank, wanted)
    elif backend == "faiss":
        sims, idx = _faiss_search(queries, bank, wanted, nprobe)
    else:
        raise ByolError(f"search backend {backend!r}: use auto, torch or faiss")
    if exclude_self:
        sims, idx = _drop_self(sims, idx, k)
    return sims, idx


def faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def exact_search(queries: torch.Tensor, bank: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest inner products of each query with the bank (normalised rows: cosine), in chunks."""
    parts = [torch.topk(chunk @ bank.T, k, dim=1) for chunk in queries.split(QUERY_CHUNK)]
    return torch.cat([p.values for p in parts]), torch.cat([p.indices for p in parts])


def build_index(bank: torch.Tensor, nlist: int | None = None, nprobe: int | None = None):
    """A faiss inverted-file index of the L2-normalised ``bank`` (inner product = cosine): ``nlist``
    cells (default about 4·√n, at most n / 39 so that each has the points k-means needs), trained on up
    to 64 points a cell; ``nprobe`` (default 32) of them searched per query."""
    try:
        import faiss
    except ImportError:
        raise ByolError("a bank this large is searched with faiss: pip install 'byol[index]' (faiss-cpu)") from None
    x = np.ascontiguousarray(F.normalize(bank.float(), dim=1).numpy())
    n, d = x.shape
    nlist = nlist or max(1, min(round(4 * math.sqrt(n)), n // 39))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = x if n <= 64 * nlist else x[np.random.default_rng(0).choice(n, 64 * nlist, replace=False)]
    index.train(sample)
    index.add(x)
    index.nprobe = min(nlist, nprobe or 32)
    return index


def _faiss_search(queries: torch.Tensor, bank: torch.Tensor, k: int, nprobe: int | None):
    index = build_index(bank, nprobe=nprobe)
    sims, idx = index.search(np.ascontiguousarray(queries.numpy()), k)
    return torch.from_numpy(sims), torch.from_numpy(idx).long()


def _drop_self(sims: torch.Tensor, idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's own row taken out of its neighbours (query i is bank row i), ``k`` kept."""
    own = idx == torch.arange(len(idx)).unsqueeze(1)
    # Rows that did not find themselves (a copy ranked first) drop their last neighbour instead.
    own[~own.any(dim=1), -1] = True
    keep = ~own
    return sims[keep].view(len(idx), k), idx[keep].view(len(idx), k)


SCALE_NEIGHBOUR, SPREADS_BELOW = 10, 12.0  # the automatic duplicate threshold (``duplicate_threshold``)


def duplicate_threshold(embeddings: torch.Tensor) -> float:
    """The cosine similarity from which two images of this bank count as near-duplicates, from the
    bank's own scale: how far each image is from its 10th nearest other (``d = 1 − cosine``, in logs),
    its median over the bank, and 12 median absolute deviations below it (``1 − exp(median − 12·MAD)``).

    What "similar" means depends on the encoder: two distinct CIFAR images reach 0.94 in a well-trained
    encoder's embedding and 0.995 in a barely trained one's, so no fixed cosine serves both. Resized
    and re-encoded copies sit far below the bank's typical distances in either; distinct images, in
    three encoders tried, did not come within 10 deviations (the closest at 9.7)."""
    if len(embeddings) <= SCALE_NEIGHBOUR:
        raise ByolError(
            f"{len(embeddings)} images are too few to set a duplicate threshold from (more than "
            f"{SCALE_NEIGHBOUR}); give one: --duplicates 0.98"
        )
    sims, _ = nearest(embeddings, embeddings, SCALE_NEIGHBOUR, exclude_self=True)
    far = (1 - sims[:, -1].double()).clamp(min=1e-12).log()
    median = far.median()
    spread = (far - median).abs().median()
    return float(1 - torch.exp(median - SPREADS_BELOW * spread))


def near_duplicates(
    embeddings: torch.Tensor, threshold: float | None = None, k: int = 10
) -> tuple[list[tuple[int, int, float]], float]:
    """Pairs ``(i, j, similarity)`` with ``i < j`` whose cosine similarity is at least ``threshold``
    (None: ``duplicate_threshold``), most similar first, and the threshold used. Each image's ``k``
    nearest others are searched (``nearest``), so an image with more than ``k`` copies reports its
    ``k`` closest."""
    threshold = duplicate_threshold(embeddings) if threshold is None else threshold
    k = min(k, len(embeddings) - 1)
    if k < 1:
        return [], threshold
    sims, idx = nearest(embeddings, embeddings, k, exclude_self=True)
    pairs = {}
    for i, (row_s, row_i) in enumerate(zip(sims.tolist(), idx.tolist())):
        for s, j in zip(row_s, row_i):
            if s >= threshold:
                pairs[(min(i, j), max(i, j))] = s
    return sorted(((i, j, s) for (i, j), s in pairs.items()), key=lambda p: -p[2]), threshold
