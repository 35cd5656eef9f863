"""Held-out ranking metrics of one scoring function (:class:`Ranker`) and their standard errors.

Protocol (docs/training.md): for every user of ``eval_examples`` (clicks on the evaluation days,
never trained on), rank every active catalogue item, excluding the items the user clicked on the
training days (``exclude_idx``). Targets are the user's held-out clicks that are active
catalogue items and not excluded; users left with no target are not scored (both counts are
reported). Metrics are averaged over scored users.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from training.data import EvalSet

USER_BATCH = 512

ScoreFn = Callable[[slice], Tensor]  # rows of the eval set -> scores [b, N]


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


def paired_difference_se(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float | None:
    """SE of the mean per-user difference a - b over the users both scored ((rows, values) pairs)."""
    common, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
    return standard_error(a[1][ia] - b[1][ib]) if len(common) else None
