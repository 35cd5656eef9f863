"""``manifest.json`` of a version: what it is, how it was built, how good it is, and a sha256
for every file. Written last; checked first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from indexing.checksums import MANIFEST_NAME, TamperedArtifact
from storage.layout import atomic_write_text

FORMAT_VERSION = 1

# Every manifest has these keys (documented in docs/artifacts.md; checked on load).
REQUIRED_FIELDS = (
    "format_version",
    "version",
    "ds",
    "status",
    "data_window",
    "created_at",
    "code_version",
    "config_hash",
    "index",
    "ntotal",
    "dimension",
    "metrics",
    "ann",
    "files",
)

STATUS_STAGED = "staged"
STATUS_PUBLISHED = "published"
STATUS_REJECTED = "rejected"


def write_manifest(version_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (sorted keys, so identical content gives identical bytes)."""
    missing = [k for k in REQUIRED_FIELDS if k not in manifest]
    if missing:
        raise ValueError(f"manifest for {version_dir} lacks {', '.join(missing)}")
    path = Path(version_dir) / MANIFEST_NAME
    atomic_write_text(path, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return path


def read_manifest(version_dir: Path) -> dict[str, Any]:
    """Parse and shape-check ``manifest.json`` (JSON only: nothing is unpickled)."""
    path = Path(version_dir) / MANIFEST_NAME
    if not path.is_file():
        raise TamperedArtifact(f"{path}: missing; {version_dir} is not a complete version")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TamperedArtifact(f"{path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise TamperedArtifact(f"{path}: expected a JSON object")
    missing = [k for k in REQUIRED_FIELDS if k not in manifest]
    if missing:
        raise TamperedArtifact(f"{path}: lacks {', '.join(missing)}")
    if not isinstance(manifest["files"], dict):
        raise TamperedArtifact(f"{path}: 'files' must map file names to sha256")
    return manifest
