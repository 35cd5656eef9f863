"""The settings search (training.search): the settings it records, the rule that picks day D's
settings from earlier days' records, and the wiring on a trained model. Expected values by hand,
or from the plain training path with the same settings configured directly."""

from __future__ import annotations

import dataclasses
import json

import pytest

from core.config import ConfigError, TrainingConfig
from core.context import RunContext
from storage.layout import Layout
from tests.conftest import make_config
from training.search import (
    SearchRecord,
    Settings,
    candidates,
    choose_settings,
    record_from_metrics,
    search_record_days,
)

BASE = Settings(lr=0.003, temperature=0.1, embedding_dim=64)
LR = Settings(lr=0.01, temperature=0.1, embedding_dim=64)
DIM = Settings(lr=0.003, temperature=0.1, embedding_dim=32)


def test_candidates_change_one_setting_at_a_time():
    t = TrainingConfig(lr=0.003, temperature=0.1, embedding_dim=64, search_lr=(0.001, 0.003, 0.01, 0.001),
                       search_temperature=(0.1, 0.2), search_embedding_dim=(32,))
    assert candidates(t) == [
        BASE,
        Settings(0.001, 0.1, 64),
        Settings(0.01, 0.1, 64),
        Settings(0.003, 0.2, 64),
        Settings(0.003, 0.1, 32),
    ]
    assert candidates(dataclasses.replace(t, search_lr=(), search_temperature=(), search_embedding_dim=())) == [BASE]


@pytest.mark.parametrize("field,value", [("search_lr", (0.0,)), ("search_temperature", (-0.1,)), ("search_embedding_dim", (0,))])
def test_candidates_refuse_bad_values(field, value):
    with pytest.raises(ConfigError, match=f"training.{field}"):
        candidates(dataclasses.replace(TrainingConfig(), **{field: value}))


def test_choose_settings_pools_days_weighted_by_users():
    # day A, 10 users: base 0.2, lr 0.3; day B, 30 users: base 0.4, lr 0.3.
    # pooled base = (10*0.2 + 30*0.4) / 40 = 0.35; lr = (10*0.3 + 30*0.3) / 40 = 0.30 -> base.
    a = SearchRecord("2026-11-01", 10, {BASE.key: 0.2, LR.key: 0.3})
    b = SearchRecord("2026-11-02", 30, {BASE.key: 0.4, LR.key: 0.3})
    c = choose_settings([b, a], [BASE, LR])
    assert c.settings == BASE and c.chosen_on == ("2026-11-01", "2026-11-02") and c.users == 40
    assert c.pooled == pytest.approx({BASE.key: 0.35, LR.key: 0.30})
    # day B with 10 users: base (2 + 4) / 20 = 0.30 against lr (3 + 3) / 20 = 0.30: a tie, the configured one wins.
    b10 = dataclasses.replace(b, users=10)
    assert choose_settings([a, b10], [BASE, LR]).settings == BASE
    # with 5 users on B: base (2 + 2) / 15 = 0.267 < lr (3 + 1.5) / 15 = 0.30 -> lr.
    assert choose_settings([a, dataclasses.replace(b, users=5)], [BASE, LR]).settings == LR


def test_choose_settings_missing_settings_empty_records_and_no_record():
    # DIM is best on A but B lacks it (its budget ran out): it cannot be chosen while B is pooled.
    a = SearchRecord("2026-11-01", 10, {BASE.key: 0.2, LR.key: 0.25, DIM.key: 0.9})
    b = SearchRecord("2026-11-02", 10, {BASE.key: 0.2, LR.key: 0.25})
    c = choose_settings([a, b], [BASE, LR, DIM])
    assert c.settings == LR and set(c.pooled) == {BASE.key, LR.key}
    # a record without users is skipped: A alone decides.
    assert choose_settings([a, dataclasses.replace(b, users=0)], [BASE, LR, DIM]).settings == DIM
    none = choose_settings([], [BASE, LR])
    assert none.settings == BASE and none.chosen_on == () and none.users == 0


def test_choose_settings_keeps_the_configured_ones_inside_the_noise():
    # A: 10 users, base 0.20 (SE 0.06), lr 0.30; B: 30 users, base 0.20 (SE 0.04), lr 0.24.
    # pooled base 0.20, lr (3 + 7.2) / 40 = 0.255: a gain of 0.055.
    # pooled SE of base = sqrt((10/40)^2 0.06^2 + (30/40)^2 0.04^2) = sqrt(0.000225 + 0.0009) = 0.0335.
    a = SearchRecord("2026-11-01", 10, {BASE.key: 0.2, LR.key: 0.3}, {BASE.key: 0.06, LR.key: 0.07})
    b = SearchRecord("2026-11-02", 30, {BASE.key: 0.2, LR.key: 0.24}, {BASE.key: 0.04, LR.key: 0.04})
    one = choose_settings([a, b], [BASE, LR], min_gain_se=1.0)  # 0.055 > 1 x 0.0335: lr
    assert one.settings == LR and one.within_noise is None
    assert one.pooled_se[BASE.key] == pytest.approx(0.033541, abs=1e-6)
    two = choose_settings([a, b], [BASE, LR], min_gain_se=2.0)  # 0.055 <= 2 x 0.0335 = 0.067: kept
    assert two.settings == BASE and "not more than 2 SE" in two.within_noise
    assert two.pooled == pytest.approx({BASE.key: 0.2, LR.key: 0.255})


