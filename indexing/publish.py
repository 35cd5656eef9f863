"""Gate the staged version of a day and publish it atomically (:func:`publish_day`).

Publishing is a transaction (details and the crash analysis in docs/artifacts.md); each step
is one call below, in this order:

1. recover what a crashed publish left (``.tmp-*``, a version moved aside);
2. verify the staged version's checksums;
3. quality gate (:mod:`indexing.gate`): the candidate's held-out recall@50 against the
   published model evaluated on the SAME held-out set, and its ANN recall; a refused
   candidate moves to ``_rejected/<ds>-<n>/`` with the reason and :class:`PublishRejected` is
   raised (``force=True`` publishes anyway);
4. copy the staged files into ``.tmp-<ds>-*`` beside the versions (same filesystem) with
   the final manifest;
5. verify the copy's checksums and run a smoke query on it;
6. swap it into place as ``<ds>/`` (one ``renameat2(RENAME_EXCHANGE)`` when ``<ds>`` exists);
7. switch ``LATEST`` (temp file + ``os.replace``);
8. retention; 9. delete the staging directory.

A crash before 7 leaves ``LATEST`` on the previous complete version; a crash after 7 leaves it
on the new complete one. The staging directory survives until the end, so rerunning
``publish_day`` (or ``twotower index``) always finishes the job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import uuid
from pathlib import Path

from core.config import Config
from core.context import RunContext
from core.errors import PipelineError
from core.published import read_latest
from core.results.indexing import ALREADY_PUBLISHED, PUBLISHED, GateResult, PublishResult, SmokeResult
from core.version import utc_now
from indexing.candidate_checks import CandidateMissing
from indexing.checksums import verify_checksums
from indexing.gate import Evaluator, comparison_version, gate_candidate
from indexing.loaded_version import LoadedVersion
from indexing.manifest import STATUS_PUBLISHED, STATUS_REJECTED, read_manifest, write_manifest
from indexing.version_store import (
    REJECTED,
    STAGING,
    apply_retention,
    publish_lock,
    recover,
    swap_into_place,
    write_latest,
)
from storage.layout import Layout

log = logging.getLogger(__name__)


class PublishRejected(PipelineError):
    """The quality gate refused the candidate (kept under ``_rejected/``); ``--force`` overrides."""


def publish_day(ctx: RunContext, *, evaluator: Evaluator, force: bool = False) -> PublishResult:
    """Gate the staged version of day ``ctx.ds`` and publish it atomically (module docstring).

    Args:
        evaluator: evaluates a version directory on day ``ctx.ds``'s held-out set (the pipeline
            passes the training stage's evaluation).
        force: publish even if the quality gate refuses (the refusal is still recorded).

    Returns:
        The decision, version, previous and new LATEST, gate result, smoke query, retention.

    Raises:
        PublishRejected: the gate refused and ``force`` is False (LATEST unchanged).
        CandidateMissing: nothing staged for ``ds`` and ``ds`` is not already published.
    """
    cfg, ds, layout = ctx.cfg, ctx.ds, ctx.layout
    with publish_lock(layout):
        recovered = recover(layout)
        staging = layout.model_root / STAGING / ds
        if not staging.is_dir():
            return _already_published(layout, ds, recovered)
        staged = _verify_staging(staging)

        previous = read_latest(layout)
        gate = gate_candidate(ctx, staged, comparison_version(layout, ds, previous), evaluator)
        if not gate.passed and not force:
            rejected = _reject(layout, ds, staging, staged, gate)
            raise PublishRejected(
                f"candidate for ds={ds} not published: {gate.reason}. Kept at {rejected}; LATEST stays "
                f"{previous}. Use `twotower index --ds {ds} --force` to publish it anyway"
            )
        gate = dataclasses.replace(gate, forced=bool(force and not gate.passed))

        final = layout.version_dir(ds)
        tmp = layout.model_root / f".tmp-{ds}-{uuid.uuid4().hex[:8]}"
        try:
            manifest = _copy(staging, tmp, staged, gate, previous)
            smoke = _smoke_test(tmp, cfg)
            swap_into_place(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays beside the versions
            raise
        latest = _switch_latest(layout, ds, previous)
        deleted = apply_retention(layout, cfg.publish.retention)
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only when no other day is staged

    if not gate.passed:
        log.warning("ds=%s published with --force despite the gate: %s", ds, gate.reason)
    log.info("published %s (LATEST was %s); retention deleted %s", ds, previous, deleted or "nothing")
    return PublishResult(
        published=True,
        decision=PUBLISHED,
        reason=gate.reason,
        ds=ds,
        version=ds,
        index_kind=manifest["index"]["kind"],
        n_items=manifest["ntotal"],
        path=str(final),
        previous_latest=previous,
        latest=latest,
        gate=gate,
        smoke=smoke,
        retention_deleted=tuple(deleted),
        recovered=tuple(recovered),
    )


# -- the transaction's steps (in publish_day's order) ---------------------------------------


def _verify_staging(staging: Path) -> dict:
    """The staged version's manifest, after every staged file matched its sha256."""
    staged = read_manifest(staging)
    verify_checksums(staging, staged["files"])
    return staged


