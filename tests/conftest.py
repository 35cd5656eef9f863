"""Shared fixtures: one SparkSession per test session, configs rooted in temp dirs."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from core.config import Config
from core.config_load import config_from_dict

REPO = Path(__file__).resolve().parent.parent
# Real logs beside the project (../shared/data); tests that need them skip if absent.
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("PYSPARK_PYTHON", os.sys.executable)


@pytest.fixture(scope="session")
def spark():
    """The one SparkSession of the test session: local[2], 4 shuffle partitions, UI off."""
    from core.config import SparkConfig
    from core.spark import spark_session

    session = spark_session(
        SparkConfig(master="local[2]", shuffle_partitions=4, driver_memory="2g"), app_name="twotower-tests"
    )
    yield session
    session.stop()


# The model of the end-to-end tests (TOML): tiny and one epoch, the point is the plumbing.
TINY_MODEL_TOML = """
[training]
embedding_dim = 16
id_dim = 16
feature_dim = 8
hidden = [32]
epochs = 1
min_steps = 1
batch_size = 256
"""


def make_config(root: Path, **sections) -> Config:
    """A Config whose roots live under ``root``; ``sections`` are dicts of overrides."""
    raw = {
        "paths": {"data_root": str(root / "data"), "artifact_root": str(root / "artifacts"), "reports_root": str(root / "reports")},
        "spark": {"master": "local[2]", "shuffle_partitions": 4, "driver_memory": "2g"},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return config_from_dict(raw)


@pytest.fixture
def tmp_config(tmp_path: Path) -> Config:
    return make_config(tmp_path)


def pytest_collection_modifyitems(config, items):
    """Longest tiers first (e2e, then slow), so that under ``pytest -n N --dist loadscope``
    (``make test``) the ~12 min Airflow module starts at once and the rest fills the other
    workers around it. The relative order inside each tier is kept."""

    def tier(item) -> int:
        return 0 if item.get_closest_marker("e2e") else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=tier)  # stable


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API on loopback: moto's server in a thread (HTTP, path-style addressing).

    Sets test credentials in this worker's environment (the AWS default chain, as in
    production) and turns off the EC2 metadata probe. Yields the endpoint URL.
    """
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in creds}
    os.environ.update(creds)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def new_bucket(endpoint: str, name: str) -> str:
    """Create a bucket on the test S3 server; returns its name."""
    import pyarrow.fs as pafs

    pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", allow_bucket_creation=True).create_dir(name)
    return name
