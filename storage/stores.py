"""Where the pipeline's files live: the local disk, or an S3-compatible object store.

``[paths] remote`` switches between the two; nothing else in the code changes:

* ``remote = ""`` (default): :class:`LocalStore`. ``data_root``, ``reports_root`` and
  ``artifact_root`` are the store; Spark reads and writes them directly; partitions and
  versions are replaced with atomic renames (``storage.layout``).
* ``remote = "s3://bucket/prefix"``: :class:`ObjectStore`. The store is the object store::

      s3://bucket/prefix/data/...        mirrors data_root
      s3://bucket/prefix/reports/...     mirrors reports_root
      s3://bucket/prefix/artifacts/...   mirrors artifact_root

  Spark reads and writes it directly (``s3a://``), so executors on other machines see the
  same data. The Python steps (training, evaluation, indexing, publishing, reports) keep
  working on local files: the three roots become this machine's *working copy*, which
  :mod:`storage.sync` fills before a step and uploads after it.

Every path handed to a store is a Layout path (under one of the three local roots); the store
maps it to what it stands for. Spark-facing modules (``etl.io``, ``quality.io``) ask the
store, never the local disk, whether a partition exists, and commit staged partitions
through it.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

if TYPE_CHECKING:
    import pyarrow.fs as pafs

# Folders under the remote prefix that mirror each local root.
REMOTE_DIRS = {"data_root": "data", "reports_root": "reports", "artifact_root": "artifacts"}
_IO_THREADS = 8
# Clients are built lazily and then shared by the listing threads (etl.io); boto3's default
# session is not safe to build clients from concurrently.
_CLIENT_LOCK = threading.Lock()


def _is_data_file(rel: str) -> bool:
    """A Parquet data file of a partition (Spark's ``_SUCCESS``/``.crc`` and hidden files skipped)."""
    return rel.endswith(".parquet") and not any(part.startswith((".", "_")) for part in rel.split("/"))


class Store(Protocol):
    """What the Spark-facing code needs from storage (both stores implement it)."""

    remote: bool

    def uri(self, path: Path) -> str: ...
    def is_dir(self, path: Path) -> bool: ...
    def is_file(self, path: Path) -> bool: ...
    def child_dirs(self, path: Path) -> list[str]: ...
    def data_files(self, path: Path) -> list[str]: ...
    def data_file_stamps(self, path: Path) -> list[tuple[str, int, str]]: ...
    def read_text(self, path: Path) -> str | None: ...
    def write_text(self, path: Path, text: str) -> None: ...
    def row_count(self, path: Path) -> int | None: ...
    def commit_dir(self, staged: Path, final: Path) -> None: ...
    def remove_dir(self, path: Path) -> None: ...


class LocalStore:
    """The local (or shared POSIX) file system: the roots are the store."""

    remote = False

    def uri(self, path: Path) -> str:
        return str(path)

    def is_dir(self, path: Path) -> bool:
        return Path(path).is_dir()

    def is_file(self, path: Path) -> bool:
        return Path(path).is_file()

    def child_dirs(self, path: Path) -> list[str]:
        path = Path(path)
        return sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() else []

    def data_files(self, path: Path) -> list[str]:
        """Data files of a partition folder, relative to it, sorted."""
        path = Path(path)
        if not path.is_dir():
            return []
        rels = (p.relative_to(path).as_posix() for p in path.rglob("*.parquet"))
        return sorted(r for r in rels if _is_data_file(r))

    def data_file_stamps(self, path: Path) -> list[tuple[str, int, str]]:
        """(relative name, size, modification time in ns) of each data file of a partition,
        sorted: what changes when a producer rewrites the partition's files."""
        path = Path(path)
        out = []
        for rel in self.data_files(path):
            st = (path / rel).stat()
            out.append((rel, st.st_size, str(st.st_mtime_ns)))
        return out

    def read_text(self, path: Path) -> str | None:
        """A small text file's content, or None when it does not exist."""
        try:
            return Path(path).read_text()
        except FileNotFoundError:
            return None

    def write_text(self, path: Path, text: str) -> None:
        """Write a small text file (callers write into a staged folder before its commit, so
        readers see it together with the data files)."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)

    def row_count(self, path: Path) -> int | None:
        """Rows of a partition from its Parquet footers (no data read); None if absent."""
        import pyarrow.parquet as pq

        if not Path(path).is_dir():
            return None
        return sum(pq.read_metadata(Path(path) / f).num_rows for f in self.data_files(path))

    def commit_dir(self, staged: Path, final: Path) -> None:
        """Replace ``final`` with ``staged`` (two renames: readers see old or new, never half)."""
        from storage.layout import replace_dir

        Path(final).parent.mkdir(parents=True, exist_ok=True)
        replace_dir(Path(staged), Path(final))

    def remove_dir(self, path: Path) -> None:
        from storage.layout import remove_dir

        remove_dir(Path(path))


@dataclass(frozen=True)
class RemoteFile:
    rel: str  # path relative to the listed folder, '/'-separated
    size: int
    etag: str  # changes whenever the object's bytes do (Last-Modified has 1 s resolution)


class ObjectStore:
    """An S3-compatible object store behind ``s3://bucket/prefix``.

    Credentials come from the AWS default chain (``AWS_ACCESS_KEY_ID`` /
    ``AWS_SECRET_ACCESS_KEY``, a profile, an instance role): never from the config file.
    """

    remote = True

    def __init__(self, paths) -> None:
        url = urlparse(paths.remote)
        if url.scheme not in ("s3", "s3a") or not url.netloc:
            raise ValueError(f"[paths] remote = {paths.remote!r}: expected s3://bucket/prefix (or \"\" for local files)")
        self.bucket = url.netloc
        self.prefix = url.path.strip("/")
        self.endpoint = paths.s3_endpoint
        self.region = paths.s3_region
        self._roots = {name: Path(getattr(paths, name)).resolve() for name in REMOTE_DIRS}

    # -- mapping ----------------------------------------------------------------------
    def key(self, path: Path) -> str:
        """``bucket/prefix/<data|reports|artifacts>/<path relative to its local root>``."""
        resolved = Path(path).resolve()
        for name, root in self._roots.items():
            if resolved == root or root in resolved.parents:
                rel = resolved.relative_to(root).as_posix()
                parts = [self.bucket, self.prefix, REMOTE_DIRS[name], "" if rel == "." else rel]
                return "/".join(p for p in parts if p)
        raise ValueError(
            f"{path} is under none of the roots of [paths] ({', '.join(str(r) for r in self._roots.values())}); "
            "only Layout paths map to the object store"
        )

    def sync_state_file(self, path: Path) -> Path:
        """Where :mod:`storage.sync` remembers what this machine's copy of ``path`` was last
        synced from: ``<its local root>/.sync/<hash of the key>.json``, outside every folder
        the pipeline reads."""
        import hashlib

        resolved = Path(path).resolve()
        for root in self._roots.values():
            if resolved == root or root in resolved.parents:
                return root / ".sync" / (hashlib.sha1(self.key(path).encode()).hexdigest() + ".json")
        raise ValueError(f"{path} is under none of the roots of [paths]")

    def uri(self, path: Path) -> str:
        """What Spark reads and writes: ``s3a://bucket/prefix/...``."""
        return "s3a://" + self.key(path)

    @property
    def fs(self) -> pafs.S3FileSystem:
        import pyarrow.fs as pafs

        with _CLIENT_LOCK:
            if not hasattr(self, "_fs"):
                kwargs = {"region": self.region}
                if self.endpoint:
                    kwargs["endpoint_override"] = self.endpoint
                self._fs = pafs.S3FileSystem(**kwargs)
        return self._fs

    # -- queries ----------------------------------------------------------------------
    def _info(self, key: str):
        return self.fs.get_file_info(key)

    def is_dir(self, path: Path) -> bool:
        import pyarrow.fs as pafs

        return self._info(self.key(path)).type == pafs.FileType.Directory

    def is_file(self, path: Path) -> bool:
        import pyarrow.fs as pafs

        return self._info(self.key(path)).type == pafs.FileType.File

    @property
    def client(self):
        """A boto3 S3 client (listings with ETags); pyarrow's client does the data transfers."""
        with _CLIENT_LOCK:
            if not hasattr(self, "_client"):
                import boto3

                self._client = boto3.client("s3", endpoint_url=self.endpoint or None, region_name=self.region)
        return self._client

    def list_files(self, path: Path) -> list[RemoteFile]:
        """Every object under a folder (recursive), relative to it; a file's own entry has rel ''."""
        key = self.key(path)
        bucket, _, prefix = key.partition("/")
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix) + 1 :]
                if rel and not rel.endswith("/"):  # "folder/" objects are directory markers
                    out.append(RemoteFile(rel, obj["Size"], obj["ETag"]))
        return sorted(out, key=lambda f: f.rel)

    def stat_file(self, path: Path) -> RemoteFile | None:
        """The object at exactly ``path`` (rel ''), or None."""
        from botocore.exceptions import ClientError

        bucket, _, key = self.key(path).partition("/")
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return RemoteFile("", head["ContentLength"], head["ETag"])

    def child_dirs(self, path: Path) -> list[str]:
        import pyarrow.fs as pafs

        base = self.key(path)
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=False, allow_not_found=True))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)

    def data_files(self, path: Path) -> list[str]:
        return [f.rel for f in self.list_files(path) if _is_data_file(f.rel)]

    def data_file_stamps(self, path: Path) -> list[tuple[str, int, str]]:
        """(relative name, size, ETag) of each data file of a partition, sorted (one listing):
        the ETag changes whenever the object's bytes do."""
        return [(f.rel, f.size, f.etag) for f in self.list_files(path) if _is_data_file(f.rel)]

    def read_text(self, path: Path) -> str | None:
        data = self.get_bytes(path)
        return None if data is None else data.decode()

    def write_text(self, path: Path, text: str) -> None:
        self.put_bytes(path, text.encode())

    def row_count(self, path: Path) -> int | None:
        import pyarrow.parquet as pq

        files = self.data_files(path)
        if not files and not self.is_dir(path):
            return None
        base = self.key(path)
        return sum(pq.read_metadata(f"{base}/{f}", filesystem=self.fs).num_rows for f in files)

    # -- writes -----------------------------------------------------------------------
    def remove_dir(self, path: Path) -> None:
        import pyarrow.fs as pafs

        key = self.key(path)
        kind = self._info(key).type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(key)
        elif kind == pafs.FileType.File:
            self.fs.delete_file(key)

    def commit_dir(self, staged: Path, final: Path) -> None:
        """Replace ``final`` with ``staged``: delete ``final``, server-side copy, delete ``staged``.

        Object stores have no directory rename, so unlike :class:`LocalStore` this is not
        atomic: a reader *during* the commit can see a partial folder. The pipeline orders
        writers before readers of a day (one DAG run per day, ``max_active_runs``), and a
        crash mid-commit leaves a partition that the rerun of the day replaces.
        """
        src, dst = self.key(staged), self.key(final)
        files = self.list_files(staged)
        self.remove_dir(final)
        with ThreadPoolExecutor(_IO_THREADS) as pool:
            list(pool.map(lambda f: self.fs.copy_file(f"{src}/{f.rel}", f"{dst}/{f.rel}"), files))
        self.fs.delete_dir(src)

    def put_bytes(self, path: Path, data: bytes) -> None:
        """One object in one PUT: readers see the old object or the new one."""
        with self.fs.open_output_stream(self.key(path)) as out:
            out.write(data)

    def get_bytes(self, path: Path) -> bytes | None:
        try:
            with self.fs.open_input_stream(self.key(path)) as src:
                return src.read()
        except FileNotFoundError:
            return None

    def upload(self, local: Path, rels: Iterable[str], dest: Path | None = None) -> None:
        """Upload files ``local/<rel>`` to the object under ``dest`` (default: the same path)."""
        base = self.key(dest if dest is not None else local)

        def one(rel: str) -> None:
            with open(Path(local) / rel, "rb") as src, self.fs.open_output_stream(f"{base}/{rel}") as out:
                shutil.copyfileobj(src, out, 8 << 20)

        with ThreadPoolExecutor(_IO_THREADS) as pool:
            list(pool.map(one, list(rels)))

    def download(self, path: Path, rels: Iterable[str], local: Path | None = None) -> None:
        """Download objects ``path/<rel>`` to ``local/<rel>`` (default: the same local path).

        Each file lands under a temp name and is renamed into place, so a crash never leaves
        a truncated file that the next sync would take for a complete one.
        """
        base, local = self.key(path), Path(local if local is not None else path)

        def one(rel: str) -> None:
            target = local / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f".dl-{target.name}-{uuid.uuid4().hex[:8]}"
            with self.fs.open_input_stream(f"{base}/{rel}") as src, open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 8 << 20)
            os.replace(tmp, target)

        with ThreadPoolExecutor(_IO_THREADS) as pool:
            list(pool.map(one, list(rels)))

    def delete_files(self, path: Path, rels: Iterable[str]) -> None:
        base = self.key(path)
        for rel in rels:
            self.fs.delete_file(f"{base}/{rel}" if rel else base)

    def spark_conf(self) -> dict[str, str]:
        """Hadoop S3A settings for Spark (``spark.hadoop.fs.s3a.*``) matching this store."""
        conf = {"spark.hadoop.fs.s3a.endpoint.region": self.region}
        if self.endpoint:
            conf["spark.hadoop.fs.s3a.endpoint"] = self.endpoint
            conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(self.endpoint.startswith("https")).lower()
        return conf


def store_for(paths) -> Store:
    """The store ``[paths]`` describes (``remote`` empty: local files).

    One object store per configuration and process: its S3 clients are built once, not per
    ``Layout`` (the ETL builds one per partition it reads).
    """
    return _object_store(paths) if getattr(paths, "remote", "") else _LOCAL


_LOCAL = LocalStore()


@functools.lru_cache(maxsize=8)
def _object_store(paths) -> ObjectStore:
    return ObjectStore(paths)