def _copy(staging: Path, tmp: Path, staged: dict, gate: GateResult, previous: str | None) -> dict:
    """Copy the staged version to ``tmp`` with its published manifest; returns the manifest."""
    shutil.copytree(staging, tmp)
    manifest = dict(
        staged,
        status=STATUS_PUBLISHED,
        published_at=utc_now(),
        gate=gate.to_dict(),
        previous_latest=previous,
    )
    write_manifest(tmp, manifest)
    return manifest


def _smoke_test(tmp: Path, cfg: Config) -> SmokeResult:
    """Verify the copy's checksums and query it, before it is swapped into place."""
    from indexing.query import smoke_query

    return SmokeResult(**smoke_query(LoadedVersion.load(tmp, verify=True), cfg.publish.smoke_queries))


def _switch_latest(layout: Layout, ds: str, previous: str | None) -> str:
    """Point LATEST at ``ds`` unless it serves a newer day; returns what LATEST serves."""
    # A backfilled older day is published as a version but never moves LATEST backwards
    # (serving keeps the newest model; `twotower artifacts rollback` is the deliberate way back).
    if previous is None or ds >= previous:
        write_latest(layout, ds)
        return ds
    log.warning("ds=%s published as a version; LATEST stays at the newer %s", ds, previous)
    return previous


# -- the other outcomes -------------------------------------------------------------------------


def _already_published(layout: Layout, ds: str, recovered: list[str]) -> PublishResult:
    """Rerun after a publish that completed (staging already removed): verify and report."""
    latest = read_latest(layout)
    if latest is not None and latest >= ds and layout.version_dir(ds).is_dir():
        loaded = LoadedVersion.load(layout.version_dir(ds), verify=True)
        gate = loaded.manifest.get("gate")
        gate = None if gate is None else GateResult.from_dict(gate)
        return PublishResult(
            published=True,
            decision=ALREADY_PUBLISHED,
            reason=None if gate is None else gate.reason,
            ds=ds,
            version=ds,
            index_kind=loaded.manifest["index"]["kind"],
            n_items=loaded.manifest["ntotal"],
            path=str(loaded.path),
            latest=latest,
            gate=gate,
            recovered=tuple(recovered),
        )
    raise CandidateMissing(
        f"nothing staged for ds={ds} under {layout.model_root / STAGING} and LATEST is "
        f"{read_latest(layout)}; build it first (`twotower index --ds {ds}` builds and publishes)"
    )


def _reject(layout: Layout, ds: str, staging: Path, staged: dict, gate: GateResult) -> Path:
    root = layout.model_root / REJECTED
    root.mkdir(parents=True, exist_ok=True)
    n = 1 + max((int(p.name.rsplit("-", 1)[1]) for p in root.glob(f"{ds}-*") if p.name.rsplit("-", 1)[1].isdigit()), default=0)
    target = root / f"{ds}-{n}"
    write_manifest(staging, dict(staged, status=STATUS_REJECTED, rejected_at=utc_now(), gate=gate.to_dict()))
    os.rename(staging, target)  # old rejected candidates are pruned by the next publish's retention
    log.error("ds=%s rejected: %s (kept at %s)", ds, gate.reason, target)
    return target
