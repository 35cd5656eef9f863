"""Building, staging and the publish transaction: manifest, gate, reruns, retention, crashes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.config import PublishConfig
from core.context import RunContext
from indexing import artifacts as art
from indexing.candidate_checks import CandidateMissing
from indexing.gate import gate_decision
from indexing.publish import PublishRejected, publish_day
from indexing.staging import build_index_for_day
from storage.layout import Layout
from tests.conftest import REPO, make_config
from tests.support.crash import CRASH_EXIT_CODE, PUBLISH_STEPS, crash_after
from tests.test_index_support import make_candidate, metrics_evaluator

D1, D2, D3, D4 = "2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"


def build(cfg, ds):
    return build_index_for_day(RunContext.build(cfg, ds))


def publish(cfg, ds, **kw):
    return publish_day(RunContext.build(cfg, ds), evaluator=metrics_evaluator, **kw)


def build_and_publish(cfg, ds, recall50=0.30, **kw):
    make_candidate(cfg, ds, recall50=recall50)
    build(cfg, ds)
    return publish(cfg, ds, **kw)


def test_first_publish_writes_complete_manifest(tmp_path):
    cfg = make_config(tmp_path)
    stats = build_and_publish(cfg, D1)
    layout = Layout(cfg.paths)
    vdir = layout.version_dir(D1)
    assert stats.decision == "published" and stats.previous_latest is None
    assert layout.latest_pointer.read_text() == D1 + "\n"
    m = json.loads((vdir / "manifest.json").read_text())
    assert m["version"] == D1 and m["ds"] == D1 and m["status"] == "published"
    # window_days = 7 ending at D1, the last day held out (etl.eval_days = 1).
    assert m["data_window"]["start"] == "2026-10-26" and m["data_window"]["end"] == D1
    assert m["data_window"]["eval_days"] == [D1]
    assert m["config_hash"] == cfg.hash()
    assert m["code_version"].startswith(("git:", "twotower-"))
    assert m["created_at"].endswith("+00:00")
    assert m["index"]["factory"] == "IDMap,Flat"  # 300 items <= flat_max_items
    assert (m["ntotal"], m["dimension"]) == (300, 16)
    assert m["metrics"]["model"]["recall@50"] == 0.30
    assert m["metrics"]["baselines"]["popularity_window"]["recall@50"] == 0.1
    assert m["ann"]["recall"] == 1.0 and m["ann"]["k"] == 100 and m["ann"]["qps_exact"] > 0
    assert m["tower_check"]["status"] == "ok"
    assert m["gate"]["passed"] and "first version" in m["gate"]["reason"]
    expected_files = {
        "index.faiss", "item_ids.parquet", "item_embeddings.npy", "user_tower.pt", "item_tower.pt",
        "model_config.json", "metrics.json", "user_features.parquet", "model_state.pt",
        "eval_user_embeddings.npy", "eval_user_ids.parquet",
        "serving/bundle.json", "serving/reference_client.py",  # no vocabulary partition in this test
    }  # fmt: skip
    assert set(m["files"]) == expected_files
    for name, sha in m["files"].items():  # independent sha256
        assert hashlib.sha256((vdir / name).read_bytes()).hexdigest() == sha
    # The transaction leaves nothing behind.
    assert not (layout.model_root / art.STAGING / D1).exists()
    assert not [p for p in layout.model_root.iterdir() if p.name.startswith((".tmp-", ".old-", ".replaced-"))]


def test_ivf_chosen_above_flat_max_items_and_ann_measured(tmp_path):
    # 2,000 items > 1,000: IVF, nlist capped to 2000 // 39 = 51, nprobe 4 of 51 lists (no tuning).
    index = {"flat_max_items": 1000, "ivf_nlist": 1024, "ivf_nprobe": 4, "tune_target_recall": 0.0}
    cfg = make_config(tmp_path, index=index)
    make_candidate(cfg, D1, n_items=2000)
    stats = build(cfg, D1)
    assert stats.index.factory == "IVF51,Flat"
    assert stats.index.params == {"nlist": 51, "nprobe": 4}
    assert 0.0 < stats.ann.recall < 1.0  # 4 of 51 lists cannot be exact on random queries
    assert stats.ann.tuning == ()


def test_nprobe_tuned_to_target_recall(tmp_path):
    # Auto nlist: 4 * sqrt(2000) = 179, capped to 2000 // 39 = 51. nprobe doubles from 4
    # (4, 8, 16, 32, then 51 = nlist) until the tuning half of the queries reaches 0.97.
    cfg = make_config(tmp_path, index={"flat_max_items": 1000, "ivf_nprobe": 4, "tune_target_recall": 0.97})
    make_candidate(cfg, D1, n_items=2000)
    stats = build(cfg, D1)
    trials = stats.ann.tuning
    values = [t.value for t in trials]
    assert values == [4, 8, 16, 32, 51][: len(values)]
    assert trials[-1].recall >= 0.97 or values[-1] == 51
    assert all(t.recall < 0.97 for t in trials[:-1])
    assert stats.index.params["nprobe"] == values[-1]
    assert stats.ann.queries == 12  # the odd rows of the 25 held-out users measure


def test_missing_candidate_file_is_named(tmp_path):
    cfg = make_config(tmp_path)
    model_dir = make_candidate(cfg, D1)
    (model_dir / "item_tower.pt").unlink()
    with pytest.raises(CandidateMissing, match="item_tower.pt"):
        build(cfg, D1)


def test_item_tower_disagreeing_with_embeddings_is_refused(tmp_path):
    import numpy as np

    cfg = make_config(tmp_path)
    model_dir = make_candidate(cfg, D1)
    emb = np.load(model_dir / "item_embeddings.npy")
    np.save(model_dir / "item_embeddings.npy", np.roll(emb, 1, axis=0))  # rows no longer match ids
    with pytest.raises(Exception, match="item_tower.pt re-embeds"):
        build(cfg, D1)


# -- gate -------------------------------------------------------------------------------------


def test_gate_rule_hand_computed():
    p = PublishConfig(max_recall_drop=0.1, min_ann_recall=0.95)
    # 0.30 * (1 - 0.1) = 0.27: 0.26 is refused, 0.27 and 0.28 pass.
    assert not gate_decision(0.26, 0.30, 1.0, p, "v").passed
    assert gate_decision(0.27, 0.30, 1.0, p, "v").passed
    assert gate_decision(0.28, 0.30, 1.0, p, "v").threshold == pytest.approx(0.27)
    # ANN recall below 0.95 refuses even the first version.
    first = gate_decision(0.01, None, 0.94, p)
    assert not first.passed and "0.9400" in first.reason and "0.9500" in first.reason
    assert gate_decision(0.01, None, 0.95, p).passed


def test_gate_baseline_rule_hand_computed():
    off = PublishConfig(min_ann_recall=0.95)
    # Off by default: a candidate below the baseline passes, flagged in the result and reason.
    flagged = gate_decision(0.20, None, 1.0, off, baseline_recall=0.25)
    assert flagged.passed and flagged.below_baseline and "WARNING" in flagged.reason
    assert not gate_decision(0.30, None, 1.0, off, baseline_recall=0.25).below_baseline
    on = PublishConfig(min_ann_recall=0.95, min_recall_vs_best_baseline=0.8)
    # 0.25 * 0.8 = 0.20: 0.19 is refused even as a first version, 0.20 passes (still flagged).
    refused = gate_decision(0.19, None, 1.0, on, baseline_recall=0.25)
    assert not refused.passed and "0.2000" in refused.reason and "0.2500" in refused.reason
    assert gate_decision(0.20, None, 1.0, on, baseline_recall=0.25).passed
    # Both rules on a later version: 0.26 clears 0.9 x 0.28 = 0.252 and 0.8 x 0.30 = 0.24.
    assert gate_decision(0.26, 0.28, 1.0, on, "v", baseline_recall=0.30).passed
    # No baseline in the metrics: the rule cannot apply.
    assert gate_decision(0.01, None, 1.0, on, baseline_recall=None).passed


def test_best_baseline_recall_takes_the_best_popularity_row():
    from indexing.gate import best_baseline_recall

    metrics = {"model": {"recall@50": 0.3}, "baselines": {"a": {"recall@50": 0.2}, "b": {"recall@50": 0.35}, "c": {}}}
    assert best_baseline_recall(metrics) == 0.35
    assert best_baseline_recall({"model": {"recall@50": 0.3}}) is None


def test_gate_refuses_worse_candidate_then_force_publishes(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    build_and_publish(cfg, D1, recall50=0.30)
    make_candidate(cfg, D2, recall50=0.20)
    build(cfg, D2)
    with pytest.raises(PublishRejected) as exc:
        publish(cfg, D2)
    msg = str(exc.value)
    assert "0.2000" in msg and "0.3000" in msg and "--force" in msg
    assert art.read_latest(layout) == D1
    assert not layout.version_dir(D2).exists()
    rejected = layout.model_root / art.REJECTED / f"{D2}-1"
    m = json.loads((rejected / "manifest.json").read_text())
    assert m["status"] == "rejected" and not m["gate"]["passed"] and "0.2000" in m["gate"]["reason"]
    assert art.list_rejected(layout) == [f"{D2}-1"]
    # A rejected candidate is still a verifiable version (kept for inspection).
    art.LoadedVersion.load(rejected)

    build(cfg, D2)
    stats = publish(cfg, D2, force=True)
    assert stats.gate.forced and not stats.gate.passed
    assert art.read_latest(layout) == D2


def test_first_version_below_the_popularity_baseline_is_refused_when_the_rule_is_on(tmp_path):
    cfg = make_config(tmp_path, publish={"min_recall_vs_best_baseline": 1.0})
    layout = Layout(cfg.paths)
    # make_candidate records popularity baselines 0.10 and 0.12: the best is 0.12.
    make_candidate(cfg, D1, recall50=0.11)
    build(cfg, D1)
    with pytest.raises(PublishRejected) as exc:
        publish(cfg, D1)
    assert "0.1100" in str(exc.value) and "0.1200" in str(exc.value)
    assert art.read_latest(layout) is None and not layout.version_dir(D1).exists()
    gate = json.loads((layout.model_root / art.REJECTED / f"{D1}-1" / "manifest.json").read_text())["gate"]
    assert gate["best_baseline"] == pytest.approx(0.12) and gate["below_best_baseline"]


def recording_evaluator(recall50: float):
    """An evaluator that scores any published version at ``recall50`` and records which
    (held-out day, version) pairs it was asked for."""
    calls: list[tuple[str, str]] = []

    def evaluator(ctx, version_dir):
        calls.append((ctx.ds, Path(version_dir).name))
        return {"model": {"recall@50": recall50}}

    return evaluator, calls


def test_gate_compares_on_the_same_held_out_set(tmp_path):
    cfg = make_config(tmp_path)
    build_and_publish(cfg, D1, recall50=0.30)
    make_candidate(cfg, D2, recall50=0.25)
    build(cfg, D2)
    # The published model scores 0.26 on D2's held-out set.
    evaluator, calls = recording_evaluator(0.26)
    stats = publish_day(RunContext.build(cfg, D2), evaluator=evaluator)
    # The published model (version D1) is evaluated on D2's held-out set; 0.25 >= 0.26 * 0.9.
    assert calls == [(D2, D1)]
    assert stats.gate.published_recall == 0.26 and stats.gate.passed


def test_backfilled_older_day_never_moves_latest_back_and_is_gated_against_an_older_version(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    build_and_publish(cfg, D1, recall50=0.30)
    build_and_publish(cfg, D3, recall50=0.30)
    make_candidate(cfg, D2, recall50=0.28)
    build(cfg, D2)
    evaluator, calls = recording_evaluator(0.29)
    stats = publish_day(RunContext.build(cfg, D2), evaluator=evaluator)
    # D3's model trained on D2's held-out clicks: the fair comparison is D1 (0.28 >= 0.29 * 0.9).
    assert calls == [(D2, D1)]
    assert stats.decision == "published" and stats.latest == D3
    assert art.read_latest(layout) == D3  # serving keeps the newest model
    assert art.list_versions(layout) == [D1, D2, D3]
    assert publish(cfg, D2).decision == "already_published"


# -- reruns, retention, rollback ----------------------------------------------------------------


def test_rerun_of_same_day_replaces_version(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    build_and_publish(cfg, D1, recall50=0.30)
    first = json.loads((layout.version_dir(D1) / "manifest.json").read_text())
    make_candidate(cfg, D1, recall50=0.31, seed=5)  # retrained: different towers and embeddings
    build(cfg, D1)
    publish(cfg, D1)
    second = art.LoadedVersion.load(layout.version_dir(D1)).manifest
    assert second["metrics"]["model"]["recall@50"] == 0.31
    assert second["files"]["item_embeddings.npy"] != first["files"]["item_embeddings.npy"]
    assert art.list_versions(layout) == [D1] and art.read_latest(layout) == D1
    assert sorted(p.name for p in layout.model_root.iterdir()) == [".lock", D1, "LATEST"]
    # Publishing again with nothing staged is a no-op that re-verifies.
    assert publish(cfg, D1).decision == "already_published"


def test_retention_keeps_last_n_and_never_latest(tmp_path):
    cfg = make_config(tmp_path, publish={"retention": 2})
    layout = Layout(cfg.paths)
    for ds in (D1, D2, D3):
        build_and_publish(cfg, ds)
    assert art.list_versions(layout) == [D2, D3]
    art.rollback(layout, D2)
    build_and_publish(cfg, D4)
    assert art.list_versions(layout) == [D3, D4]
    art.rollback(layout, D3)
    # keep=1 would keep only D4, but LATEST points at D3: both stay.
    with art.publish_lock(layout):
        assert art.apply_retention(layout, 1) == []
    assert art.list_versions(layout) == [D3, D4]
    assert art.read_latest(layout) == D3


def test_rollback_verifies_checksums(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    build_and_publish(cfg, D1)
    build_and_publish(cfg, D2)
    with open(layout.version_dir(D1) / "user_tower.pt", "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(art.TamperedArtifact, match="user_tower.pt"):
        art.rollback(layout, D1)
    assert art.read_latest(layout) == D2
    with pytest.raises(art.VersionNotFound, match="2026-10-01"):
        art.rollback(layout, "2026-10-01")


def test_nothing_staged_is_a_clear_error(tmp_path):
    cfg = make_config(tmp_path)
    with pytest.raises(CandidateMissing, match="nothing staged for ds=2026-11-01"):
        publish(cfg, D1)


# -- crashes -----------------------------------------------------------------------------------

_CRASH_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {repo!r})
    from tests.conftest import make_config
    from tests.test_index_support import metrics_evaluator
    from tests.support.crash import crash_after
    from core.context import RunContext
    from indexing.publish import publish_day
    from pathlib import Path
    cfg = make_config(Path({root!r}))
    crash_after({step!r})
    publish_day(RunContext.build(cfg, {ds!r}), evaluator=metrics_evaluator)
    """
)


