"""All storage of the importers: reading input files (TSV lines, CSV, Parquet) and writing the
validated days into the raw layout (``storage.layout``), one atomic partition per table."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from importers.common import input_error, require_file
from storage import sync
from storage.layout import Layout, atomic_dir, mark_complete_snapshot, remove_dir

log = logging.getLogger(__name__)

PARQUET_OPTIONS = {"compression": "snappy"}


def read_tsv_fields(path: str | Path, columns: tuple[str, ...], what: str) -> pa.Table:
    """A header-less tab-separated file as string columns plus ``line`` (1-based line number).

    Blank lines are skipped (their numbers are kept for the others). Raises InputError naming
    the lines whose field count is not ``len(columns)`` and for a file without data.
    """
    path = require_file(path, what)
    if path.stat().st_size == 0:
        raise input_error(path, "the file is empty", expected=f"tab-separated lines: {', '.join(columns)}")
    # One string per line (a delimiter that cannot occur, no quoting), split on tabs in Arrow.
    table = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(column_names=["text"], block_size=64 << 20),
        parse_options=pcsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False, ignore_empty_lines=False),
        convert_options=pcsv.ConvertOptions(column_types={"text": pa.string()}, strings_can_be_null=False),
    )
    text = table.column("text").combine_chunks()
    line = np.arange(1, len(text) + 1, dtype=np.int64)
    keep = pc.not_equal(pc.utf8_length(text), 0)
    text, line = text.filter(keep), line[np.asarray(keep)]
    if len(text) == 0:
        raise input_error(path, "the file has no data lines", expected=f"tab-separated lines: {', '.join(columns)}")
    parts = pc.split_pattern(text, "\t")
    n_fields = np.asarray(pc.list_value_length(parts))
    bad = n_fields != len(columns)
    if bad.any():
        raise input_error(
            path,
            f"found {n_fields[bad][0]} tab-separated fields (first bad line)",
            lines=line[bad],
            expected=f"{len(columns)} fields: {', '.join(columns)}",
        )
    arrays = [pc.list_element(parts, i) for i in range(len(columns))]
    return pa.Table.from_arrays([*arrays, pa.array(line)], names=[*columns, "line"])


def read_frame(path: str | Path, what: str, fmt: str = "auto", sep: str = ",") -> tuple[pd.DataFrame, str, int]:
    """Read a CSV/TSV (all columns as strings, "" = null) or Parquet (typed) file.

    Returns:
        (frame, word for a row number in messages ("line" / "row"), number of frame row 0).
        For CSV, row 0 is line 2 (line 1 is the header); blank lines are kept as all-null rows
        so line numbers stay right.
    """
    path = require_file(path, what)
    if fmt == "auto":
        fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else ("tsv" if path.suffix.lower() == ".tsv" else "csv")
    if fmt == "parquet":
        try:
            frame = pq.read_table(path).to_pandas()
        except (pa.ArrowInvalid, OSError) as exc:
            raise input_error(path, f"cannot read as Parquet ({exc})") from exc
        if frame.empty:
            raise input_error(path, "the file has no rows")
        return frame, "row", 1
    if path.stat().st_size == 0:
        raise input_error(path, "the file is empty", expected="a header line and data lines")
    try:
        frame = pd.read_csv(
            path,
            sep="\t" if fmt == "tsv" else sep,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
        )
    except pd.errors.ParserError as exc:
        raise input_error(path, f"cannot parse as {fmt.upper()} ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise input_error(path, "the file is empty", expected="a header line and data lines") from exc
    # Trailing blank lines are not data.
    nonblank = ~frame.isna().all(axis=1).to_numpy()
    if not nonblank.any():
        raise input_error(path, "the file has a header but no data lines")
    frame = frame.iloc[: int(np.flatnonzero(nonblank)[-1]) + 1]
    return frame, "line", 2


def write_days(cfg, days: dict[str, dict[str, pa.Table]], complete_items: bool = False) -> list[str]:
    """Write each day's tables, each partition atomically (a rerun replaces the day).

    ``complete_items``: every day's items table is the whole catalogue (an items file was
    given), so the partitions are marked complete snapshots (``COMPLETE_SNAPSHOT_MARKER``);
    otherwise they hold the items seen that day and the ETL carries items forward.

    Imported data has no ranking log: a ranking_log partition left from earlier data for an
    imported day is removed, because a missing ranking_log partition means "no ranking log".
    Returns the partitions written.
    """
    layout = Layout(cfg.paths)
    if layout.truth_dir.exists():
        log.warning(
            "data root %s holds simulator truth: imported days will be mixed with a simulated world "
            "(the oracle will skip ids it does not know); prefer a separate data root",
            layout.data_root,
        )
    written = []
    for ds, tables in sorted(days.items()):
        for name in ("users", "items", "impressions"):
            with atomic_dir(layout.path_for(name, ds)) as tmp:
                pq.write_table(tables[name], tmp / "part-00000.parquet", **PARQUET_OPTIONS)
                if name == "items" and complete_items:
                    mark_complete_snapshot(tmp)
            written.append(f"{name}/ds={ds}")
        remove_dir(layout.path_for("ranking_log", ds))
        # With an object store: the day's raw partitions go there (the stale ranking_log too).
        sync.push(cfg.paths, [layout.path_for(name, ds) for name in ("users", "items", "impressions", "ranking_log")])
    return written
