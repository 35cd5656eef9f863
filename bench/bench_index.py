"""FAISS index benchmark: build time, memory, QPS and recall@K against exact search.

Cases:
  * ``random-N``: N x d structureless random normalised vectors (the worst case for any ANN
    index), queries = fresh random normalised vectors;
  * ``model``: a trained model directory's ``item_embeddings.npy`` with its held-out users'
    ``eval_user_embeddings.npy`` as queries (what the publish step measures).

For every case: the exact ``IDMap,Flat`` reference, then trade-off curves of IVF-Flat
(nprobe), HNSW (efSearch) and, optionally, IVF-PQ. All figures are measured in the same run;
the speedup column is QPS / exact QPS. Queries are searched in one batch (as serving-side
batch scoring and the publish step do).

    .venv/bin/python bench/bench_index.py --sizes 100000             # quick
    .venv/bin/python bench/bench_index.py --sizes 100000 1000000     # the 1M case (minutes)
    .venv/bin/python bench/bench_index.py --model-dir var/data/models/ds=2026-11-07 --sizes

Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexing.builder import IndexSpec, build_index, normalized, recall_at_k  # noqa: E402


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _index_mb(index) -> float:
    import faiss

    return faiss.serialize_index(index).nbytes / 2**20


def _search(index, q: np.ndarray, k: int, min_seconds: float) -> tuple[np.ndarray, float]:
    reps, start = 0, time.perf_counter()
    while True:
        _, labels = index.search(q, k)
        reps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return labels, reps * len(q) / elapsed


def _build(x, ids, spec):
    gc.collect()
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    index = build_index(x, ids, spec)
    return index, time.perf_counter() - t0, _rss_mb() - rss0


def bench_case(name: str, x: np.ndarray, q: np.ndarray, k: int, args) -> list[dict]:
    n, d = x.shape
    ids = np.arange(n, dtype=np.int64)
    q = normalized(q)
    print(f"\n=== {name}: {n:,} x {d}, {len(q):,} queries, recall@{k} vs exact ===", flush=True)
    rows: list[dict] = []

    exact, t_build, rss = _build(x, ids, IndexSpec("flat", "IDMap,Flat"))
    truth, exact_qps = _search(exact, q, k, args.min_seconds)
    print(f"{'index':22}{'param':>14}{'build s':>9}{'index MB':>10}{'RSS+MB':>8}{'QPS':>10}{'speedup':>9}{'recall':>8}")

    def emit(label, param, build_s, mb, rss_mb, qps, rec):
        rows.append({"case": name, "index": label, "param": param, "build_s": build_s, "index_mb": mb, "qps": qps, "speedup": qps / exact_qps, "recall": rec})
        print(f"{label:22}{param:>14}{build_s:>9.1f}{mb:>10.0f}{rss_mb:>8.0f}{qps:>10,.0f}{qps / exact_qps:>8.1f}x{rec:>8.4f}", flush=True)

    emit("Flat (exact)", "-", t_build, _index_mb(exact), rss, exact_qps, 1.0)
    del exact
    gc.collect()

    nlists = args.nlist or [max(16, min(4096, int(4 * np.sqrt(n))))]
    for nlist in nlists:
        if n // 39 < nlist:
            print(f"IVF{nlist}: skipped ({n:,} vectors < 39 x {nlist} training points)")
            continue
        spec = IndexSpec("ivf_flat", f"IVF{nlist},Flat", {"nlist": nlist, "nprobe": 1})
        index, t_build, rss = _build(x, ids, spec)
        mb = _index_mb(index)
        import faiss

        ivf = faiss.extract_index_ivf(index)
        for nprobe in [p for p in args.nprobe if p <= nlist]:
            ivf.nprobe = nprobe
            labels, qps = _search(index, q, k, args.min_seconds)
            emit(f"IVF{nlist},Flat", f"nprobe={nprobe}", t_build, mb, rss, qps, recall_at_k(labels, truth))
        if args.pq_m:
            del index
            gc.collect()
            spec = IndexSpec("ivf_pq", f"IVF{nlist},PQ{args.pq_m}x8", {"nlist": nlist, "nprobe": 1})
            if n >= 39 * 256:
                index, t_build, rss = _build(x, ids, spec)
                mb = _index_mb(index)
                ivf = faiss.extract_index_ivf(index)
                for nprobe in [p for p in args.nprobe if p <= nlist]:
                    ivf.nprobe = nprobe
                    labels, qps = _search(index, q, k, args.min_seconds)
                    emit(f"IVF{nlist},PQ{args.pq_m}x8", f"nprobe={nprobe}", t_build, mb, rss, qps, recall_at_k(labels, truth))
        del index
        gc.collect()

    if not args.no_hnsw:
        import faiss

        spec = IndexSpec("hnsw", f"IDMap,HNSW{args.hnsw_m}", {"M": args.hnsw_m, "efConstruction": args.ef_construction, "efSearch": 16})
        index, t_build, rss = _build(x, ids, spec)
        mb = _index_mb(index)
        hnsw = faiss.downcast_index(index.index).hnsw
        for ef in args.ef_search:
            hnsw.efSearch = max(ef, k)
            labels, qps = _search(index, q, k, args.min_seconds)
            emit(f"HNSW{args.hnsw_m}", f"efSearch={max(ef, k)}", t_build, mb, rss, qps, recall_at_k(labels, truth))
        del index
        gc.collect()

    good = [r for r in rows if r["recall"] >= args.target_recall and r["speedup"] >= args.target_speedup and r["index"] != "Flat (exact)"]
    if good:
        best = max(good, key=lambda r: r["speedup"])
        print(f"-> fastest setting with recall@{k} >= {args.target_recall} and >= {args.target_speedup:.0f}x exact: "
              f"{best['index']} {best['param']} (recall {best['recall']:.4f}, {best['speedup']:.1f}x)")
    else:
        print(f"-> no setting reached recall@{k} >= {args.target_recall} at >= {args.target_speedup:.0f}x exact QPS")
    return rows


def planted_vectors(preset_name: str, seed: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The simulator's planted item vectors of a full catalogue and ``n_queries`` users' vectors:
    the geometry a perfect two-tower model recovers (clusters by topic and subcategory)."""
    from logsim.engine import World
    from logsim.presets import get_preset

    world = World(get_preset(preset_name), seed)
    cat = world.catalogue(world.preset.item_lifetime_days)
    users = np.random.default_rng(seed).choice(len(world.users.latent), size=n_queries, replace=False)
    return cat.latent.astype(np.float32), world.users.latent[users].astype(np.float32)


