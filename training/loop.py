"""The training loop: minibatches -> towers -> negatives -> loss -> SparseAdam + Adam.

Negatives (see docs/training.md):
  * in-batch: the other examples' positives (every loss that uses a pool);
  * catalogue: ``shared_negatives`` draws from the clicks^alpha alias table per batch (in-batch
    softmax) or ``num_negatives * (1 - hard_negative_fraction)`` per example (other losses);
  * hard: up to ``num_negatives * hard_negative_fraction`` ids from ``hard_neg_idx`` per example.
The logQ correction uses each pool column's expected count in the pool,
``Q_j = B * p_j + S * q_j`` (p_j: in-batch probability from the ETL table or the streaming
estimator, q_j: alias-table probability), so mixing in-batch and sampled negatives stays
unbiased. Under torchrun the pool is gathered from every worker (B and S are then global).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import Tensor, nn

from core.config import TrainingConfig
from training.data import Catalogue, ItemDayFeatures
from training.frequency import StreamingFrequencyEstimator
from training.losses import (
    InBatchSoftmaxLoss,
    ListwiseSoftmaxLoss,
    PointwiseLoss,
    TripletHingeLoss,
    TripletLogisticLoss,
)
from training.samplers import AliasSampler
from training.stream import Batch, TrainStream
from training.towers import TwoTowerModel
from training.workers import DistInfo

log = logging.getLogger(__name__)

ABLATIONS = (
    "logq", "hard_negatives", "resampling", "sampled_negatives", "history", "features", "warm_start",
    "example_age", "time_decay",
)


@dataclass
class Negatives:
    """Sampling state shared by every step."""

    catalogue: Catalogue
    sampler: AliasSampler | None
    inbatch_prob: Tensor  # [max_idx + 1] p_j per example, indexed by item_idx
    neg_prob: Tensor  # [max_idx + 1] q_j of the alias table, indexed by item_idx
    estimator: StreamingFrequencyEstimator | None = None
    # [max_idx + 1] per-item example weight undoing the ETL's resampling (the "resampling" ablation).
    resample_weight: Tensor | None = None
    # Time-dependent item features as of each training day: a sampled negative is seen as of its
    # example's day, like the positive (None: the catalogue's as-of-D values).
    day_features: ItemDayFeatures | None = None


@dataclass
class FitResult:
    """What one :meth:`Trainer.fit` did: steps, examples, time and the losses."""

    steps: int = 0
    examples: int = 0
    seconds: float = 0.0
    loss_curve: list[float] = field(default_factory=list)  # mean loss per logged interval
    epoch_losses: list[float] = field(default_factory=list)

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else 0.0


def make_pair_loss(cfg: TrainingConfig, temperature: float):
    """The per-example loss ``training.loss`` names (``temperature``: the model's, for listwise)."""
    if cfg.loss == "pointwise":
        return PointwiseLoss()
    if cfg.loss == "triplet_hinge":
        return TripletHingeLoss(cfg.triplet_margin)
    if cfg.loss == "triplet_logistic":
        return TripletLogisticLoss(cfg.triplet_sigma)
    if cfg.loss == "listwise":
        return ListwiseSoftmaxLoss(temperature)
    raise ValueError(f"training.loss={cfg.loss!r} is not a per-example loss")


def negative_counts(cfg: TrainingConfig, ablate: frozenset[str]) -> tuple[int, int]:
    """(hard, easy) negatives per example for the per-example losses; hard only for in-batch softmax."""
    total = cfg.pointwise_negative_ratio if cfg.loss == "pointwise" else cfg.num_negatives
    hard = 0 if "hard_negatives" in ablate else int(round(total * cfg.hard_negative_fraction))
    return hard, max(total - hard, 0)


def negative_ages(row_age: Tensor, n_shared: int, n_neg: int) -> Tensor:
    """The day (age before the last training day) each extra item of a step is seen as of, in
    the step's order ``[shared (n_shared), row 0's n_neg, row 1's n_neg, ...]``.

    A per-example negative takes its row's day. Shared negatives are scored against every row,
    so no single day is right: shared negative j takes the day of row ``j mod B`` (rows arrive
    shuffled), and as a set they follow the batch's mix of days, as its positives do.
    """
    bsz = row_age.shape[0]
    shared = row_age[torch.arange(n_shared) % bsz] if bsz else row_age[:0]
    return torch.cat([shared, row_age[:, None].expand(-1, n_neg).reshape(-1)])


def _gather(t: Tensor, info: DistInfo, grad: bool) -> Tensor:
    """Concatenate ``t`` [n, ...] from every worker along dim 0 (rank order)."""
    if not info.enabled:
        return t
    if grad:
        import warnings

        import torch.distributed.nn.functional as dnf

        # all_gather with autograd: its backward sums each worker's gradient w.r.t. this
        # worker's slice, which DDP's averaging then turns into the global-batch gradient.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # public API, deprecated for a private one
            return torch.cat(dnf.all_gather(t), dim=0)
    parts = [torch.empty_like(t) for _ in range(info.world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


class Trainer:
    """Owns the model, the optimisers and one training step; :meth:`fit` runs the epochs."""

    def __init__(
        self,
        model: TwoTowerModel,
        cfg: TrainingConfig,
        negatives: Negatives,
        device: torch.device,
        ablate: frozenset[str] = frozenset(),
        info: DistInfo | None = None,
    ) -> None:
        self.model, self.cfg, self.neg, self.device = model, cfg, negatives, device
        self.ablate = ablate
        self.info = info or DistInfo()
        self.model.to(device)
        self.net: nn.Module = self.model
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.info.local_rank] if device.type == "cuda" else None
            self.net = DDP(self.model, device_ids=ids)
        self.sparse_opt = torch.optim.SparseAdam(self.model.sparse_parameters(), lr=cfg.sparse_lr)
        self.dense_opt = torch.optim.Adam(self.model.dense_parameters(), lr=cfg.lr)
        self.gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.info.rank)
        self.n_hard, self.n_easy = negative_counts(cfg, ablate)
        if cfg.loss == "inbatch_softmax":
            self.n_easy = 0
        self.shared = 0 if ("sampled_negatives" in ablate or negatives.sampler is None) else cfg.shared_negatives
        self.shared_local = self.shared // self.info.world
        # The softmax temperature is the model's (ModelSpec, from training.temperature when the
        # model was built): the one the evaluation and the index score with.
        tau = model.spec.temperature
        self.inbatch_loss = InBatchSoftmaxLoss(tau)
        self.pair_loss = None if cfg.loss == "inbatch_softmax" else make_pair_loss(cfg, tau)
        weights = list(cfg.objective_weights) + [1.0] * (len(cfg.objectives) - len(cfg.objective_weights))
        self.objective_weights = weights[: len(cfg.objectives)]

    # -- one step -------------------------------------------------------------------------
    def _example_weights(self, b: Batch, objective: str) -> Tensor:
        w = b["weight"]
        if self.cfg.repeat_click_weight != 1.0:
            repeat = (b["hist"] == b["item_idx"][:, None]).any(dim=1)
            w = torch.where(repeat, w * self.cfg.repeat_click_weight, w)
        if self.neg.resample_weight is not None:
            rw = self.neg.resample_weight
            w = w * rw[b["item_idx"].clamp(0, rw.shape[0] - 1)]
        if self.cfg.time_decay_half_life_days > 0 and "time_decay" not in self.ablate:
            w = w * torch.pow(0.5, b["age_days"].to(torch.float32) / self.cfg.time_decay_half_life_days)
        if objective == "like":
            w = w * b["label_liked"]
        elif objective != "click":
            raise ValueError(f"training.objectives: unknown objective {objective!r} (known: click, like)")
        return w

    def _sample(self, n: int) -> Tensor:
        if n <= 0 or self.neg.sampler is None:
            return torch.zeros(0, dtype=torch.long)
        return self.neg.sampler.sample(n, self.gen)

    def _hard_ids(self, b: Batch) -> tuple[Tensor, Tensor]:
        """[B, n_hard] hard-negative ids and validity mask (missing slots: alias draws, or masked)."""
        hard = b["hard_neg"][:, : self.n_hard]
        if hard.shape[1] < self.n_hard:
            pad = torch.zeros(hard.shape[0], self.n_hard - hard.shape[1], dtype=torch.long)
            hard = torch.cat([hard, pad], dim=1)
        return hard, hard > 0

    def step(self, b: Batch) -> float:
        dev = self.device
        bsz = b["user_idx"].shape[0]
        hard_ids, hard_valid = self._hard_ids(b) if self.n_hard else (torch.zeros(bsz, 0, dtype=torch.long),) * 2
        hard_valid = hard_valid.bool()
        if self.pair_loss is not None:
            # Per-example losses: empty hard slots are filled with catalogue draws (always valid).
            fill = self._sample(int((~hard_valid).sum()))
            if fill.numel():
                hard_ids = hard_ids.clone()
                hard_ids[~hard_valid] = fill
                hard_valid = torch.ones_like(hard_valid)
            easy = self._sample(bsz * self.n_easy).view(bsz, self.n_easy)
            neg_ids = torch.cat([hard_ids, easy], dim=1)  # [B, n]
            neg_valid = torch.cat([hard_valid, torch.ones_like(easy, dtype=torch.bool)], dim=1)
            shared_ids = torch.zeros(0, dtype=torch.long)
        else:
            neg_ids, neg_valid = hard_ids, hard_valid
            shared_ids = self._sample(self.shared_local)
        n_neg = neg_ids.shape[1]
        extra_ids = torch.cat([shared_ids, neg_ids.reshape(-1)])
        extra_cat, extra_num = self.neg.catalogue.features(extra_ids)
        if self.neg.day_features is not None and extra_ids.numel():
            ages = negative_ages(b["age_days"], shared_ids.shape[0], n_neg)
            extra_num = self.neg.day_features.as_of(extra_ids, ages, extra_num)
        item_idx = torch.cat([b["item_idx"], extra_ids])
        item_cat = torch.cat([b["item_cat"], extra_cat])
        item_num = torch.cat([b["item_num"], extra_num])
        if "features" in self.ablate:
            item_cat, item_num = torch.zeros_like(item_cat), torch.zeros_like(item_num)
        user_cat, user_num, hist = b["user_cat"], b["user_num"], b["hist"]
        if "features" in self.ablate:
            user_cat, user_num = torch.zeros_like(user_cat), torch.zeros_like(user_num)
        if "history" in self.ablate:
            hist = torch.zeros_like(hist)
        u, it = self.net(
            b["user_idx"].to(dev), user_cat.to(dev), user_num.to(dev), hist.to(dev),
            item_idx.to(dev), item_cat.to(dev), item_num.to(dev), b["age_days"].to(dev),
        )  # u [K, B, d], it [K, B + S + B*n, d]
        n_shared = shared_ids.shape[0]
        pos = it[:, :bsz]
        shared = it[:, bsz : bsz + n_shared]
        negs = it[:, bsz + n_shared :].reshape(it.shape[0], bsz, n_neg, it.shape[-1])

        total = torch.zeros((), device=dev)
        for k, objective in enumerate(self.cfg.objectives):
            w = self._example_weights(b, objective).to(dev)
            if self.pair_loss is not None:
                pos_cos = (u[k] * pos[k]).sum(-1)
                neg_cos = torch.einsum("bd,bnd->bn", u[k], negs[k])
                loss = self.pair_loss(pos_cos, neg_cos, w, neg_valid.to(dev))
            else:
                loss = self._inbatch(u[k], pos[k], shared[k], negs[k], b["item_idx"], shared_ids, neg_ids, neg_valid, w)
            total = total + self.objective_weights[k] * loss
        self.sparse_opt.zero_grad(set_to_none=True)
        self.dense_opt.zero_grad(set_to_none=True)
        total.backward()
        self.sparse_opt.step()
        self.dense_opt.step()
        return float(total.detach())

    def _inbatch(self, u, pos, shared, hard, pos_ids, shared_ids, hard_ids, hard_valid, w) -> Tensor:
        info, dev = self.info, self.device
        bsz = u.shape[0]
        pool = torch.cat([_gather(pos, info, grad=True), _gather(shared, info, grad=True)])
        all_pos_ids = _gather(pos_ids.to(dev), info, grad=False)
        all_shared_ids = _gather(shared_ids.to(dev), info, grad=False)
        pool_ids = torch.cat([all_pos_ids, all_shared_ids])
        log_q = None
        if self.cfg.logq != "off" and "logq" not in self.ablate:
            b_global, s_global = all_pos_ids.shape[0], all_shared_ids.shape[0]
            cpu_ids = pool_ids.cpu()
            if self.neg.estimator is not None:
                per_step = self.neg.estimator.probability(cpu_ids)  # expected presence per step ~ B p_j
            else:
                per_step = b_global * self.neg.inbatch_prob[cpu_ids.clamp_max(self.neg.inbatch_prob.shape[0] - 1)]
            q = per_step + s_global * self.neg.neg_prob[cpu_ids.clamp_max(self.neg.neg_prob.shape[0] - 1)]
            # An item with Q = 0 cannot be in the pool in expectation; floor it at one in a billion.
            log_q = torch.log(q.clamp_min(1e-9)).to(dev, torch.float32)
        positive_index = info.rank * bsz + torch.arange(bsz, device=dev)
        return self.inbatch_loss(
            u, pool, pool_ids, positive_index=positive_index, log_q=log_q, weights=w,
            hard=hard if hard.shape[1] else None, hard_ids=hard_ids.to(dev), hard_mask=hard_valid.to(dev),
        )

    # -- epochs ---------------------------------------------------------------------------
    def fit(self, stream: TrainStream, epochs: int, progress: bool = True) -> FitResult:
        """Train for ``epochs`` passes over the stream; returns losses and throughput."""
        from tqdm.auto import tqdm

        res = FitResult()
        self.model.train()
        start = time.perf_counter()
        for epoch in range(epochs):
            steps = stream.steps_per_epoch(epoch)
            interval = max(1, steps // 20)
            running: list[float] = []
            epoch_sum = 0.0
            bar = tqdm(total=steps * stream.batch_size * self.info.world, unit="ex", unit_scale=True,
                       desc=f"epoch {epoch + 1}/{epochs}", disable=not (progress and self.info.is_main))
            for b in stream.epoch(epoch):
                if self.neg.estimator is not None:
                    ids = _gather(b["item_idx"].to(self.device), self.info, grad=False).cpu()
                    self.neg.estimator.update(ids)
                loss = self.step(b)
                if not math.isfinite(loss):
                    raise FloatingPointError(f"training loss became {loss} at epoch {epoch + 1}, step {res.steps + 1}: lower training.lr")
                running.append(loss)
                epoch_sum += loss
                res.steps += 1
                res.examples += b["user_idx"].shape[0] * self.info.world
                bar.update(b["user_idx"].shape[0] * self.info.world)
                if len(running) == interval:
                    res.loss_curve.append(sum(running) / len(running))
                    bar.set_postfix(loss=f"{res.loss_curve[-1]:.4f}")
                    running = []
            bar.close()
            if running:
                res.loss_curve.append(sum(running) / len(running))
            res.epoch_losses.append(epoch_sum / max(steps, 1))
        res.seconds = time.perf_counter() - start
        self.model.eval()
        return res
