"""Held-out evaluation: the model, two popularity baselines and (on simulated data) the oracle,
on the same users, targets and exclusions, scoring the whole active catalogue.

Protocol (docs/training.md): for every user of ``eval_examples`` (clicks on the evaluation days,
never trained on), rank every active catalogue item, excluding the items the user clicked on the
training days (``exclude_idx``). Targets are the user's held-out clicks that are active
catalogue items and not excluded; users left with no target are not scored (both counts are
reported). Metrics are averaged over scored users.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from contracts.days import day_range, ds_str
from core.config import Config, ConfigError
from storage.layout import Layout
from training.data import (
    Catalogue,
    EvalSet,
    days_clicks,
    distinct_click_users,
    load_catalogue,
    load_eval_set,
    load_item_sampling,
)
from training.prior import GridRecord, PriorChoice, choose_beta, prior_term, record_from_metrics

log = logging.getLogger(__name__)

USER_BATCH = 512
EMBED_BATCH = 16_384

ScoreFn = Callable[[slice], Tensor]  # rows of the eval set -> scores [b, N]


def training_days(cfg: Config, ds: str) -> list[str]:
    """The window's training days (the window minus its last ``eval_days`` days), oldest first."""
    days = day_range(ds, cfg.etl.window_days)
    return days[: len(days) - cfg.etl.eval_days] if cfg.etl.eval_days < len(days) else days[:1]


def tail_and_cold(clicks: np.ndarray, head_share: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over catalogue rows: tail = clicked but outside the head (the most-clicked
    items holding ``head_share`` of the clicks), cold = no training click at all."""
    order = np.argsort(-clicks, kind="stable")
    cum = np.cumsum(clicks[order])
    total = cum[-1] if len(cum) else 0.0
    head = np.zeros(len(clicks), dtype=bool)
    if total > 0:
        n_head = int(np.searchsorted(cum, head_share * total) + 1)
        head[order[:n_head]] = True
    cold = clicks <= 0
    return (~head) & (~cold), cold


def missing_targets_per_user(ev: EvalSet, t_pos: np.ndarray) -> np.ndarray:
    """int64 [U]: each user's distinct held-out targets that are not candidates (outside the
    active catalogue) and not among the user's excluded training clicks. They count as misses
    in every recall denominator: a catalogue that drops items cannot raise the metric."""
    users = len(ev.user_idx)
    t_row = np.repeat(np.arange(users, dtype=np.int64), np.diff(ev.target_offsets))
    e_row = np.repeat(np.arange(users, dtype=np.int64), np.diff(ev.exclude_offsets))
    out_of_cat = t_pos < 0
    if not out_of_cat.any():
        return np.zeros(users, dtype=np.int64)
    width = int(max(ev.targets.max(initial=0), ev.excludes.max(initial=0))) + 1
    keys = np.unique(t_row[out_of_cat] * width + ev.targets[out_of_cat])
    keys = keys[~np.isin(keys, e_row * width + ev.excludes)]
    return np.bincount(keys // width, minlength=users).astype(np.int64)


def standard_error(values: np.ndarray) -> float | None:
    """Standard error of the mean of per-user values (sample std / sqrt(n)); None below 2 users."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    return float(values.std(ddof=1) / math.sqrt(len(values)))


