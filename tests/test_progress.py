"""Progress: drawn on a terminal, quiet (one INFO line per suite) in task logs and CI."""

from __future__ import annotations

import io
import logging
import os

import pytest

from core.spark import console_progress, progress_enabled


def test_console_progress_only_on_a_terminal(tmp_path):
    master, slave = os.openpty()  # a real pseudo-terminal, as an interactive shell has
    read_end, write_end = os.pipe()  # what Airflow's task runner and CI capture through
    with open(slave, "w") as tty, open(write_end, "w") as pipe, open(tmp_path / "log", "w") as file:
        assert console_progress(tty) is True
        assert console_progress(pipe) is False
        assert console_progress(file) is False
        assert console_progress(io.StringIO()) is False
    os.close(master)
    os.close(read_end)
    with open(tmp_path / "log") as closed:
        pass
    assert console_progress(closed) is False  # isatty() raises ValueError on a closed file
    assert console_progress(object()) is False  # no isatty at all


@pytest.mark.spark
def test_ge_progress_bars_follow_the_decision(spark, tmp_path):
    # (the shared session first: GE's Spark data source would otherwise build its own)
    from quality.runner import GxProject

    def bars(project):
        pb = project.context.variables.progress_bars
        pb = pb if isinstance(pb, dict) else pb.to_dict()
        return pb["globally"], pb["metric_calculations"]

    assert bars(GxProject(tmp_path / "quiet")) == (False, False)
    assert bars(GxProject(tmp_path / "bars", progress=True)) == (True, True)


class _Conf:
    def __init__(self, value):
        self.value = value

    def get(self, key, default=None):
        assert key == "spark.ui.showConsoleProgress"
        return default if self.value is None else self.value


class _Session:
    def __init__(self, value):
        self.sparkContext = type("SC", (), {"getConf": lambda _self: _Conf(value)})()


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("TRUE", True), ("false", False), (None, False)])
def test_progress_enabled_reads_the_session_setting(value, expected):
    assert progress_enabled(_Session(value)) is expected


@pytest.mark.spark
def test_one_info_line_per_suite(spark, tmp_path, caplog):
    from pyspark.sql import types as T

    from quality.checks import FLAG_PREFIX, Suite, flag_check, non_empty_check
    from quality.rules import null_safe
    from quality.runner import GxProject

    # pytest captures stderr, so the shared session was built without the console bar.
    assert progress_enabled(spark) is False
    df = spark.createDataFrame([(1,), (2,), (-3,)], T.StructType([T.StructField("id", T.LongType())]))
    flags = {FLAG_PREFIX + "id_non_negative": null_safe(df["id"] < 0)}
    check = flag_check("id_non_negative", "critical", "id is negative", "rerun", column="id")
    suite = Suite(
        "validate_outputs.ids.rows", "ids", "2026-11-04", df.withColumns(flags), [non_empty_check(), check], ("id",)
    )
    with caplog.at_level(logging.INFO, logger="quality.runner"):
        GxProject(tmp_path / "gx").run([suite])
    lines = [r.getMessage() for r in caplog.records if r.name == "quality.runner"]
    assert len(lines) == 1, lines
    # 3 rows; 2 checks (non_empty, id_non_negative); 1 failed (the row with id -3)
    assert lines[0].startswith("suite 1/1 validate_outputs.ids.rows.ds=2026-11-04: 3 rows, 2 checks, 1 failed, ")
    assert lines[0].endswith(" s")
