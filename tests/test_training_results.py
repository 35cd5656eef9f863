"""The typed results of the training steps write the JSON the steps always recorded: keys that
are not identifiers, keys present only when they apply, nested results written flat."""

from __future__ import annotations

from core.results.training import (
    DayPass,
    EvaluateResult,
    FinalTraining,
    GateEvaluation,
    TrainFinalResult,
    TrainHeadline,
    TrainResult,
    WarmStartReport,
)


def test_train_result_json_keys():
    r = TrainResult(ds="2026-11-04", steps=9, ablate=("logq",), last_training_day_pass=DayPass("2026-11-03", 600, 64, 1, 9),
                    warm_start=WarmStartReport("/v/2026-11-03", tensors_copied=5, tables_extended=3, tensors_skipped=("a",)))
    d = r.to_dict()
    # The warm start is flat; no export counts, headline, wall time or model_dir yet.
    assert d["warm_start_from"] == "/v/2026-11-03" and d["tensors_skipped"] == ["a"] and "warm_start" not in d
    assert not {"items_embedded", "recall@50", "oracle_recall@50", "wall_seconds", "model_dir", "reason"} & set(d)
    assert d["last_training_day_pass"] == {"day": "2026-11-03", "rows": 600, "batch_size": 64, "epochs": 1, "steps": 9}
    assert d["ablate"] == ["logq"] and d["negatives"] == {"hard_per_example": 0, "catalogue_per_example": 0, "shared_per_batch": 0}
    evaluated = TrainResult(headline=TrainHeadline(0.25, {"popularity_window": 0.1}, None))
    e = evaluated.to_dict()
    assert e["recall@50"] == 0.25 and e["baseline_recall@50"] == {"popularity_window": 0.1}
    assert "oracle_recall@50" in e and e["oracle_recall@50"] is None  # evaluated without an oracle
    assert e["warm_start_from"] is None and "tensors_copied" not in e  # fresh start
    for result in (r, evaluated):
        assert TrainResult.from_dict(result.to_dict()) == result


def test_skipped_final_training_and_evaluate_result_json():
    skipped = TrainFinalResult(ds="d", skipped="training.train_on_eval_days = false", trained_days=("a", "b"))
    assert skipped.to_dict() == {"ds": "d", "final_training": "skipped", "reason": "training.train_on_eval_days = false",
                                 "trained_days": ["a", "b"]}
    assert TrainFinalResult.from_dict(skipped.to_dict()) == skipped
    done = TrainFinalResult(ds="d", final_training=FinalTraining(days=("c",), rows=10, wall_seconds=1.5), trained_days=("a", "c"),
                            gate_evaluation=GateEvaluation(trained_days=("a",), evaluated_on=("c",), recall_at_50=0.2), model_dir="/m")
    d = done.to_dict()
    assert d["gate_evaluation"]["recall@50"] == 0.2 and d["final_training"]["wall_seconds"] == 1.5
    assert TrainFinalResult.from_dict(d) == done
    m = EvaluateResult(ds="d", model={"recall@50": 0.3}, lift_recall_at_50_vs_best_baseline=0.5)
    assert m.to_dict()["lift_recall@50_vs_best_baseline"] == 0.5 and m.to_dict()["oracle"] is None
    assert not {"prior", "train", "protocol"} & set(m.to_dict()) and m.recall_at_50 == 0.3