class Ranker:
    """Computes every metric of one scoring function over the eval set."""

    def __init__(self, ev: EvalSet, cand_idx: np.ndarray, tail: np.ndarray, cold: np.ndarray, ks: tuple[int, ...], device: torch.device) -> None:
        self.ev, self.ks, self.device = ev, tuple(sorted(set(ks) | {50})), device
        self.n = len(cand_idx)
        self.kmax = min(max(self.ks), self.n)
        size = int(max(cand_idx.max(initial=0), ev.targets.max(initial=0), ev.excludes.max(initial=0))) + 1
        self.pos_of_idx = np.full(size, -1, dtype=np.int64)
        self.pos_of_idx[cand_idx] = np.arange(self.n)
        self.tail = torch.from_numpy(tail).to(device)
        self.cold = torch.from_numpy(cold).to(device)
        self.users = len(ev.user_idx)
        # Per-user target/exclusion positions in candidate order (-1 = not in the catalogue).
        self.t_pos = self.pos_of_idx[np.clip(ev.targets, 0, size - 1)]
        self.e_pos = self.pos_of_idx[np.clip(ev.excludes, 0, size - 1)]
        self.missing = missing_targets_per_user(ev, self.t_pos)

    def _keys(self, offsets: np.ndarray, pos: np.ndarray, rows: slice) -> Tensor:
        """Sorted unique flat keys ``row * n + position`` of the rows' in-catalogue entries."""
        lo, hi = offsets[rows.start], offsets[rows.stop]
        counts = np.diff(offsets[rows.start : rows.stop + 1])
        r = np.repeat(np.arange(rows.stop - rows.start, dtype=np.int64), counts)
        p = pos[lo:hi]
        keep = p >= 0
        return torch.from_numpy(np.unique(r[keep] * self.n + p[keep])).to(self.device)

    def counts(self) -> dict[str, int]:
        ev = self.ev
        total = int(len(ev.targets))
        in_cat = int((self.t_pos >= 0).sum())
        return {
            "eval_users": self.users,
            "eval_targets": total,
            "eval_targets_not_in_catalogue": total - in_cat,
            # Distinct, non-excluded out-of-catalogue targets: counted as misses by every method.
            "eval_targets_not_in_catalogue_counted": int(self.missing.sum()),
        }

    def run(self, score: ScoreFn, subset: np.ndarray | None = None) -> dict[str, float]:
        """Metrics of one scoring function. Per batch of users, exclusions and targets are flat
        ``row * n + position`` keys (no dense [users, catalogue] masks): excluded items are set
        to -inf in the score matrix, and a top-k entry is a hit when its key is a target key.

        ``subset`` (catalogue positions): ``score`` then returns [b, len(subset)] scores of those
        items only, and every other item counts as ranked below them. Only correct when each
        user's top ``kmax`` (after exclusions) lies inside the subset: see :meth:`run_global`.
        """
        n = self.n
        if subset is None:
            sub_t = None
            m = n
        else:
            subset = np.asarray(subset, dtype=np.int64)
            m = len(subset)
            sub_of_pos = np.full(n, -1, dtype=np.int64)
            sub_of_pos[subset] = np.arange(m)
            sub_of_pos_t = torch.from_numpy(sub_of_pos).to(self.device)
            sub_t = torch.from_numpy(subset).to(self.device)
        kmax = min(self.kmax, m)
        sums = {f"recall@{k}": 0.0 for k in self.ks} | {"hitrate@50": 0.0, "ndcg@50": 0.0}
        tail_sum = cold_sum = 0.0
        scored = tail_users = cold_users = excluded_targets = 0
        per_user_r50: list[np.ndarray] = []
        per_user_rows: list[np.ndarray] = []
        covered = torch.zeros(self.n, dtype=torch.bool, device=self.device)
        discounts = 1.0 / torch.log2(torch.arange(2, 52, dtype=torch.float64, device=self.device))
        for start in range(0, self.users, USER_BATCH):
            rows = slice(start, min(start + USER_BATCH, self.users))
            b = rows.stop - rows.start
            s = score(rows).to(self.device, torch.float32).contiguous().clone()
            excl = self._keys(self.ev.exclude_offsets, self.e_pos, rows)
            tkeys = self._keys(self.ev.target_offsets, self.t_pos, rows)
            is_excl = torch.isin(tkeys, excl, assume_unique=True)
            excluded_targets += int(is_excl.sum())
            tkeys = tkeys[~is_excl]
            if sub_t is not None:  # exclusion keys in the subset's columns
                sp = sub_of_pos_t[excl % n]
                keep = sp >= 0
                excl = (excl // n)[keep] * m + sp[keep]
            s.view(-1)[excl] = -math.inf
            top_vals, top = torch.topk(s, kmax, dim=1)  # [b, kmax]
            if sub_t is not None:
                top = sub_t[top]  # back to catalogue positions
            row_base = torch.arange(b, device=self.device, dtype=torch.int64)[:, None] * n
            hits = torch.isin(top + row_base, tkeys)
            t_row, t_pos = tkeys // n, tkeys % n
            missing = torch.from_numpy(self.missing[rows]).to(self.device)
            n_t = torch.bincount(t_row, minlength=b) + missing  # out-of-catalogue targets are misses
            ok = n_t > 0
            if not ok.any():
                continue
            scored += int(ok.sum())
            nt = n_t[ok].to(torch.float64)
            h = hits[ok]
            for k in self.ks:
                r = h[:, :k].sum(1) / nt
                sums[f"recall@{k}"] += float(r.sum())
                if k == 50:
                    per_user_r50.append(r.cpu().numpy())
                    per_user_rows.append(rows.start + np.flatnonzero(ok.cpu().numpy()))
            sums["hitrate@50"] += float(h[:, :50].any(1).sum())
            dcg = (h[:, :50].to(torch.float64) * discounts[: h[:, :50].shape[1]]).sum(1)
            ideal = torch.cumsum(discounts, 0)[(nt.clamp_max(50) - 1).long()]
            sums["ndcg@50"] += float((dcg / ideal).sum())
            shown = top[ok, :50][top_vals[ok, :50] > -math.inf]  # excluded items are never "recommended"
            covered[shown] = True
            for mask, kind in ((self.tail, "tail"), (self.cold, "cold")):
                nk = torch.bincount(t_row[mask[t_pos]], minlength=b)  # the user's targets of this kind
                has = nk > 0  # implies ok
                if has.any():
                    kind_hits = (hits[:, :50] & mask[top[:, :50]]).sum(1)
                    r = (kind_hits[has].to(torch.float64) / nk[has]).sum()  # float64, as recall@k
                    if kind == "tail":
                        tail_sum += float(r)
                        tail_users += int(has.sum())
                    else:
                        cold_sum += float(r)
                        cold_users += int(has.sum())
        out = {k: (v / scored if scored else 0.0) for k, v in sums.items()}
        # Standard error of recall@50 over scored users: what the publish gate decides with.
        out["recall@50_se"] = standard_error(np.concatenate(per_user_r50)) if per_user_r50 else None
        # Per-user recall@50 of this run (eval-set rows, values): paired comparisons on the same users.
        self.last_recall50 = (
            (np.concatenate(per_user_rows), np.concatenate(per_user_r50)) if per_user_r50 else (np.zeros(0, np.int64), np.zeros(0))
        )
        out["coverage"] = float(covered.sum()) / max(n, 1)
        out["recall@50_tail"] = tail_sum / tail_users if tail_users else None
        out["recall@50_cold"] = cold_sum / cold_users if cold_users else None
        out["users_scored"] = scored
        out["tail_users"], out["cold_users"] = tail_users, cold_users
        out["targets_excluded"] = excluded_targets
        out["targets_not_in_catalogue"] = int(self.missing.sum())
        return out

    def run_global(self, order: np.ndarray) -> dict[str, float]:
        """Metrics of one ranking shared by every user (``order``: catalogue positions, best
        first), e.g. popularity. A user's top ``kmax`` after exclusions lies within the global
        top ``kmax + (most exclusions of any user)``, so only those columns are scored: the
        same metrics as ``run`` on the full matrix, at a fraction of the cost."""
        most_excluded = int(np.diff(self.ev.exclude_offsets).max(initial=0))
        subset = np.asarray(order, dtype=np.int64)[: min(self.n, self.kmax + most_excluded)]
        st = -torch.arange(len(subset), dtype=torch.float32, device=self.device)
        return self.run(lambda rows: st[None, :].expand(rows.stop - rows.start, -1), subset=subset)


def _load_towers(model_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    user = torch.jit.load(str(model_dir / "user_tower.pt"), map_location="cpu")
    item = torch.jit.load(str(model_dir / "item_tower.pt"), map_location="cpu")
    return user.eval(), item.eval(), json.loads((model_dir / "model_config.json").read_text())


@torch.no_grad()
def embed_items(item_tower, catalogue: Catalogue, rows: np.ndarray) -> np.ndarray:
    """float32 [len(rows), d] embeddings of catalogue rows (in that order)."""
    idx = torch.from_numpy(catalogue.item_idx[rows])
    out = []
    for s in range(0, len(idx), EMBED_BATCH):
        part = idx[s : s + EMBED_BATCH]
        cat, num = catalogue.features(part)
        out.append(item_tower(part, cat, num))
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 0), np.float32)


