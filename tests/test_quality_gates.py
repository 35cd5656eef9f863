"""Gate logic without Spark: severities, thresholds, messages, the JSON summary and ``dq show``."""

from __future__ import annotations

import json

import pytest

from core.context import RunContext
from core.errors import QualityGateFailed
from quality.checks import flag_check, unique_check
from quality.gate_run import GateRun
from quality.report import day_summary, render_text
from quality.runner import CheckResult
from tests.conftest import make_config

DS = "2026-11-04"


def _result(check, failing, rows=1000, table="impressions", observed=None):
    return CheckResult(
        check=check,
        suite=f"validate_raw.{table}.rows",
        table=table,
        ds=DS,
        success=failing == 0,
        rows=rows,
        failing_count=failing,
        observed=observed,
    )


def test_statuses_by_severity(tmp_path):
    cfg = make_config(tmp_path)
    gate = GateRun(RunContext.build(cfg, DS), "validate_raw")
    crit = flag_check("clicked_not_shown", "critical", "click on a cut item", "fix the export", column="clicked")
    warn = flag_check("unknown_user", "warning", "unknown user", "check the snapshot", column="user_id")
    dup = unique_check(("request_id", "item_id"), "threshold", 0.001, "deduplicate")
    quar = flag_check("null_user_id", "quarantine", "user_id is null", "fix", column="user_id")
    gate.add_results(
        [
            _result(crit, 0),
            _result(warn, 7),
            _result(dup, 1),  # 1 / 1000 = 0.001: at the tolerance -> warning
            _result(quar, 1),
        ],
        quarantine_ok={"impressions": True},
    )
    statuses = [e.status for e in gate.entries]
    assert statuses == ["passed", "warning", "warning", "quarantined"]
    gate2 = GateRun(RunContext.build(cfg, DS), "validate_raw")
    gate2.add_results([_result(dup, 2), _result(quar, 50)], quarantine_ok={"impressions": False})
    assert [e.status for e in gate2.entries] == ["failed", "failed"]


def test_critical_failure_message_and_summary(tmp_path):
    cfg = make_config(tmp_path)
    gate = GateRun(RunContext.build(cfg, DS), "validate_raw")
    crit = flag_check("clicked_not_shown", "critical", "click on a cut item", "fix the click join", column="clicked")
    r = _result(crit, 30, rows=21_590)
    r.examples = [{"request_id": "r1", "item_id": "i9"}]
    gate.add_results([r])
    gate.add_static("ranking_log", "partition_exists", "warning", "optional table absent", None)
    with pytest.raises(QualityGateFailed) as err:
        gate.finish(docs_index=tmp_path / "index.html")
    msg = str(err.value)
    for needle in (
        "table impressions",
        "partition ds=2026-11-04",
        "column clicked",
        "30 rows",
        "check clicked_not_shown",
        "ExpectColumnValuesToBeInSet",
        "What to do: fix the click join",
        "'item_id': 'i9'",
        "nothing is published",
    ):
        assert needle in msg, needle
    summary = json.loads((gate.layout.dq_dir(DS) / "validate_raw.json").read_text())
    assert summary["status"] == "failed" and summary["checks_failed"] == 1
    assert len(summary["warnings"]) == 1  # the absent ranking log is reported, not raised
    shown = day_summary(gate.layout, DS)
    assert shown["stages"]["validate_raw"]["status"] == "failed"
    assert shown["stages"]["validate_outputs"]["status"] == "not run"
    text = render_text(shown)
    assert "clicked_not_shown (30 rows)" in text and str(tmp_path / "index.html") in text


def test_warnings_do_not_raise(tmp_path):
    cfg = make_config(tmp_path)
    gate = GateRun(RunContext.build(cfg, DS), "validate_outputs")
    warn = flag_check("shown_but_cut", "warning", "impression of a cut item", "check the log")
    gate.add_results([_result(warn, 3)])
    summary = gate.finish(docs_index=None).to_dict()
    assert summary["status"] == "warning" and summary["critical_failures"] == []


def test_window_days_split(tmp_path):
    cfg = make_config(tmp_path, etl={"window_days": 3, "eval_days": 1})
    # Window of 3 days ending 11-04: 11-02, 11-03 train; 11-04 held out.
    window = RunContext.build(cfg, DS).window
    assert (list(window.train_days), list(window.eval_days)) == (["2026-11-02", "2026-11-03"], ["2026-11-04"])


def test_output_check_declarations_are_complete(tmp_path):
    """Every declared output check names an ETL output, a kind the engine knows, and (for
    cross-table checks) a reference frame it can read; day selectors are Window attributes."""
    from contracts.outputs import ETL_OUTPUTS
    from quality.output_checks import OUTPUT_CHECKS
    from quality.output_engine import KINDS, REFERENCES

    window = RunContext.build(make_config(tmp_path), DS).window
    for table, specs in OUTPUT_CHECKS.items():
        assert table in ETL_OUTPUTS, table
        for spec in specs:
            assert spec.kind in KINDS, (table, spec)
            if spec.kind in ("subset", "disjoint"):
                assert spec.params["reference"] in REFERENCES, (table, spec)
            if spec.kind == "in_days":
                assert isinstance(getattr(window, spec.params["days"]), tuple), (table, spec)
    # The outputs without row checks: their contract suite (and the partition checks) only.
    assert set(ETL_OUTPUTS) - set(OUTPUT_CHECKS) == {"hard_negative_candidates", "shown_pairs"}


def test_validation_result_json_round_trip():
    from core.results.quality import ValidationResult

    skipped = ValidationResult.skipped("validate_raw", DS)
    assert skipped.to_dict() == {"stage": "validate_raw", "ds": DS, "status": "skipped", "enabled": False}
    assert ValidationResult.from_dict(skipped.to_dict()) == skipped
    summary = {
        "stage": "validate_raw", "ds": DS, "status": "warning", "critical_failures": [], "warnings": ["w"],
        "checks": 1, "checks_failed": 0, "data_docs": None, "summary_path": "s.json", "duration_s": 0.5,
        "suites": [{
            "suite": "validate_raw.impressions.rows", "table": "impressions", "partition": f"ds={DS}", "rows": 10,
            "failed": 0, "warnings": 0, "quarantined": 1, "passed": 0, "status": "warning",
            "checks": [{
                "suite": "validate_raw.impressions.rows", "table": "impressions", "partition": f"ds={DS}",
                "check": "null_user_id", "expectation": "ExpectColumnValuesToBeInSet", "severity": "quarantine",
                "status": "quarantined", "success": False, "rows": 10, "failing_count": 1, "failing_fraction": 0.1,
                "observed": None, "message": "w", "examples": [{"user_id": None}],
            }],
        }],
        # Sparse records: only the keys that apply.
        "tables": {"impressions": {"present": True, "rows": 10}, "ranking_log": {"present": False}},
        "quarantined": {"impressions": {"rows": 1, "fraction": 0.1, "path": "q", "by_rule": {"null_user_id": 1}}},
    }
    result = ValidationResult.from_dict(summary)
    assert result.suites[0].checks[0].status == "quarantined"
    assert result.to_dict() == summary
