"""Honest recall on real pipeline data: simulate the `tiny` preset, run the real Spark ETL, train
with the default configuration, and require the model to beat both popularity baselines on the
held-out day (and stay below the oracle, which ranks by the planted truth)."""

from __future__ import annotations

import pytest

from tests.conftest import make_config

DS = "2026-11-07"


@pytest.mark.slow
@pytest.mark.spark
def test_model_beats_popularity_on_tiny_simulated_data(tmp_path, spark):
    import logsim
    from core.context import RunContext
    from etl.jobs import run_etl
    from tests.support.training import train

    cfg = make_config(tmp_path)
    logsim.simulate(cfg, "tiny", "2026-11-01", 7, 7)
    run_etl(RunContext.build(cfg, DS), spark)
    stats = train(cfg, DS).to_dict()
    model = stats["recall@50"]
    window = stats["baseline_recall@50"]["popularity_window"]
    recent = stats["baseline_recall@50"]["popularity_recent"]
    oracle = stats["oracle_recall@50"]
    assert model > 1.2 * window, stats
    assert model > 1.2 * recent, stats
    assert oracle is not None and model < oracle
