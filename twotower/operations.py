"""Operator actions beside the daily steps: inspect and roll back published versions, query one,
read the runs and data-quality summaries. The CLI's commands call these (one code path, like the
steps in :mod:`twotower.pipeline`); each pulls what it reads into the working copy and pushes
what it changes (no-ops with local storage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.config import Config
from storage import sync
from storage.layout import Layout


def versions(cfg: Config) -> dict[str, Any]:
    """``{"latest": name | None, "versions": rows}``: published versions then rejected
    candidates, oldest first (manifest fields only; no checksum pass)."""
    from indexing import artifacts as art

    layout = Layout(cfg.paths)
    sync.pull(cfg.paths, [layout.model_root])
    rows = [art.describe(layout, layout.version_dir(v)) for v in art.list_versions(layout)]
    rows += [art.describe(layout, layout.model_root / art.REJECTED / v) for v in art.list_rejected(layout)]
    return {"latest": art.read_latest(layout), "versions": rows, "model_root": str(layout.model_root)}


def show_version(cfg: Config, version: str):
    """A version (published or a rejected candidate ``<ds>-<n>``) with its checksums verified,
    and the name LATEST points at: ``(LoadedVersion, latest)``."""
    from indexing import artifacts as art

    layout = Layout(cfg.paths)
    sync.pull(cfg.paths, [layout.model_root])  # the version may be a rejected candidate
    return art.LoadedVersion.load(art.resolve_version_dir(layout, version), verify=True), art.read_latest(layout)


def rollback(cfg: Config, version: str) -> dict[str, Any]:
    """Point LATEST at ``version`` after verifying its checksums (``{"previous", "latest"}``)."""
    from indexing.artifacts import rollback as _rollback

    layout = Layout(cfg.paths)
    with sync.working_copy(cfg.paths, [layout.model_root], [layout.model_root]):
        return _rollback(layout, version)


def recommend(cfg: Config, user_id: str, k: int, version: str | None = None):
    """Top-``k`` items for one user from a published version (default: LATEST), the way a
    serving host loads it: LATEST and that version pulled, checksums verified first.
    Returns ``(result, LoadedVersion)``."""
    from indexing.artifacts import load_version, pull_published
    from indexing.query import recommend as _recommend

    layout = Layout(cfg.paths)
    pull_published(layout, version)
    loaded = load_version(layout, version, verify=True)
    return _recommend(loaded, [user_id], k=k)[0], loaded


def run_summaries(cfg: Config) -> list[dict[str, Any]]:
    """Every run day's ``summary.json`` (status, warnings, facts), oldest first."""
    from reports.trends import SUMMARY_NAME, load_run_summaries

    layout = Layout(cfg.paths)
    days = [d for d in layout.store.child_dirs(layout.reports_root) if d.startswith("ds=")]
    sync.pull(cfg.paths, [layout.reports_root / d / SUMMARY_NAME for d in days])
    return load_run_summaries(layout)


def dq_summary(cfg: Config, ds: str) -> dict[str, Any]:
    """Day ``ds``'s data-quality summary over both gates (what ``twotower dq show`` prints)."""
    from quality.io import summary_path
    from quality.report import STAGES, day_summary

    layout = Layout(cfg.paths)
    sync.pull(cfg.paths, [summary_path(layout, ds, stage) for stage in STAGES])
    return day_summary(layout, ds)


def evaluate_model(cfg: Config, ds: str, model_dir: Path) -> dict[str, Any]:
    """Evaluate any exported model folder (e.g. a published version) on day ``ds``'s held-out
    set, like the publish gate does: the same inputs pulled, the oracle on simulated data."""
    from core.context import RunContext
    from twotower import step_io

    ctx = RunContext.build(cfg, ds)
    sync.pull(cfg.paths, [*step_io.evaluation_inputs(ctx), model_dir])
    return step_io.gate_evaluator(ctx, model_dir)
