"""Results of the indexing steps: what ``build_index`` staged and what ``publish`` decided.

``BuildIndexResult`` and ``PublishResult`` are what ``indexing.staging.build_index_for_day``
and ``indexing.publish.publish_day`` return; their ``to_dict()`` is the JSON the pipeline
records in the stage statistics (and the version manifest's ``index``/``ann``/``gate``
entries), so old statistics read back with ``from_dict``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from core.results import ALL_FIELDS, StepResult

# -- build_index ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IndexSpec(StepResult):
    """What to build: the FAISS factory string and the search-time parameters.

    Attributes:
        kind: ``flat`` | ``hnsw`` | ``ivf_flat`` | ``ivf_pq``.
        factory: ``faiss.index_factory`` string, e.g. ``"IVF1024,Flat"``.
        params: build and search parameters (``nlist``, ``nprobe``, ``efSearch``, ...).
        notes: why the choice differs from the config, if it does (capped nlist, fallback).
    """

    kind: str
    factory: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        return self.kind == "flat"



@dataclasses.dataclass(frozen=True)
class TuningTrial(StepResult):
    """One search-parameter value tried while tuning toward ``index.tune_target_recall``."""

    param: str = ""
    value: int = 0
    recall: float = 0.0


@dataclasses.dataclass(frozen=True)
class AnnResult(StepResult):
    """ANN recall@k of the built index against exact search, and the QPS of both."""

    k: int = 0
    queries: int = 0
    recall: float = 0.0
    qps_ann: float = 0.0
    qps_exact: float = 0.0
    speedup: float = 0.0
    queries_source: str = ""
    tuning: tuple[TuningTrial, ...] = ()
    build_seconds: float = 0.0
    tune_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class TowerCheck(StepResult):
    """The exported item tower re-embedding catalogue items against ``item_embeddings.npy``:
    ``ok`` (``items``, ``max_abs_diff``) or ``skipped`` (``reason``)."""

    status: str = ""
    items: int | None = None
    max_abs_diff: float | None = None
    reason: str | None = None

    _optional: ClassVar[frozenset[str]] = ALL_FIELDS


@dataclasses.dataclass(frozen=True)
class BuildIndexResult(StepResult):
    """The staged version of one day: the index built over the candidate's item embeddings."""

    ds: str = ""
    staged: str = ""
    index: IndexSpec | None = None
    ntotal: int = 0
    dimension: int = 0
    ann: AnnResult | None = None
    tower_check: TowerCheck | None = None
    files: int = 0


# -- publish ----------------------------------------------------------------------------------

# GateResult attribute -> its key in the recorded JSON (the manifest's and the stats' ``gate``).
_GATE_KEYS = {
    "passed": "passed",
    "reason": "reason",
    "metric": "metric",
    "candidate_recall": "candidate",
    "candidate_se": "candidate_se",
    "published_recall": "published",
    "published_se": "published_se",
    "published_version": "published_version",
    "threshold": "min_allowed",
    "ann_recall": "ann_recall",
    "best_baseline_recall": "best_baseline",
    "best_baseline_se": "best_baseline_se",
    "best_baseline_diff_se": "best_baseline_diff_se",
    "best_baseline_name": "best_baseline_name",
    "below_baseline": "below_best_baseline",
    "eval_users": "eval_users",
    "decidable": "decidable",
    "undecided": "undecided",
}