@torch.no_grad()
def embed_users(user_tower, ev: EvalSet) -> np.ndarray:
    """float32 [U, d] embeddings of the eval users (eval-set row order)."""
    out = []
    for s in range(0, len(ev.user_idx), EMBED_BATCH):
        sl = slice(s, s + EMBED_BATCH)
        out.append(user_tower(ev.user_idx[sl], ev.user_cat[sl], ev.user_num[sl], ev.hist[sl]))
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 0), np.float32)


def _context(cfg: Config, ds: str, model_cfg: dict[str, Any] | None):
    layout = Layout(cfg.paths)
    ds = ds_str(ds)
    icat = tuple(model_cfg["item_cat_columns"]) if model_cfg else None
    inum = tuple(model_cfg["item_num_columns"]) if model_cfg else None
    ucat = tuple(model_cfg["user_cat_columns"]) if model_cfg else None
    unum = tuple(model_cfg["user_num_columns"]) if model_cfg else None
    hist = int(model_cfg["history_length"]) if model_cfg else cfg.features.history_length
    catalogue = load_catalogue(layout, ds, icat, inum)
    ev = load_eval_set(layout, ds, ucat, unum, max(hist, 1))
    rows = np.flatnonzero(catalogue.active)
    sampling = load_item_sampling(layout, ds)
    clicks_by_idx = np.zeros(int(max(catalogue.item_idx.max(), sampling.column("item_idx").to_numpy().max(initial=0))) + 1)
    clicks_by_idx[sampling.column("item_idx").to_numpy()] = sampling.column("clicks").to_numpy()
    window_clicks = clicks_by_idx[catalogue.item_idx[rows]]
    tail, cold = tail_and_cold(window_clicks, cfg.training.head_click_share)
    device = torch.device("cuda" if (cfg.training.device != "cpu" and torch.cuda.is_available()) else "cpu")
    ranker = Ranker(ev, catalogue.item_idx[rows], tail, cold, cfg.training.eval_k, device)
    return layout, catalogue, ev, rows, window_clicks, ranker


