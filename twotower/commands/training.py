"""``twotower train`` and ``twotower evaluate``: thin wrappers over the pipeline's train and
evaluate steps (nothing heavy imported at module level; torch loads only when a command runs)."""

from __future__ import annotations

import argparse

from core.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train, export and evaluate the two-tower model for one day")
    p.add_argument("--ds", required=True, help="run day YYYY-MM-DD (reads that day's ETL outputs)")
    p.add_argument(
        "--ablate",
        default="",
        metavar="SWITCHES",
        help="comma-separated switches to turn off: logq, hard_negatives, resampling, sampled_negatives, "
        "history, features, warm_start",
    )
    p.add_argument("--full-retrain", action="store_true", help="ignore the published model (no warm start)")
    p.add_argument("--no-record", action="store_true", help="do not write the run report's stage stats (ablation runs)")
    p.add_argument(
        "--no-evaluate",
        action="store_true",
        help="skip the held-out evaluation (run `twotower evaluate --ds D` before `twotower index --ds D`)",
    )
    p.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="evaluate day D's trained model against the baselines (and oracle)")
    e.add_argument("--ds", required=True, help="run day YYYY-MM-DD")
    e.add_argument("--model-dir", help="evaluate this exported model directory instead (e.g. a published version)")
    e.set_defaults(func=_evaluate)


def _ablate(text: str) -> frozenset[str]:
    return frozenset(s.strip() for s in text.split(",") if s.strip())


def _summary(stats: dict) -> dict:
    keys = ("ds", "rows", "steps", "examples_per_second", "final_loss", "recall@50", "baseline_recall@50",
            "oracle_recall@50", "ablate", "warm_start_from", "model_dir", "wall_seconds")
    return {k: stats[k] for k in keys if k in stats}


def _headline(metrics: dict) -> dict:
    """recall@50 of the model, the baselines and the oracle (as train_day reports them)."""
    return {
        "recall@50": metrics["model"]["recall@50"],
        "baseline_recall@50": {k: v["recall@50"] for k, v in metrics["baselines"].items()},
        "oracle_recall@50": metrics["oracle"]["recall@50"] if metrics.get("oracle") else None,
    }


def _train(cfg: Config, args: argparse.Namespace) -> int:
    import os

    from twotower import pipeline
    from twotower.cli import print_json

    ablate = _ablate(args.ablate)
    if int(os.environ.get("RANK", "0")) > 0:
        # Under torchrun, worker 0 runs the pipeline step (the day's lock, the storage sync, the
        # statistics); the other workers train beside it and write nothing.
        from core.context import RunContext

        ctx = RunContext.build(cfg, args.ds)
        stats = pipeline.train_model(ctx, ablate=ablate, full_retrain=args.full_retrain, evaluate=False).to_dict()
    elif args.no_record or ablate:
        # Not the day's candidate of record (an ablation writes beside it): evaluated in place,
        # no stage statistics.
        stats = pipeline.train(cfg, args.ds, ablate=ablate, full_retrain=args.full_retrain,
                               evaluate=not args.no_evaluate, record=False).to_dict()
    else:
        stats = pipeline.train(cfg, args.ds, full_retrain=args.full_retrain).to_dict()
        if not args.no_evaluate:
            # The same two steps as the DAG (train, then evaluate), so metrics.json is complete
            # and `twotower index --ds D` can gate on it.
            metrics = pipeline.evaluate(cfg, args.ds).to_dict()
            stats = {**stats, **_headline(metrics)}
    print_json(_summary(stats))
    return 0


def _evaluate(cfg: Config, args: argparse.Namespace) -> int:
    from twotower.cli import print_json

    if args.model_dir:
        from pathlib import Path

        from twotower import operations

        print_json(operations.evaluate_model(cfg, args.ds, Path(args.model_dir)))
        return 0
    from twotower import pipeline

    metrics = pipeline.evaluate(cfg, args.ds).to_dict()
    print_json({"model": metrics["model"], "baselines": metrics["baselines"], "oracle": metrics["oracle"],
                "eval_users": metrics["eval_users"], "eval_targets": metrics["eval_targets"]})
    return 0
