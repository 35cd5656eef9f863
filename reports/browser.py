"""Headless Chromium for the report pages: screenshots and the rendered DOM (what a browser
really shows, for the browser test and ``make screenshots``).

Debian's ``chromium`` package (``apt-get install chromium``); every call uses a new, empty
profile and no network services of the browser's own (sync, updates, QUIC).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class BrowserMissing(RuntimeError):
    """No headless Chromium on this machine."""


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


def _url(target: str | Path) -> str:
    text = str(target)
    return text if "://" in text else Path(text).resolve().as_uri()


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    exe = find_chromium()
    if exe is None:
        raise BrowserMissing(f"no headless Chromium ({', '.join(CANDIDATES)}) on PATH: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", *args,
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {out.returncode}: {out.stderr[-2000:]}")
    return out


def dump_dom(target: str | Path, *, file_access: bool = False, timeout: float = 120) -> str:
    """The DOM after the page loaded (scripts run; ``file_access`` lets a file:// page read
    other local files, e.g. a frame's document)."""
    extra = ["--allow-file-access-from-files"] if file_access else []
    return _run([*extra, "--virtual-time-budget=10000", "--dump-dom", _url(target)], timeout).stdout


def screenshot(target: str | Path, out: Path, width: int = 1280, height: int = 2000, timeout: float = 120) -> Path:
    """PNG of the page's first ``width`` x ``height`` pixels."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={out.resolve()}", f"--window-size={width},{height}", _url(target)], timeout)
    if not out.is_file():
        raise RuntimeError(f"chromium wrote no screenshot at {out}")
    return out
