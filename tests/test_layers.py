"""The package layers (pyproject.toml [tool.importlinter], docs/architecture.md) hold, and the
contract really fails when a lower layer imports a higher one (even inside a function)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("twotower", "etl", "training", "indexing", "importers", "logsim", "reports", "quality", "core", "storage", "contracts")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_packages(dest: Path) -> None:
    for pkg in PACKAGES:
        shutil.copytree(REPO / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", dest / "pyproject.toml")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_the_layers_contract_is_kept_and_catches_an_upward_import(tmp_path):
    _copy_packages(tmp_path)
    kept = _lint(tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "1 kept, 0 broken" in kept.stdout

    # core (below the stages) reaching up into the pipeline, hidden inside a function.
    with (tmp_path / "core" / "errors.py").open("a") as f:
        f.write("\n\ndef _upward():\n    from twotower import pipeline\n\n    return pipeline\n")
    broken = _lint(tmp_path)
    assert broken.returncode == 1, broken.stdout
    assert "core is not allowed to import twotower" in broken.stdout
    assert "core.errors -> twotower.pipeline" in broken.stdout


def test_stages_do_not_import_each_other(tmp_path):
    _copy_packages(tmp_path)
    with (tmp_path / "training" / "losses.py").open("a") as f:
        f.write("\n\ndef _sideways():\n    from indexing import builder\n\n    return builder\n")
    broken = _lint(tmp_path)
    assert broken.returncode == 1, broken.stdout
    assert "training is not allowed to import indexing" in broken.stdout
