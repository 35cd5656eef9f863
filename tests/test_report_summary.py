"""The run report's summary, facts and warnings, the runs index's trends and ``twotower runs
list``, from hand-made step statistics (no Spark, no training). Expected values are computed
by hand in the comments."""

from __future__ import annotations

import base64
import json
import re

from reports.facts import day_facts, warnings_for
from reports.format import dur, listing, num
from reports.run_report import build_run_report
from storage.layout import Layout
from tests.conftest import make_config

DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def write_day(layout: Layout, ds: str, *, impressions: int, clicks: int, model: float, baseline: float,
              cold: float = 0.2, published: bool = True, quarantined: int = 0) -> None:
    """Stats of one run day as the pipeline writes them (run_info included)."""
    info = {"code_version": "git:abc123", "config_hash": "f" * 64, "finished_at": f"{ds}T01:00:00+00:00"}
    dq = {"status": "passed", "checks": 99, "checks_failed": 0, "critical_failures": [], "warnings": [],
          "tables": {"impressions": {"rows": impressions}, "users": {"rows": 1000}},
          "quarantined": {"impressions": {"rows": quarantined, "fraction": quarantined / impressions, "by_rule": {"null_user_id": quarantined}}},
          "duration_s": 56.3}
    _write(layout.stage_stats(ds, "validate_raw"), {**dq, "run_info": {**info, "wall_seconds": 60.0}})
    _write(layout.dq_dir(ds) / "validate_raw.json", dq)
    _write(layout.stage_stats(ds, "etl_click_positives"),
           {"rows": clicks, "rows_by_day": {ds: clicks}, "seconds": 5.0, "days_written": list(DAYS),
            "run_info": {**info, "wall_seconds": 6.0}})
    _write(layout.stage_stats(ds, "etl_features"),
           {"catalogue": {"size": 510, "added": 3, "retired": 1, "rule": "complete snapshot", "retire_after_days": 90},
            "run_info": {**info, "wall_seconds": 40.0}})
    _write(layout.stage_stats(ds, "validate_outputs"), {"status": "passed", "run_info": {**info, "wall_seconds": 50.0}})
    _write(layout.stage_stats(ds, "train"), {"epochs": 7, "final_loss": 2.85, "examples": 180_600.0,
                                             "run_info": {**info, "wall_seconds": 75.0}})
    _write(layout.model_dir(ds) / "metrics.json", {
        "model": {"recall@10": model / 2, "recall@50": model, "recall@50_se": 0.018, "recall@50_cold": cold,
                  "recall@50_tail": 0.4, "cold_users": 87, "users_scored": 533},
        "baselines": {"popularity_7d": {"recall@50": baseline, "recall@50_se": 0.018, "recall@50_cold": 0.0},
                      "popularity_recent": {"recall@50": baseline - 0.01, "recall@50_se": 0.018}},
        "oracle": {"recall@50": 0.918, "recall@50_cold": 0.741},
        "eval_users": 533, "eval_targets": 1842, "eval_targets_not_in_catalogue": 0,
    })
    _write(layout.stage_stats(ds, "evaluate"), {"run_info": {**info, "wall_seconds": 20.0}})
    gate = {"metric": "recall@50", "candidate": model, "candidate_se": 0.018, "passed": published, "ann_recall": 1.0,
            "best_baseline": baseline, "best_baseline_name": "popularity_7d", "eval_users": 533, "decidable": True,
            "reason": "first version: nothing to compare with; ANN recall ok"}
    pub = ({"published": True, "status": "published", "version": ds, "latest": ds, "gate": gate} if published
           else {"published": False, "decision": "rejected", "reason": f"candidate for ds={ds} not published: recall@50 {model:.4f} is below ..."})
    _write(layout.stage_stats(ds, "publish"), {**pub, "run_info": {**info, "wall_seconds": 9.0}})


