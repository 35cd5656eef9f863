"""`twotower index` runs the pipeline's build_index and publish steps, publish-gap rule included."""

from __future__ import annotations

import json

from core.published import published_days
from storage.layout import Layout
from tests.conftest import make_config
from twotower.cli import main


def _config_file(tmp_path) -> tuple[str, Layout]:
    cfg = make_config(tmp_path)
    toml = tmp_path / "twotower.toml"
    toml.write_text(
        f'[paths]\ndata_root = "{cfg.paths.data_root}"\nartifact_root = "{cfg.paths.artifact_root}"\n'
        f'reports_root = "{cfg.paths.reports_root}"\n'
    )
    return str(toml), Layout(cfg.paths)


def _published(layout: Layout, ds: str) -> None:
    folder = layout.version_dir(ds)
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")


def test_index_refuses_to_publish_over_a_gap(tmp_path, capsys):
    toml, layout = _config_file(tmp_path)
    _published(layout, "2026-11-01")  # 11-02 never published: 11-03 would hide the gap
    # The gap rule runs before anything is built, so no candidate model is needed to see it refuse.
    assert main(["--config", toml, "index", "--ds", "2026-11-03"]) == 1
    err = capsys.readouterr().err
    assert "day 2026-11-02 has no published version" in err and "--force" in err
    assert published_days(layout) == ["2026-11-01"]
    assert not layout.latest_pointer.exists()
    stats = json.loads(layout.stage_stats("2026-11-03", "publish").read_text())
    assert stats["published"] is False and stats["decision"] == "blocked"


def test_index_with_force_passes_the_gap_rule(tmp_path, capsys):
    toml, layout = _config_file(tmp_path)
    _published(layout, "2026-11-01")
    # Past the gap rule the step needs a candidate for 11-03; there is none, so it fails on that.
    assert main(["--config", toml, "index", "--ds", "2026-11-03", "--force"]) == 1
    err = capsys.readouterr().err
    assert "no published version" not in err
    assert "2026-11-03" in err
    assert published_days(layout) == ["2026-11-01"]
