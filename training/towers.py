"""User and item towers: id embedding + categorical embeddings + numeric features (+ the pooled
embedding of the user's recent clicks) -> optional SENet -> MLP -> one L2-normalised head per
objective. Towers return embeddings and nothing else; losses live in :mod:`training.losses`.

Both towers are TorchScript-able: ``forward`` is the exported serving signature (first head),
``forward_heads`` the training one. Ids outside a table (newer than the model, or negative) map
to 0 = out-of-vocabulary inside the tower, so any later day's data can be fed to an older model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from training.senet import SENet


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the model (saved as model_config.json)."""

    num_users: int
    num_items: int
    user_cat_columns: tuple[str, ...]
    user_cat_sizes: tuple[int, ...]
    user_num_columns: tuple[str, ...]
    item_cat_columns: tuple[str, ...]
    item_cat_sizes: tuple[int, ...]
    item_num_columns: tuple[str, ...]
    history_length: int
    dim: int = 64
    id_dim: int = 64
    feature_dim: int = 16
    hidden: tuple[int, ...] = (128,)
    # The softmax temperature tau (from training.temperature when the model is built): the losses
    # train with it, the evaluation and the index read it back to score cos / tau.
    temperature: float = 0.05
    senet: bool = False
    objectives: tuple[str, ...] = ("click",)
    # Example-age feature (Covington et al. 2016): the user tower embeds the training example's
    # age in days before the last trained day, clamped to [0, example_age_buckets - 1]; serving
    # and evaluation use age 0 ("now"). 0 = no such feature.
    example_age_buckets: int = 0
    extra: dict = field(default_factory=dict)  # run metadata (ds, training days, loss...): not used to build

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ModelSpec:
        raw = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items() if k in known}
        return cls(**kwargs)


def _oov(idx: Tensor, size: int) -> Tensor:
    return torch.where((idx >= 0) & (idx < size), idx, torch.zeros_like(idx))


def _mlp(in_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(in_dim, h), nn.ReLU()]
        in_dim = h
    return nn.Sequential(*layers)


class _TowerCore(nn.Module):
    """Shared body of both towers. Field embeddings -> (SENet) -> concat -> MLP -> heads."""

    def __init__(
        self,
        id_embedding: nn.Embedding,
        cat_sizes: tuple[int, ...],
        num_numeric: int,
        spec: ModelSpec,
        hist_embedding: nn.Embedding | None,
        age_buckets: int = 0,
    ) -> None:
        super().__init__()
        self.id_emb = id_embedding
        self.has_age = age_buckets > 0
        self.age_buckets = max(age_buckets, 1)
        self.age_emb = nn.Embedding(self.age_buckets, spec.feature_dim)
        self.cat_embs = nn.ModuleList([nn.Embedding(max(n, 1), spec.feature_dim) for n in cat_sizes])
        self.cat_sizes: list[int] = [max(n, 1) for n in cat_sizes]
        self.has_num = num_numeric > 0
        self.num_proj = nn.Linear(max(num_numeric, 1), spec.feature_dim)
        self.has_hist = hist_embedding is not None
        # An Embedding is always registered so TorchScript sees a fixed attribute type.
        self.hist_emb = hist_embedding if hist_embedding is not None else nn.Embedding(1, 1)
        self.num_ids = id_embedding.num_embeddings
        self.num_hist_ids = self.hist_emb.num_embeddings
        widths = [spec.id_dim] + [spec.feature_dim] * len(cat_sizes)
        widths += [spec.feature_dim] if self.has_num else []
        widths += [spec.id_dim] if self.has_hist else []
        widths += [spec.feature_dim] if self.has_age else []
        self.use_senet = spec.senet
        self.senet = SENet(len(widths))
        # Modules kept only so TorchScript sees fixed attribute types are frozen: frozen
        # parameters get no gradient, which DistributedDataParallel requires of unused ones.
        for used, module in (
            (spec.senet, self.senet), (self.has_num, self.num_proj), (self.has_hist, self.hist_emb), (self.has_age, self.age_emb)
        ):
            if not used:
                module.requires_grad_(False)
        self.mlp = _mlp(sum(widths), spec.hidden)
        last = spec.hidden[-1] if spec.hidden else sum(widths)
        self.heads = nn.ModuleList([nn.Linear(last, spec.dim) for _ in spec.objectives])

    def encode(self, idx: Tensor, cat: Tensor, num: Tensor, hist: Tensor, age: Optional[Tensor] = None) -> Tensor:  # noqa: UP045 (TorchScript)
        """[B, hidden]: the shared representation before the per-objective heads (``age`` [B]
        int64 days, read only with the example-age feature)."""
        fields: list[Tensor] = [self.id_emb(_oov(idx, self.num_ids))]
        for i, emb in enumerate(self.cat_embs):
            fields.append(emb(_oov(cat[:, i], self.cat_sizes[i])))
        if self.has_num:
            fields.append(self.num_proj(num))
        if self.has_hist:
            h = _oov(hist, self.num_hist_ids)
            mask = (h > 0).to(torch.float32).unsqueeze(-1)  # [B, H, 1]; 0 = padding / OOV
            pooled = (self.hist_emb(h) * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)
            fields.append(pooled)
        if self.has_age:
            a = torch.zeros_like(idx) if age is None else age
            fields.append(self.age_emb(a.clamp(0, self.age_buckets - 1)))
        if self.use_senet:
            fields = self.senet(fields)
        return self.mlp(torch.cat(fields, dim=1))

    def heads_out(self, x: Tensor) -> Tensor:
        """[K, B, d] L2-normalised embeddings, one per objective."""
        outs: list[Tensor] = []
        for head in self.heads:
            outs.append(F.normalize(head(x), dim=-1))
        return torch.stack(outs, dim=0)