def train_synthetic_model(n_items: int, seed: int) -> Path:
    """A real trained model (training.train.train_day) on ETL-shaped synthetic tables with a planted
    signal (tests.support.synthetic_etl), written to a temp dir; returns its model dir."""
    import tempfile

    from storage.layout import Layout
    from tests.conftest import make_config
    from tests.support.synthetic_etl import write_synthetic_etl
    from tests.support.training import train

    root = Path(tempfile.mkdtemp(prefix="bench-index-model-"))
    cfg = make_config(root, etl={"window_days": 4}, training={"epochs": 3, "min_steps": 1, "batch_size": 512, "seed": seed})
    ds = "2026-11-04"
    t0 = time.perf_counter()
    write_synthetic_etl(Layout(cfg.paths), ds, n_users=400, n_items=n_items, seed=seed)
    train(cfg, ds)
    print(f"trained a synthetic-data model over {n_items:,} items in {time.perf_counter() - t0:.0f} s: {root}", flush=True)
    return Layout(cfg.paths).model_dir(ds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[100_000], help="random catalogue sizes (none: skip)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("-k", type=int, default=100)
    p.add_argument("--model-dir", type=Path, action="append", default=[], help="trained model dir(s) (Layout.model_dir or a version)")
    p.add_argument("--model-label", action="append", default=[],
                   help="name of each --model-dir in the results (same order; default: the path)")
    p.add_argument("--planted", nargs="*", default=[], help="simulator presets whose planted vectors to bench (e.g. medium large)")
    p.add_argument("--synthetic-model", type=int, nargs="*", default=[], help="train a real model on synthetic tables with this many items")
    p.add_argument("--nlist", type=int, nargs="*", help="IVF list counts (default ~4 sqrt(N), at most 4096)")
    p.add_argument("--nprobe", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32, 64, 128])
    p.add_argument("--pq-m", type=int, default=0, help="also IVF-PQ with this many sub-quantizers (0: no)")
    p.add_argument("--no-hnsw", action="store_true")
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-construction", type=int, default=80)
    p.add_argument("--ef-search", type=int, nargs="*", default=[100, 128, 256, 512])
    p.add_argument("--min-seconds", type=float, default=0.5, help="repeat each batched search at least this long")
    p.add_argument("--target-recall", type=float, default=0.97)
    p.add_argument("--target-speedup", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print every measured row as one JSON list at the end (bench/run_all.py)")
    args = p.parse_args(argv)
    all_rows: list[dict] = []

    import faiss

    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads", flush=True)
    rng = np.random.default_rng(args.seed)
    for n in args.sizes:
        x = normalized(rng.standard_normal((n, args.dim), dtype=np.float32))
        q = normalized(rng.standard_normal((args.queries, args.dim), dtype=np.float32))
        all_rows += bench_case(f"random-{n}", x, q, args.k, args)
        del x
        gc.collect()
    for preset in args.planted:
        x, q = planted_vectors(preset, args.seed, args.queries)
        all_rows += bench_case(f"planted-{preset} (simulator truth)", x, q, args.k, args)
    temp_roots = []
    if len(args.model_label) > len(args.model_dir):
        raise SystemExit("--model-label: more labels than --model-dir arguments")
    labels = args.model_label + [str(d) for d in args.model_dir[len(args.model_label):]]
    cases = [(f"model: {label}", d) for label, d in zip(labels, args.model_dir, strict=True)]
    for n_items in args.synthetic_model:
        model_dir = train_synthetic_model(n_items, args.seed)
        temp_roots.append(model_dir.parents[2])  # <root>/data/models/ds=...
        cases.append((f"model: synthetic-{n_items} (training.fixtures tables, real training)", model_dir))
    for case, model_dir in cases:
        x = np.load(model_dir / "item_embeddings.npy", allow_pickle=False)
        q = np.load(model_dir / "eval_user_embeddings.npy", allow_pickle=False)
        if len(q) == 0:
            print(f"{model_dir}: no held-out user embeddings; skipped")
            continue
        q = q[np.random.default_rng(args.seed).permutation(len(q))[: args.queries]]
        all_rows += bench_case(case, x, q, min(args.k, len(x)), args)
    import shutil

    for root in temp_roots:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        import json

        print(json.dumps(all_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
