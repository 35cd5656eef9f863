"""A DuckDB reference implementation of the ETL stages, for bench/bench_etl.py.

Same inputs (the raw Parquet partitions), the same transforms in SQL (quality row rules,
dedup, resampling by a seeded hash, anti-join on 64-bit pair hashes, interleaved cap, vocabulary
numbering, features, clicks^alpha with the same numpy Vose alias, train/eval sets) and the
same kind of outputs (Parquet files), so the timing ratio compares engines on equal work. The
hard-negative stage is incremental as in Spark: per-day candidates and shown-pair hashes for
day D (and for window days that have none yet), the window assembled from those stored
per-day tables. It is a benchmark reference, not a second pipeline: it writes under its own
output folder.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import numpy as np

from etl.alias import vose_alias

HIST = 20


def _day(ds: str, delta: int) -> str:
    return (dt.date.fromisoformat(ds) + dt.timedelta(days=delta)).isoformat()


def _in_day(ds: str) -> str:
    nxt = _day(ds, 1)
    return f"ts >= TIMESTAMPTZ '{ds} 00:00:00+00' AND ts < TIMESTAMPTZ '{nxt} 00:00:00+00'"


class DuckDbEtl:
    """Stage-by-stage reference. ``days``: window days (oldest first); ``eval_days``: last n."""

    def __init__(
        self,
        raw_root: Path,
        out_root: Path,
        ds: str,
        window_days: int,
        threads: int = 2,
        seed: int = 17,
        verify_hard_negatives: bool = False,
    ):
        import duckdb

        self.raw, self.out, self.ds, self.seed = Path(raw_root), Path(out_root), ds, seed
        self.verify_hard_negatives = verify_hard_negatives
        self.days = [_day(ds, -i) for i in reversed(range(window_days))]
        self.train_days, self.eval_days = self.days[:-1], self.days[-1:]
        self.out.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {threads}")
        self.con.execute("SET preserve_insertion_order = false")
        self.con.execute("SET TimeZone = 'UTC'")

    # -- reads with the quality row rules ------------------------------------------------
    def _impressions(self, days: list[str]) -> str:
        parts = [
            f"SELECT *, DATE '{d}' AS event_ds FROM read_parquet('{self.raw}/impressions/ds={d}/*.parquet') "
            f"WHERE request_id IS NOT NULL AND user_id IS NOT NULL AND item_id IS NOT NULL AND {_in_day(d)} "
            "AND coalesce(position >= 0, true) AND clicked IS NOT NULL"
            for d in days
            if (self.raw / "impressions" / f"ds={d}").is_dir()
        ]
        return " UNION ALL ".join(parts)

    def _ranking(self, days: list[str]) -> str:
        return " UNION ALL ".join(
            f"SELECT *, DATE '{d}' AS event_ds FROM read_parquet('{self.raw}/ranking_log/ds={d}/*.parquet') "
            f"WHERE request_id IS NOT NULL AND user_id IS NOT NULL AND item_id IS NOT NULL AND {_in_day(d)} "
            "AND stage IN ('retrieval', 'pre_rank', 'rank') AND passed IS NOT NULL AND NOT coalesce(isnan(score) OR isinf(score), false)"
            for d in days
        )

    def _snapshot(self, table: str, d: str) -> str:
        return f"(SELECT *, DATE '{d}' AS event_ds FROM read_parquet('{self.raw}/{table}/ds={d}/*.parquet'))"

    def _copy(self, sql: str, name: str) -> None:
        path = self.out / f"{name}.parquet"
        self.con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")

    def _view(self, name: str) -> str:
        return f"read_parquet('{self.out}/{name}.parquet')"

    # -- stages --------------------------------------------------------------------------
    def click_positives(self) -> None:
        days = [_day(self.days[0], -7 + i) for i in range(7)] + self.days
        days = [d for d in days if (self.raw / "impressions" / f"ds={d}").is_dir()]
        self._copy(
            f"SELECT request_id, arg_min(user_id, ts) AS user_id, item_id, min(ts) AS ts, 1.0 AS weight, "
            f"bool_or(liked) AS liked, arg_min(event_ds, ts) AS event_ds FROM ({self._impressions(days)}) "
            "WHERE clicked GROUP BY request_id, item_id",
            "click_positives",
        )
        self.con.execute(
            f"SELECT event_ds, count(*) FROM {self._view('click_positives')} GROUP BY 1"
        ).fetchall()

    def resampled_positives(self, hot: int = 200, cold: int = 3, max_up: int = 3) -> None:
        train = f"(SELECT * FROM {self._view('click_positives')} WHERE event_ds <= DATE '{self.train_days[-1]}' AND event_ds >= DATE '{self.train_days[0]}')"
        self._copy(
            f"""WITH p AS {train}, c AS (SELECT item_id, count(*) AS f FROM p GROUP BY item_id)
            SELECT p.*, unnest(range(CASE WHEN f < {cold} THEN least({max_up}, ceil({cold} / f)::INT) ELSE 1 END)) AS replica
            FROM p JOIN c USING (item_id)
            WHERE (hash({self.seed}, request_id, item_id) % 9007199254740992)::DOUBLE / 9007199254740992
                  < CASE WHEN f > {hot} THEN sqrt({hot} / f) ELSE 1 END""",
            "resampled_positives",
        )
        # Statistics as the Spark stage reports them: per-item count histograms before/after.
        for src in (train, self._view("resampled_positives")):
            self.con.execute(
                f"SELECT f, count(*) FROM (SELECT item_id, count(*) f FROM {src} GROUP BY 1) GROUP BY 1"
            ).fetchall()

    def _per_day_path(self, table: str, d: str) -> Path:
        return self.out / table / f"ds={d}.parquet"

    def hard_negative_per_day(self, d: str) -> None:
        """Day d's per-day outputs, as the Spark stage stores them: its cut rows of requests
        clicked that day (``hard_negative_candidates``) and its shown or clicked (user, item)
        as 64-bit hashes (``shown_pairs``). Reads only day d's raw partitions."""
        pos = f"(SELECT * FROM {self._view('click_positives')} WHERE event_ds = DATE '{d}')"
        for table in ("hard_negative_candidates", "shown_pairs"):
            self._per_day_path(table, d).parent.mkdir(parents=True, exist_ok=True)
        ranking = self._ranking([d]) if (self.raw / "ranking_log" / f"ds={d}").is_dir() else None
        cuts = (
            f"""SELECT request_id, user_id, item_id, event_ds, stage AS stage_cut,
                       CASE WHEN stage = 'pre_rank' THEN 1 ELSE 2 END AS difficulty
                FROM ({ranking}) WHERE stage IN ('pre_rank', 'rank') AND NOT passed
                  AND request_id IN (SELECT request_id FROM {pos})"""
            if ranking
            else "SELECT ''::VARCHAR request_id, ''::VARCHAR user_id, ''::VARCHAR item_id, DATE '2000-01-01' event_ds, "
            "''::VARCHAR stage_cut, 0 difficulty WHERE false"
        )
        self.con.execute(
            f"COPY ({cuts}) TO '{self._per_day_path('hard_negative_candidates', d)}' (FORMAT parquet, COMPRESSION zstd)"
        )
        self.con.execute(
            f"""COPY (SELECT DISTINCT hash(user_id) AS user_key, hash(user_id, item_id) AS pair_key
                      FROM (SELECT user_id, item_id FROM ({self._impressions([d])}) UNION ALL SELECT user_id, item_id FROM {pos}))
                TO '{self._per_day_path('shown_pairs', d)}' (FORMAT parquet, COMPRESSION zstd)"""
        )

    def hard_negatives(self, cap: int = 4) -> None:
        """Incremental, like the Spark stage: the per-day outputs of day D and of every window
        day that has none yet (a first run: all of them) from the raw logs, then the window
        assembled from the stored per-day tables (dedup, anti-join on the pair hash, cap)."""
        have = [d for d in self.days if (self.raw / "impressions" / f"ds={d}").is_dir()]
        for d in have:
            if d == self.ds or not all(
                self._per_day_path(t, d).is_file() for t in ("hard_negative_candidates", "shown_pairs")
            ):
                self.hard_negative_per_day(d)

        def window(table: str) -> str:
            files = ", ".join(f"'{self._per_day_path(table, d)}'" for d in have)
            return f"read_parquet([{files}])"

        self._copy(
            f"""WITH dedup AS (SELECT * FROM {window("hard_negative_candidates")}
                               QUALIFY row_number() OVER (PARTITION BY request_id, item_id ORDER BY difficulty) = 1),
                kept AS (SELECT * FROM dedup ANTI JOIN {window("shown_pairs")} s
                         ON s.user_key = hash(dedup.user_id) AND s.pair_key = hash(dedup.user_id, dedup.item_id)),
                k AS (SELECT *, row_number() OVER (PARTITION BY request_id, difficulty
                        ORDER BY hash({self.seed}, request_id, item_id), item_id) AS kk FROM kept)
            SELECT request_id, user_id, item_id, event_ds, stage_cut, difficulty FROM k
            QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY kk, difficulty DESC) <= {cap}""",
            "hard_negatives",
        )
        hn = self._view("hard_negatives")
        self.con.execute(f"SELECT difficulty, count(*) FROM {hn} GROUP BY 1").fetchall()
        if self.verify_hard_negatives:  # the stage's own exact-string proof, when it runs it
            self.con.execute(
                f"SELECT count(*) FROM {hn} SEMI JOIN ({self._impressions(self.days)}) i USING (user_id, item_id)"
            ).fetchall()

    def vocabulary(self) -> None:
        last_train = self.train_days[-1]
        users = f"(SELECT * FROM {self._snapshot('users', self.ds)} UNION ALL BY NAME SELECT * FROM {self._snapshot('users', last_train)})"
        items = " UNION ALL BY NAME ".join(f"SELECT * FROM {self._snapshot('items', d)}" for d in self.days)
        self._copy(
            f"""WITH obs AS (
                  SELECT 'user_id' vocab, user_id value FROM {users}
                  UNION ALL SELECT 'user.region', region FROM {users}
                  UNION ALL SELECT 'user.age_band', age_band FROM {users}
                  UNION ALL SELECT 'item_id', item_id FROM ({items})
                  UNION ALL SELECT 'item.category', category FROM ({items})
                  UNION ALL SELECT 'item.subcategory', subcategory FROM ({items})
                  UNION ALL SELECT 'user_id', user_id FROM {self._view("click_positives")} WHERE event_ds >= DATE '{self.days[0]}'
                  UNION ALL SELECT 'item_id', item_id FROM {self._view("click_positives")} WHERE event_ds >= DATE '{self.days[0]}'),
                d AS (SELECT DISTINCT vocab, value FROM obs WHERE value IS NOT NULL)
            SELECT vocab, value, row_number() OVER (PARTITION BY vocab ORDER BY value) AS id, DATE '{self.ds}' AS first_ds FROM d""",
            "vocabulary",
        )
        self.con.execute(
            f"SELECT vocab, count(*), max(id) FROM {self._view('vocabulary')} GROUP BY 1"
        ).fetchall()

    def features(self) -> None:
        v = self._view("vocabulary")
        last_train, e0 = self.train_days[-1], self.eval_days[0]
        train_pos = f"(SELECT * FROM {self._view('click_positives')} WHERE event_ds <= DATE '{last_train}')"
        items = " UNION ALL BY NAME ".join(f"SELECT * FROM {self._snapshot('items', d)}" for d in self.days)
        self.con.execute(
            f"""CREATE OR REPLACE TEMP TABLE ids AS SELECT value AS item_id, id AS item_idx, first_ds FROM {v} WHERE vocab = 'item_id'"""
        )
        self._copy(
            f"""WITH u AS (SELECT * FROM {self._snapshot("users", last_train)}),
                st AS (SELECT avg(activity) m, coalesce(nullif(stddev_pop(activity), 0), 1) s FROM u),
                h AS (SELECT user_id, list(item_idx ORDER BY ts DESC, request_id DESC, item_idx DESC)[1:{HIST}] AS u_hist
                      FROM {train_pos} JOIN ids USING (item_id) GROUP BY user_id)
            SELECT v.id AS user_idx, v.value AS user_id, coalesce(h.u_hist, []::BIGINT[]) AS u_hist,
                   coalesce(r.id, 0) AS u_cat_region, coalesce(a.id, 0) AS u_cat_age_band,
                   coalesce(((u.activity - st.m) / st.s)::FLOAT, 0) AS u_num_activity
            FROM (SELECT * FROM {v} WHERE vocab = 'user_id') v
            LEFT JOIN u ON u.user_id = v.value CROSS JOIN st
            LEFT JOIN (SELECT * FROM {v} WHERE vocab = 'user.region') r ON r.value = u.region
            LEFT JOIN (SELECT * FROM {v} WHERE vocab = 'user.age_band') a ON a.value = u.age_band
            LEFT JOIN h ON h.user_id = v.value ORDER BY user_idx""",
            "user_features",
        )
        self._copy(
            f"""WITH latest AS (SELECT * FROM ({items}) QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY event_ds DESC) = 1),
                act AS (SELECT item_id FROM {self._snapshot("items", self.ds)}),
                dc AS (SELECT item_id, event_ds, count(*) n FROM {self._view("click_positives")}
                       WHERE event_ds < DATE '{e0}' AND event_ds >= DATE '{e0}' - 7 GROUP BY ALL),
                fc AS (SELECT item_id, sum(CASE WHEN event_ds = DATE '{e0}' - 1 THEN n ELSE 0 END) c1, sum(n) c7 FROM dc GROUP BY item_id),
                raw AS (
                  SELECT ids.item_idx, ids.item_id, act.item_id IS NOT NULL AS active,
                         coalesce(c.id, 0) AS i_cat_category, coalesce(s.id, 0) AS i_cat_subcategory, l.quality AS q,
                         ln(1 + greatest(DATE '{e0}' - coalesce(l.created_at::DATE, ids.first_ds), 0)) AS age,
                         ln(1 + coalesce(fc.c1, 0)) AS c1, ln(1 + coalesce(fc.c7, 0)) AS c7
                  FROM ids LEFT JOIN latest l USING (item_id) LEFT JOIN act USING (item_id) LEFT JOIN fc USING (item_id)
                  LEFT JOIN (SELECT * FROM {v} WHERE vocab = 'item.category') c ON c.value = l.category
                  LEFT JOIN (SELECT * FROM {v} WHERE vocab = 'item.subcategory') s ON s.value = l.subcategory),
                st AS (SELECT avg(q) mq, coalesce(nullif(stddev_pop(q), 0), 1) sq, avg(age) ma, coalesce(nullif(stddev_pop(age), 0), 1) sa,
                              avg(c1) m1, coalesce(nullif(stddev_pop(c1), 0), 1) s1, avg(c7) m7, coalesce(nullif(stddev_pop(c7), 0), 1) s7
                       FROM raw WHERE active)
            SELECT item_idx, item_id, active, i_cat_category, i_cat_subcategory,
                   coalesce(((q - mq) / sq)::FLOAT, 0) i_num_quality, ((age - ma) / sa)::FLOAT i_num_age_days,
                   ((c1 - m1) / s1)::FLOAT i_num_clicks_1d, ((c7 - m7) / s7)::FLOAT i_num_clicks_7d
            FROM raw CROSS JOIN st ORDER BY item_idx""",
            "item_catalogue",
        )

    def item_sampling(self, alpha: float = 0.75, smoothing: float = 1.0) -> None:
        last_train = self.train_days[-1]
        df = self.con.execute(
            f"""WITH c AS (SELECT item_id, count(*) clicks FROM {self._view("click_positives")} WHERE event_ds <= DATE '{last_train}' GROUP BY 1),
                r AS (SELECT item_id, count(*) cr FROM {self._view("resampled_positives")} GROUP BY 1),
                t AS (SELECT item_idx, item_id, coalesce(clicks, 0) clicks, coalesce(cr, 0) clicks_resampled,
                             CASE WHEN active THEN pow(coalesce(clicks, 0) + {smoothing}, {alpha}) ELSE 0 END m
                      FROM {self._view("item_catalogue")} LEFT JOIN c USING (item_id) LEFT JOIN r USING (item_id))
            SELECT item_idx, item_id, clicks, clicks_resampled, m / sum(m) OVER () neg_prob,
                   clicks_resampled / sum(clicks_resampled) OVER () inbatch_prob FROM t ORDER BY item_idx"""
        ).df()
        keep, alias = vose_alias(df["neg_prob"].to_numpy())
        df["alias_prob"] = keep
        df["alias_idx"] = df["item_idx"].to_numpy(dtype=np.int64)[alias]
        self.con.register("sampling_df", df)
        self._copy("SELECT * FROM sampling_df", "item_sampling")
        self.con.unregister("sampling_df")

    def datasets(self, shard_rows: int = 262_144) -> None:
        last_train = self.train_days[-1]
        pos = self._view("click_positives")
        train_pos = f"(SELECT * FROM {pos} WHERE event_ds <= DATE '{last_train}' AND event_ds >= DATE '{self.train_days[0]}')"
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE ids AS SELECT value AS item_id, id AS item_idx FROM {self._view('vocabulary')} WHERE vocab = 'item_id'"
        )
        t0 = self.train_days[0]
        self._copy(
            f"""WITH dc AS (SELECT item_id, event_ds, count(*) n FROM {pos} WHERE event_ds < DATE '{last_train}' AND event_ds >= DATE '{t0}' - 7 GROUP BY ALL),
                days AS (SELECT DISTINCT item_id, event_ds FROM {train_pos}),
                fr AS (SELECT d.item_id, d.event_ds, sum(CASE WHEN c.event_ds = d.event_ds - 1 THEN n ELSE 0 END) c1, coalesce(sum(n), 0) c7
                       FROM days d LEFT JOIN dc c ON c.item_id = d.item_id AND c.event_ds < d.event_ds AND c.event_ds >= d.event_ds - 7 GROUP BY ALL),
                hist AS (SELECT request_id, item_id, list(item_idx) OVER (PARTITION BY user_id ORDER BY ts, request_id, item_id
                           ROWS BETWEEN {HIST} PRECEDING AND 1 PRECEDING) AS h FROM {train_pos} JOIN ids USING (item_id)),
                hn AS (SELECT request_id, list_sort(list(item_idx)) hard_neg_idx FROM {self._view("hard_negatives")} JOIN ids USING (item_id) GROUP BY 1),
                uf AS (SELECT * FROM {self._view("user_features")}),
                cat AS (SELECT * FROM {self._view("item_catalogue")})
            SELECT uf.user_idx, cat.item_idx, r.weight::FLOAT weight, r.event_ds, coalesce(r.liked::FLOAT, 0) label_liked,
                   coalesce(hn.hard_neg_idx, []::BIGINT[]) hard_neg_idx, coalesce(list_reverse(hist.h), []::BIGINT[]) u_hist,
                   uf.u_cat_region, uf.u_cat_age_band, uf.u_num_activity, cat.i_cat_category, cat.i_cat_subcategory, cat.i_num_quality,
                   ln(1 + fr.c1)::FLOAT i_num_clicks_1d, ln(1 + fr.c7)::FLOAT i_num_clicks_7d
            FROM {self._view("resampled_positives")} r JOIN cat USING (item_id) JOIN uf USING (user_id)
            LEFT JOIN fr ON fr.item_id = r.item_id AND fr.event_ds = r.event_ds
            LEFT JOIN hist ON hist.request_id = r.request_id AND hist.item_id = r.item_id
            LEFT JOIN hn ON hn.request_id = r.request_id
            ORDER BY hash({self.seed}, r.request_id, r.item_id, r.replica)""",
            "train_examples",
        )
        dates = ", ".join(f"DATE '{d}'" for d in self.train_days)
        self._copy(
            f"""WITH dc AS (SELECT item_id, event_ds, count(*) n FROM {pos} WHERE event_ds < DATE '{last_train}' AND event_ds >= DATE '{t0}' - 7 GROUP BY ALL),
                days AS (SELECT cat.item_id, cat.item_idx, d.event_ds FROM {self._view("item_catalogue")} cat
                         CROSS JOIN (SELECT unnest([{dates}]) AS event_ds) d),
                fr AS (SELECT d.item_idx, d.event_ds, coalesce(sum(CASE WHEN c.event_ds = d.event_ds - 1 THEN n ELSE 0 END), 0) c1,
                              coalesce(sum(n), 0) c7
                       FROM days d LEFT JOIN dc c ON c.item_id = d.item_id AND c.event_ds < d.event_ds AND c.event_ds >= d.event_ds - 7 GROUP BY ALL)
            SELECT item_idx, event_ds, ln(1 + c1)::FLOAT i_num_clicks_1d, ln(1 + c7)::FLOAT i_num_clicks_7d FROM fr ORDER BY event_ds, item_idx""",
            "item_day_features",
        )
        self._copy(
            f"""WITH t AS (SELECT user_id, list_sort(list(DISTINCT item_idx)) tg FROM {pos} JOIN ids USING (item_id)
                         WHERE event_ds = DATE '{self.eval_days[0]}' GROUP BY 1),
                s AS (SELECT user_id, list_sort(list(DISTINCT item_idx)) ex FROM {train_pos} JOIN ids USING (item_id) GROUP BY 1)
            SELECT uf.user_idx, t.user_id, list_sort(list_filter(tg, lambda x: NOT list_contains(coalesce(ex, []), x))) target_idx,
                   coalesce(ex, []::BIGINT[]) exclude_idx, uf.u_hist, uf.u_cat_region, uf.u_cat_age_band, uf.u_num_activity
            FROM t LEFT JOIN s USING (user_id) JOIN {self._view("user_features")} uf USING (user_id)
            WHERE len(list_filter(tg, lambda x: NOT list_contains(coalesce(ex, []), x))) > 0 ORDER BY user_idx""",
            "eval_examples",
        )

    def run_stage(self, stage: str) -> float:
        start = time.perf_counter()
        getattr(self, stage)()
        return time.perf_counter() - start