def evaluate_model_dir(cfg: Config, ds: str, model_dir: Path) -> dict[str, Any]:
    """Evaluate any exported model directory (candidate or published version) on day ds's
    held-out set. Only the TorchScript towers and model_config.json are used, so an older
    version works: ids beyond its tables map to OOV inside the towers. With the popularity
    prior on, the model is scored with day ds's beta and counts (:func:`prior_context`), the
    same as the candidate, so the gate compares the two weights under one serving rule."""
    model_dir = Path(model_dir)
    user, item, model_cfg = _load_towers(model_dir)
    layout, catalogue, ev, rows, _clicks, ranker = _context(cfg, ds, model_cfg)
    prior = prior_context(cfg, layout, ds, catalogue.item_id[rows], float(model_cfg["temperature"]))
    out = {"model": _model_metrics(ranker, embed_users(user, ev), embed_items(item, catalogue, rows), prior), **ranker.counts()}
    if prior is not None:
        out["prior"] = prior.to_dict()
    return out


@dataclass(frozen=True)
class PriorContext:
    """The popularity prior of one evaluation (training.prior).

    Attributes:
        choice: beta and the earlier days it was chosen on.
        days: L, the days the counts cover.
        count_days: the ``click_positives`` days counted (ending at the last training day).
        counts: float64 [N] distinct users per candidate item (catalogue order of the ranker).
        temperature: the model's tau (the prior is in units of cos / tau).
    """

    choice: PriorChoice
    days: int
    count_days: list[str]
    counts: np.ndarray
    temperature: float

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "validated", "days": self.days, "count_days": self.count_days, "temperature": self.temperature,
                **self.choice.to_dict()}


