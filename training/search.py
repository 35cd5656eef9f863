"""Settings search on earlier days' held-out evaluations (``training.search = "validated"``).

The learning rate, the temperature and the output dimension that suit a dataset are not known in
advance, and the data's size says little about them. They are never chosen on the day they are
judged on: every day with the search on trains, beside its candidate, one alternate per
searched value (one setting changed from the configured ones at a time, everything else equal:
data, seed, warm start, passes, the last training day's pass), evaluates each on the day's
held-out set exactly as the candidate is evaluated, and records recall@50 per setting in
``metrics.json`` (``search``). Day D trains its candidate with the setting of best recall@50
pooled over the records of the days before D whose evaluation days all precede D's
(:func:`choose_settings`), the way the popularity prior's beta is chosen (training.prior).

The alternates are the configured settings' one-at-a-time neighbours, not the chosen setting's,
so every day records the same set of settings and the records pool across days. A wall-clock
budget (``search_budget_seconds``) stops starting alternates; a setting a record lacks cannot
be chosen while that record is in the pool.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.config import ConfigError, TrainingConfig
from core.context import RunContext
from training.data import day_metrics
from training.prior import pooled_recall


@dataclass(frozen=True)
class Settings:
    """The searched settings of one model (the rest of ``training`` stays as configured)."""

    lr: float
    temperature: float
    embedding_dim: int

    @classmethod
    def of(cls, t: TrainingConfig) -> Settings:
        return cls(lr=float(t.lr), temperature=float(t.temperature), embedding_dim=int(t.embedding_dim))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Settings:
        return cls(lr=float(d["lr"]), temperature=float(d["temperature"]), embedding_dim=int(d["embedding_dim"]))

    @property
    def key(self) -> str:
        """A stable name, e.g. ``lr=0.003,temperature=0.05,embedding_dim=64`` (repr of floats)."""
        return f"lr={self.lr!r},temperature={self.temperature!r},embedding_dim={self.embedding_dim}"

    def apply(self, t: TrainingConfig) -> TrainingConfig:
        return dataclasses.replace(t, lr=self.lr, temperature=self.temperature, embedding_dim=self.embedding_dim)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def candidates(t: TrainingConfig) -> list[Settings]:
    """The settings the search records: the configured ones first, then each value of
    ``search_lr``, ``search_temperature`` and ``search_embedding_dim`` in that order, one
    setting changed at a time (values equal to the configured one, or repeated, are skipped)."""
    base = Settings.of(t)
    for name, values in (("search_lr", t.search_lr), ("search_temperature", t.search_temperature)):
        bad = [v for v in values if not float(v) > 0]
        if bad:
            raise ConfigError(f"training.{name}: every value must be > 0, got {list(values)}")
    if any(int(v) < 1 for v in t.search_embedding_dim):
        raise ConfigError(f"training.search_embedding_dim: every value must be >= 1, got {list(t.search_embedding_dim)}")
    out = [base]
    variants = [dataclasses.replace(base, lr=float(v)) for v in t.search_lr]
    variants += [dataclasses.replace(base, temperature=float(v)) for v in t.search_temperature]
    variants += [dataclasses.replace(base, embedding_dim=int(v)) for v in t.search_embedding_dim]
    for s in variants:
        if s not in out:
            out.append(s)
    return out


@dataclass(frozen=True)
class SearchRecord:
    """One earlier day's search: recall@50 per setting key over ``users`` held-out users."""

    day: str
    users: int
    recall_at_50: dict[str, float]
    se: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SettingsChoice:
    """The settings day D trains with and where they came from.

    Attributes:
        settings: the chosen settings.
        chosen_on: the earlier days whose records were pooled (empty: no record, the configured ones).
        users: held-out users summed over those days.
        pooled: setting key -> recall@50 pooled over those days (users-weighted mean).
    """

    settings: Settings
    chosen_on: tuple[str, ...] = ()
    users: int = 0
    pooled: dict[str, float] = field(default_factory=dict)
    pooled_se: dict[str, float] = field(default_factory=dict)
    within_noise: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "key": self.settings.key,
            "chosen_on": list(self.chosen_on),
            "chosen_on_users": self.users,
            "pooled_recall@50": [{"key": k, "recall@50": r, "recall@50_se": self.pooled_se.get(k)}
                                 for k, r in sorted(self.pooled.items())],
            "within_noise": self.within_noise,
        }


