"""Pure FAISS index factory: choose the index by catalogue size + config, build it, measure it.

Cosine similarity is the inner product of L2-normalised vectors, so every index uses
``METRIC_INNER_PRODUCT`` and inputs are normalised first. Index labels are the items'
``item_idx`` (int64): Flat and HNSW are wrapped in ``IDMap`` (they have no ids of their own),
IVF indexes store ids natively.

No I/O here: callers (``indexing.staging``, ``bench/bench_index.py``, tests) pass arrays in.
"""

from __future__ import annotations

import time

import numpy as np

from core.config import IndexConfig
from core.results.indexing import IndexSpec

# Below this many inverted lists IVF is not worth it: use exact search instead.
MIN_IVF_LISTS = 16
# PQ codebooks are k-means with 2**nbits centroids: FAISS warns below 39 points per centroid.
PQ_MIN_POINTS_PER_CENTROID = 39


def choose_index(n_items: int, dim: int, cfg: IndexConfig) -> IndexSpec:
    """Pick the index for a catalogue of ``n_items`` vectors of dimension ``dim``.

    Exact Flat up to ``cfg.flat_max_items``; above, ``cfg.kind_above_flat`` with its config
    parameters, adjusted when the catalogue cannot support them (each adjustment is a note):
    IVF ``nlist`` is capped to ``n_items // cfg.ivf_min_points_per_list`` (k-means needs that
    many points per list) and falls back to Flat under 16 lists; IVF-PQ needs ``dim``
    divisible by ``pq_m`` and ``39 * 2**pq_nbits`` training points, else it falls back to
    IVF-Flat.
    """
    if n_items <= 0:
        raise ValueError(f"cannot index an empty catalogue (n_items={n_items})")
    if dim <= 0:
        raise ValueError(f"invalid embedding dimension {dim}")
    if n_items <= cfg.flat_max_items:
        return IndexSpec("flat", "IDMap,Flat", {}, (f"{n_items} items <= index.flat_max_items={cfg.flat_max_items}: exact",))

    kind = cfg.kind_above_flat
    notes: list[str] = []
    if kind == "hnsw":
        return IndexSpec(
            "hnsw",
            f"IDMap,HNSW{cfg.hnsw_m}",
            {"M": cfg.hnsw_m, "efConstruction": cfg.hnsw_ef_construction, "efSearch": cfg.hnsw_ef_search},
        )

    max_lists = n_items // cfg.ivf_min_points_per_list
    nlist = cfg.ivf_nlist or auto_nlist(n_items)
    if nlist > max_lists:
        notes.append(
            f"nlist capped {nlist} -> {max_lists}: {n_items} items give at most "
            f"{cfg.ivf_min_points_per_list} training points per list for {max_lists} lists"
        )
        nlist = max_lists
    if nlist < MIN_IVF_LISTS:
        notes.append(f"IVF with {nlist} lists is pointless: falling back to exact Flat")
        return IndexSpec("flat", "IDMap,Flat", {}, tuple(notes))
    nprobe = min(cfg.ivf_nprobe, nlist)
    if nprobe != cfg.ivf_nprobe:
        notes.append(f"nprobe capped {cfg.ivf_nprobe} -> {nprobe} (= nlist)")

    if kind == "ivf_pq":
        need = PQ_MIN_POINTS_PER_CENTROID * (1 << cfg.pq_nbits)
        if dim % cfg.pq_m != 0:
            notes.append(f"PQ{cfg.pq_m} does not divide dimension {dim}: falling back to IVF-Flat")
        elif n_items < need:
            notes.append(
                f"PQ{cfg.pq_m}x{cfg.pq_nbits} needs {need} training points, catalogue has {n_items}: "
                "falling back to IVF-Flat"
            )
        else:
            return IndexSpec(
                "ivf_pq",
                f"IVF{nlist},PQ{cfg.pq_m}x{cfg.pq_nbits}",
                {"nlist": nlist, "nprobe": nprobe, "pq_m": cfg.pq_m, "pq_nbits": cfg.pq_nbits},
                tuple(notes),
            )
    return IndexSpec("ivf_flat", f"IVF{nlist},Flat", {"nlist": nlist, "nprobe": nprobe}, tuple(notes))