def test_record_from_metrics_reads_the_records():
    m = {"search": {"users": 12, "records": [{"key": BASE.key, "recall@50": 0.5, "recall@50_se": 0.1},
                                              {"key": LR.key, "recall@50": 0.25}]}}
    assert record_from_metrics("2026-11-01", m) == SearchRecord("2026-11-01", 12, {BASE.key: 0.5, LR.key: 0.25},
                                                                {BASE.key: 0.1, LR.key: 0.0})
    assert record_from_metrics("2026-11-01", {"model": {}}) is None


def test_search_record_days_never_reach_the_evaluation_days(tmp_path):
    # window 6 days ending 11-10 with 2 evaluation days: training days 11-05..11-08; the records
    # pooled end at the last training day, each day's own evaluation days precede 11-09.
    cfg = make_config(tmp_path, etl={"window_days": 6, "eval_days": 2}, training={"search_history_days": 3})
    assert search_record_days(RunContext.build(cfg, "2026-11-10")) == ["2026-11-08", "2026-11-07", "2026-11-06"]


def _search_cfg(tmp_path, **training):
    return make_config(
        tmp_path, etl={"window_days": 4},
        training={"batch_size": 256, "epochs": 1, "min_steps": 1, "shared_negatives": 128, "seed": 11, "warm_start": False,
                  "search": "validated", "search_lr": [0.03], "search_temperature": [0.3], "search_embedding_dim": [16],
                  **training},
    )


def test_search_records_every_setting_and_the_next_day_trains_with_the_best(tmp_path):
    """Day D1 records the configured settings (its candidate, the gate's figure) and one
    alternate per searched value; the lr alternate's figure equals that of the plain path with
    that lr configured (the alternate is trained exactly as a candidate). Day D2 trains with the
    best pooled setting of D1's record, and says so."""
    from tests.support.synthetic_etl import write_synthetic_etl
    from tests.support.training import train

    d1, d2 = "2026-11-04", "2026-11-05"
    cfg = _search_cfg(tmp_path, search_min_gain_se=0.0)
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, d1, seed=0)
    train(cfg, d1)
    m1 = json.loads((layout.model_dir(d1) / "metrics.json").read_text())
    s1 = m1["search"]
    base = Settings(lr=0.003, temperature=0.05, embedding_dim=64)  # the configured defaults
    expected = [base, dataclasses.replace(base, lr=0.03), dataclasses.replace(base, temperature=0.3),
                dataclasses.replace(base, embedding_dim=16)]
    assert [r["key"] for r in s1["records"]] == [s.key for s in expected]
    assert s1["records"][0]["candidate"] and s1["chosen"]["key"] == base.key and s1["chosen"]["chosen_on"] == []
    assert s1["records"][0]["recall@50"] == pytest.approx(m1["model"]["recall@50"])
    assert s1["users"] == m1["model"]["users_scored"] and s1["not_trained"] == []
    assert not [p for p in layout.model_dir(d1).iterdir() if p.name.startswith(".search")]

    plain = make_config(tmp_path / "plain", etl={"window_days": 4},
                        training={"batch_size": 256, "epochs": 1, "min_steps": 1, "shared_negatives": 128, "seed": 11,
                                  "warm_start": False, "lr": 0.03})
    write_synthetic_etl(Layout(plain.paths), d1, seed=0)
    train(plain, d1)
    mp = json.loads((Layout(plain.paths).model_dir(d1) / "metrics.json").read_text())
    assert s1["records"][1]["recall@50"] == pytest.approx(mp["model"]["recall@50"])

    write_synthetic_etl(layout, d2, seed=0)
    train(cfg, d2)
    m2 = json.loads((layout.model_dir(d2) / "metrics.json").read_text())
    best = max(range(len(s1["records"])), key=lambda j: (s1["records"][j]["recall@50"], -j))
    chosen = expected[best]
    assert m2["search"]["chosen"]["key"] == chosen.key and m2["search"]["chosen"]["chosen_on"] == [d1]
    assert m2["search"]["records"][0]["key"] == chosen.key and m2["search"]["records"][0]["candidate"]
    spec = json.loads((layout.model_dir(d2) / "model_config.json").read_text())
    assert (spec["temperature"], spec["dim"]) == (chosen.temperature, chosen.embedding_dim)
    assert spec["extra"]["search_settings"] == chosen.to_dict()


def test_search_budget_stops_alternates(tmp_path):
    from tests.support.synthetic_etl import write_synthetic_etl
    from tests.support.training import train

    cfg = _search_cfg(tmp_path, search_budget_seconds=0.0)
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, "2026-11-04", seed=0)
    train(cfg, "2026-11-04")
    s = json.loads((layout.model_dir("2026-11-04") / "metrics.json").read_text())["search"]
    assert [r["candidate"] for r in s["records"]] == [True]
    assert len(s["not_trained"]) == 3 and s["not_trained"][0].startswith("lr=0.03,")
