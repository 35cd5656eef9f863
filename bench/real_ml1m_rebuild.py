"""Rebuild a MovieLens-1M ``ratings.dat`` from public pieces smaller than 4 MiB (no data is committed).

No public copy of the whole ``ml-1m/ratings.dat`` (24 MB) was reachable from this machine
(mirrors of files of 4 MiB or more arrive without the file). Three smaller public pieces
together hold every rating of 4 or 5 (the clicks of bench/bench_real.py) and most of the others:

* ``ratings.dat.gz`` of github.com/dev-sumanta/dsmlai (2.9 MB): the first 487,650 lines of the
  original file, i.e. every rating of users 1..2999;
* github.com/amahuli00/rec_system, an 80/10/10 split of ML-1M by timestamp:
  ``data/splits/val_ratings.parquet`` and ``test_ratings.parquet`` in their first, unfiltered
  version (blobs 2ad7432b, e43f0536: 100,021 rows each, every rating from 2000-12-02 on) and
  ``candidate_gen/artifacts/data/train_positives.parquet`` (every rating >= 4 of the first 80%).

Users 1..2999 come from the first piece, users 3000..6040 from the other two. Missing: the
ratings 1-3 given before 2000-12-02 by users 3000..6040 (199,435 rows), which the original
file has. The checks the script prints (and bench_real.py's docs quote): 800,774 ratings,
575,281 of them >= 4 (= ML-1M's 348,971 fours + 226,310 fives), and the overlapping rows of the
two sources (users 1..2999 after 2000-12-02, and their ratings >= 4 before) identical.

    .venv/bin/python bench/real_ml1m_rebuild.py --half ratings.dat.gz --val val.parquet \\
        --test test.parquet --train-positives train_positives.parquet --out bench/data/ml-1m/ratings.dat
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

COLS = ["user", "item", "rating", "ts"]


def rebuild(half: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, train_pos: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Users < 3000 from ``half``; users >= 3000 from the split pieces. Returns (ratings, checks)."""
    later = pd.concat([val, test], ignore_index=True)
    first_later = int(later["ts"].min())
    old = half[half["user"] < 3000]
    new = pd.concat([train_pos[train_pos["user"] >= 3000], later[later["user"] >= 3000]], ignore_index=True)
    out = pd.concat([old, new], ignore_index=True).drop_duplicates(["user", "item"])
    overlap_late = later[later["user"] < 3000].merge(half, on=["user", "item"], how="left", suffixes=("", "_h"))
    half_pos = half[(half["rating"] >= 4) & (half["ts"] < first_later)]
    overlap_pos = half_pos.merge(train_pos, on=COLS, how="inner")
    checks = {
        "ratings": len(out),
        "users": int(out["user"].nunique()),
        "items": int(out["item"].nunique()),
        "ratings_ge_4": int((out["rating"] >= 4).sum()),
        "by_rating": {int(k): int(v) for k, v in out["rating"].value_counts().sort_index().items()},
        "ts_min": pd.to_datetime(out["ts"].min(), unit="s").isoformat(),
        "ts_max": pd.to_datetime(out["ts"].max(), unit="s").isoformat(),
        "late_rows_users_lt_3000": len(overlap_late),
        "late_rows_differing": int(((overlap_late["rating"] != overlap_late["rating_h"]) | (overlap_late["ts"] != overlap_late["ts_h"])).sum()),
        "early_positives_users_lt_3000": len(half_pos),
        "early_positives_found_in_train_positives": len(overlap_pos),
        "ratings_missing_vs_ml1m": 1_000_209 - len(out),
    }
    return out.sort_values(["user", "ts", "item"], kind="stable"), checks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--half", type=Path, required=True, help="ratings.dat(.gz) of users 1..2999 (UserID::MovieID::Rating::Timestamp)")
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--test", type=Path, required=True)
    p.add_argument("--train-positives", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    half = pd.read_csv(a.half, sep="::", engine="python", names=COLS)

    def split(path: Path) -> pd.DataFrame:
        df = pd.read_parquet(path)
        return df.rename(columns=dict(zip(df.columns, COLS, strict=True)))

    out, checks = rebuild(half, split(a.val), split(a.test), split(a.train_positives))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(a.out.name + ".tmp")
    s = out[COLS].astype(str)
    lines = s["user"].str.cat([s["item"], s["rating"], s["ts"]], sep="::")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(a.out)
    for k, v in checks.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