def test_readable_numbers():
    assert num(180_600.0) == "180,600" and num(0.0017) == "0.0017" and num(0.44912) == "0.4491" and num(None) == "–"
    assert num(12345) == "12,345" and num(True) == "yes" and num(999.96) == "1000"
    assert listing(["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]) == "2026-11-01 … 2026-11-04 (4 days)"
    assert dur(4.25) == "4.2 s" and dur(75) == "1 min 15 s" and dur(3725) == "1 h 02 min"


def test_day_facts_from_step_stats(tmp_path):
    layout = Layout(make_config(tmp_path).paths)
    write_day(layout, DAYS[0], impressions=20_000, clicks=1_700, model=0.55, baseline=0.53, quarantined=4)
    from reports.facts import load_dq_summaries, load_metrics, load_stage_stats

    stats = load_stage_stats(layout, DAYS[0])
    f = day_facts(DAYS[0], stats, load_dq_summaries(layout, DAYS[0], stats), load_metrics(layout, DAYS[0], stats))
    assert f["impressions"] == 20_000 and f["clicks"] == 1_700 and f["ctr"] == 1_700 / 20_000  # 0.085
    assert f["quarantined_rows"] == 4 and f["dq_checks_failed"] == 0 and f["catalogue_size"] == 510
    assert f["recall50"] == 0.55 and f["best_baseline"] == "popularity_7d" and f["best_baseline_recall50"] == 0.53
    # wall seconds: 60 + 6 + 40 + 50 + 75 + 20 + 9 = 260
    assert f["total_seconds"] == 260.0 and f["step_seconds"]["train"] == 75.0
    assert f["code_version"] == "git:abc123" and f["published"] is True


def test_warnings_flag_what_is_far_off():
    trailing = [{"impressions": 10_000, "ctr": 0.08}, {"impressions": 12_000, "ctr": 0.09}, {"impressions": 11_000, "ctr": 0.085}]
    bad = {"recall50": 0.30, "recall50_se": 0.01, "best_baseline": "popularity_7d", "best_baseline_recall50": 0.35,
           "best_baseline_se": 0.01, "cold_recall50": 0.0017, "oracle_cold_recall50": 0.449, "cold_users": 87,
           "impressions": 4_000, "ctr": 0.085, "eval_users": 533}
    w = warnings_for(bad, trailing)
    # baseline gap 0.05 over sqrt(0.01^2 + 0.01^2) = 0.01414 -> 3.5 SE
    assert any("popularity_7d beats the model" in x and "0.3500" in x and "3.5 SE" in x for x in w), w
    assert any("Cold-item recall@50 is 0.0017 against the oracle's 0.4490" in x for x in w), w
    # 4,000 / median(10,000, 11,000, 12,000) = 36 %; CTR 0.085 = the median: no warning
    assert any(x.startswith("Impressions 4,000 is 36% of the median of the 3 previous run days (11,000)") for x in w), w
    assert not any(x.startswith("CTR") for x in w)
    good = dict(bad, recall50=0.40, cold_recall50=0.30, impressions=11_500)
    assert warnings_for(good, trailing) == []
    undecided = warnings_for(dict(good, published=True, gate_decidable=False, gate_undecided=["baseline"]), trailing)
    assert undecided == [
        "The publish gate could not decide (baseline): the margin was within the standard error, so the candidate "
        "passed untested on that rule (see Publish decision)."
    ]


def test_report_opens_with_a_readable_summary(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    write_day(layout, DAYS[0], impressions=20_000, clicks=1_700, model=0.55, baseline=0.53)
    write_day(layout, DAYS[1], impressions=21_000, clicks=1_800, model=0.56, baseline=0.53)
    write_day(layout, DAYS[2], impressions=8_000, clicks=700, model=0.50, baseline=0.53, cold=0.0017)
    for d in DAYS:
        page = build_run_report(cfg, d).read_text()
    summary = page[page.index('id="summary"') : page.index("<h2>Steps</h2>")]
    assert "Status: <b>published</b>" in summary and "version <b>2026-11-03</b>" in summary
    assert "<b>0.5000</b> ± 0.0180 (SE) vs best baseline popularity_7d" in summary
    # 8,000 impressions vs the median of 20,000 and 21,000 = 20,500 -> 39 %
    assert "impressions 8,000 (39% of the 2-day median 20,500)" in summary
    assert "4 min 20 s" in summary  # 260 s
    assert "git:abc123" in summary and "ffffffffffff" in summary
    warnings = page[page.index('class="warnings"') : page.index("<h2>Steps</h2>")]
    assert "popularity_7d beats the model" in warnings and "Cold-item recall@50 is 0.0017" in warnings
    assert "Impressions 8,000 is 39%" in warnings
    # Durations in the steps table; sections folded below the summary.
    assert "1 min 15 s" in page and page.index('id="summary"') < page.index("<h2>Evaluation</h2>")
    assert '<details class="section "><summary><h2>ETL</h2></summary>' in page
    # No Python reprs anywhere in the text people read.
    text = re.sub(r"<[^>]+>", " ", page.split("</style>", 1)[1])
    assert "None" not in text and "['" not in text and not re.search(r"\d\.\d+e[+-]\d", text), text[:2000]
    assert "180,600" in page  # examples: 180600.0
    summary_json = json.loads((layout.report_dir(DAYS[2]) / "summary.json").read_text())
    # baseline, cold items, impressions, clicks (700 vs the median 1,750 = 40 %); CTR 8.75 % is normal
    assert summary_json["facts"]["impressions"] == 8_000 and len(summary_json["warnings"]) == 4
    assert summary_json["warnings"][-1] == "Clicks 700 is 40% of the median of the 2 previous run days (1,750)."


def test_refused_day_says_why_in_the_summary(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    write_day(layout, DAYS[0], impressions=20_000, clicks=1_700, model=0.40, baseline=0.53, published=False)
    # The refused candidate keeps the gate's numbers in its manifest (the step stats only the reason).
    _write(layout.model_root / "_rejected" / f"{DAYS[0]}-1" / "manifest.json", {"gate": {"candidate": 0.30}})
    _write(layout.model_root / "_rejected" / f"{DAYS[0]}-2" / "manifest.json", {"gate": {
        "metric": "recall@50", "candidate": 0.40, "candidate_se": 0.018, "best_baseline": 0.53, "best_baseline_se": 0.0181,
        "best_baseline_name": "popularity_7d", "passed": False}})
    page = build_run_report(cfg, DAYS[0]).read_text()
    assert "<td>candidate recall@50</td><td>0.4000 ± 0.0180</td>" in page  # the newest refusal (-2), not -1
    assert "<td>best baseline (popularity_7d)</td><td>0.5300 ± 0.0181</td>" in page
    summary = page[page.index('id="summary"') : page.index("<h2>Steps</h2>")]
    assert "Status: <b>rejected</b> - not published: the publish gate refused the candidate" in summary
    assert "why not published</td><td>candidate for ds=2026-11-01 not published: recall@50 0.4000" in summary


def test_runs_index_plots_trends_and_links_each_day(tmp_path, capsys, monkeypatch):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    for i, d in enumerate(DAYS):
        write_day(layout, d, impressions=20_000 + 1_000 * i, clicks=1_700 + 100 * i, model=0.5 + 0.01 * i, baseline=0.53,
                  published=i != 1)
        build_run_report(cfg, d)
    index = (layout.reports_root / "index.html").read_text()
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', index)
    assert [alt for _, alt in images] == [
        "recall@50: model vs popularity baselines (red band: day not published)",
        "Impressions, clicks and CTR",
        "Catalogue size, items added and retired",
        "Data-quality failures and quarantined rows",
        "Time per step (ETL stages together)",
    ]
    assert all(base64.b64decode(b)[:8] == PNG_MAGIC for b, _ in images)
    for d in DAYS:
        assert re.search(rf'<a href="ds={d}/report.html" title="report built [^"]+">{d}</a>', index), d
    assert index.index(">2026-11-03</a>") < index.index(">2026-11-01</a>")  # newest first
    assert index.count('class="status rejected"') == 1 and "0.5100 ± 0.0180" in index

    for var, sub in (("TWOTOWER_DATA_ROOT", "data"), ("TWOTOWER_ARTIFACT_ROOT", "artifacts"), ("TWOTOWER_REPORTS_ROOT", "reports")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    from twotower.cli import main

    capsys.readouterr()
    assert main(["runs", "list", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [r["ds"] for r in runs] == list(DAYS) and [r["state"] for r in runs] == ["published", "rejected", "published"]
    assert [r["facts"]["impressions"] for r in runs] == [20_000, 21_000, 22_000]
    assert runs[1]["report"] == "ds=2026-11-02/report.html"
    assert main(["runs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["day", "status", "recall@50"] and lines[2].split()[:3] == ["2026-11-02", "rejected", "0.5100"]


def test_failed_data_quality_day_names_the_failure_and_the_rows(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    write_day(layout, DAYS[0], impressions=20_000, clicks=1_700, model=0.55, baseline=0.53)
    build_run_report(cfg, DAYS[0])
    bad = DAYS[1]
    # As quality writes it when too many rows fail a row rule: nothing quarantined, the day stops.
    _write(layout.dq_dir(bad) / "validate_raw.json", {
        "status": "failed", "checks": 99, "checks_failed": 2, "warnings": [],
        "critical_failures": ["table impressions, partition ds=2026-11-02, column user_id: 6,147 rows: user_id is null; "
                              "Examples: [{'request_id': 'r1', 'user_id': None, 'position': 3}] (check null_user_id). What to do: fix it"],
        "tables": {"impressions": {"present": True, "rows": 18_440}},
        "quarantined": {"impressions": {"rows": 0, "failing": 6_147, "fraction": 0.3334, "by_rule": {"null_user_id": 6_147}}},
    })
    page = build_run_report(cfg, bad).read_text()
    summary = page[page.index('id="summary"') : page.index("<h2>Steps</h2>")]
    assert "Status: <b>failed</b> - not published: the run failed" in summary
    assert "data-quality gate validate_raw failed (2 critical)" not in summary  # 1 message listed, 2 checks failed
    assert "data-quality gate validate_raw failed (1 critical): table impressions, partition ds=2026-11-02, column user_id" in summary
    assert "validate_raw <span class=\"bad\">failed</span>; 2 checks failed" in summary
    assert "<td>impressions</td><td>18,440</td><td>0 (6,147 rows fail row rules: over the quarantine budget)</td>" in page
    # The example rows are a table, not a Python repr; the message keeps its text and advice.
    assert "{'request_id'" not in page and "<td>r1</td><td>–</td><td>3</td>" in page
    assert "user_id is null; (check null_user_id). What to do: fix it" in page
    facts = json.loads((layout.report_dir(bad) / "summary.json").read_text())["facts"]
    assert facts["quarantined_rows"] == 0 and facts["rule_failing_rows"] == 6_147 and facts["dq_checks_failed"] == 2
    # 18,440 impressions vs the one earlier day's 20,000: 92 %, no volume warning; the gate's is there.
    warnings = json.loads((layout.report_dir(bad) / "summary.json").read_text())["warnings"]
    assert warnings[0] == "Data quality: 1 critical check(s) failed; the run stopped at the gate."
