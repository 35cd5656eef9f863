"""Date semantics and the publish-gap rule (core.published), and its use in pipeline.publish."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core.published import PublishGap, publish_gap, published_days, run_day_for
from storage.layout import Layout
from tests.conftest import make_config
from twotower import pipeline

UTC = dt.UTC


def test_scheduled_or_backfill_run_processes_its_logical_date():
    # CronDataIntervalTimetable("@daily"): the run for 2026-11-05 has logical date 2026-11-05 00:00
    # UTC and is started at 2026-11-06 00:00; it must read the logs of 2026-11-05.
    assert run_day_for(None, dt.datetime(2026, 11, 5, tzinfo=UTC), dt.datetime(2026, 11, 6, tzinfo=UTC)) == "2026-11-05"


def test_logical_date_in_another_timezone_is_taken_in_utc():
    # 2026-11-05 23:30 at UTC-2 is 2026-11-06 01:30 UTC -> day 2026-11-06.
    tz = dt.timezone(dt.timedelta(hours=-2))
    assert run_day_for(None, dt.datetime(2026, 11, 5, 23, 30, tzinfo=tz), None) == "2026-11-06"


def test_manual_run_without_logical_date_processes_last_complete_day():
    # Triggered at 2026-11-25 14:00 UTC with no logical date: 2026-11-24 is the last complete day.
    assert run_day_for(None, None, dt.datetime(2026, 11, 25, 14, 0, tzinfo=UTC)) == "2026-11-24"
    # Just after midnight, still the day before.
    assert run_day_for("", None, dt.datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)) == "2026-11-24"


def test_ds_param_wins_and_is_validated():
    assert run_day_for("2026-11-02", dt.datetime(2026, 11, 5, tzinfo=UTC), None) == "2026-11-02"
    with pytest.raises(ValueError, match="2026-13-01"):
        run_day_for("2026-13-01", None, None)


def _publish(layout: Layout, ds: str) -> None:
    d = layout.version_dir(ds)
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text("{}")


def test_publish_gap_rules(tmp_path):
    layout = Layout(make_config(tmp_path).paths)
    assert publish_gap(layout, "2026-11-03") is None  # first publish ever
    _publish(layout, "2026-11-01")
    (layout.model_root / "2026-11-02").mkdir()  # incomplete version (no manifest): not published
    (layout.model_root / ".staging-2026-11-02").mkdir()
    assert published_days(layout) == ["2026-11-01"]
    assert publish_gap(layout, "2026-11-02") is None  # on top of 11-01
    reason = publish_gap(layout, "2026-11-03")
    assert reason and "2026-11-02" in reason and "allow_gaps" in reason
    _publish(layout, "2026-11-02")
    assert publish_gap(layout, "2026-11-03") is None
    assert publish_gap(layout, "2026-11-01") is None  # rerun of the first day: nothing before it


def test_pipeline_publish_refuses_a_gap_without_touching_the_index(tmp_path):
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    _publish(layout, "2026-11-01")
    with pytest.raises(PublishGap, match="2026-11-02"):
        pipeline.publish(cfg, "2026-11-03")
    stats = json.loads(layout.stage_stats("2026-11-03", "publish").read_text())
    assert stats["published"] is False and stats["decision"] == "blocked"
    assert published_days(layout) == ["2026-11-01"]


@pytest.mark.spark
def test_run_day_without_logs_fails_at_validate_raw_and_still_reports(spark, tmp_path):
    from core.errors import PipelineError

    cfg = make_config(tmp_path)
    with pytest.raises(PipelineError):
        pipeline.run_day(cfg, "2026-11-03")
    layout = Layout(cfg.paths)
    summary = json.loads((layout.report_dir("2026-11-03") / "summary.json").read_text())
    assert summary["state"] == "failed"
    assert not layout.stage_stats("2026-11-03", "validate_raw").exists()  # nothing pretended to pass
    assert published_days(layout) == []
