#!/usr/bin/env bash
# Start / stop / inspect the real Airflow components for the project-local Airflow home:
# scheduler, dag-processor and api-server (all three are needed for scheduled runs and
# backfills: tasks report to the execution API on the api-server).
#
#   scripts/airflow_services.sh start    # background, logs in $AIRFLOW_HOME/logs/services/
#   scripts/airflow_services.sh status
#   scripts/airflow_services.sh stop     # TERM each process group it started, then KILL
#
# Honours AIRFLOW_HOME / AIRFLOW_CONFIG / TWOTOWER_AIRFLOW_PORT (see scripts/airflow_env.sh),
# so the e2e test runs the same script against a temporary home.
#
# Every component listens on 127.0.0.1 only: the api-server through [api] host in airflow.cfg;
# the scheduler runs with --skip-serve-logs, because Airflow 3.3's log server (serve-logs,
# port [logging] worker_log_server_port) always binds every interface and has no host
# setting. The api-server reads task logs from $AIRFLOW_HOME/logs on this machine instead.
# tests/test_hardening_airflow.py asserts this from the process table.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source scripts/airflow_env.sh
AIRFLOW_BIN="${AIRFLOW_BIN:-$TWOTOWER_HOME/.venv/bin/airflow}"
RUN_DIR="$AIRFLOW_HOME/run"
LOG_DIR="$AIRFLOW_HOME/logs/services"
COMPONENTS=(api-server scheduler dag-processor)

args_of() {
  case "$1" in
    scheduler) echo "--skip-serve-logs" ;;
    *) echo "" ;;
  esac
}
mkdir -p "$RUN_DIR" "$LOG_DIR"

alive() { [ -s "$RUN_DIR/$1.pid" ] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

start() {
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then echo "$c already running (pid $(cat "$RUN_DIR/$c.pid"))"; continue; fi
    # setsid: each component leads its own process group, so stop() also ends its children
    # (gunicorn/uvicorn workers, LocalExecutor workers, task processes).
    # shellcheck disable=SC2046
    setsid "$AIRFLOW_BIN" "$c" $(args_of "$c") > "$LOG_DIR/$c.log" 2>&1 < /dev/null &
    echo $! > "$RUN_DIR/$c.pid"
    echo "started $c (pid $!, log $LOG_DIR/$c.log)"
  done
  local url="http://127.0.0.1:$TWOTOWER_AIRFLOW_PORT/api/v2/monitor/health"
  for _ in $(seq 1 120); do
    if curl -fsS "$url" > /dev/null 2>&1; then
      echo "Airflow UI/API: http://127.0.0.1:$TWOTOWER_AIRFLOW_PORT  (users/passwords: $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
      return 0
    fi
    sleep 1
  done
  echo "api-server did not answer on $url within 120 s; see $LOG_DIR/api-server.log" >&2
  return 1
}

stop() {
  for c in "${COMPONENTS[@]}"; do
    [ -s "$RUN_DIR/$c.pid" ] || continue
    pid="$(cat "$RUN_DIR/$c.pid")"
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "stopped $c (pid $pid)"
    fi
    rm -f "$RUN_DIR/$c.pid"
  done
}

status() {
  for c in "${COMPONENTS[@]}"; do
    if alive "$c"; then echo "$c: running (pid $(cat "$RUN_DIR/$c.pid"))"; else echo "$c: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