def prior_record_days(cfg: Config, ds: str) -> list[str]:
    """The earlier days whose grid records day ds pools, newest first: each one's evaluation
    days all precede ds's (``etl.eval_days`` back), so no record has seen ds's held-out clicks."""
    last = day_range(ds, cfg.etl.eval_days + 1)[0]
    return list(reversed(day_range(last, cfg.training.prior_history_days)))


def prior_records(cfg: Config, layout: Layout, ds: str) -> list[GridRecord]:
    """Grid records in the ``metrics.json`` of the days :func:`prior_record_days` names."""
    out = []
    for day in prior_record_days(cfg, ds):
        path = layout.model_dir(day) / "metrics.json"
        if path.is_file():
            rec = record_from_metrics(day, json.loads(path.read_text()))
            if rec is not None:
                out.append(rec)
    return out


def prior_context(cfg: Config, layout: Layout, ds: str, item_ids: np.ndarray, temperature: float) -> PriorContext | None:
    """Day ds's prior for scoring the model on ds (None when ``training.prior`` is off): beta
    chosen on earlier days' records, counts of the ``prior_days`` days up to the last training
    day (what the candidate's weights saw)."""
    t = cfg.training
    if t.prior == "off":
        return None
    if t.prior_days < 1 or not t.prior_grid:
        raise ConfigError(
            f"training.prior_days ({t.prior_days}) must be >= 1 and training.prior_grid ({list(t.prior_grid)}) non-empty "
            'when training.prior = "validated"'
        )
    choice = choose_beta(prior_records(cfg, layout, ds), t.prior_grid)
    counts, found = distinct_click_users(layout, day_range(training_days(cfg, ds)[-1], t.prior_days), item_ids)
    log.info("ds=%s: popularity prior beta %s (chosen on %s), counts over %s", ds, choice.beta, list(choice.chosen_on) or "no record", found)
    return PriorContext(choice, t.prior_days, found, counts, temperature)


def _model_metrics(ranker: Ranker, user_emb: np.ndarray, item_emb: np.ndarray, prior: PriorContext | None = None,
                   beta: float | None = None) -> dict[str, float]:
    """The model's metrics; with a prior, ranked by ``cos / tau + beta log(1 + c)`` (beta: the
    prior's choice unless given). beta 0 ranks by the cosine alone, exactly as without a prior."""
    items = torch.from_numpy(item_emb).to(ranker.device)
    users = torch.from_numpy(user_emb).to(ranker.device)
    b = (prior.choice.beta if beta is None else beta) if prior is not None else 0.0
    if b == 0.0:
        return ranker.run(lambda rows: users[rows] @ items.T)
    term = torch.from_numpy(prior_term(prior.counts, b)).to(ranker.device, torch.float32)
    tau = prior.temperature
    return ranker.run(lambda rows: (users[rows] @ items.T) / tau + term[None, :])


def prior_grid(ranker: Ranker, user_emb: np.ndarray, item_emb: np.ndarray, prior: PriorContext, grid: tuple[float, ...]) -> dict[str, Any]:
    """recall@50 (and its SE) of every beta of ``grid`` on this day: the record later days choose from."""
    rows = []
    users = 0
    for b in grid:
        m = _model_metrics(ranker, user_emb, item_emb, prior, beta=float(b))
        rows.append({"beta": float(b), "recall@50": m["recall@50"], "recall@50_se": m["recall@50_se"]})
        users = int(m["users_scored"])
    return {"grid": rows, "grid_users": users}


