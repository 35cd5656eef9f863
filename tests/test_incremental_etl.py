"""Incremental hard negatives: per-day outputs (hard_negative_candidates, shown_pairs) assembled
into a window equal a from-scratch computation over the raw logs; a rerun of a middle day
with changed input reaches every later window; a raw re-export nobody reran is detected by
the stored source fingerprint and recomputed; a rerun is idempotent.

The reference is ``etl.hard_negatives.hard_negatives_from_ranking_log`` applied to the raw
ranking log and impressions of the whole window at once (the pre-incremental path, clicks
taken straight from the raw impressions, no per-day output read), compared row for row with
``exceptAll`` both ways.
"""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from storage.layout import Layout
from tests.conftest import make_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]

START = "2026-11-01"
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
COLS = ["request_id", "user_id", "item_id", "event_ds", "stage_cut", "difficulty"]


def _ctx(cfg, ds: str = START):
    """A run context of ``cfg`` (for the io calls: only its layout counts)."""
    from core.context import RunContext

    return RunContext.build(cfg, ds)


def _from_scratch(spark, cfg, ds: str):
    """Hard negatives of ds's window straight from the raw logs (no per-day output read)."""
    from core.context import RunContext
    from etl import io
    from etl.hard_negatives import hard_negatives_from_ranking_log

    ctx = RunContext.build(cfg, ds)
    ranking, _ = io.read_raw_days(spark, ctx, "ranking_log", ctx.window.days)
    shown, _ = io.read_raw_days(spark, ctx, "impressions", ctx.window.days)
    clicks = shown.filter("clicked")
    return hard_negatives_from_ranking_log(
        ranking, shown.select("user_id", "item_id"), clicks.select("user_id", "item_id"), clicks.select("request_id"),
        cfg.etl.hard_negatives_per_request, cfg.etl.seed,
    )


def _rows(df) -> list[tuple]:
    """The rows as a sorted list of tuples (duplicates kept, so a doubled row is seen)."""
    return sorted(tuple(r) for r in df.select(*COLS).collect())


def _assert_equals_from_scratch(spark, cfg, ds: str) -> list[tuple]:
    from etl import io

    got = _rows(io.read_output(spark, _ctx(cfg), "hard_negatives", ds))
    expected = _rows(_from_scratch(spark, cfg, ds))
    assert expected, f"the reference for ds={ds} is empty: the comparison would prove nothing"
    assert got == expected, f"ds={ds}: {len(got)} incremental rows vs {len(expected)} from scratch"
    return got


def _run(spark, cfg, ds: str) -> tuple[dict, dict]:
    """(click_positives stats, hard_negatives stats) of one run of day ds."""
    from core.context import RunContext
    from etl.jobs import run_stage

    ctx = RunContext.build(cfg, ds)
    return run_stage(ctx, spark, "click_positives").to_dict(), run_stage(ctx, spark, "hard_negatives").to_dict()


