"""Offline check of the popularity prior on MovieLens-1M with existing published versions.

For each ``--version CUTOFF=VERSION_DIR`` (a version bench_real.py published for that cutoff),
scores the fold's users through the version's FAISS index (k = every item: the cosines), then
ranks by ``cos / tau + beta * log(1 + c_i)`` with c_i = distinct users clicking item i in
[cutoff - L days, cutoff), for every beta of ``--betas`` and L of ``--days``, with the
benchmark's own metric code (bench/real_eval.py). No training: the weights are the version's.
Choose (beta, L) on a validation cutoff only; the figures are in docs/training.md.

    .venv/bin/python bench/prior_offline.py --ml1m bench/data/ml-1m/ratings.dat \\
        --version 2000-10-09=var/exp/ml-val/art-x/two_tower/2000-10-08 --out var/prior_exp.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_real as br  # noqa: E402
from bench import real_eval as ev  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ml1m", type=Path, required=True)
    p.add_argument("--version", action="append", required=True, help="CUTOFF=VERSION_DIR (repeatable)")
    p.add_argument("--betas", default="0,0.25,0.5,1,2,4,8")
    p.add_argument("--days", default="7,28")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    events = br.load_movielens(a.ml1m)
    clicks = events[events["click"]]
    betas = [float(b) for b in a.betas.split(",")]
    out = []
    for spec in a.version:
        cutoff, vdir = spec.split("=", 1)
        c = br.day_ts(cutoff)
        fold = ev.build_fold(events, c, br.ML_TEST_DAYS * ev.DAY_S)
        score, _info = br.project_scorer(vdir, fold)
        tau = float(json.loads((Path(vdir) / "model_config.json").read_text())["temperature"])
        cos = score(np.arange(len(fold.user_ids)))  # inner products of unit vectors, -inf off the index
        res = {"cutoff": cutoff, "version": vdir, "tau": tau, "users": len(fold.user_ids), "grid": {}}
        for days in (int(d) for d in a.days.split(",")):
            recent = clicks[(clicks["ts"] >= c - days * ev.DAY_S) & (clicks["ts"] < c)].drop_duplicates(["user_id", "item_id"])
            counts = recent.groupby("item_id").size().reindex(fold.item_ids).fillna(0).to_numpy(np.float64)
            for b in betas:
                m = ev.evaluate(fold, lambda rows, b=b, counts=counts, cos=cos, tau=tau: cos[rows] / tau + b * np.log1p(counts))
                res["grid"][f"L{days}_b{b:g}"] = (round(m["recall@50"], 4), round(m["recall@50_se"], 4))
        rec = ev.evaluate(fold, lambda rows, fold=fold: np.broadcast_to(fold.recent, (len(rows), len(fold.item_ids))))
        res["recent_popularity"] = round(rec["recall@50"], 4)
        print(json.dumps(res), flush=True)
        out.append(res)
    if a.out:
        a.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
