"""The serving bundle of a version: what embedding a user from RAW feature values needs, in
plain formats, so a serving host needs nothing but the version directory (no ETL table, no
twotower code). Written into the staged version by ``build_index_for_day`` and checksummed in
the manifest like every other file.

``serving/`` inside a version::

    bundle.json           the user tower's inputs in order (name, dtype, shape, columns) and how
                          each is built from raw values: vocabularies, normalisation statistics,
                          history length and padding; the index's search parameters; the towers'
                          TorchScript signatures
    vocabulary.parquet    vocab (string), value (string), id (int64) for ``user_id``,
                          ``user.<feature>`` of every categorical user feature and ``item_id``
                          (the history's ids), as of the run day
    reference_client.py   the reference client (this package's ``reference_client.py``)

The encoding is the ETL's (``etl.features``): categorical value -> its vocabulary id, unknown or
missing -> 0; numeric ``z = (x - mean) / std`` in float64 then float32, missing -> 0.0; history
= the clicked items' ids, newest first, unknown ids dropped, first ``history_length`` kept,
right-padded with 0. A version whose day lacks the ``vocabulary`` or ``feature_stats``
partition gets a bundle with ``complete: false`` and the missing inputs named.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from contracts.outputs import ITEM_CAT_PREFIX, ITEM_NUM_PREFIX, USER_CAT_PREFIX, USER_NUM_PREFIX
from contracts.schemas import OOV_ID
from storage.layout import Layout

log = logging.getLogger(__name__)

BUNDLE_DIR = "serving"
BUNDLE_FILE = "bundle.json"
VOCAB_FILE = "vocabulary.parquet"
CLIENT_FILE = "reference_client.py"
FORMAT_VERSION = 1
USER_VOCAB, ITEM_VOCAB = "user_id", "item_id"  # etl.vocab's names (not imported: no Spark here)
# Search-time parameters per index kind (FAISS ParameterSpace names; not stored in index.faiss).
SEARCH_PARAMS = {"ivf_flat": ("nprobe",), "ivf_pq": ("nprobe",), "hnsw": ("efSearch",)}


def _raw_name(column: str, prefix: str) -> str:
    return column[len(prefix) :] if column.startswith(prefix) else column


def _schema(path: Path) -> str | None:
    import torch

    try:
        return str(torch.jit.load(str(path), map_location="cpu").forward.schema)
    except Exception as exc:  # a signature we cannot read is reported, not fatal
        log.warning("serving bundle: cannot read the TorchScript signature of %s: %s", path, exc)
        return None


def write_query_tower(user_tower: Path, out: Path) -> None:
    """TorchScript ``query_tower.pt``: the user tower followed by ``[u/|u|, 1] / sqrt(2)``.

    The index with the popularity prior holds ``[v_i/|v_i|, w_i]`` (indexing.builder.prior_item_vectors),
    so a query needs the extra 1; built into the served tower, every client (the reference
    client, ``twotower query``) ranks by the blended score without knowing about the prior.
    Same four inputs as the user tower; output float32 [B, d + 1], unit norm.
    """
    import torch

    class QueryTower(torch.nn.Module):
        def __init__(self, tower: torch.nn.Module) -> None:
            super().__init__()
            self.tower = tower

        def forward(self, user_idx: torch.Tensor, user_cat: torch.Tensor, user_num: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
            u = torch.nn.functional.normalize(self.tower(user_idx, user_cat, user_num, hist), dim=1)
            one = torch.ones(u.shape[0], 1, dtype=u.dtype, device=u.device)
            return torch.cat([u, one], dim=1) * 0.7071067811865476

    tower = torch.jit.load(str(user_tower), map_location="cpu").eval()
    torch.jit.save(torch.jit.script(QueryTower(tower)), str(out))


def write_serving_bundle(layout: Layout, ds: str, version_dir: Path, model_config: dict[str, Any], index: dict[str, Any],
                         prior: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``serving/`` into ``version_dir`` (a staged version); returns the bundle.

    Args:
        layout: where the day's ``vocabulary`` and ``feature_stats`` partitions are.
        ds: the run day.
        version_dir: the version being staged (``user_tower.pt`` already in it).
        model_config: the model's ``model_config.json`` (column order, history length).
        index: ``IndexSpec.to_dict()`` of the version's index (kind, params).
        prior: the manifest's popularity-prior entry, None without one; with it the served
            tower is ``query_tower.pt`` (``query_tower.pt`` already in ``version_dir``).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = Path(version_dir) / BUNDLE_DIR
    out.mkdir(parents=True, exist_ok=True)
    missing: list[str] = []
    cat_cols = list(model_config.get("user_cat_columns", []))
    num_cols = list(model_config.get("user_num_columns", []))
    cats = [{"column": c, "feature": _raw_name(c, USER_CAT_PREFIX), "vocab": f"user.{_raw_name(c, USER_CAT_PREFIX)}"} for c in cat_cols]
    wanted = [USER_VOCAB, ITEM_VOCAB, *(c["vocab"] for c in cats)]

    sizes: dict[str, int] = {}
    vocab_part = layout.path_for("vocabulary", ds)
    if vocab_part.is_dir():
        table = pq.read_table(vocab_part, columns=["vocab", "value", "id"])
        table = table.filter(pc.is_in(table.column("vocab"), pa.array(wanted))).sort_by([("vocab", "ascending"), ("id", "ascending")])
        table = table.cast(pa.schema([("vocab", pa.string()), ("value", pa.string()), ("id", pa.int64())]))
        pq.write_table(table, out / VOCAB_FILE)
        counts = pc.value_counts(table.column("vocab")).to_pylist()
        sizes = {str(r["values"]): int(r["counts"]) for r in counts}
        # An empty categorical vocabulary is legal (every value null: all 0); the id vocabularies are not.
        missing += [f"vocabulary {v} (table vocabulary, partition ds={ds})" for v in (USER_VOCAB, ITEM_VOCAB) if v not in sizes]
    else:
        missing.append(f"table vocabulary, partition ds={ds} ({vocab_part})")

    nums = [{"column": c, "feature": _raw_name(c, USER_NUM_PREFIX)} for c in num_cols]
    stats_part = layout.path_for("feature_stats", ds)
    if nums:
        if stats_part.is_dir():
            rows = pq.read_table(stats_part, columns=["feature", "mean", "std"]).to_pylist()
            by_name = {r["feature"]: r for r in rows}
            for n in nums:
                r = by_name.get(n["column"]) or by_name.get(USER_NUM_PREFIX + n["feature"])
                if r is None:
                    missing.append(f"feature_stats of {n['column']} (table feature_stats, partition ds={ds})")
                else:
                    n["mean"], n["std"] = float(r["mean"]), float(r["std"])
        else:
            missing.append(f"table feature_stats, partition ds={ds} ({stats_part})")

    h = int(model_config.get("history_length", 0))
    dim = int(model_config.get("dim", 0))
    tower_file = "query_tower.pt" if prior else "user_tower.pt"
    output_note = "L2-normalised user embedding"
    metric = "inner product of L2-normalised vectors (cosine); normalise the user embedding (faiss.normalize_L2)"
    if prior:
        dim += 1
        output_note = "[u/|u|, 1] / sqrt(2) (unit norm): the user embedding and the popularity prior's constant"
        metric = (f"inner product = (cos(u, i) + beta * tau * log(1 + c_i)) / sqrt(2), beta {prior['beta']}, tau "
                  f"{prior['temperature']}, c_i = distinct users clicking i on {prior['count_days'][0]}..{prior['count_days'][-1]}; "
                  "the query tower's output is already unit norm (normalising it again changes nothing)")
    bundle = {
        "format_version": FORMAT_VERSION,
        "version": ds,
        "complete": not missing,
        "missing": missing,
        "oov_id": OOV_ID,
        "user_tower": {
            "file": tower_file,
            "load": "torch.jit.load(path, map_location='cpu').eval(); call it with the four inputs in this order",
            "schema": _schema(Path(version_dir) / tower_file),
            "inputs": [
                {"name": "user_idx", "dtype": "int64", "shape": ["B"], "vocab": USER_VOCAB,
                 "rule": "id of the raw user_id in vocab user_id; unknown or missing -> 0"},
                {"name": "user_cat", "dtype": "int64", "shape": ["B", len(cats)], "columns": cats,
                 "rule": "per column, in order: id of str(raw value) in the column's vocab; unknown or missing -> 0"},
                {"name": "user_num", "dtype": "float32", "shape": ["B", len(nums)], "columns": nums,
                 "rule": "per column, in order: (x - mean) / std in float64, then float32; missing or NaN -> 0.0 (the mean)"},
                {"name": "hist", "dtype": "int64", "shape": ["B", max(h, 1)], "vocab": ITEM_VOCAB, "length": h, "width": max(h, 1),
                 "rule": "raw ids of the items the user clicked, newest first -> ids in vocab item_id; unknown ids dropped; "
                         "the first `length` kept; right-padded with 0 to `width`"},
            ],
            "output": {"dtype": "float32", "shape": ["B", dim], "note": output_note},
        },
        "item_tower": {
            "file": "item_tower.pt",
            "schema": _schema(Path(version_dir) / "item_tower.pt"),
            "inputs": [
                {"name": "item_idx", "dtype": "int64", "shape": ["B"], "vocab": ITEM_VOCAB},
                {"name": "item_cat", "dtype": "int64", "shape": ["B", len(model_config.get("item_cat_columns", []))],
                 "columns": [_raw_name(c, ITEM_CAT_PREFIX) for c in model_config.get("item_cat_columns", [])]},
                {"name": "item_num", "dtype": "float32", "shape": ["B", len(model_config.get("item_num_columns", []))],
                 "columns": [_raw_name(c, ITEM_NUM_PREFIX) for c in model_config.get("item_num_columns", [])]},
            ],
            "note": "the index already holds every live item's embedding (item_embeddings.npy); serving users needs no item tower",
        },
        "index": {
            "file": "index.faiss",
            "load": "faiss.read_index(path); then faiss.ParameterSpace().set_index_parameter(index, name, value) per search_params",
            "metric": metric,
            "kind": index.get("kind"),
            "factory": index.get("factory"),
            "search_params": {k: (index.get("params") or {})[k] for k in SEARCH_PARAMS.get(index.get("kind"), ()) if k in (index.get("params") or {})},
            "labels": "item_idx (-1 = no result)",
            "item_ids": {"file": "item_ids.parquet", "columns": ["item_idx", "item_id"]},
        },
        "vocabulary": {"file": f"{BUNDLE_DIR}/{VOCAB_FILE}", "columns": {"vocab": "string", "value": "string", "id": "int64"}, "sizes": sizes},
        "client": f"{BUNDLE_DIR}/{CLIENT_FILE}",
    }
    (out / BUNDLE_FILE).write_text(json.dumps(bundle, indent=2, sort_keys=True))
    shutil.copyfile(Path(__file__).with_name(CLIENT_FILE), out / CLIENT_FILE)
    if missing:
        log.warning("ds=%s: serving bundle incomplete (raw-feature serving unavailable): %s", ds, "; ".join(missing))
    return bundle
