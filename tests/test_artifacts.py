"""Verified loading (tampering), listing and the ``twotower artifacts`` / ``index`` commands."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.context import RunContext
from indexing import artifacts as art
from indexing.checksums import TamperedArtifact, checksum_dir, verify_checksums
from indexing.publish import publish_day
from indexing.staging import build_index_for_day
from storage.layout import Layout
from tests.conftest import make_config
from tests.test_index_support import make_candidate, metrics_evaluator
from twotower.cli import main

D1, D2 = "2026-11-01", "2026-11-02"


@pytest.fixture
def published(tmp_path, monkeypatch):
    cfg = make_config(tmp_path)
    make_candidate(cfg, D1)
    build_index_for_day(RunContext.build(cfg, D1))
    publish_day(RunContext.build(cfg, D1), evaluator=metrics_evaluator)
    return cfg


def _cli(cfg, monkeypatch, *argv):
    # The CLI loads its config from the environment like any process would.
    monkeypatch.setenv("TWOTOWER_DATA_ROOT", str(cfg.paths.data_root))
    monkeypatch.setenv("TWOTOWER_ARTIFACT_ROOT", str(cfg.paths.artifact_root))
    monkeypatch.setenv("TWOTOWER_REPORTS_ROOT", str(cfg.paths.reports_root))
    return main(list(argv))


def test_checksums_detect_change_missing_and_extra(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("x")
    sums = checksum_dir(tmp_path)
    # sha256("abc") from FIPS 180-2's example.
    assert sums["a.bin"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    verify_checksums(tmp_path, sums)
    (tmp_path / "a.bin").write_bytes(b"abd")
    with pytest.raises(TamperedArtifact, match="a.bin.*does not match"):
        verify_checksums(tmp_path, sums)
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "sub" / "b.txt").unlink()
    with pytest.raises(TamperedArtifact, match="b.txt.*missing"):
        verify_checksums(tmp_path, sums)
    (tmp_path / "sub" / "b.txt").write_text("x")
    (tmp_path / "evil.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(TamperedArtifact, match="evil.pkl.*not listed"):
        verify_checksums(tmp_path, sums)


@pytest.mark.parametrize("name", ["index.faiss", "item_embeddings.npy", "user_tower.pt", "user_features.parquet"])
def test_tampered_file_is_refused_by_name(published, name):
    layout = Layout(published.paths)
    path = layout.version_dir(D1) / name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedArtifact, match=name):
        art.load_version(layout)


def test_tampered_manifest_is_refused(published):
    layout = Layout(published.paths)
    mpath = layout.version_dir(D1) / "manifest.json"
    m = json.loads(mpath.read_text())
    m["files"]["index.faiss"] = "0" * 64
    mpath.write_text(json.dumps(m))
    with pytest.raises(TamperedArtifact, match="index.faiss"):
        art.load_version(layout)
    mpath.write_text("{not json")
    with pytest.raises(TamperedArtifact, match="manifest.json"):
        art.load_version(layout)


def test_pickled_npy_never_loaded(published):
    # Even with a matching checksum, an object array (pickle) in the .npy is refused by numpy.
    from indexing.checksums import sha256_file
    from indexing.manifest import read_manifest, write_manifest

    layout = Layout(published.paths)
    vdir = layout.version_dir(D1)
    np.save(vdir / "item_embeddings.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    m = read_manifest(vdir)
    m["files"]["item_embeddings.npy"] = sha256_file(vdir / "item_embeddings.npy")
    write_manifest(vdir, m)
    with pytest.raises(ValueError, match="allow_pickle"):
        art.load_version(layout).item_embeddings()


def test_loaded_index_has_manifest_search_params(tmp_path):
    import faiss

    cfg = make_config(tmp_path, index={"flat_max_items": 1000, "ivf_nprobe": 7, "tune_target_recall": 0.0})
    make_candidate(cfg, D1, n_items=2000)
    build_index_for_day(RunContext.build(cfg, D1))
    publish_day(RunContext.build(cfg, D1), evaluator=metrics_evaluator, force=True)  # nprobe 7 of 51: ANN gate may refuse
    v = art.load_version(Layout(cfg.paths))
    assert faiss.extract_index_ivf(v.index).nprobe == 7


def test_cli_list_show_rollback(published, monkeypatch, capsys):
    make_candidate(published, D2)
    build_index_for_day(RunContext.build(published, D2))
    publish_day(RunContext.build(published, D2), evaluator=metrics_evaluator)

    assert _cli(published, monkeypatch, "artifacts", "list", "--json") == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["latest"] == D2
    assert [(r["version"], r["latest"]) for r in listing["versions"]] == [(D1, False), (D2, True)]

    assert _cli(published, monkeypatch, "artifacts", "list") == 0
    out = capsys.readouterr().out
    assert "* 2026-11-02" in out and "IDMap,Flat" in out

    assert _cli(published, monkeypatch, "artifacts", "show", D1, "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == D1 and shown["ntotal"] == 300

    assert _cli(published, monkeypatch, "artifacts", "show", D1) == 0
    # 11 model/index files + serving/bundle.json and serving/reference_client.py (no vocabulary partition here)
    assert "checksums of 13 files verified" in capsys.readouterr().out

    assert _cli(published, monkeypatch, "artifacts", "rollback", D1) == 0
    assert "2026-11-02 -> 2026-11-01" in capsys.readouterr().out
    assert art.read_latest(Layout(published.paths)) == D1

    assert _cli(published, monkeypatch, "artifacts", "rollback", "2025-01-01") == 2
    assert "not found" in capsys.readouterr().err


def test_cli_show_refuses_tampered_version(published, monkeypatch, capsys):
    path = Layout(published.paths).version_dir(D1) / "item_ids.parquet"
    path.write_bytes(path.read_bytes() + b"x")
    assert _cli(published, monkeypatch, "artifacts", "show", D1) == 1
    assert "item_ids.parquet" in capsys.readouterr().err


def test_cli_index_builds_and_publishes(tmp_path, monkeypatch, capsys):
    # No training module in this unit test: first version needs no evaluation of a published one.
    cfg = make_config(tmp_path)
    make_candidate(cfg, D1)
    assert _cli(cfg, monkeypatch, "index", "--ds", D1, "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["publish"]["version"] == D1 and out["build_index"]["ntotal"] == 300
    assert art.read_latest(Layout(cfg.paths)) == D1


def test_cli_artifacts_list_empty(tmp_path, monkeypatch, capsys):
    cfg = make_config(tmp_path)
    assert _cli(cfg, monkeypatch, "artifacts", "list") == 0
    assert "no versions" in capsys.readouterr().out


def test_cli_list_shows_rejected_candidates_with_reason(published, monkeypatch, capsys):
    from indexing.publish import PublishRejected

    make_candidate(published, D2, recall50=0.10)  # 0.10 < 0.30 * 0.9 = 0.27: refused
    build_index_for_day(RunContext.build(published, D2))
    with pytest.raises(PublishRejected):
        publish_day(RunContext.build(published, D2), evaluator=metrics_evaluator)
    assert _cli(published, monkeypatch, "artifacts", "list") == 0
    out = capsys.readouterr().out
    assert "2026-11-02-1  rejected" in out and "reason: recall@50 0.1000" in out
    assert _cli(published, monkeypatch, "artifacts", "show", f"{D2}-1", "--json") == 0
    assert json.loads(capsys.readouterr().out)["status"] == "rejected"
    # A rejected candidate cannot be served.
    assert _cli(published, monkeypatch, "artifacts", "rollback", f"{D2}-1") == 2
