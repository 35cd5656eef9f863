"""Warm start: a new day's model begins from the published model's weights.

Tensors are matched by name; the categorical embedding tables by the FEATURE they embed (the
state-dict name holds only the table's position, and a new feature sorting first would
otherwise inherit another feature's rows). Embedding rows of known ids are kept and new rows
keep their fresh initialisation; other tensors are copied when their shapes match.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from core.results.training import WarmStartReport
from training.towers import ModelSpec, TwoTowerModel

log = logging.getLogger(__name__)

_CAT_TABLE = re.compile(r"(user|item)\.core\.cat_embs\.(\d+)\.weight")


def _cat_columns(spec: ModelSpec, tower: str) -> tuple[str, ...]:
    return spec.user_cat_columns if tower == "user" else spec.item_cat_columns


def source_tensor_name(name: str, new: ModelSpec, old: ModelSpec) -> str | None:
    """The old state-dict name holding what ``name`` holds in the new model: itself, except a
    categorical table, which is the old table of the same feature (None: a feature the old
    model did not have)."""
    m = _CAT_TABLE.fullmatch(name)
    if m is None:
        return name
    tower, position = m.group(1), int(m.group(2))
    feature = _cat_columns(new, tower)[position]
    old_columns = _cat_columns(old, tower)
    if feature not in old_columns:
        return None
    return f"{tower}.core.cat_embs.{old_columns.index(feature)}.weight"


def warm_start(model: TwoTowerModel, src: Path) -> WarmStartReport:
    """Copy a previous model's weights from the exported directory ``src`` into ``model``."""
    old_spec = ModelSpec.from_json((src / "model_config.json").read_text())
    state = torch.load(src / "model_state.pt", map_location="cpu", weights_only=True)
    if (old_spec.dim, old_spec.id_dim, old_spec.feature_dim, tuple(old_spec.hidden)) != (
        model.spec.dim, model.spec.id_dim, model.spec.feature_dim, tuple(model.spec.hidden)
    ):
        log.warning("published model %s has other dimensions: training from scratch", src)
        return WarmStartReport(warm_start_from=None, skipped="dimensions differ")
    own = model.state_dict()
    copied, partial, skipped = 0, 0, []
    with torch.no_grad():
        for name, new in own.items():
            source = source_tensor_name(name, model.spec, old_spec)
            old = state.get(source) if source is not None else None
            if old is None:
                skipped.append(name)
            elif old.shape == new.shape:
                new.copy_(old)
                copied += 1
            elif old.dim() == 2 and old.shape[1] == new.shape[1] and name.endswith("weight") and "emb" in name:
                n = min(old.shape[0], new.shape[0])
                new[:n].copy_(old[:n])
                partial += 1
            else:
                skipped.append(name)
    return WarmStartReport(warm_start_from=str(src), tensors_copied=copied, tables_extended=partial, tensors_skipped=tuple(skipped))
