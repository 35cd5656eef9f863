"""What a run day left on disk, as the few numbers an operator compares across days (the
*facts* of a day, stored in its ``summary.json`` and plotted by the runs index), and the
warnings for anything far off.

Inputs (never recomputed): ``Layout.stage_stats(ds, step)`` JSON of every step (with its
``run_info``: wall seconds, code version, config hash), the data-quality summaries and the
candidate's ``metrics.json``.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from contracts.outputs import ETL_STAGE_ORDER
from core.results import RunInfo
from core.results.indexing import PublishResult
from quality.report import STAGES as DQ_STAGES
from storage.layout import Layout

DQ_STEPS = DQ_STAGES  # the two gates, in run order (quality.report.STAGES)
# Pipeline steps in run order (the ETL stages are inserted after validate_raw).
STEPS_BEFORE_ETL = ("validate_raw",)
STEPS_AFTER_ETL = ("validate_outputs", "train", "evaluate", "train_final", "build_index", "publish")
METRIC = "recall@50"
# Metric columns of the evaluation table and plot, in order (those no row has are left out).
EVAL_COLUMNS = (
    "recall@10", "recall@50", "recall@50_se", "recall@100", "hitrate@50", "ndcg@50", "coverage",
    "recall@50_tail", "recall@50_cold", "users_scored",
)
# Trailing days a day's volume is compared with.
TRAILING_DAYS = 7

# Thresholds of the warnings (why each is what it is is in the rule's text).
COLD_NEAR_ZERO = 0.01  # cold-item recall@50 below this is "near zero"
COLD_VS_ORACLE = 0.1  # ... or below this share of the oracle's cold-item recall
MODEL_VS_ORACLE = 0.25  # model recall@50 below this share of the oracle's
VOLUME_LOW, VOLUME_HIGH = 0.5, 2.0  # day volume vs the trailing median
FEW_EVAL_USERS = 100  # the publish gate's default publish.min_eval_users
OUT_OF_CATALOGUE_SHARE = 0.2
RETIRED_SHARE = 0.2


def publish_of(stats: dict[str, Any]) -> PublishResult | None:
    """The day's publish decision as recorded by the publish step (None: the step never ran).
    The one reader of it: whether it published, which version, what LATEST serves and why."""
    recorded = stats.get("publish")
    return None if recorded is None else PublishResult.from_dict(recorded)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        out = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return out if isinstance(out, dict) else None


def load_stage_stats(layout: Layout, ds: str) -> dict[str, dict[str, Any]]:
    """Every ``stats/<step>.json`` of day ``ds`` by step name (unreadable files are reported, not fatal)."""
    folder = layout.stage_stats(ds, "x").parent
    out: dict[str, dict[str, Any]] = {}
    if folder.is_dir():
        for f in sorted(folder.glob("*.json")):
            try:
                out[f.stem] = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                out[f.stem] = {"unreadable": f"{f}: {exc}"}
    return out


def load_dq_summaries(layout: Layout, ds: str, stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The data-quality summaries of day ``ds`` (written by quality even when its gate fails)."""
    out: dict[str, dict[str, Any]] = {}
    for step in DQ_STEPS:
        summary = read_json(layout.dq_dir(ds) / f"{step}.json") or stats.get(step)
        if summary:
            out[step] = summary
    return out


def load_metrics(layout: Layout, ds: str, stats: dict[str, Any]) -> dict[str, Any] | None:
    return read_json(layout.model_dir(ds) / "metrics.json") or stats.get("evaluate")


def etl_steps(stats: dict[str, Any]) -> list[str]:
    """ETL step names present (``etl_<stage>``), in ``contracts.outputs.ETL_STAGE_ORDER`` (a
    stage not in it, e.g. from older code, goes last)."""
    present = [k for k in stats if k.startswith("etl_")]
    order = [f"etl_{s}" for s in ETL_STAGE_ORDER]
    return [s for s in order if s in present] + sorted(s for s in present if s not in order)


