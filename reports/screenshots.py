"""``make screenshots``: headless-Chromium screenshots of the runs under the reports root, so a
reviewer can look at the pages without running the pipeline.

Takes the newest published day's report, the newest day the publish gate refused, the newest
failed day, the runs index, and the Great Expectations Data Docs page of a failed suite::

    python -m reports.screenshots --out docs/screenshots [--config FILE] [--published D] [--refused D] [--failed D]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reports.browser import screenshot
from reports.facts import read_json
from reports.trends import INDEX_NAME, load_run_summaries
from storage.layout import Layout


def _newest(runs: list[dict], state: str, day: str | None) -> str | None:
    if day:
        return day
    days = [r["ds"] for r in runs if r["state"] == state and r["report"]]
    return days[-1] if days else None


def failed_data_docs_page(layout: Layout, ds: str) -> Path | None:
    """The Data Docs validation page of the first failed suite of day ``ds`` (else the site's index)."""
    for step in ("validate_raw", "validate_outputs"):
        dq = read_json(layout.dq_dir(ds) / f"{step}.json") or {}
        docs = dq.get("data_docs")
        if not docs or str(dq.get("status")) != "failed":
            continue
        site = Path(docs).parent
        for suite in dq.get("suites") or []:
            if isinstance(suite, dict) and suite.get("status") == "failed" and suite.get("suite"):
                pages = sorted((site / "validations").joinpath(*str(suite["suite"]).split(".")).rglob("*.html"))
                if pages:
                    return pages[-1]
        return Path(docs) if Path(docs).is_file() else None
    return None


def take_screenshots(layout: Layout, out: Path, published: str | None = None, refused: str | None = None,
                     failed: str | None = None) -> list[Path]:
    """Write the PNGs into ``out``; returns their paths (a kind with no such day is skipped)."""
    runs = load_run_summaries(layout)
    shots: list[Path] = []
    for kind, day, state in (("published", published, "published"), ("refused", refused, "rejected"), ("failed", failed, "failed")):
        ds = _newest(runs, state, day)
        if ds:
            shots.append(screenshot(layout.report_dir(ds) / "report.html", out / f"report-{kind}-{ds}.png", height=2400))
    if (layout.reports_root / INDEX_NAME).is_file():
        shots.append(screenshot(layout.reports_root / INDEX_NAME, out / "runs-index.png", height=2000))
    ds = _newest(runs, "failed", failed)
    docs = failed_data_docs_page(layout, ds) if ds else None
    if docs:
        shots.append(screenshot(docs, out / f"data-docs-failed-{ds}.png", height=1600))
    return shots


def main(argv: list[str] | None = None) -> int:
    from core.config_load import load_config

    ap = argparse.ArgumentParser(prog="python -m reports.screenshots", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="TOML config (its [paths] reports_root is where the runs are)")
    ap.add_argument("--out", default="docs/screenshots", type=Path)
    ap.add_argument("--published", help="day of the published report (default: the newest)")
    ap.add_argument("--refused", help="day the publish gate refused (default: the newest)")
    ap.add_argument("--failed", help="failed day (default: the newest)")
    args = ap.parse_args(argv)
    layout = Layout(load_config(args.config).paths)
    shots = take_screenshots(layout, args.out, args.published, args.refused, args.failed)
    if not shots:
        print(f"no reports under {layout.reports_root}: run a day first (`make run`)", file=sys.stderr)
        return 1
    for p in shots:
        print(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
