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
