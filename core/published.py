"""Which day a run processes, and whether a day may publish on top of the days before it.

Light on purpose (stdlib + storage.layout only): the DAG file imports it at parse time.

Date semantics (docs/operations.md, "Which day does a run process?"):
  * a run with logical date D processes the logs of day D. Scheduled runs use
    ``CronDataIntervalTimetable("@daily")``: the run for D covers [D, D+1) and starts after
    D+1 00:00 UTC, once D is complete. Backfills and ``airflow dags test two_tower_daily D``
    have logical date D too;
  * a run may name its day explicitly with the ``ds`` param (``airflow dags trigger
    two_tower_daily --conf '{"ds": "2026-11-07"}'``): it wins over the logical date;
  * a manual run with neither (Airflow 3 allows ``logical_date=None``) processes the last
    complete UTC day before the run was requested: ``run_after`` minus one day.
"""

from __future__ import annotations

import datetime as dt
import re

from contracts.days import ds_str, parse_ds
from core.errors import PipelineError
from storage.layout import Layout

_DS_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PublishGap(PipelineError):
    """Day D may not publish: an earlier day in the chain is missing (``publish.allow_gaps``)."""


def run_day_for(
    ds_param: str | None,
    logical_date: dt.datetime | None,
    run_after: dt.datetime | None,
    now: dt.datetime | None = None,
) -> str:
    """The day (``YYYY-MM-DD``) a DAG run processes.

    Args:
        ds_param: the run's ``ds`` param (``None`` or empty: not given).
        logical_date: the run's logical date (``None`` for manual runs without one).
        run_after: when the run was requested (used when there is no logical date).
        now: stand-in for the current time when ``run_after`` is also missing (tests).
    Returns:
        The processed day, ``ds`` param > logical date (UTC) > day before ``run_after``.
    """
    if ds_param:
        return ds_str(str(ds_param))
    if logical_date is not None:
        return _utc(logical_date).date().isoformat()
    when = run_after or now or dt.datetime.now(dt.UTC)
    return (_utc(when).date() - dt.timedelta(days=1)).isoformat()


def _utc(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:  # Airflow hands out aware datetimes; treat naive ones as UTC
        return t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC)


def published_days(layout: Layout) -> list[str]:
    """Days that have a complete published version (a ``manifest.json``) in the store, oldest first."""
    store = layout.store
    return [
        name
        for name in store.child_dirs(layout.model_root)
        if _DS_DIR.match(name) and store.is_file(layout.version_dir(name) / "manifest.json")
    ]


def publish_gap(layout: Layout, ds: str) -> str | None:
    """Why day ``ds`` may not publish on top of the published history, or ``None`` if it may.

    A day publishes on top of day ``ds - 1``. If some earlier day is published but ``ds - 1``
    is not (its run failed, was rejected, or never ran), publishing ``ds`` would hide the gap:
    the model would warm-start over a missing day and LATEST would jump it. The first publish
    ever and reruns of an already published day are never a gap.
    """
    ds = ds_str(ds)
    days = published_days(layout)
    earlier = [d for d in days if d < ds]
    if not earlier:
        return None
    prev = (parse_ds(ds) - dt.timedelta(days=1)).isoformat()
    if prev in days:
        return None
    return (
        f"day {prev} has no published version (last published day before {ds} is {earlier[-1]}); "
        f"refusing to publish {ds} on top of the gap. Fix and rerun {prev} first "
        f"(`twotower run --ds {prev}` or clear its Airflow run), or set publish.allow_gaps = true "
        f"(or pass --force) to publish anyway"
    )