def auto_nlist(n_items: int) -> int:
    """Default IVF list count: 4 * sqrt(N), at least 16 (the usual FAISS rule of thumb)."""
    return max(MIN_IVF_LISTS, int(round(4 * np.sqrt(n_items))))


def normalized(x: np.ndarray) -> np.ndarray:
    """float32, C-contiguous, rows L2-normalised (a copy; zero rows stay zero)."""
    x = np.array(x, dtype=np.float32, order="C", copy=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 0)
    return x


# A query [u/|u|, 1] scaled to unit norm: normalising it again (every client does) is a no-op.
PRIOR_QUERY_SCALE = float(1.0 / np.sqrt(2.0))


def prior_item_vectors(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """float32 [N, d+1]: ``[v_i / |v_i|, w_i]`` for the popularity prior (training.prior).

    With queries from :func:`prior_queries` the inner product is ``(cos(u, i) + w_i) / sqrt(2)``;
    ``w_i = beta * tau * log(1 + c_i)`` makes that ``tau / sqrt(2) * (cos / tau + beta log(1 + c_i))``,
    the blended score up to a positive factor, so the index ranks by it exactly. Build the
    index with ``normalize=False`` (normalising would fold w_i into the cosine part).
    """
    w = np.asarray(weights, dtype=np.float32).reshape(-1, 1)
    x = normalized(vectors)
    if w.shape[0] != x.shape[0]:
        raise ValueError(f"popularity prior: {w.shape[0]} item weights for {x.shape[0]} item vectors")
    return np.ascontiguousarray(np.hstack([x, w]), dtype=np.float32)


def prior_queries(queries: np.ndarray) -> np.ndarray:
    """float32 [Q, d+1]: ``[u / |u|, 1] / sqrt(2)`` (unit norm), the query side of :func:`prior_item_vectors`."""
    q = normalized(queries)
    return np.ascontiguousarray(np.hstack([q, np.ones((q.shape[0], 1), np.float32)]) * PRIOR_QUERY_SCALE, dtype=np.float32)


def build_index(vectors: np.ndarray, ids: np.ndarray, spec: IndexSpec, seed: int = 1234, normalize: bool = True):
    """Build a FAISS index of ``vectors`` labelled by ``ids``.

    Args:
        vectors: float32 [N, d]; normalised here (cosine = inner product) unless ``normalize``
            is False (vectors of :func:`prior_item_vectors`, which carry the prior column).
        ids: int64 [N] labels (the items' ``item_idx``), unique.
        spec: from :func:`choose_index`.
        seed: k-means seed for IVF/PQ training (reproducible builds).

    Returns:
        A trained ``faiss.Index`` with N vectors and search parameters applied.
    """
    import faiss

    x = normalized(vectors) if normalize else np.array(vectors, dtype=np.float32, order="C", copy=True)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if x.ndim != 2 or ids.shape != (x.shape[0],):
        raise ValueError(f"vectors {x.shape} and ids {ids.shape} do not match: expected [N, d] and [N]")
    if np.unique(ids).size != ids.size:
        raise ValueError(f"item ids are not unique ({ids.size - np.unique(ids).size} duplicates)")
    index = faiss.index_factory(x.shape[1], spec.factory, faiss.METRIC_INNER_PRODUCT)
    if spec.kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efConstruction = int(spec.params["efConstruction"])
    if not index.is_trained:
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed = seed
        if spec.kind == "ivf_pq":
            faiss.downcast_index(ivf).pq.cp.seed = seed  # type: ignore[attr-defined]
        index.train(x)
    index.add_with_ids(x, ids)
    apply_search_params(index, spec)
    return index


def apply_search_params(index, spec: IndexSpec) -> None:
    """Set search-time parameters (``nprobe`` / ``efSearch``); they are not stored in the file."""
    import faiss

    if spec.kind in ("ivf_flat", "ivf_pq"):
        faiss.extract_index_ivf(index).nprobe = int(spec.params["nprobe"])
    elif spec.kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = int(spec.params["efSearch"])


def exact_index(vectors: np.ndarray, ids: np.ndarray, normalize: bool = True):
    """The exact reference: ``IDMap,Flat`` inner product on (normalised) vectors."""
    return build_index(vectors, ids, IndexSpec("flat", "IDMap,Flat"), normalize=normalize)


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / k (labels; -1 = no result).

    Args:
        approx, exact: int64 [Q, k] labels from the ANN and exact search.
    """
    if approx.shape != exact.shape:
        raise ValueError(f"shapes differ: {approx.shape} vs {exact.shape}")
    q, k = exact.shape
    if q == 0 or k == 0:
        return float("nan")
    hits = 0
    for a, e in zip(approx, exact, strict=True):
        hits += np.intersect1d(a[a >= 0], e[e >= 0], assume_unique=True).size
    return hits / (q * k)


def timed_search(index, queries: np.ndarray, k: int, min_seconds: float = 0.2) -> tuple[np.ndarray, float]:
    """Search ``queries`` (one batched call, repeated until ``min_seconds``).

    Returns:
        (labels int64 [Q, k], queries per second).
    """
    q = normalized(queries)
    reps = 0
    start = time.perf_counter()
    while True:
        _, labels = index.search(q, k)
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            break
    return labels, reps * q.shape[0] / elapsed


def tune_search_params(index, reference, queries: np.ndarray, k: int, spec: IndexSpec, target: float) -> tuple[IndexSpec, list[dict]]:
    """Double ``nprobe`` (IVF) or ``efSearch`` (HNSW) from the spec's value until the ANN
    recall@k of ``queries`` against ``reference`` reaches ``target`` (or the parameter its
    maximum: nlist, or 4096). Leaves the index set to the chosen value.

    Returns:
        (spec with the chosen parameter, the trials ``[{param, value, recall}]``).
    """
    if spec.exact or target <= 0:
        return spec, []
    name = "efSearch" if spec.kind == "hnsw" else "nprobe"
    limit = 4096 if spec.kind == "hnsw" else int(spec.params["nlist"])
    value = int(spec.params[name])
    if spec.kind == "hnsw":
        value = max(value, k)  # efSearch below k cannot return k good neighbours
    k = min(k, index.ntotal)
    q = normalized(queries)
    _, truth = reference.search(q, k)
    trials = []
    while True:
        chosen = IndexSpec(spec.kind, spec.factory, {**spec.params, name: value}, spec.notes)
        apply_search_params(index, chosen)
        _, labels = index.search(q, k)
        rec = recall_at_k(labels, truth)
        trials.append({"param": name, "value": value, "recall": rec})
        if rec >= target or value >= limit:
            break
        value = min(2 * value, limit)
    note = f"{name} tuned to {value}: recall@{k} {rec:.4f} on {len(q)} tuning queries (target {target})"
    if rec < target:
        note = f"{name} at its maximum {value} reaches only recall@{k} {rec:.4f} < target {target}"
    return IndexSpec(chosen.kind, chosen.factory, chosen.params, (*spec.notes, note)), trials


def measure_ann(index, reference, queries: np.ndarray, k: int, min_seconds: float = 0.2) -> dict[str, float]:
    """ANN recall@k of ``index`` against the exact ``reference`` and the QPS of both.

    Args:
        index: the index to judge; reference: exact index over the same vectors and ids.
        queries: float32 [Q, d] (normalised here), e.g. held-out users' embeddings.
        k: cut-off, at most the number of indexed vectors.
    """
    k = min(k, index.ntotal)
    exact_labels, exact_qps = timed_search(reference, queries, k, min_seconds)
    ann_labels, ann_qps = timed_search(index, queries, k, min_seconds)
    return {
        "k": int(k),
        "queries": int(queries.shape[0]),
        "recall": float(recall_at_k(ann_labels, exact_labels)),
        "qps_ann": float(ann_qps),
        "qps_exact": float(exact_qps),
        "speedup": float(ann_qps / exact_qps) if exact_qps > 0 else float("nan"),
    }
