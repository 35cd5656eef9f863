"""sha256 of every file of a version, and verification before anything is loaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.published import MANIFEST_NAME, TamperedArtifact

__all__ = ["MANIFEST_NAME", "TamperedArtifact", "checksum_dir", "sha256_file", "verify_checksums"]

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def checksum_dir(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every regular file under ``root`` except the manifest."""
    root = Path(root)
    out: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel != MANIFEST_NAME:
            out[rel] = sha256_file(path)
    return out


def verify_checksums(root: Path, expected: dict[str, str]) -> None:
    """Raise :class:`TamperedArtifact` naming the first file that is missing, extra or altered.

    Args:
        root: the version directory.
        expected: ``manifest["files"]``: relative path -> sha256.
    """
    root = Path(root)
    if not expected:
        raise TamperedArtifact(f"{root / MANIFEST_NAME}: lists no files; refusing to load an unverifiable version")
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {MANIFEST_NAME}
    for rel in sorted(expected):
        if rel not in present:
            raise TamperedArtifact(f"{root / rel}: listed in the manifest but missing; the version is incomplete")
        actual = sha256_file(root / rel)
        if actual != expected[rel]:
            raise TamperedArtifact(
                f"{root / rel}: sha256 {actual[:16]}... does not match the manifest's {expected[rel][:16]}...; "
                "the file was modified after publishing. Refusing to load it: roll back "
                "(`twotower artifacts rollback VERSION`) or republish the day (`twotower index --ds D --force`)"
            )
    extra = sorted(present - set(expected))
    if extra:
        raise TamperedArtifact(f"{root / extra[0]}: not listed in the manifest; refusing a version with unverified files")