def all_steps(stats: dict[str, Any]) -> list[str]:
    """Every pipeline step in run order (``etl_*`` when no ETL stage left statistics)."""
    return [*STEPS_BEFORE_ETL, *(etl_steps(stats) or ["etl_*"]), *STEPS_AFTER_ETL]


def run_info_of(step_stats: dict[str, Any] | None) -> RunInfo:
    """When and with what code a step ran, as the pipeline recorded it beside its result
    (all fields None for records written before run_info existed)."""
    recorded = (step_stats or {}).get("run_info") if isinstance(step_stats, dict) else None
    return RunInfo.from_dict(recorded if isinstance(recorded, dict) else None)


def step_seconds(step_stats: dict[str, Any] | None) -> float | None:
    """Wall seconds of a step: ``run_info.wall_seconds`` (every step since it was recorded),
    else what the step itself measured (``seconds``, ``duration_s``)."""
    if not isinstance(step_stats, dict):
        return None
    for v in (run_info_of(step_stats).wall_seconds, step_stats.get("seconds"), step_stats.get("duration_s")):
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def quarantined_rows(entry: Any) -> int:
    """Rows set aside for one table: ``{"rows": n, ...}`` (quality's summary) or a plain count."""
    v = entry.get("rows") if isinstance(entry, dict) else entry
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0


