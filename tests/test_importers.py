"""Importers: MIND sample counts against an independent parse, generic CSV/Parquet round trips,
and every bad-input case (clear error naming file/line/column, nothing written)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from contracts.schemas import IMPRESSIONS, raw_tables
from core.errors import UserError
from importers.common import InputError
from importers.interactions import ColumnMapping, FeatureFile, import_interactions
from importers.mind import UNKNOWN, import_mind
from storage.layout import Layout
from tests.conftest import SHARED_DATA, make_config

MIND = SHARED_DATA / "mind_small_subset"
MIND_FEATURES = {
    "user_categorical": [],
    "user_numeric": ["history_len"],
    "item_categorical": ["category", "subcategory"],
    "item_numeric": [],
}
needs_mind = pytest.mark.skipif(not (MIND / "behaviors.tsv").is_file(), reason="MIND sample not available")


def read_all(cfg, table: str) -> pd.DataFrame:
    layout = Layout(cfg.paths)
    parts = [pq.read_table(layout.path_for(table, ds)).to_pandas().assign(ds=ds) for ds in layout.partitions(table)]
    return pd.concat(parts, ignore_index=True)


def nothing_written(cfg) -> bool:
    raw = Path(cfg.paths.data_root) / "raw"
    return not raw.exists() or not any(raw.rglob("*.parquet"))


# ---------------------------------------------------------------------------------------
# MIND
# ---------------------------------------------------------------------------------------


def mind_reference(path: Path) -> dict:
    """Independent parse of behaviors.tsv with plain string splitting (not the importer)."""
    ref = {"exposures": 0, "clicks": 0, "per_day": Counter(), "clicks_per_day": Counter(), "users": set()}
    ref["history_pairs"] = set()
    for raw in path.read_text().splitlines():
        imp_id, user, when, history, impressions = raw.split("\t")
        day = dt.datetime.strptime(when, "%m/%d/%Y %I:%M:%S %p").date().isoformat()
        labels = [tok.rsplit("-", 1)[1] for tok in impressions.split()]
        ref["exposures"] += len(labels)
        ref["clicks"] += labels.count("1")
        ref["per_day"][day] += len(labels)
        ref["clicks_per_day"][day] += labels.count("1")
        ref["users"].add(user)
        ref["history_pairs"] |= {(user, item) for item in history.split()}
    return ref


@pytest.fixture(scope="module")
def mind_import(tmp_path_factory):
    cfg = make_config(tmp_path_factory.mktemp("mind"), features=MIND_FEATURES)
    stats = import_mind(cfg, MIND / "behaviors.tsv", MIND / "news.tsv")
    return cfg, stats


@needs_mind
def test_mind_exposures_and_clicks_match_the_raw_file(mind_import):
    cfg, stats = mind_import
    ref = mind_reference(MIND / "behaviors.tsv")
    imp = read_all(cfg, "impressions")
    assert len(imp) == ref["exposures"] == stats["impressions"]
    assert int(imp.clicked.sum()) == ref["clicks"] == stats["clicks"]
    assert imp.groupby("ds").size().to_dict() == dict(ref["per_day"])
    assert imp.groupby("ds").clicked.sum().to_dict() == dict(ref["clicks_per_day"])
    assert set(imp.user_id) == ref["users"]
    # No ranking log: MIND has no funnel.
    assert Layout(cfg.paths).partitions("ranking_log") == []


@needs_mind
def test_mind_first_line_row_by_row(mind_import):
    cfg, _ = mind_import
    first = (MIND / "behaviors.tsv").read_text().splitlines()[0].split("\t")
    imp_id, user, when = first[0], first[1], first[2]
    tokens = first[4].split()
    rows = read_all(cfg, "impressions")
    rows = rows[rows.request_id == imp_id].sort_values("position")
    assert rows.user_id.unique().tolist() == [user]
    assert rows.item_id.tolist() == [t.rsplit("-", 1)[0] for t in tokens]
    assert rows.position.tolist() == list(range(len(tokens)))
    assert rows.clicked.tolist() == [t.endswith("-1") for t in tokens]
    expected_ts = pd.Timestamp(dt.datetime.strptime(when, "%m/%d/%Y %I:%M:%S %p"), tz="UTC")
    assert (rows.ts == expected_ts).all()


@needs_mind
def test_mind_snapshots_and_contract(mind_import):
    cfg, _ = mind_import
    contract = raw_tables(cfg.features)
    layout = Layout(cfg.paths)
    for ds in layout.partitions("impressions"):
        schema = pq.read_schema(next(layout.path_for("impressions", ds).glob("*.parquet")))
        assert schema.equals(IMPRESSIONS.arrow_schema(present=[]))
        for table in ("users", "items"):
            schema = pq.read_schema(next(layout.path_for(table, ds).glob("*.parquet")))
            assert schema.equals(contract[table].arrow_schema(present=[]))
    news = pd.read_csv(MIND / "news.tsv", sep="\t", header=None, usecols=[0, 1, 2], names=["id", "cat", "sub"], quoting=3)
    news = news.set_index("id")
    items = read_all(cfg, "items").drop_duplicates("item_id").set_index("item_id")
    described = items.index.isin(news.index)
    assert described.sum() > 0 and (~described).sum() > 0
    assert (items.loc[described, "category"] == news.loc[items.index[described], "cat"]).all()
    assert (items.loc[~described, ["category", "subcategory"]] == UNKNOWN).all().all()
    # Each day's users are the users shown something that day, with history_len from the history column.
    imp, users = read_all(cfg, "impressions"), read_all(cfg, "users")
    for ds, day in imp.groupby("ds"):
        assert set(users[users.ds == ds].user_id) == set(day.user_id)
    ref = mind_reference(MIND / "behaviors.tsv")
    hist_len = Counter(u for u, _ in ref["history_pairs"])
    some = users.drop_duplicates("user_id").head(50)
    assert some.history_len.tolist() == [float(hist_len.get(u, 0)) for u in some.user_id]


@needs_mind
def test_mind_history_as_clicks(tmp_path):
    cfg = make_config(tmp_path, features=MIND_FEATURES)
    stats = import_mind(cfg, MIND / "behaviors.tsv", history="clicks")
    ref = mind_reference(MIND / "behaviors.tsv")
    assert stats["history_day"] == "2019-11-08"  # the day before the first behaviours day (11/9)
    hist = pq.read_table(Layout(cfg.paths).path_for("impressions", "2019-11-08")).to_pandas()
    assert set(zip(hist.user_id, hist.item_id, strict=True)) == ref["history_pairs"]
    assert hist.clicked.all() and hist.position.isna().all()
    with pytest.raises(UserError, match="must be before"):
        import_mind(make_config(tmp_path / "x"), MIND / "behaviors.tsv", history="clicks", history_day="2019-11-09")


@needs_mind
def test_mind_import_removes_a_stale_ranking_log(tmp_path):
    cfg = make_config(tmp_path, features=MIND_FEATURES)
    stale = Layout(cfg.paths).path_for("ranking_log", "2019-11-12")
    stale.mkdir(parents=True)
    (stale / "part-00000.parquet").write_bytes(b"old")
    import_mind(cfg, MIND / "behaviors.tsv")
    assert not stale.exists()


GOOD = [
    "1\tU1\t11/12/2019 2:14:46 PM\tN9 N8\tN1-0 N2-1 N3-0",
    "2\tU2\t11/13/2019 9:00:00 AM\t\tN1-1 N4-0",
]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("3\tU3\t11/13/2019 9:00:00 AM\tN1-1", r"line 3: found 4 tab-separated fields.*expected 5 fields"),
        ("3\tU3\t2019-11-13 09:00\t\tN1-1", r"line 3, column 'time': cannot parse time '2019-11-13 09:00'.*US format"),
        ("3\tU3\t11/13/2019 9:00:00 AM\t\tN1-1 N5-2", r"line 3, column 'impressions': bad impression entries 'N5-2'"),
        ("3\t\t11/13/2019 9:00:00 AM\t\tN1-1", r"line 3, column 'user_id': 1 empty user_id"),
        ("3\tU3\t11/13/2019 9:00:00 AM\t\t", r"line 3, column 'impressions': empty impression list"),
        ("3\tU3\t11/13/2019 9:00:00 AM\t\tN1-1 N1-0", r"line 3, column 'impressions': item 'N1' is listed more than once"),
        ("2\tU3\t11/13/2019 9:00:00 AM\t\tN1-1", r"lines 2, 3, column 'impression_id': impression id '2' appears on more than one line"),
    ],
)
def test_mind_bad_input_names_the_line_and_writes_nothing(tmp_path, bad_line, message):
    path = tmp_path / "behaviors.tsv"
    path.write_text("\n".join([*GOOD, bad_line]) + "\n")
    cfg = make_config(tmp_path)
    with pytest.raises(InputError, match=message) as err:
        import_mind(cfg, path)
    assert "behaviors.tsv" in str(err.value)
    assert nothing_written(cfg)


def test_mind_missing_and_empty_files(tmp_path):
    cfg = make_config(tmp_path)
    with pytest.raises(UserError, match=r"behaviors file .*nope.tsv does not exist"):
        import_mind(cfg, tmp_path / "nope.tsv")
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(InputError, match="empty.tsv: the file is empty"):
        import_mind(cfg, empty)
    good = tmp_path / "b.tsv"
    good.write_text("\n".join(GOOD) + "\n")
    news = tmp_path / "news.tsv"
    news.write_text("N1\tnews\tnewsworld\n")  # 3 fields instead of 8
    with pytest.raises(InputError, match=r"news.tsv, line 1: found 3 tab-separated fields"):
        import_mind(cfg, good, news)
    assert nothing_written(cfg)


# ---------------------------------------------------------------------------------------
# Generic interactions
# ---------------------------------------------------------------------------------------

CSV = """user,item,when,clicked,pos,req
a,x,2026-11-01T10:00:00Z,1,0,r1
a,y,2026-11-01T10:00:00Z,0,1,r1
b,x,2026-11-02T23:59:59Z,0,,r2
"""


def test_interactions_csv_round_trip(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(CSV)
    cfg = make_config(tmp_path)
    mapping = ColumnMapping(user="user", item="item", ts="when", click="clicked", position="pos", request="req")
    stats = import_interactions(cfg, path, mapping)
    assert stats["impressions"] == 3 and stats["clicks"] == 1
    imp = read_all(cfg, "impressions")
    expected = pd.DataFrame(
        {
            "request_id": ["r1", "r1", "r2"],
            "user_id": ["a", "a", "b"],
            "item_id": ["x", "y", "x"],
            "ts": pd.to_datetime(["2026-11-01 10:00:00", "2026-11-01 10:00:00", "2026-11-02 23:59:59"]).tz_localize("UTC"),
            "position": pd.array([0, 1, None], dtype="Int32"),
            "clicked": [True, False, False],
            "ds": ["2026-11-01", "2026-11-01", "2026-11-02"],
        }
    )
    got = imp.astype({"position": "Int32"})
    got["ts"] = got["ts"].dt.as_unit("ns")
    pd.testing.assert_frame_equal(got, expected)
    users = read_all(cfg, "users")
    assert users[["user_id", "ds"]].values.tolist() == [["a", "2026-11-01"], ["b", "2026-11-02"]]
    assert Layout(cfg.paths).partitions("ranking_log") == []


def test_interactions_ratings_unix_time_requests_and_features(tmp_path):
    (tmp_path / "r.csv").write_text("uid;mid;t;stars\n1;10;1762000000;5\n1;11;1762000000;3\n2;10;1762000100;4\n")
    (tmp_path / "users.csv").write_text("uid;country;age\n1;fr;31\n2;de;\n3;it;50\n")
    (tmp_path / "items.csv").write_text("mid;genre\n10;drama\n11;comedy\n")
    cfg = make_config(
        tmp_path,
        features={"user_categorical": ["country"], "user_numeric": ["age"], "item_categorical": ["genre"], "item_numeric": []},
    )
    mapping = ColumnMapping(user="uid", item="mid", ts="t", ts_format="unix", rating="stars", rating_threshold=4.0)
    users = FeatureFile(tmp_path / "users.csv", "uid", ("country",), ("age",))
    items = FeatureFile(tmp_path / "items.csv", "mid", ("genre",))
    stats = import_interactions(cfg, tmp_path / "r.csv", mapping, users, items, sep=";")
    assert stats["features_written_as_null"] == []
    imp = read_all(cfg, "impressions").sort_values(["user_id", "item_id"])
    # 1762000000 s = 2025-11-01 12:26:40 UTC; stars >= 4 is a click: 5 -> yes, 3 -> no, 4 -> yes.
    assert imp.ds.unique().tolist() == ["2025-11-01"]
    assert imp.clicked.tolist() == [True, False, True]
    # One request per (user, timestamp): user 1's two rows share one, user 2 has another.
    assert imp.request_id.tolist() == ["1@1762000000000000", "1@1762000000000000", "2@1762000100000000"]
    u = read_all(cfg, "users").set_index("user_id")
    assert sorted(u.index) == ["1", "2", "3"]  # the users file is the known user base
    assert u.loc["1", "country"] == "fr" and u.loc["1", "age"] == 31.0 and pd.isna(u.loc["2", "age"])
    assert read_all(cfg, "items").set_index("item_id").genre.to_dict() == {"10": "drama", "11": "comedy"}


def test_interactions_parquet_and_strftime_format(tmp_path):
    frame = pd.DataFrame({"user_id": ["a", "b"], "item_id": ["x", "y"], "timestamp": ["01/11/2026 08:30", "02/11/2026 09:00"],
                          "click": [True, False]})
    frame.to_parquet(tmp_path / "log.parquet")
    cfg = make_config(tmp_path)
    import_interactions(cfg, tmp_path / "log.parquet", ColumnMapping(ts_format="%d/%m/%Y %H:%M", click="click"))
    imp = read_all(cfg, "impressions")
    assert imp.ds.tolist() == ["2026-11-01", "2026-11-02"]
    assert imp.ts.tolist() == [pd.Timestamp("2026-11-01 08:30", tz="UTC"), pd.Timestamp("2026-11-02 09:00", tz="UTC")]


BASE = "user,item,ts,clicked\n"


@pytest.mark.parametrize(
    ("content", "mapping", "error", "message"),
    [
        (BASE + "a,x,2026-11-01,1\n", ColumnMapping(user="user", item="item", ts="tz", click="clicked"), InputError,
         r"log.csv, column 'tz': no column 'tz' for ts \(did you mean 'ts'\?\)"),
        (BASE + "a,x,2026-11-01,1\nb,y,yesterday,0\n", ColumnMapping(user="user", item="item", ts="ts", click="clicked"),
         InputError, r"log.csv, line 3, column 'ts': 1 timestamps cannot be parsed: 'yesterday'; expected ISO 8601"),
        (BASE + "a,x,2026-11-01,1\n,y,2026-11-01,0\n", ColumnMapping(user="user", item="item", ts="ts", click="clicked"),
         InputError, r"line 3, column 'user': 1 null or empty ids"),
        (BASE + "a,x,2026-11-01,maybe\n", ColumnMapping(user="user", item="item", ts="ts", click="clicked"),
         InputError, r"line 2, column 'clicked': 1 values are not booleans: 'maybe'"),
        (BASE + "a,x,2026-11-01,1\na,x,2026-11-01,0\n", ColumnMapping(user="user", item="item", ts="ts", click="clicked"),
         InputError, r"lines 2, 3: item 'x' appears more than once"),
        (BASE, ColumnMapping(user="user", item="item", ts="ts", click="clicked"), InputError, "header but no data lines"),
        ("", ColumnMapping(user="user", item="item", ts="ts", click="clicked"), InputError, "the file is empty"),
        (BASE + "a,x,2026-11-01,1\n", ColumnMapping(user="user", item="user", ts="ts", click="clicked"), UserError,
         r"names column 'user' twice \(--user-col and --item-col\)"),
        (BASE + "a,x,2026-11-01,1\n", ColumnMapping(user="user", item="item", ts="ts"), UserError,
         "exactly one of --click-col or --rating-col"),
        (BASE + "a,x,2026-11-01,1\n", ColumnMapping(user="user", item="item", ts="ts", rating="clicked"), UserError,
         "needs --rating-threshold"),
    ],
)
def test_interactions_bad_input(tmp_path, content, mapping, error, message):
    path = tmp_path / "log.csv"
    path.write_text(content)
    cfg = make_config(tmp_path)
    with pytest.raises(error, match=message):
        import_interactions(cfg, path, mapping)
    assert nothing_written(cfg)


def test_interactions_bad_feature_files_and_missing_file(tmp_path):
    (tmp_path / "log.csv").write_text(BASE + "a,x,2026-11-01,1\n")
    mapping = ColumnMapping(user="user", item="item", ts="ts", click="clicked")
    cfg = make_config(tmp_path)
    with pytest.raises(UserError, match=r"interactions file .*missing.csv does not exist"):
        import_interactions(cfg, tmp_path / "missing.csv", mapping)
    (tmp_path / "users.csv").write_text("user,region\na,eu\na,us\n")
    with pytest.raises(InputError, match=r"users.csv, lines 2, 3, column 'user': id 'a' has more than one row"):
        import_interactions(cfg, tmp_path / "log.csv", mapping, users=FeatureFile(tmp_path / "users.csv", "user", ("region",)))
    with pytest.raises(InputError, match=r"users.csv, column 'regoin': no column 'regoin'.*did you mean 'region'"):
        import_interactions(cfg, tmp_path / "log.csv", mapping, users=FeatureFile(tmp_path / "users.csv", "user", ("regoin",)))
    (tmp_path / "items.csv").write_text("item,quality\nx,high\n")
    with pytest.raises(InputError, match=r"items.csv, line 2, column 'quality': 1 values are not numbers: 'high'"):
        import_interactions(cfg, tmp_path / "log.csv", mapping, items=FeatureFile(tmp_path / "items.csv", "item", (), ("quality",)))
    assert nothing_written(cfg)


def test_cli_exit_codes(tmp_path, monkeypatch, capsys):
    from twotower.cli import main

    monkeypatch.setenv("TWOTOWER_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "log.csv").write_text(CSV)
    ok = ["import", "interactions", "--file", "log.csv", "--user-col", "user", "--item-col", "item", "--ts-col", "when",
          "--click-col", "clicked"]
    assert main(ok) == 0
    assert "imported 3 impressions (1 clicks)" in capsys.readouterr().out
    assert main([*ok[:-2], "--click-col", "clickd"]) == 1  # bad data: exit 1 with the message
    assert "no column 'clickd'" in capsys.readouterr().err
    assert main([*ok, "--rating-col", "pos"]) == 2  # bad arguments: exit 2
