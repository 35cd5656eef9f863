#!/usr/bin/env bash
# `make run`: one simulated day through the real daily DAG (`airflow dags test`), then where
# everything is. The Makefile has already created .venv and migrated the Airflow metadata DB.
#
#   1. if the data root holds no raw impressions: simulate [simulator] days of the [simulator]
#      preset (default: 7 days of `small`, starting 2026-11-01);
#   2. run two_tower_daily for the LAST simulated day D (its training window needs the days
#      before it) with `airflow dags test two_tower_daily D`: every task of the DAG, in this
#      process, against the project-local Airflow home (no scheduler needed);
#   3. print where the outputs, the published index, the data-quality report and the run report
#      are, and which steps ran.
# Nothing is faked: a failing step fails this command (the run report still says what ran).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC1091
source scripts/airflow_env.sh
BIN="$TWOTOWER_HOME/.venv/bin"
START=$(date +%s)

paths_json=$("$BIN/twotower" config --paths)
data_root=$(printf '%s' "$paths_json" | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["data_root"])')
last_day() {
  "$BIN/python" - <<'EOF'
from storage.layout import Layout
from core.config_load import load_config

days = Layout(load_config().paths).partitions("impressions")
print(days[-1] if days else "")
EOF
}

ds=$(last_day)
if [ -z "$ds" ]; then
  echo "==> no raw logs under $data_root: simulating (twotower simulate, [simulator] section of $TWOTOWER_CONFIG)"
  "$BIN/twotower" simulate
  ds=$(last_day)
else
  echo "==> raw logs found under $data_root (last day $ds): not simulating"
fi

echo "==> running two_tower_daily for ds=$ds through Airflow: airflow dags test two_tower_daily $ds"
echo "    (task logs: $AIRFLOW_HOME/logs/dag_id=two_tower_daily/)"
log="$AIRFLOW_HOME/logs/make-run-$ds.log"
mkdir -p "$(dirname "$log")"
set +e
"$BIN/airflow" dags test two_tower_daily "$ds" > "$log" 2>&1
rc=$?
set -e
grep -a -o -E "DagRun Finished: .*state=[a-z_]+|Task failed with exception|AirflowFailException: .{0,300}" "$log" \
  | sed -E 's/DagRun Finished: .*(state=[a-z_]+)/    Airflow run finished: \1/' | tail -5 || true
echo "    full log: $log"

echo
echo "==> what ran for ds=$ds (from the run's stage statistics)"
"$BIN/python" - "$ds" "$rc" "$START" <<'EOF'
import json
import sys
import time

from storage.layout import Layout
from indexing.artifacts import read_latest
from core.config_load import load_config
from reports.facts import etl_steps, load_dq_summaries, load_stage_stats, step_seconds
from reports.run_report import report_path
from reports.status import run_status

ds, rc, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
cfg = load_config()
layout = Layout(cfg.paths)
stats = load_stage_stats(layout, ds)
order = ["validate_raw", *etl_steps(stats), "validate_outputs", "train", "evaluate", "build_index", "publish"]
stats = {k: stats[k] for k in order + sorted(set(stats) - set(order)) if k in stats}
for step, s in stats.items():
    secs = step_seconds(s)
    print(f"  {step:<24} done" + (f" ({secs:.1f} s)" if secs is not None else ""))
status = run_status(stats, load_dq_summaries(layout, ds, stats))
print(f"  => {status['state']}: {status['detail']}")
latest = read_latest(layout)
print()
print(f"raw logs and ETL outputs : {layout.data_root}  (raw/, etl/, quarantine/, models/ds={ds})")
print(f"published index          : {layout.version_dir(latest) if latest else '(none)'}  (LATEST -> {latest})")
print(f"data-quality report      : {layout.dq_dir(ds)}/validate_raw.json, validate_outputs.json")
for step, dq in load_dq_summaries(layout, ds, stats).items():
    if dq.get("data_docs"):
        print(f"  Data Docs ({step:<16}): {dq['data_docs']}")
print(f"run report               : {report_path(layout, ds)}")
print(f"all runs                 : {layout.reports_root / 'index.html'}")
print(f"Airflow home             : {__import__('os').environ['AIRFLOW_HOME']}")
print(f"wall time                : {time.time() - start:.0f} s")
sys.exit(0 if rc == 0 and status["state"] == "published" else 1)
EOF
