"""
### two_tower_daily: raw feed logs of day D -> published two-tower retrieval index

One run processes **one day D** (its logical date, or the `ds` param; a manual run with neither
processes the last complete UTC day, see `twotower/rundays.py`):

0. `wait_for_raw_data`: waits (reschedule mode, every 5 min, up to 12 h) until D's required
   raw partitions have landed, so a run for a day whose logs are not there yet (e.g. the run
   that unpausing creates) waits instead of failing; `wait_for_previous_day` then waits for
   the run before D.
1. `validate_raw`: Great Expectations on D's raw partitions; quarantines bad rows, stops the
   run on a critical failure (no retry: the data will not fix itself).
2. `etl`: every Spark ETL stage of D in dependency order in ONE Spark application (one JVM
   start instead of one per stage; each stage still writes its own statistics, `etl_<stage>`
   in the run report, and a retry reruns the stages, which are idempotent).
3. `validate_outputs`: Great Expectations on every ETL output (gate, no retry).
4. `train` -> `evaluate` -> `train_final` -> `build_index`: PyTorch two-tower model trained
   through D-1 (warm start from the published model), evaluated on D against the baselines,
   then trained on D's own clicks (so the published weights have seen D), FAISS index staged
   as a version.
5. `publish`: quality gate + atomic publish + LATEST switch. Emits the Asset
   `two_tower_published_index` (a serving refresh can be scheduled on it). Refuses to publish
   on top of a day that has no published version unless `publish.allow_gaps`.
6. `report`: the run's HTML report (written even when a step failed); `done` makes the run's
   state say whether the day was published.

Every task body calls `twotower.pipeline.<step>(cfg, ds)`, the same function `twotower run`
and the tests call. Spark steps run through the Spark provider (`@task.pyspark`): the Spark
master comes from the Airflow connection `twotower_spark` (default `local[*]`).
Operations: `docs/operations.md`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable, Param, TriggerRule, dag, get_current_context, task

from core.spark import BASE_CONF

DAG_ID = "two_tower_daily"
SPARK_CONN_ID = "twotower_spark"
# The published model version (LATEST under <artifact_root>/two_tower). Each successful
# publish emits an event whose extra names the version and its day.
PUBLISHED_INDEX = Asset(name="two_tower_published_index", uri="twotower://artifacts/two_tower/LATEST")

# Spark, file-system and torch failures can be transient: retry those with exponential backoff.
# Gates (PipelineError: data quality, publish rejection, bad input) raise AirflowFailException
# in _run_step, which is never retried.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=20),
    "execution_timeout": dt.timedelta(hours=2),
}
SPARK_TASK_ARGS: dict[str, Any] = {"conn_id": SPARK_CONN_ID, "config_kwargs": dict(BASE_CONF)}
# How long a run waits for its day's raw partitions to land, and how often it looks.
RAW_WAIT_TIMEOUT = dt.timedelta(hours=12)
RAW_POKE_INTERVAL = dt.timedelta(minutes=5)


def _run_day() -> str:
    """The day this run processes (``ds`` param > logical date > last complete day)."""
    from core.published import run_day_for

    ctx = get_current_context()
    return run_day_for(ctx["params"].get("ds"), ctx.get("logical_date"), ctx["dag_run"].run_after)


def _run_step(step: str, **kwargs: Any):
    """Load the config once, run ``twotower.pipeline.<step>(cfg, ds)`` and turn a gate into a failure."""
    from airflow.sdk.exceptions import AirflowFailException

    from core.config_load import load_config
    from core.errors import PipelineError
    from twotower import pipeline

    cfg = load_config()
    ds = _run_day()
    print(f"{step}: ds={ds} (data root {cfg.paths.data_root})")
    try:
        return getattr(pipeline, step)(cfg, ds, **kwargs)
    except PipelineError as exc:  # deterministic: a retry cannot help
        raise AirflowFailException(f"{step} for ds={ds}: {exc}") from exc


@dag(
    dag_id=DAG_ID,
    doc_md=__doc__,
    description="Raw feed logs of day D -> Spark ETL -> two-tower training -> published FAISS index",
    # The run for D covers [D, D+1) and starts once D is complete (00:00 UTC of D+1).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,  # history goes through `airflow backfill create`, deliberately
    # Days build on each other (warm start, publish chain): one day at a time, in date order.
    max_active_runs=1,
    max_active_tasks=2,
    default_args=DEFAULT_ARGS,
    params={
        "ds": Param(
            None,
            type=["null", "string"],
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            description="Day to process (YYYY-MM-DD). Empty: the logical date, or the last complete day.",
        )
    },
    tags=["twotower", "daily", "spark", "training"],
)
def two_tower_daily():
    @task.sensor(poke_interval=RAW_POKE_INTERVAL, timeout=RAW_WAIT_TIMEOUT, mode="reschedule", retries=0)
    def wait_for_raw_data() -> bool:
        """Day D starts once its required raw partitions have landed (``pipeline.raw_landed``).

        Reschedule mode frees the worker slot between pokes; after the timeout the task fails
        (AirflowSensorTimeout, not retried) and nothing downstream runs.
        """
        from core.config_load import load_config
        from twotower import pipeline

        return pipeline.raw_landed(load_config(), _run_day())

    @task.sensor(poke_interval=15, timeout=dt.timedelta(hours=12), mode="reschedule", retries=0)
    def wait_for_previous_day() -> bool:
        """Day D starts once the run before it (by logical date) has finished, whatever its state.

        Backfills do not honour the DAG's max_active_runs (they default to 10 concurrent runs),
        so the day-to-day chain (warm start, publish on top of D-1) is enforced here. A failed
        previous day does not block forever: D then fails fast on the publish-gap rule below
        unless publish.allow_gaps.
        """
        from airflow.sdk.exceptions import AirflowFailException

        from core.config_load import load_config
        from twotower import pipeline

        ctx = get_current_context()
        prev = ctx["ti"].get_previous_dagrun()
        if prev is not None and prev.state in ("queued", "running"):
            print(f"waiting for the previous run {prev.run_id} ({prev.logical_date}) to finish: {prev.state}")
            return False
        ds = _run_day()
        reason = pipeline.publish_gap_reason(load_config(), ds)
        if reason:
            raise AirflowFailException(f"ds={ds}: {reason}")
        return True

    @task.pyspark(**SPARK_TASK_ARGS)
    def validate_raw(spark=None) -> None:
        _run_step("validate_raw")

    @task.pyspark(**SPARK_TASK_ARGS)
    def etl(spark=None) -> None:
        """Every ETL stage (``pipeline.etl``) in this task's one Spark application."""
        _run_step("etl")

    @task.pyspark(**SPARK_TASK_ARGS)
    def validate_outputs(spark=None) -> None:
        _run_step("validate_outputs")

    @task(retries=1, execution_timeout=dt.timedelta(hours=8))
    def train() -> None:
        _run_step("train")

    @task(retries=1)
    def evaluate() -> None:
        _run_step("evaluate")

    @task(retries=1, execution_timeout=dt.timedelta(hours=4))
    def train_final() -> None:
        _run_step("train_final")

    @task(retries=1)
    def build_index() -> None:
        _run_step("build_index")

    @task(retries=1, outlets=[PUBLISHED_INDEX])
    def publish() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        result = _run_step("publish")
        if not result.published:
            raise AirflowFailException(f"publish rejected: {result.reason}")
        extra = result.event_extra()
        get_current_context()["outlet_events"][PUBLISHED_INDEX].extra = extra
        return extra

    @task(retries=1, trigger_rule=TriggerRule.ALL_DONE)
    def report() -> str:
        out = _run_step("report")
        print(f"run report: {out.report}")
        return out.report

    @task(retries=0)
    def done() -> None:
        """Fails (upstream_failed) unless the day was published: the run state says so."""

    raw = validate_raw()
    wait_for_raw_data() >> wait_for_previous_day() >> raw
    outputs = validate_outputs()
    raw >> etl() >> outputs
    published = publish()
    outputs >> train() >> evaluate() >> train_final() >> build_index() >> published
    rep = report()
    [raw, outputs, published] >> rep
    [published, rep] >> done()


two_tower_daily()
