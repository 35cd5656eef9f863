"""Config: typed, frozen, validated; env overrides; errors name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.config import Config, ConfigError
from core.config_load import load_config
from tests.conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_repo_config_loads_and_paths_resolve_against_its_folder():
    cfg = load_config(REPO / "twotower.toml", env={})
    assert cfg.paths.data_root == REPO / "var" / "data"
    assert cfg.etl.alpha == 0.75
    assert cfg.features.user_categorical == ("region", "age_band")


def test_config_is_frozen(tmp_path):
    cfg = load_config(write(tmp_path, ""), env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.etl.window_days = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[etl]\nwindow_dayz = 3\n", "etl.window_dayz: unknown key"),
        ("[etll]\n", "etll: unknown key"),
        ('[etl]\nwindow_days = "3"\n', "etl.window_days: expected an integer, got str '3'"),
        ("[etl]\nwindow_days = true\n", "etl.window_days: expected an integer"),
        ('[training]\nloss = "hinge"\n', "training.loss: 'hinge' is not one of"),
        ("[features]\nuser_numeric = \"activity\"\n", "features.user_numeric: expected a list"),
        ("[etl\n", "invalid TOML"),
    ],
)
def test_bad_config_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(write(tmp_path, text), env={})


def test_environment_overrides(tmp_path):
    env = {
        "TWOTOWER_DATA_ROOT": "/data/x",
        "TWOTOWER_ARTIFACT_ROOT": "rel/art",
        "TWOTOWER__ETL__WINDOW_DAYS": "3",
        "TWOTOWER__QUALITY__ENABLED": "false",
        "TWOTOWER__TRAINING__HIDDEN": "[32, 16]",
    }
    cfg = load_config(write(tmp_path, "[etl]\nwindow_days = 5\n"), env=env)
    assert cfg.paths.data_root == Path("/data/x")
    assert cfg.paths.artifact_root == tmp_path / "rel" / "art"
    assert cfg.etl.window_days == 3
    assert cfg.quality.enabled is False
    assert cfg.training.hidden == (32, 16)
    with pytest.raises(ConfigError, match="etl.window_days: cannot parse environment value 'three'"):
        load_config(write(tmp_path, ""), env={"TWOTOWER__ETL__WINDOW_DAYS": "three"})


def test_missing_file_and_hash_stability(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    a = load_config(write(tmp_path, "[etl]\nalpha = 0.5\n"), env={})
    b = load_config(write(tmp_path, "[etl]\nalpha = 0.5\n"), env={})
    assert a.hash() == b.hash() != Config().hash()


def test_config_reference_is_generated_from_code():
    from twotower.config_docs import render

    committed = (REPO / "docs" / "config.md").read_text()
    assert committed == render(), "docs/config.md is stale: run `make docs`"


def test_every_config_key_is_documented_by_a_comment():
    import typing

    from core.config import Config
    from twotower.config_docs import _field_comments

    hints = typing.get_type_hints(Config)
    undocumented = []
    for section in dataclasses.fields(Config):
        comments = _field_comments(hints[section.name])
        undocumented += [f"{section.name}.{k}" for k, v in comments.items() if not v]
    assert undocumented == [], "add a comment above each of these fields in twotower/config.py"


@pytest.mark.parametrize("window, evaluation", [(2, 2), (1, 1), (3, 0)])
def test_window_must_leave_a_training_day(tmp_path, window, evaluation):
    # The one window rule (core.context.Window) is checked when the config loads, before any step.
    text = f"[etl]\nwindow_days = {window}\neval_days = {evaluation}\n"
    with pytest.raises(ConfigError, match=rf"etl.window_days \({window}\) must exceed etl.eval_days \({evaluation}\)"):
        load_config(write(tmp_path, text), env={})
