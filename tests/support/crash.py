"""Kill the publish transaction after a named step, for the crash tests.

Each step of ``indexing.publish.publish_day`` is one call of a module-level function of
``indexing.publish``; :func:`crash_after` wraps the one of the named step so the process
``os._exit``s (no cleanup, no ``finally``) right after it returns, like a power cut. Run it in
a subprocess: the test then checks what the next ``publish_day`` finds.
"""

from __future__ import annotations

import functools
import os

# The transaction's steps in publish_day's order, and the function of indexing.publish each is.
PUBLISH_STEPS = ("recovered", "staging_verified", "gated", "copied", "smoke_tested", "renamed", "latest_switched", "retention_done")
STEP_FUNCTIONS = {
    "recovered": "recover",
    "staging_verified": "_verify_staging",
    "gated": "gate_candidate",
    "copied": "_copy",
    "smoke_tested": "_smoke_test",
    "renamed": "swap_into_place",
    "latest_switched": "_switch_latest",
    "retention_done": "apply_retention",
}
CRASH_EXIT_CODE = 70


def crash_after(step: str) -> None:
    """Make this process exit with :data:`CRASH_EXIT_CODE` right after ``step`` of the publish
    transaction (one of :data:`PUBLISH_STEPS`)."""
    if step not in PUBLISH_STEPS:
        raise ValueError(f"crash_after must be one of {PUBLISH_STEPS}, got {step!r}")
    from indexing import publish

    name = STEP_FUNCTIONS[step]
    original = getattr(publish, name)  # AttributeError: publish_day's steps were renamed

    @functools.wraps(original)
    def then_crash(*args, **kwargs):
        original(*args, **kwargs)
        os._exit(CRASH_EXIT_CODE)

    setattr(publish, name, then_crash)