def failing_rows(entry: Any) -> int:
    """Rows failing a row rule for one table (quarantined, or not when over the budget)."""
    if isinstance(entry, dict):
        v = entry.get("failing", entry.get("rows"))
        return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0
    return quarantined_rows(entry)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def day_facts(ds: str, stats: dict[str, Any], dq: dict[str, Any], metrics: dict[str, Any] | None) -> dict[str, Any]:
    """The day's comparable numbers (JSON-ready; ``None`` = not recorded).

    Keys: volume (``impressions``, ``clicks`` of day ``ds``, ``ctr``, ``users``, ``items``),
    data quality (``dq_status``, ``dq_checks_failed``, ``dq_critical``, ``dq_warnings``,
    ``quarantined_rows``), ``catalogue_size`` / ``_added`` / ``_retired``, evaluation
    (``recall50`` and ``recall50_se`` of the model, ``baselines`` name -> recall@50,
    ``best_baseline`` / ``best_baseline_recall50`` / ``best_baseline_se``, ``oracle_recall50``,
    ``cold_recall50`` / ``oracle_cold_recall50``, ``tail_recall50``, ``eval_users``), publish
    (``published``, ``version``, ``latest``), time (``step_seconds`` step -> s,
    ``total_seconds``), ``code_version``, ``config_hash``.
    """
    f: dict[str, Any] = {"ds": ds}
    raw = dq.get("validate_raw") or {}
    tables = raw.get("tables") or {}

    def rows(table: str) -> int | None:
        t = tables.get(table)
        return t.get("rows") if isinstance(t, dict) else (t if isinstance(t, int) else None)

    f["impressions"], f["users"], f["items"] = rows("impressions"), rows("users"), rows("items")
    cp = stats.get("etl_click_positives") or {}
    f["clicks"] = (cp.get("rows_by_day") or {}).get(ds)
    f["ctr"] = f["clicks"] / f["impressions"] if f["clicks"] is not None and f["impressions"] else None

    f["dq_status"] = {step: str(s.get("status", "?")) for step, s in dq.items()}
    f["dq_checks_failed"] = sum(int(s.get("checks_failed") or 0) for s in dq.values()) if dq else None
    f["dq_critical"] = sum(len(s.get("critical_failures") or []) for s in dq.values()) if dq else None
    f["dq_warnings"] = sum(len(s.get("warnings") or []) for s in dq.values()) if dq else None
    f["quarantined_rows"] = sum(quarantined_rows(v) for s in dq.values() for v in (s.get("quarantined") or {}).values()) if dq else None
    f["rule_failing_rows"] = sum(failing_rows(v) for s in dq.values() for v in (s.get("quarantined") or {}).values()) if dq else None

    cat = (stats.get("etl_features") or {}).get("catalogue") or {}
    f["catalogue_size"], f["catalogue_added"], f["catalogue_retired"] = cat.get("size"), cat.get("added"), cat.get("retired")

    m = metrics or {}
    model = m.get("model") if isinstance(m.get("model"), dict) else {}
    f["recall50"], f["recall50_se"] = _num(model.get(METRIC)), _num(model.get(f"{METRIC}_se"))
    f["cold_recall50"], f["tail_recall50"] = _num(model.get(f"{METRIC}_cold")), _num(model.get(f"{METRIC}_tail"))
    f["cold_users"] = model.get("cold_users")
    f["eval_users"] = model.get("users_scored", m.get("eval_users"))
    f["eval_targets"], f["eval_targets_not_in_catalogue"] = m.get("eval_targets"), m.get("eval_targets_not_in_catalogue")
    baselines = {
        n: _num(b.get(METRIC)) for n, b in (m.get("baselines") or {}).items() if isinstance(b, dict) and _num(b.get(METRIC)) is not None
    }
    f["baselines"] = baselines
    best = max(baselines, key=lambda n: baselines[n]) if baselines else None
    f["best_baseline"] = best
    f["best_baseline_recall50"] = baselines.get(best) if best else None
    f["best_baseline_se"] = _num(((m.get("baselines") or {}).get(best) or {}).get(f"{METRIC}_se")) if best else None
    oracle = m.get("oracle") if isinstance(m.get("oracle"), dict) else {}
    f["oracle_recall50"], f["oracle_cold_recall50"] = _num(oracle.get(METRIC)), _num(oracle.get(f"{METRIC}_cold"))

    pub = publish_of(stats)
    f["published"] = None if pub is None else pub.published
    f["version"] = pub.version if pub else None
    f["latest"] = pub.latest if pub else None
    gate = (stats.get("publish") or {}).get("gate") or {}
    f["ann_recall"] = _num(gate.get("ann_recall")) or _num(((stats.get("build_index") or {}).get("ann") or {}).get("recall"))
    f["gate_decidable"], f["gate_forced"] = gate.get("decidable"), gate.get("forced")
    f["gate_undecided"] = list(gate.get("undecided") or [])

    secs = {s: step_seconds(stats.get(s)) for s in all_steps(stats) if s in stats}
    f["step_seconds"] = {s: v for s, v in secs.items() if v is not None}
    f["total_seconds"] = sum(f["step_seconds"].values()) if f["step_seconds"] else None
    infos = [run_info_of(st) for st in stats.values() if isinstance(st, dict) and isinstance(st.get("run_info"), dict)]
    latest_info = max(infos, key=lambda i: str(i.finished_at or "")) if infos else RunInfo()
    f["code_version"], f["config_hash"] = latest_info.code_version, latest_info.config_hash
    versions = sorted({str(i.code_version) for i in infos if i.code_version})
    f["code_versions"] = versions if len(versions) > 1 else None
    return f


def trailing_median(history: list[dict[str, Any]], key: str) -> tuple[float | None, int]:
    """Median of ``key`` over the facts in ``history`` that have it, and how many had it."""
    values = [float(h[key]) for h in history if isinstance(h.get(key), int | float) and not isinstance(h.get(key), bool)]
    return (statistics.median(values), len(values)) if values else (None, 0)