def _crash(tmp_path: Path, ds: str, step: str) -> None:
    script = _CRASH_SCRIPT.format(repo=str(REPO), root=str(tmp_path), ds=ds, step=step)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == CRASH_EXIT_CODE, proc.stderr[-2000:]


def _assert_latest_complete(layout: Layout, expected: str) -> None:
    assert art.read_latest(layout) == expected
    art.LoadedVersion.load(layout.version_dir(expected), verify=True)  # every sha256 matches


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_crash_at_each_step_leaves_latest_complete_and_rerun_finishes(tmp_path, step):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    build_and_publish(cfg, D1)
    make_candidate(cfg, D2, seed=3)
    build(cfg, D2)

    _crash(tmp_path, D2, step)
    # LATEST switches at "latest_switched": before it the old version serves, from it the new.
    switched = PUBLISH_STEPS.index(step) >= PUBLISH_STEPS.index("latest_switched")
    _assert_latest_complete(layout, D2 if switched else D1)

    stats = publish(cfg, D2)
    assert stats.decision == "published"
    _assert_latest_complete(layout, D2)
    _assert_latest_complete(layout, D2)
    assert art.list_versions(layout) == [D1, D2]
    assert not (layout.model_root / art.STAGING / D2).exists()
    assert not [p for p in layout.model_root.iterdir() if p.name.startswith((".tmp-", ".old-", ".replaced-"))]


