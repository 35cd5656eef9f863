"""Top-k items for users from a published version: features -> user tower -> index search.

The user's features come from the version's own ``user_features.parquet`` (a copy of the
run day's ETL partition) and the column lists in its ``model_config.json``, so a version
answers queries with nothing but its own directory.

Cold start (documented in docs/artifacts.md): a user absent from the version's user features
is embedded as the out-of-vocabulary user: ``user_idx`` 0, categorical ids 0 (OOV), numeric
features 0.0 (the training mean after z-normalisation) and an empty history. The towers map
every unseen id to that row, so this is the model's own answer for a user it knows nothing
about; results are flagged ``cold_start``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from contracts.outputs import USER_CAT_PREFIX, USER_NUM_PREFIX
from core.errors import PipelineError

OOV = 0


@dataclass(frozen=True)
class UserInputs:
    """User-tower inputs for B users (shapes as in the tower's ``forward``)."""

    user_idx: np.ndarray  # int64 [B]
    user_cat: np.ndarray  # int64 [B, Cu]
    user_num: np.ndarray  # float32 [B, Nu]
    hist: np.ndarray  # int64 [B, H]


def _resolve_column(frame_columns, name: str, prefix: str, what: str) -> str:
    if name in frame_columns:
        return name
    if prefix + name in frame_columns:
        return prefix + name
    raise PipelineError(
        f"user features lack the {what} column {name!r} that model_config.json lists "
        f"(columns: {', '.join(map(str, frame_columns))}); the version's user_features.parquet and "
        "model do not belong together: rebuild the version with `twotower index --ds D`"
    )


def user_inputs(frame, model_config: dict[str, Any]) -> UserInputs:
    """Tower inputs from rows of ``user_features`` (pandas), columns in ``model_config`` order.

    Nulls become OOV (categorical) or 0.0 (numeric, i.e. the mean); histories are cut or
    right-padded with 0 to ``history_length``.
    """
    cat_cols = [_resolve_column(frame.columns, c, USER_CAT_PREFIX, "categorical") for c in model_config.get("user_cat_columns", [])]
    num_cols = [_resolve_column(frame.columns, c, USER_NUM_PREFIX, "numeric") for c in model_config.get("user_num_columns", [])]
    b = len(frame)
    # Width at least 1, as the training stage's evaluation pads it (an all-padding history).
    h = max(int(model_config.get("history_length", 0)), 1)
    user_cat = np.zeros((b, len(cat_cols)), dtype=np.int64)
    for j, c in enumerate(cat_cols):
        user_cat[:, j] = frame[c].fillna(OOV).to_numpy(dtype=np.int64)
    user_num = np.zeros((b, len(num_cols)), dtype=np.float32)
    for j, c in enumerate(num_cols):
        user_num[:, j] = np.nan_to_num(frame[c].fillna(0.0).to_numpy(dtype=np.float32))
    hist = np.zeros((b, h), dtype=np.int64)
    if "u_hist" in frame.columns:
        for i, seq in enumerate(frame["u_hist"].to_numpy()):  # B is small (one query batch)
            if seq is not None and len(seq):
                s = np.asarray(seq, dtype=np.int64)[:h]
                hist[i, : len(s)] = s
    return UserInputs(frame["user_idx"].to_numpy(dtype=np.int64), user_cat, user_num, hist)


def cold_start_inputs(model_config: dict[str, Any], n: int = 1) -> UserInputs:
    """The out-of-vocabulary user (see module docstring)."""
    return UserInputs(
        np.full(n, OOV, dtype=np.int64),
        np.full((n, len(model_config.get("user_cat_columns", []))), OOV, dtype=np.int64),
        np.zeros((n, len(model_config.get("user_num_columns", []))), dtype=np.float32),
        np.zeros((n, max(int(model_config.get("history_length", 0)), 1)), dtype=np.int64),
    )


def embed_users(tower, inputs: UserInputs) -> np.ndarray:
    """Run the TorchScript user tower; returns float32 [B, d]."""
    import torch

    with torch.inference_mode():
        out = tower(
            torch.from_numpy(inputs.user_idx),
            torch.from_numpy(inputs.user_cat),
            torch.from_numpy(inputs.user_num),
            torch.from_numpy(inputs.hist),
        )
    return out.float().cpu().numpy()


def recommend(version, user_ids: list[str], k: int = 50) -> list[dict[str, Any]]:
    """Top-``k`` items for each user from a loaded version (:class:`indexing.artifacts.LoadedVersion`).

    Returns:
        One dict per user: ``user_id``, ``known`` (False = cold start), ``items``: list of
        ``{"rank", "item_id", "item_idx", "score"}`` sorted by descending score (cosine; with
        the popularity prior ``(cos + beta tau log(1 + c_i)) / sqrt(2)``, docs/artifacts.md).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    mc = version.model_config
    rows = version.user_rows(user_ids).drop_duplicates("user_id").set_index("user_id", drop=False)
    known = [u for u in user_ids if u in rows.index]
    emb = np.zeros((len(user_ids), int(version.manifest["dimension"])), dtype=np.float32)
    if known:
        emb_known = embed_users(version.user_tower, user_inputs(rows.loc[known].reset_index(drop=True), mc))
        pos = {u: i for i, u in enumerate(known)}
        for i, u in enumerate(user_ids):
            if u in pos:
                emb[i] = emb_known[pos[u]]
    unknown = [i for i, u in enumerate(user_ids) if u not in rows.index]
    if unknown:
        emb[unknown] = embed_users(version.user_tower, cold_start_inputs(mc, 1))[0]
    from indexing.builder import normalized

    k_eff = min(k, version.index.ntotal)
    scores, labels = version.index.search(normalized(emb), k_eff)
    item_ids = version.item_ids_for(labels.reshape(-1)).reshape(labels.shape)
    out = []
    for i, u in enumerate(user_ids):
        items = [
            {"rank": r + 1, "item_id": item_ids[i, r], "item_idx": int(labels[i, r]), "score": float(scores[i, r])}
            for r in range(k_eff)
            if labels[i, r] >= 0
        ]
        out.append({"user_id": u, "known": u in rows.index, "items": items})
    return out


def smoke_query(version, n_users: int) -> dict[str, Any]:
    """Query the first ``n_users`` users of the version; raise if anything looks wrong.

    Checks: every user gets ``min(10, ntotal)`` results, all labels map to catalogue item ids,
    scores are finite, non-increasing and within [-1, 1] (+ rounding); with the popularity
    prior (manifest ``prior``) within [-(1 + w_max), 1 + w_max] / sqrt(2).
    """
    prior = version.manifest.get("prior") or {}
    bound = (1.0 + float(prior["weight_max"])) / np.sqrt(2.0) + 1e-3 if prior else 1.001
    users = version.first_user_ids(max(1, n_users))
    users.append("__twotower_smoke_unknown_user__")  # the cold-start path must work too
    k = min(10, version.index.ntotal)
    results = recommend(version, users, k=k)
    for res in results:
        items = res["items"]
        scores = np.array([it["score"] for it in items], dtype=np.float64)
        problem = None
        if len(items) != k:
            problem = f"{len(items)} results instead of {k}"
        elif any(it["item_id"] is None for it in items):
            problem = "a result label has no item id in item_ids.parquet"
        elif not np.all(np.isfinite(scores)) or np.any(np.abs(scores) > bound):
            problem = f"scores outside [-{bound:.4f}, {bound:.4f}]: {scores[:5]}"
        elif np.any(np.diff(scores) > 1e-5):
            problem = "scores not sorted"
        if problem:
            raise PipelineError(f"smoke query on {version.path} for user {res['user_id']!r}: {problem}")
    return {"users": len(users), "k": k, "top1_score_mean": float(np.mean([r["items"][0]["score"] for r in results]))}
