"""What "published" means: which days have a published version, what ``LATEST`` names,
whether a day may publish on top of the days before it, and which day a run processes.

The read side of the versions store under ``Layout.model_root``: a published version is a
directory named by its run day ``YYYY-MM-DD`` holding a ``manifest.json``; ``LATEST`` holds the
name of the served one. The indexing stage writes them (``indexing.version_store``); the
pipeline, the DAG, the report and the indexing stage itself read them through this module.

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

from contracts.days import ds_str, parse_ds
from core.errors import PipelineError
from storage.layout import Layout

MANIFEST_NAME = "manifest.json"


class PublishGap(PipelineError):
    """Day D may not publish: an earlier day in the chain is missing (``publish.allow_gaps``)."""


class TamperedArtifact(PipelineError):
    """A published file (a version's file or manifest, the ``LATEST`` pointer) is missing,
    unexpected or does not match what the store records for it."""


def is_version_name(name: str) -> bool:
    """Published versions are named by their run day ``YYYY-MM-DD``."""
    try:
        return parse_ds(name).isoformat() == name
    except ValueError:
        return False


def read_latest(layout: Layout) -> str | None:
    """Name of the version ``LATEST`` points at (working copy), or None before the first publish."""
    try:
        name = layout.latest_pointer.read_text().strip()
    except FileNotFoundError:
        return None
    if not is_version_name(name):
        raise TamperedArtifact(f"{layout.latest_pointer}: holds {name!r}, not a version name (YYYY-MM-DD)")
    return name


def list_versions(layout: Layout) -> list[str]:
    """Version directories (named ``YYYY-MM-DD``) in this machine's working copy, oldest first:
    what the publish transaction gates against and retention prunes, after pulling the model root."""
    root = layout.model_root
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_version_name(p.name))


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
    """Days that have a complete published version (a ``manifest.json``) in the store of record
    (the object store when ``[paths] remote`` is set, no pull needed), oldest first."""
    store = layout.store
    return [
        name
        for name in store.child_dirs(layout.model_root)
        if is_version_name(name) and store.is_file(layout.version_dir(name) / MANIFEST_NAME)
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