@pytest.mark.parametrize("step", ["copied", "renamed"])
def test_crash_while_republishing_the_served_day(tmp_path, step):
    # Rerun of the day LATEST points at: the version is replaced in place, never missing.
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    build_and_publish(cfg, D1)
    make_candidate(cfg, D1, seed=9, recall50=0.32)
    build(cfg, D1)
    _crash(tmp_path, D1, step)
    _assert_latest_complete(layout, D1)
    publish(cfg, D1)
    assert art.LoadedVersion.load(layout.version_dir(D1)).manifest["metrics"]["model"]["recall@50"] == 0.32


def test_recover_restores_a_version_moved_aside(tmp_path):
    # The two-rename fallback (no RENAME_EXCHANGE) can die between its renames: recover() undoes it.
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    build_and_publish(cfg, D1)
    os.rename(layout.version_dir(D1), layout.model_root / f".replaced-{D1}-deadbeef")
    (layout.model_root / ".tmp-2026-11-01-cafe0000").mkdir()
    with art.publish_lock(layout):
        done = art.recover(layout)
    assert any("restored 2026-11-01" in d for d in done)
    _assert_latest_complete(layout, D1)
    assert not (layout.model_root / ".tmp-2026-11-01-cafe0000").exists()


def test_crash_after_must_name_a_step():
    with pytest.raises(ValueError, match="crash_after"):
        crash_after("nope")