def evaluate_with_baselines(cfg: Config, ds: str, model_dir: Path) -> dict[str, Any]:
    """Model + both popularity baselines + the oracle (when the data root has simulator truth)."""
    model_dir = Path(model_dir)
    user, item, model_cfg = _load_towers(model_dir)
    layout, catalogue, ev, rows, window_clicks, ranker = _context(cfg, ds, model_cfg)
    out: dict[str, Any] = {"ds": ds_str(ds), **ranker.counts()}
    user_emb, item_emb = embed_users(user, ev), embed_items(item, catalogue, rows)
    prior = prior_context(cfg, layout, ds, catalogue.item_id[rows], float(model_cfg["temperature"]))
    out["model"] = _model_metrics(ranker, user_emb, item_emb, prior)
    model_r50 = ranker.last_recall50
    out["baselines"], out["baseline_days"] = popularity_baselines(
        cfg, layout, ds, catalogue, rows, window_clicks, ranker, model_r50
    )
    if prior is not None:
        out["prior"] = {**prior.to_dict(), **prior_grid(ranker, user_emb, item_emb, prior, cfg.training.prior_grid)}
    out["oracle"] = _oracle(layout, ranker, ev, catalogue.item_id[rows])
    m50 = out["model"]["recall@50"]
    best_name = max(out["baselines"], key=lambda k: out["baselines"][k]["recall@50"])
    best = out["baselines"][best_name]["recall@50"]
    out["best_baseline"] = best_name
    out["lift_recall@50_vs_best_baseline"] = (m50 / best - 1.0) if best > 0 else None
    return out


# Popularity bars over the last N training days (ending at the last training day), besides the
# whole window: on real logs the best window varies, so the gate's bar is the strongest of them.
POPULARITY_DAYS = {"popularity_recent": 1, "popularity_7d": 7, "popularity_28d": 28}


def popularity_baselines(
    cfg: Config, layout: Layout, ds: str, catalogue: Catalogue, rows: np.ndarray, window_clicks: np.ndarray, ranker: Ranker,
    model_recall50: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    """Popularity over the whole window (``item_sampling.clicks``) and over the last 1, 7 and
    28 training days (``click_positives`` of those days that exist), each ranked by
    :meth:`Ranker.run_global` on the same users, targets and exclusions as the model. A bar
    whose days are the same as a shorter one's (no older partitions) is not repeated.

    ``model_recall50`` (the model's per-user recall@50, ``Ranker.last_recall50``): each bar
    then also gets ``recall@50_diff_se``, the standard error of the per-user difference
    model - bar (paired by user: the gate's test of "beats popularity")."""
    train = training_days(cfg, ds)

    def _popularity(ranker: Ranker, counts: np.ndarray) -> dict[str, float]:
        out = _popularity_ranking(ranker, counts)
        if model_recall50 is not None:
            out["recall@50_diff_se"] = paired_difference_se(model_recall50, ranker.last_recall50)
        return out

    results = {"popularity_window": _popularity(ranker, window_clicks)}
    days_of = {"popularity_window": train}
    seen: dict[tuple[str, ...], str] = {}
    for name, n in POPULARITY_DAYS.items():
        counts, found = days_clicks(layout, day_range(train[-1], n), catalogue)
        if name != "popularity_recent" and (not found or tuple(found) in seen):
            continue
        if not found:
            log.warning("no click_positives for %s: the recent-day popularity baseline is empty", train[-1])
        seen[tuple(found)] = name
        results[name] = _popularity(ranker, counts[rows])
        days_of[name] = found
    return results, days_of


def paired_difference_se(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float | None:
    """SE of the mean per-user difference a - b over the users both scored ((rows, values) pairs)."""
    common, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
    return standard_error(a[1][ia] - b[1][ib]) if len(common) else None


def _popularity_ranking(ranker: Ranker, counts: np.ndarray) -> dict[str, float]:
    """Everyone gets the same ranking by count; ties broken by catalogue order (deterministic)."""
    return ranker.run_global(np.argsort(-counts.astype(np.float64), kind="stable"))


def _oracle(layout: Layout, ranker: Ranker, ev: EvalSet, item_ids: np.ndarray) -> dict[str, float] | None:
    try:
        from logsim.truth import Truth
    except ImportError:
        return None
    truth = Truth.load(layout)
    if truth is None:
        return None
    try:
        return ranker.run(lambda rows: torch.from_numpy(np.asarray(truth.scores(ev.user_id[rows], item_ids), dtype=np.float32)))
    except KeyError as exc:
        log.warning("oracle skipped: the simulator truth does not know some eval ids (%s)", exc)
        return None


def write_metrics(model_dir: Path, metrics: dict[str, Any]) -> None:
    from storage.layout import atomic_write_text

    atomic_write_text(Path(model_dir) / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True, default=float))