def warnings_for(facts: dict[str, Any], trailing: list[dict[str, Any]], missing_steps: list[str] | None = None) -> list[str]:
    """Plain-language warnings for what is far off on this day.

    Args:
        facts: :func:`day_facts` of the day.
        trailing: the facts of up to :data:`TRAILING_DAYS` earlier run days, oldest first.
        missing_steps: steps that left no statistics (a failed run).
    """
    w: list[str] = []
    r, se = facts.get("recall50"), facts.get("recall50_se")
    se_txt = f" ± {se:.4f}" if se is not None else ""
    best, b = facts.get("best_baseline"), facts.get("best_baseline_recall50")
    if r is not None and b is not None and b > r:
        gap = b - r
        band = (se or 0.0) ** 2 + (facts.get("best_baseline_se") or 0.0) ** 2
        sig = f", {gap / band**0.5:.1f} SE" if band > 0 else ""
        w.append(
            f"The popularity baseline {best} beats the model: recall@50 {b:.4f} vs the model's {r:.4f}{se_txt} "
            f"(by {gap:.4f}{sig}). Serving popular items would do better on this held-out day."
        )
    cold, oc = facts.get("cold_recall50"), facts.get("oracle_cold_recall50")
    if cold is not None and (facts.get("cold_users") or 0) > 0:
        vs = f" against the oracle's {oc:.4f}" if oc is not None else ""
        if cold < COLD_NEAR_ZERO or (oc is not None and oc > 0 and cold < COLD_VS_ORACLE * oc):
            w.append(
                f"Cold-item recall@50 is {cold:.4f}{vs} ({facts.get('cold_users')} users clicked items without a "
                "training click): the model almost never retrieves new items."
            )
    o = facts.get("oracle_recall50")
    if r is not None and o is not None and o > 0 and r < MODEL_VS_ORACLE * o:
        w.append(f"Model recall@50 {r:.4f} is below {MODEL_VS_ORACLE:.0%} of the oracle's {o:.4f} (the planted truth).")
    n = facts.get("eval_users")
    if isinstance(n, int) and n < FEW_EVAL_USERS:
        w.append(f"Only {n} held-out users were scored: recall differences below ~{2 * (se or 0):.3f} are noise.")
    tgt, out = facts.get("eval_targets"), facts.get("eval_targets_not_in_catalogue")
    if tgt and out and out / tgt > OUT_OF_CATALOGUE_SHARE:
        w.append(f"{out:,} of {tgt:,} held-out clicks ({out / tgt:.0%}) are on items outside the indexed catalogue (counted as misses).")
    for key, what in (("impressions", "Impressions"), ("clicks", "Clicks"), ("ctr", "CTR"), ("catalogue_size", "Catalogue size")):
        v = facts.get(key)
        med, k = trailing_median(trailing, key)
        if v is None or med is None or med <= 0:
            continue
        ratio = float(v) / med
        if ratio < VOLUME_LOW or ratio > VOLUME_HIGH:
            shown = (lambda x: f"{100 * x:.2f} %") if key == "ctr" else (lambda x: f"{x:,.0f}")
            w.append(
                f"{what} {shown(float(v))} is {ratio:.0%} of the median of the {k} previous run days ({shown(med)})."
            )
    if facts.get("dq_critical"):
        w.append(f"Data quality: {facts['dq_critical']} critical check(s) failed; the run stopped at the gate.")
    if facts.get("quarantined_rows"):
        w.append(f"{facts['quarantined_rows']:,} row(s) were quarantined by the data-quality checks (see Data quality).")
    retired, size = facts.get("catalogue_retired"), facts.get("catalogue_size")
    if retired and size and retired / (size + retired) > RETIRED_SHARE:
        w.append(f"{retired:,} items were retired from the catalogue since the day before ({size:,} live now).")
    ann = facts.get("ann_recall")
    if ann is not None and ann < 0.95:
        w.append(f"ANN recall {ann:.3f} against exact search is below 0.95: the index misses items exact search finds.")
    if facts.get("gate_decidable") is False and facts.get("published"):
        rules = ", ".join(facts.get("gate_undecided") or []) or "the recall rules"
        w.append(
            f"The publish gate could not decide ({rules}): the margin was within the standard error, so the "
            "candidate passed untested on that rule (see Publish decision)."
        )
    if facts.get("gate_forced"):
        w.append("Published with --force despite the publish gate.")
    if facts.get("code_versions"):
        v = facts["code_versions"]
        w.append(f"The steps of this day ran with {len(v)} different code versions (the checkout changed between steps), e.g. {v[0]}.")
    if missing_steps and not facts.get("dq_critical"):
        w.append(f"The run stopped at {missing_steps[0]}: it left no statistics and nothing after it ran.")
    return w
