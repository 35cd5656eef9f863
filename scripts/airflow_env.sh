#!/usr/bin/env bash
# Source me: exports the project-local Airflow environment (used by the Makefile, CI and docs).
# Generates the per-installation secrets on first use; they never leave var/airflow/.
TWOTOWER_HOME="${TWOTOWER_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export TWOTOWER_HOME
export AIRFLOW_HOME="${AIRFLOW_HOME:-$TWOTOWER_HOME/var/airflow}"
export AIRFLOW_CONFIG="${AIRFLOW_CONFIG:-$TWOTOWER_HOME/airflow.cfg}"
export TWOTOWER_AIRFLOW_PORT="${TWOTOWER_AIRFLOW_PORT:-8080}"
mkdir -p "$AIRFLOW_HOME"
if [ ! -s "$AIRFLOW_HOME/secrets.env" ]; then
  umask 077
  {
    echo "AIRFLOW__API_AUTH__JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "AIRFLOW__API__SECRET_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } > "$AIRFLOW_HOME/secrets.env"
fi
set -a
# shellcheck disable=SC1091
. "$AIRFLOW_HOME/secrets.env"
set +a
# The DAG and task processes import the project from the repo.
export PYTHONPATH="$TWOTOWER_HOME${PYTHONPATH:+:$PYTHONPATH}"
# Task processes load the project config from here (load_config() reads $TWOTOWER_CONFIG), so
# every component agrees whatever its working directory.
export TWOTOWER_CONFIG="${TWOTOWER_CONFIG:-$TWOTOWER_HOME/twotower.toml}"
# The Spark connection the DAG's @task.pyspark tasks use (master + spark.* settings). Default:
# local mode. For a cluster, export your own before starting Airflow, e.g.
#   AIRFLOW_CONN_TWOTOWER_SPARK='{"conn_type":"spark","host":"spark://spark-master","port":7077}'
# (docs/operations.md, "Point Spark at a cluster").
_twotower_spark_default='{"conn_type": "spark", "host": "local[*]", "extra": {"spark.driver.memory": "4g"}}'
export AIRFLOW_CONN_TWOTOWER_SPARK="${AIRFLOW_CONN_TWOTOWER_SPARK:-$_twotower_spark_default}"
unset _twotower_spark_default
