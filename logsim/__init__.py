"""Daily feed-log simulator with planted ground truth.

``simulate(cfg, preset, start, days, seed) -> dict`` writes the four raw tables per day;
``logsim.truth.Truth.load(layout)`` gives the planted vectors and the true click propensity.
Importing this package is cheap (numpy/pyarrow load on first use).
"""

from __future__ import annotations

from typing import Any


def simulate(cfg, preset, start, days: int, seed: int) -> dict[str, Any]:
    """See :func:`logsim.engine.simulate`."""
    from logsim.engine import simulate as _simulate

    return _simulate(cfg, preset, start, days, seed)


__all__ = ["simulate"]
