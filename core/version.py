"""What code and when: the version string every step and manifest records."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path


def code_version(repo: Path | None = None) -> str:
    """``git:<sha>[+dirty]`` of the checkout this code runs from, else ``twotower-<version>``."""
    repo = repo or Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"git:{sha}{'+dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"twotower-{version('twotower')}"
        except PackageNotFoundError:
            return "unknown"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
