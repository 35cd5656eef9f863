"""Settings Airflow imports by path from ``airflow.cfg`` (kept tiny: no project imports).

``[database] sql_alchemy_connect_args = twotower.airflow_settings.METADATA_DB_CONNECT_ARGS``:
SQLite is single-writer and Python's sqlite3 gives up after 5 s waiting for the write lock, so
a CLI write (e.g. ``airflow backfill create``) racing the scheduler failed with "database is
locked". A 60 s busy timeout makes it wait instead. Other databases get no extra arguments.
"""

from __future__ import annotations

import os


def _metadata_db_connect_args() -> dict[str, object]:
    conn = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if conn is None:
        try:
            from airflow.configuration import conf

            conn = conf.get("database", "sql_alchemy_conn")
        except Exception:  # pragma: no cover - Airflow not configured: assume the default SQLite
            conn = "sqlite"
    return {"timeout": 60} if conn.startswith("sqlite") else {}


METADATA_DB_CONNECT_ARGS = _metadata_db_connect_args()
