"""Training throughput: the real data path against the model-bound ceiling, in the same run.

  * data path: ``TrainStream`` reads the Parquet shards (Arrow batches -> tensors, shuffle
    buffer) and feeds ``Trainer.step``;
  * ceiling: the same model, batch size and negatives, fed from batches already in memory;
  * overhead = 1 - data-path rate / ceiling rate (goal: < 20%);
  * fraction of the machine's matmul peak: the step's dense FLOPs (towers' linear layers and the
    logits matmul, forward + backward = 3x forward) per second over torch's 2048x2048 fp32
    matmul GFLOP/s measured here.

Usage: ``python bench/bench_training.py [--ds D]`` (config from twotower.toml + environment).
With no ETL output for D under the data root, a synthetic ETL-shaped day (tests.support.synthetic_etl)
is written to a temp dir. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def step_flops(trainer, batch_size: int) -> float:
    """Dense FLOPs of one step: linear layers of both towers + the logits matmul, x3 (fwd+bwd)."""
    from torch import nn

    def tower_flops(tower) -> int:
        return sum(2 * m.in_features * m.out_features for m in tower.modules() if isinstance(m, nn.Linear) and m.weight.requires_grad)

    spec = trainer.model.spec
    n_items = batch_size * (1 + trainer.n_hard + trainer.n_easy) + trainer.shared
    fwd = batch_size * tower_flops(trainer.model.user) + n_items * tower_flops(trainer.model.item)
    pool = batch_size + trainer.shared
    fwd += 2 * batch_size * (pool + trainer.n_hard) * spec.dim * len(spec.objectives)
    return 3.0 * fwd


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ds", default="2026-11-07")
    ap.add_argument("--steps", type=int, default=60, help="timed steps per mode")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()

    import dataclasses

    import torch

    from contracts.days import parse_ds
    from core.config_load import load_config
    from core.context import RunContext
    from storage.layout import Layout
    from training.columns import FeatureColumns
    from training.data import file_schema_names, load_catalogue, partition_files, table_sizes
    from training.loop import Trainer
    from training.negatives import build_negatives
    from training.stream import TrainStream
    from training.towers import TwoTowerModel
    from training.train import model_spec
    from training.workers import dist_info_from_env, setup_process

    cfg = load_config()
    if args.batch_size:
        cfg = cfg.replace(training=dataclasses.replace(cfg.training, batch_size=args.batch_size))
    layout = Layout(cfg.paths)
    source = "etl"
    tmp = None
    if not layout.path_for("train_examples", args.ds).is_dir():
        from tests.support.synthetic_etl import write_synthetic_etl

        tmp = tempfile.TemporaryDirectory(prefix="bench_training_")
        paths = dataclasses.replace(cfg.paths, data_root=Path(tmp.name) / "data")
        cfg = cfg.replace(paths=paths, etl=dataclasses.replace(cfg.etl, window_days=8))
        layout = Layout(cfg.paths)
        write_synthetic_etl(layout, args.ds, n_users=20_000, n_items=5_000, window_days=8, clicks_per_user_day=4,
                            history_length=cfg.features.history_length, shards=8, seed=0)
        source = "synthetic (training.fixtures)"

    info = dist_info_from_env()
    device = setup_process(cfg, info)
    gflops_peak = matmul_gflops()
    t = cfg.training
    files = partition_files(layout, "train_examples", args.ds)
    cols = FeatureColumns.discover(file_schema_names(files))
    sizes = table_sizes(layout, args.ds, cols)
    catalogue = load_catalogue(layout, args.ds, cols.item_cat, cols.item_num)
    sizes["item_id"] = max(sizes["item_id"], int(catalogue.item_idx.max()) + 1)
    ctx = RunContext.build(cfg, args.ds)
    model = TwoTowerModel(model_spec(cfg, cols, sizes, {}))
    negatives = build_negatives(ctx, catalogue, sizes["item_id"], frozenset())
    trainer = Trainer(model, t, negatives, device)
    last_day = parse_ds(ctx.window.last_train_day)
    stream = TrainStream(files, cols, cfg.features.history_length, max(cfg.etl.hard_negatives_per_request, 1), last_day,
                         batch_size=t.batch_size, read_batch_rows=t.read_batch_rows, seed=t.seed)
    need = args.warmup + args.steps

    def stream_batches():
        epoch = 0
        while True:
            yield from stream.epoch(epoch)
            epoch += 1

    # Ceiling: batches materialised in memory first (not timed), then only steps are timed.
    # Data path: read + convert + shuffle + step, exactly as Trainer.fit consumes the stream.
    # The two modes alternate in blocks so that a change in machine load hits both equally.
    it = stream_batches()
    cached = [next(it) for _ in range(min(need, 32))]
    for i in range(args.warmup):
        trainer.step(cached[i % len(cached)])
        trainer.step(next(it))
    ceiling_s = data_s = read_s = 0.0
    block = 5
    for start in range(0, args.steps, block):
        n = min(block, args.steps - start)
        t0 = time.perf_counter()
        for i in range(n):
            trainer.step(cached[(start + i) % len(cached)])
        ceiling_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(n):
            r0 = time.perf_counter()
            b = next(it)
            read_s += time.perf_counter() - r0
            trainer.step(b)
        data_s += time.perf_counter() - t0

    bs = t.batch_size
    ceiling_rate = args.steps * bs / ceiling_s
    data_rate = args.steps * bs / data_s
    flops = step_flops(trainer, bs)
    out = {
        "source": source,
        "rows": stream.total_rows,
        "shards": len(files),
        "batch_size": bs,
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "torch": torch.__version__,
        "python": platform.python_version(),
        "loss": t.loss,
        "negatives": {"hard": trainer.n_hard, "easy": trainer.n_easy, "shared": trainer.shared},
        "ceiling_examples_per_s": round(ceiling_rate, 1),
        "data_path_examples_per_s": round(data_rate, 1),
        "data_path_overhead": round(1.0 - data_rate / ceiling_rate, 4),
        "read_share_of_data_path": round(read_s / data_s, 4),
        "matmul_2048_gflops": round(gflops_peak, 1),
        "step_gflop": round(flops / 1e9, 3),
        "ceiling_gflops": round(flops * args.steps / ceiling_s / 1e9, 2),
        "fraction_of_matmul_peak": round(flops * args.steps / ceiling_s / 1e9 / gflops_peak, 4),
    }
    print(json.dumps(out, indent=2))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
