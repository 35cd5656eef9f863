"""The report's PNG plots (matplotlib, Agg backend, imported lazily), written into the
``assets/`` folder beside the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.facts import EVAL_COLUMNS

# Folder of the page's images, beside report.html.
ASSETS = "assets"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_popularity(before, after, path: Path) -> Path:
    """Rank-frequency (log-log) of item clicks before and after hot/cold resampling.

    Args:
        before, after: per-item counts (1-D arrays, same items).
    """
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for counts, label in ((before, "click positives (before)"), (after, "resampled positives (after)")):
        c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
        c = c[c > 0]
        if c.size:
            ax.loglog(np.arange(1, c.size + 1), c, label=f"{label}: {int(c.sum()):,} rows, {c.size:,} items")
    ax.set_xlabel("item rank by count")
    ax.set_ylabel("positives per item")
    ax.set_title("Item popularity before / after resampling")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curves(series: dict[str, list[float]], path: Path) -> Path:
    """One line per recorded series (loss per epoch, per step, ...)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, values in series.items():
        ax.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None, label=name)
    ax.set_xlabel("step / epoch (as recorded)")
    ax.set_title("Training curves")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_metrics(rows: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Grouped bars of the recall/hitrate/ndcg metrics shared by every row."""
    import numpy as np

    first = next(iter(rows.values()))
    keys = [
        k for k, v in first.items()
        if isinstance(v, int | float) and k.startswith(("recall@", "hitrate@", "ndcg@")) and not k.endswith("_se")
    ]
    keys.sort(key=lambda k: (EVAL_COLUMNS.index(k) if k in EVAL_COLUMNS else len(EVAL_COLUMNS), k))
    if not keys:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(keys) * len(rows) / 2), 5.0), dpi=110)
    width = 0.8 / len(rows)
    x = np.arange(len(keys))
    for i, (name, r) in enumerate(rows.items()):
        values = [float(r[k]) if isinstance(r.get(k), int | float) else np.nan for k in keys]  # nan: no bar
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
    ax.set_xticks(x, keys, rotation=20)
    ax.set_ylabel("value on the held-out day")
    ax.set_title("Model vs baselines (and the previous version)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