@dataclasses.dataclass(frozen=True)
class GateResult(StepResult):
    """The publish gate's decision on a candidate (``indexing.gate.gate_decision``).

    ``threshold`` is the drop rule's minimum allowed recall (None for a first version);
    ``decidable`` is False when the held-out set cannot resolve a rule's margin and
    ``undecided`` names those rules; ``forced`` is set once the decision is applied (True:
    published with ``--force`` despite a refusal; None: not published).
    """

    passed: bool = False
    reason: str = ""
    candidate_recall: float = 0.0
    published_recall: float | None = None
    published_version: str | None = None
    ann_recall: float = 0.0
    threshold: float | None = None
    best_baseline_recall: float | None = None
    below_baseline: bool = False
    candidate_se: float | None = None
    published_se: float | None = None
    best_baseline_se: float | None = None
    best_baseline_name: str | None = None
    eval_users: int | None = None
    decidable: bool = True
    undecided: tuple[str, ...] = ()
    best_baseline_diff_se: float | None = None
    metric: str = "recall@50"
    forced: bool | None = None

    _keys: ClassVar[dict[str, str]] = {name: key for name, key in _GATE_KEYS.items() if name != key}
    _optional: ClassVar[frozenset[str]] = frozenset({"forced"})


@dataclasses.dataclass(frozen=True)
class SmokeResult(StepResult):
    """The smoke query run on the copy about to be published."""

    users: int = 0
    k: int = 0
    top1_score_mean: float = 0.0


PUBLISHED = "published"
ALREADY_PUBLISHED = "already_published"
BLOCKED = "blocked"
REJECTED = "rejected"

# The recorded keys of each decision (the JSON the run report and the DAG read).
_PUBLISH_KEYS = {
    PUBLISHED: ("ds", "status", "published", "version", "index_kind", "n_items", "path", "previous_latest",
                "latest", "gate", "smoke", "retention_deleted", "recovered"),
    ALREADY_PUBLISHED: ("ds", "status", "published", "version", "index_kind", "n_items", "path", "gate", "recovered"),
    BLOCKED: ("published", "decision", "reason"),
    REJECTED: ("published", "decision", "reason"),
}


@dataclasses.dataclass(frozen=True)
class PublishResult(StepResult):
    """What the publish step decided for a day, and what it served afterwards.

    ``decision``: ``published`` (this step published the staged version, ``gate.forced`` if
    over a refusal), ``already_published`` (a rerun found the day published and re-verified it),
    ``blocked`` (the publish-gap rule stopped it) or ``rejected`` (the gate or a check refused
    it). ``reason`` says why in every case; ``latest`` is what ``LATEST`` serves after the step.
    """

    published: bool = False
    decision: str = ""
    reason: str | None = None
    ds: str | None = None
    version: str | None = None
    index_kind: str | None = None
    n_items: int | None = None
    path: str | None = None
    previous_latest: str | None = None
    latest: str | None = None
    gate: GateResult | None = None
    smoke: SmokeResult | None = None
    retention_deleted: tuple[str, ...] = ()
    recovered: tuple[str, ...] = ()

    @classmethod
    def blocked(cls, reason: str) -> PublishResult:
        """The publish-gap rule refused the day before anything was touched."""
        return cls(published=False, decision=BLOCKED, reason=reason)

    @classmethod
    def rejected(cls, reason: str) -> PublishResult:
        """The publish gate (or a check of the staged version) refused the candidate."""
        return cls(published=False, decision=REJECTED, reason=reason)

    def event_extra(self) -> dict[str, Any]:
        """What the published-index Asset event carries: the version, its day, index kind and size."""
        return {k: v for k, v in (("version", self.version), ("ds", self.ds), ("index_kind", self.index_kind),
                                  ("n_items", self.n_items)) if v is not None}

    def to_dict(self) -> dict[str, Any]:
        plain = dict(super().to_dict(), status=self.decision)
        return {k: plain[k] for k in _PUBLISH_KEYS.get(self.decision, tuple(plain))}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        data = dict(data or {})
        if "decision" not in data:
            data["decision"] = data.get("status", PUBLISHED)
        if "published" not in data:
            data["published"] = data["decision"] in (PUBLISHED, ALREADY_PUBLISHED)
        result = super().from_dict(data)
        if result.reason is None and result.gate is not None:
            result = dataclasses.replace(result, reason=result.gate.reason)
        return result