def _re_export(cfg, table: str, ds: str) -> None:
    """The producer re-exports a raw partition with the first half of each file's rows."""
    for f in sorted(Layout(cfg.paths).path_for(table, ds).glob("*.parquet")):
        t = pq.read_table(f)
        pq.write_table(t.slice(0, t.num_rows // 2), f)


def _per_day_counts(spark, cfg) -> dict[tuple[str, str], int]:
    from etl import io

    return {
        (table, d): io.read_output(spark, _ctx(cfg), table, d).count()
        for table in ("hard_negative_candidates", "shown_pairs")
        for d in io.output_days(_ctx(cfg), table)
    }


@pytest.fixture
def simulated(tmp_path):
    import logsim

    cfg = make_config(tmp_path, etl={"window_days": 3})
    logsim.simulate(cfg, "tiny", START, len(DAYS), 11)
    return cfg


def test_incremental_windows_equal_from_scratch_and_a_rerun_is_idempotent(spark, simulated):
    cfg = simulated
    # Day 3 computes the per-day outputs of days 1-3; days 4 and 5 only their own.
    assert _run(spark, cfg, DAYS[2])[1]["per_day_outputs_computed"] == DAYS[:3]
    for ds in DAYS[3:]:
        positives, hard = _run(spark, cfg, ds)
        assert positives["days_written"] == [ds] and hard["per_day_outputs_computed"] == [ds]
        assert hard["stale_days_recomputed"] == []
        _assert_equals_from_scratch(spark, cfg, ds)

    # Rerunning day 5 rewrites only day 5's per-day outputs: same rows, nothing doubled.
    per_day = _per_day_counts(spark, cfg)
    before = _assert_equals_from_scratch(spark, cfg, DAYS[4])
    _, hard = _run(spark, cfg, DAYS[4])
    assert hard["per_day_outputs_computed"] == [DAYS[4]]
    assert _per_day_counts(spark, cfg) == per_day
    assert _assert_equals_from_scratch(spark, cfg, DAYS[4]) == before


def test_a_rerun_middle_day_with_changed_input_reaches_every_later_window(spark, simulated):
    from etl import io

    cfg = simulated
    for ds in DAYS[2:]:
        _run(spark, cfg, ds)
    before = {ds: _rows(io.read_output(spark, _ctx(cfg), "hard_negatives", ds)) for ds in DAYS[2:]}

    # The producer re-exports day 3 with half of its ranking log; day 3 is rerun (it rewrites
    # its per-day outputs), then the later days whose window holds it (a backfill 4..5).
    _re_export(cfg, "ranking_log", DAYS[2])
    assert _run(spark, cfg, DAYS[2])[1]["per_day_outputs_computed"] == [DAYS[2]]
    for ds in DAYS[3:]:
        # The later days read day 3's new per-day outputs; nothing but their own is recomputed.
        assert _run(spark, cfg, ds)[1]["per_day_outputs_computed"] == [ds]
    for ds in DAYS[2:]:
        after = _assert_equals_from_scratch(spark, cfg, ds)
        assert after != before[ds], f"the change of {DAYS[2]} did not reach the window of ds={ds}"


def test_a_re_export_nobody_reran_is_recomputed_by_the_next_window(spark, simulated):
    """Day 2's ranking log and day 3's impressions are re-exported and their days are not
    rerun: the next run (day 4) finds their per-day outputs' source fingerprints stale and
    recomputes them (and day 3's click positives) instead of silently using the old ones."""
    from etl import io

    cfg = simulated
    for ds in DAYS[2:4]:
        _run(spark, cfg, ds)
    before = _rows(io.read_output(spark, _ctx(cfg), "hard_negatives", DAYS[3]))

    _re_export(cfg, "ranking_log", DAYS[1])
    _re_export(cfg, "impressions", DAYS[2])
    positives, hard = _run(spark, cfg, DAYS[3])
    assert positives["stale_days_recomputed"] == [DAYS[2]]
    assert positives["days_written"] == [DAYS[2], DAYS[3]]
    assert hard["stale_days_recomputed"] == [DAYS[1], DAYS[2]]
    assert hard["per_day_outputs_computed"] == DAYS[1:4]
    after = _assert_equals_from_scratch(spark, cfg, DAYS[3])
    assert after != before

    # The fingerprints now match again: the next run recomputes nothing but its own day.
    positives, hard = _run(spark, cfg, DAYS[4])
    assert positives["stale_days_recomputed"] == [] and hard["per_day_outputs_computed"] == [DAYS[4]]
    _assert_equals_from_scratch(spark, cfg, DAYS[4])


def test_a_window_without_ranking_log_computes_only_its_day_until_a_ranking_log_lands(spark, simulated):
    """No ranking log in the window (e.g. an imported ratings log): only D's per-day outputs
    are written (the outputs gate checks D's); once a ranking log lands, the next window
    computes the missing days and the stale day, and equals the from-scratch result."""
    import shutil

    from etl import io

    cfg = simulated
    root = Layout(cfg.paths).table_root("ranking_log")
    aside = root.parent / "ranking_log_aside"
    shutil.move(root, aside)
    _, hard = _run(spark, cfg, DAYS[2])
    assert hard["ranking_log_present"] is False and hard["rows"] == 0
    assert hard["per_day_outputs_computed"] == [DAYS[2]]
    assert io.output_days(_ctx(cfg), "shown_pairs") == [DAYS[2]]

    shutil.move(aside, root)
    _, hard = _run(spark, cfg, DAYS[3])
    # Day 2 had no partition, day 3's fingerprint names no ranking log: both recomputed
    # (stale_days_recomputed lists the days other than D whose partition was missing or stale).
    assert hard["per_day_outputs_computed"] == DAYS[1:4]
    assert hard["stale_days_recomputed"] == DAYS[1:3]
    _assert_equals_from_scratch(spark, cfg, DAYS[3])


@pytest.mark.parametrize(
    "sections",
    [{"etl": {"window_days": 3, "verify_hard_negatives": True}}, {"etl": {"window_days": 3}, "quality": {"enabled": False}}],
    ids=["verify_on", "gates_off"],
)
def test_the_stage_proof_stops_an_exclusion_that_let_shown_items_through(spark, tmp_path, monkeypatch, sections):
    """The outputs gate proves every day that no hard negative was shown to its user
    (tests/test_bad_inputs.py); the stage proves it itself when asked to, or when the gates
    are off. An exclusion that excludes nothing (most cut items of a request were shown on
    other requests of the same user) must then stop the stage, naming table, partition and
    count, and leave no partition that training could read."""
    import logsim
    from core.errors import DataError
    from etl import hard_negatives as hn
    from etl.jobs import run_stage

    cfg = make_config(tmp_path, **sections)
    logsim.simulate(cfg, "tiny", START, 3, 11)
    ds = DAYS[2]
    cap = hn.cap_hard_negatives
    monkeypatch.setattr(hn, "cap_hard_negatives", lambda cands, excluded, n, seed: cap(cands, excluded.limit(0), n, seed))
    ctx = _ctx(cfg, ds)
    run_stage(ctx, spark, "click_positives")
    with pytest.raises(DataError) as err:
        run_stage(ctx, spark, "hard_negatives")
    msg = str(err.value)
    assert msg.startswith(f"table hard_negatives, partition ds={ds}: "), msg
    count = int(msg.split(": ", 1)[1].split(" rows: ", 1)[0].replace(",", ""))
    assert count > 0 and "hard negatives were shown to the same user in the window" in msg
    assert not Layout(cfg.paths).path_for("hard_negatives", ds).exists()