# -- the recorded results ------------------------------------------------------------------------


def test_results_record_todays_keys_and_read_back(tmp_path):
    from core.results.indexing import BuildIndexResult, PublishResult

    cfg = make_config(tmp_path)
    make_candidate(cfg, D1)
    built = build(cfg, D1)
    assert set(built.to_dict()) == {"ds", "staged", "index", "ntotal", "dimension", "ann", "tower_check", "files"}
    assert set(built.to_dict()["tower_check"]) == {"status", "items", "max_abs_diff"}
    assert BuildIndexResult.from_dict(json.loads(json.dumps(built.to_dict()))).to_dict() == built.to_dict()

    first = publish(cfg, D1)
    rec = json.loads(json.dumps(first.to_dict()))
    assert set(rec) == {"ds", "status", "published", "version", "index_kind", "n_items", "path", "previous_latest",
                        "latest", "gate", "smoke", "retention_deleted", "recovered"}
    assert rec["status"] == "published" and rec["published"] is True and rec["gate"]["forced"] is False
    back = PublishResult.from_dict(rec)
    assert back.to_dict() == rec and back.decision == "published" and back.reason == first.gate.reason
    again = publish(cfg, D1)
    assert set(again.to_dict()) == {"ds", "status", "published", "version", "index_kind", "n_items", "path", "gate", "recovered"}
    assert again.reason == first.reason and again.gate == first.gate

    assert PublishResult.blocked("gap").to_dict() == {"published": False, "decision": "blocked", "reason": "gap"}
    rejected = PublishResult.rejected("refused")
    assert rejected.to_dict() == {"published": False, "decision": "rejected", "reason": "refused"}
    assert PublishResult.from_dict(rejected.to_dict()) == rejected
