"""Run report from hand-made stage stats (no Spark, no training): every section renders, the
status names what happened, the index lists every run, the plots are real PNGs."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq

from reports.run_report import build_run_report, run_status
from storage.layout import Layout
from tests.conftest import make_config

DS = "2026-11-03"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _full_run(layout: Layout, ds: str) -> None:
    _write(layout.stage_stats(ds, "validate_raw"), {"status": "passed", "checks": 90})
    _write(
        layout.dq_dir(ds) / "validate_raw.json",
        {"status": "passed", "checks": 90, "checks_failed": 0, "tables": {"impressions": {"rows": 1234}},
         "quarantined": {"impressions": 3}, "critical_failures": [], "warnings": ["users: 2 late rows"]},
    )
    docs = layout.dq_dir(ds) / "validate_raw" / "gx" / "index.html"
    docs.parent.mkdir(parents=True)
    docs.write_text("<html>docs</html>")
    _write(layout.dq_dir(ds) / "validate_raw.json",
           {**json.loads((layout.dq_dir(ds) / "validate_raw.json").read_text()), "data_docs": str(docs)})
    _write(layout.stage_stats(ds, "etl_click_positives"), {"rows": 1625, "seconds": 1.5})
    _write(layout.stage_stats(ds, "validate_outputs"), {"status": "passed"})
    _write(layout.stage_stats(ds, "train"), {"epochs": 2, "loss_per_epoch": [2.5, 1.75], "examples_per_s": 5000})
    _write(layout.stage_stats(ds, "evaluate"), {"eval_users": 10})
    _write(layout.stage_stats(ds, "build_index"), {"index_kind": "flat", "n_items": 500, "ann_recall@100": 1.0})
    _write(
        layout.stage_stats(ds, "publish"),
        {"status": "published", "version": ds, "gate": {"metric": "recall@50", "candidate": 0.31, "published": 0.29,
                                                          "published_version": "2026-11-02", "passed": True,
                                                          "reason": "recall@50 0.31 >= 0.261"}},
    )
    mdir = layout.model_dir(ds)
    _write(mdir / "metrics.json", {
        "model": {"recall@10": 0.12, "recall@50": 0.31, "ndcg@50": 0.1},
        "baselines": {"popularity_window": {"recall@10": 0.05, "recall@50": 0.2, "ndcg@50": 0.05}},
        "oracle": None, "eval_users": 10,
    })
    # item_sampling: 3 items, clicks before 5/2/0, after resampling 4/3/1 (hand-made).
    isamp = layout.path_for("item_sampling", ds)
    isamp.mkdir(parents=True)
    pq.write_table(pa.table({"clicks": [5, 2, 0], "clicks_resampled": [4, 3, 1]}), isamp / "part-0.parquet")
    # hard negatives: difficulties 1, 2, 2 -> 1 cut at pre_rank, 2 cut at rank.
    hn = layout.path_for("hard_negatives", ds)
    hn.mkdir(parents=True)
    pq.write_table(pa.table({"difficulty": pa.array([1, 2, 2], pa.int32())}), hn / "part-0.parquet")
    # ranking log: retrieval 4 rows (all pass), pre_rank 4 rows (2 pass), rank 2 rows (1 pass).
    rl = layout.path_for("ranking_log", ds)
    rl.mkdir(parents=True)
    stages = ["retrieval"] * 4 + ["pre_rank"] * 4 + ["rank"] * 2
    passed = [True] * 4 + [True, True, False, False] + [True, False]
    pq.write_table(pa.table({"stage": stages, "passed": passed}), rl / "part-0.parquet")


def test_full_run_report_has_every_section_and_plots(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    _full_run(layout, DS)
    path = build_run_report(cfg, DS)
    assert path == layout.report_dir(DS) / "report.html"
    page = path.read_text()
    for heading in ("Data quality", "ETL", "Training", "Evaluation", "Index", "Publish decision"):
        assert f"<h2>{heading}</h2>" in page, heading
    assert "Status: <b>published</b>" in page
    assert 'href="data_quality/validate_raw/gx/index.html"' in page  # relative link to the Data Docs
    assert "users: 2 late rows" in page
    # Funnel counted by hand above: pre_rank 4 entered / 2 passed, rank 2 / 1.
    assert "<td>pre_rank</td><td>4</td><td>2</td>" in page and "<td>rank</td><td>2</td><td>1</td>" in page
    assert "cut at pre_rank (difficulty 1)</td><td>1</td>" in page and "cut at rank (difficulty 2)</td><td>2</td>" in page
    assert "previous version 2026-11-02 (same held-out day)" in page and "baseline: popularity_window" in page
    for png in ("popularity.png", "training_curves.png", "evaluation.png"):
        f = layout.report_dir(DS) / "assets" / png
        assert f.read_bytes()[:8] == PNG_MAGIC, png
        assert f'assets/{png}' in page
    index = (layout.reports_root / "index.html").read_text()
    assert f'href="ds={DS}/report.html"' in index and "published" in index


def test_failed_gate_is_named_and_listed_in_the_index(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    _full_run(layout, DS)
    bad = "2026-11-04"
    _write(
        layout.dq_dir(bad) / "validate_raw.json",
        {"status": "failed", "checks": 90, "checks_failed": 1,
         "critical_failures": ["table impressions, partition ds=2026-11-04, column user_id: 900 rows: null ids"]},
    )
    page = build_run_report(cfg, bad).read_text()
    assert "data-quality gate validate_raw failed (1 critical)" in page
    assert "column user_id: 900 rows: null ids" in page
    assert "Publish decision</h2><p><b>not published</b>" in page
    build_run_report(cfg, DS)
    index = (layout.reports_root / "index.html").read_text()
    # newest first, each with its status
    assert index.index("2026-11-04") < index.index("2026-11-03")
    assert index.count('class="status failed"') == 1 and index.count('class="status published"') == 1


def test_run_status_rules():
    assert run_status({})["state"] == "failed"
    assert run_status({"validate_raw": {}, "etl_x": {}})["detail"].startswith("stopped at validate_outputs")
    rejected = run_status({"publish": {"published": False, "reason": "recall@50 dropped 20%"}})
    assert rejected == {"state": "rejected", "detail": "recall@50 dropped 20%"}
    assert run_status({"publish": {"status": "published", "version": "2026-11-03"}})["state"] == "published"


def test_twotower_report_command_prints_the_path(tmp_path, capsys, monkeypatch):
    from twotower.cli import main

    for var, sub in (("TWOTOWER_DATA_ROOT", "data"), ("TWOTOWER_ARTIFACT_ROOT", "artifacts"), ("TWOTOWER_REPORTS_ROOT", "reports")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    cfg = make_config(tmp_path)
    _full_run(Layout(cfg.paths), DS)
    assert main(["report", "--ds", DS]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path / "reports" / f"ds={DS}" / "report.html")