class UserTower(nn.Module):
    def __init__(self, spec: ModelSpec, hist_embedding: nn.Embedding | None) -> None:
        super().__init__()
        user_emb = nn.Embedding(spec.num_users, spec.id_dim, sparse=True)
        self.core = _TowerCore(
            user_emb, spec.user_cat_sizes, len(spec.user_num_columns), spec, hist_embedding, spec.example_age_buckets
        )

    def forward_heads(
        self, user_idx: Tensor, user_cat: Tensor, user_num: Tensor, hist: Tensor, age: Optional[Tensor] = None  # noqa: UP045
    ) -> Tensor:
        """[K, B, d] per-objective embeddings; ``age`` int64 [B] example ages in days."""
        return self.core.heads_out(self.core.encode(user_idx, user_cat, user_num, hist, age))

    def forward(self, user_idx: Tensor, user_cat: Tensor, user_num: Tensor, hist: Tensor) -> Tensor:
        """user_idx int64[B], user_cat int64[B, Cu], user_num float32[B, Nu], hist int64[B, H] -> float32[B, d].
        Serving: example age 0 (as of the last trained day)."""
        return self.forward_heads(user_idx, user_cat, user_num, hist, None)[0]


class ItemTower(nn.Module):
    def __init__(self, spec: ModelSpec, item_embedding: nn.Embedding) -> None:
        super().__init__()
        self.core = _TowerCore(item_embedding, spec.item_cat_sizes, len(spec.item_num_columns), spec, None)

    def forward_heads(self, item_idx: Tensor, item_cat: Tensor, item_num: Tensor) -> Tensor:
        """[K, B, d] per-objective embeddings."""
        empty = torch.zeros(item_idx.shape[0], 0, dtype=torch.long, device=item_idx.device)
        return self.core.heads_out(self.core.encode(item_idx, item_cat, item_num, empty, None))

    def forward(self, item_idx: Tensor, item_cat: Tensor, item_num: Tensor) -> Tensor:
        """item_idx int64[B], item_cat int64[B, Ci], item_num float32[B, Ni] -> float32[B, d]."""
        return self.forward_heads(item_idx, item_cat, item_num)[0]


class TwoTowerModel(nn.Module):
    """The pair of towers. The item-id table is shared with the user's click-history pooling."""

    def __init__(self, spec: ModelSpec, use_history: bool = True) -> None:
        super().__init__()
        self.spec = spec
        item_emb = nn.Embedding(spec.num_items, spec.id_dim, sparse=True)
        self.item = ItemTower(spec, item_emb)
        hist = item_emb if (use_history and spec.history_length > 0) else None
        self.user = UserTower(spec, hist)
        self.reset_parameters()

    def reset_parameters(self, id_init_std: float = 0.05) -> None:
        """Feature tables ~ N(0, 0.05); id tables ~ N(0, id_init_std) (0 = zeros)."""
        ids = {id(self.user.core.id_emb), id(self.item.core.id_emb)}
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                std = id_init_std if id(m) in ids else 0.05
                if std > 0:
                    nn.init.normal_(m.weight, std=std)
                else:
                    nn.init.zeros_(m.weight)

    def forward(
        self, user_idx: Tensor, user_cat: Tensor, user_num: Tensor, hist: Tensor,
        item_idx: Tensor, item_cat: Tensor, item_num: Tensor, user_age: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Training forward (one call, so DistributedDataParallel sees every parameter):
        users [B] -> [K, B, d] and items [M] -> [K, M, d], K = number of objectives.
        ``user_age`` int64 [B]: example ages in days (None = 0, serving)."""
        return self.user.forward_heads(user_idx, user_cat, user_num, hist, user_age), self.item.forward_heads(item_idx, item_cat, item_num)

    def sparse_parameters(self) -> list[nn.Parameter]:
        """Id tables (sparse gradients, SparseAdam); everything else is dense (Adam)."""
        seen: dict[int, nn.Parameter] = {}
        for m in self.modules():
            if isinstance(m, nn.Embedding) and m.sparse and m.weight.requires_grad:
                seen[id(m.weight)] = m.weight
        return list(seen.values())

    def dense_parameters(self) -> list[nn.Parameter]:
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse and p.requires_grad]

    @classmethod
    def from_artifact(cls, model_dir: Path) -> TwoTowerModel:
        """Rebuild from ``model_config.json`` + ``model_state.pt`` (weights_only: no pickles)."""
        model_dir = Path(model_dir)
        spec = ModelSpec.from_json((model_dir / "model_config.json").read_text())
        model = cls(spec, use_history=bool(spec.extra.get("use_history", True)))
        state = torch.load(model_dir / "model_state.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model