def choose_settings(records: Sequence[SearchRecord], settings: Sequence[Settings], min_gain_se: float = 0.0) -> SettingsChoice:
    """The setting of ``settings`` (the configured ones first) with the best recall@50 pooled
    over ``records`` (earlier days only).

    Pooling weights each day by its held-out users; the pooled SE is that of the weighted mean
    of independent days, ``sqrt(sum((n_d / N)^2 se_d^2))``. Only settings present in every used
    record compete; records without users are skipped. Ties go to the earlier setting of
    ``settings`` (the configured ones win a tie); no usable record gives the configured
    settings. The best setting replaces the configured ones only when its pooled recall@50
    beats theirs by more than ``min_gain_se`` pooled SEs of the configured settings' figure: a
    difference inside the noise of a small held-out set is not a reason to change (the gate's
    rule, indexing.gate); ``within_noise`` then says so.
    """
    used, keys, total, pooled = pooled_recall(records, [s.key for s in settings])
    competing = [s for s in settings if s.key in keys]
    if not used or not competing:
        return SettingsChoice(settings=settings[0])
    pooled_se = {s.key: sum((r.users / total) ** 2 * r.se.get(s.key, 0.0) ** 2 for r in used) ** 0.5 for s in competing}
    best = competing[min(range(len(competing)), key=lambda j: (-pooled[competing[j].key], j))]
    base = settings[0]
    note = None
    if best != base and base in competing:
        gain, se = pooled[best.key] - pooled[base.key], pooled_se[base.key]
        if gain <= min_gain_se * se:
            note = (f"{best.key} beat the configured settings by {gain:.4f} recall@50, not more than {min_gain_se:g} SE "
                    f"({se:.4f}) over {total} users: kept the configured settings")
            best = base
    return SettingsChoice(settings=best, chosen_on=tuple(sorted(r.day for r in used)), users=total, pooled=pooled,
                          pooled_se=pooled_se, within_noise=note)


def record_from_metrics(day: str, metrics: dict[str, Any]) -> SearchRecord | None:
    """The search record in a day's ``metrics.json`` (``search.records``), or None without one."""
    search = metrics.get("search") or {}
    rows = search.get("records") or []
    if not rows:
        return None
    return SearchRecord(day=day, users=int(search.get("users") or 0),
                        recall_at_50={str(r["key"]): float(r["recall@50"]) for r in rows},
                        se={str(r["key"]): float(r.get("recall@50_se") or 0.0) for r in rows})


def search_record_days(ctx: RunContext) -> list[str]:
    """The earlier days whose records day ``ctx.ds`` pools, newest first: they end at the
    window's last training day, so each one's evaluation days all precede ds's."""
    return list(reversed(ctx.window.before(ctx.cfg.training.search_history_days)))


def search_records(ctx: RunContext) -> list[SearchRecord]:
    """Search records in the ``metrics.json`` of the days :func:`search_record_days` names."""
    records = (record_from_metrics(day, m) for day, m in day_metrics(ctx.layout, search_record_days(ctx)))
    return [r for r in records if r is not None]


def search_choice(ctx: RunContext) -> SettingsChoice:
    """Day ds's settings: chosen on earlier days' records among :func:`candidates`."""
    t = ctx.cfg.training
    if t.search_history_days < 1:
        raise ConfigError(f"training.search_history_days ({t.search_history_days}) must be >= 1 when training.search = \"validated\"")
    if t.search_min_gain_se < 0:
        raise ConfigError(f"training.search_min_gain_se ({t.search_min_gain_se}) must be >= 0")
    return choose_settings(search_records(ctx), candidates(t), t.search_min_gain_se)
