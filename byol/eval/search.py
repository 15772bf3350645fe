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
    exclude: torch.Tensor | None = None,
    nprobe: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` most similar rows of ``bank`` for each query (cosine), most similar first: their
    similarities and indices, each ``(Q, k)``. ``exclude``: each query's own row in the bank (queries
    taken from the bank), which is not its neighbour. ``backend``: ``auto``, ``torch`` or ``faiss``;
    ``nprobe``: the faiss index's cells searched per query."""
    n, own = len(bank), int(exclude is not None)
    if k < 1 or k + own > n:
        raise ByolError(f"--k {k} is more than the {n - own} other images of the bank" if k >= 1
                        else f"--k must be at least 1, got {k}")  # fmt: skip
    if backend == "auto":
        backend = "faiss" if n >= INDEX_FROM and len(queries) >= INDEX_QUERIES and faiss_available() else "torch"
    queries, bank = F.normalize(queries.float(), dim=1), F.normalize(bank.float(), dim=1)
    if backend == "torch":
        sims, idx = exact_search(queries, bank, k + own)
    elif backend == "faiss":
        sims, idx = _faiss_search(queries, bank, k + own, nprobe)
    else:
        raise ByolError(f"search backend {backend!r}: use auto, torch or faiss")
    if exclude is not None:
        sims, idx = _drop_own(sims, idx, exclude, k)
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


def _drop_own(sims: torch.Tensor, idx: torch.Tensor, own: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query's own bank row (``own``) taken out of its neighbours, ``k`` kept."""
    is_own = idx == own.view(-1, 1)
    # Rows that did not find themselves (copies ranked ahead, or the index missed them) drop their last.
    is_own[~is_own.any(dim=1), -1] = True
    keep = ~is_own
    return sims[keep].view(len(idx), k), idx[keep].view(len(idx), k)


SCALE_NEIGHBOUR, SPREADS_BELOW = 10, 12.0  # the automatic duplicate threshold (``duplicate_threshold``)


def duplicate_threshold(embeddings: torch.Tensor, neighbours: torch.Tensor | None = None) -> float:
    """The cosine similarity from which two images of this bank count as near-duplicates, from the
    bank's own scale: how far each image is from its 10th nearest other (``d = 1 − cosine``, in logs),
    its median over the bank, and 12 median absolute deviations below it (``1 − exp(median − 12·MAD)``).
    ``neighbours``: each image's similarities to its nearest others, when already searched.

    What "similar" means depends on the encoder: two distinct CIFAR images reach 0.94 in a well-trained
    encoder's embedding and 0.995 in a barely trained one's, so no fixed cosine serves both. Resized
    and re-encoded copies sit far below the bank's typical distances in either; distinct images, in
    three encoders tried, did not come within 10 deviations (the closest at 9.7)."""
    if len(embeddings) <= SCALE_NEIGHBOUR:
        raise ByolError(
            f"{len(embeddings)} images are too few to set a duplicate threshold from (more than "
            f"{SCALE_NEIGHBOUR}); give one: --duplicates 0.98"
        )
    if neighbours is None or neighbours.shape[1] < SCALE_NEIGHBOUR:
        neighbours, _ = nearest(embeddings, embeddings, SCALE_NEIGHBOUR, exclude=torch.arange(len(embeddings)))
    far = (1 - neighbours[:, SCALE_NEIGHBOUR - 1].double()).clamp(min=1e-12).log()
    median = far.median()
    spread = (far - median).abs().median()
    return float(1 - torch.exp(median - SPREADS_BELOW * spread))


def near_duplicates(
    embeddings: torch.Tensor, threshold: float | None = None, k: int = SCALE_NEIGHBOUR
) -> tuple[list[tuple[int, int, float]], float]:
    """Pairs ``(i, j, similarity)`` with ``i < j`` whose cosine similarity is at least ``threshold``
    (None: ``duplicate_threshold``, from the same search), most similar first, and the threshold used.
    Each image's ``k`` nearest others are searched once (``nearest``), so an image with more than ``k``
    copies reports its ``k`` closest."""
    n = len(embeddings)
    k = min(k, n - 1)
    if k < 1:
        return [], 1.0 if threshold is None else threshold
    sims, idx = nearest(embeddings, embeddings, k, exclude=torch.arange(n))
    threshold = duplicate_threshold(embeddings, sims) if threshold is None else threshold
    hit = sims >= threshold
    rows = torch.arange(n).view(-1, 1).expand_as(idx)[hit]
    a, b = torch.minimum(rows, idx[hit]), torch.maximum(rows, idx[hit])
    pair_sims = sims[hit]
    order = torch.argsort(pair_sims, descending=True, stable=True)  # the first of each pair is its best
    pairs, seen = [], set()
    for i, j, s in zip(a[order].tolist(), b[order].tolist(), pair_sims[order].tolist()):
        if (i, j) not in seen:
            seen.add((i, j))
            pairs.append((i, j, s))
    return pairs, threshold
