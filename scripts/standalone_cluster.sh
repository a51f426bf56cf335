#!/usr/bin/env bash
# Proves the cluster path by configuration only: starts a Spark standalone master and one worker on
# 127.0.0.1 from the pip `pyspark` package, runs one daily partition of the CartPole example against
# spark://127.0.0.1:<port> with `dagster job execute`, checks on the master that the application ran
# there, and stops both (also on failure or Ctrl-C).
#
#   bash scripts/standalone_cluster.sh [--day 2024-01-01] [--port 7077] [--envs 16] [--steps-per-env 125]
#
# Local state goes under $RL_BAKERY_HOME (default ./.rl_bakery/standalone): warehouse/, storage/,
# dagster/ and spark-standalone/ (master and worker logs, the worker's work dir). Every process binds
# to 127.0.0.1 only. The day's logs are simulated with a random policy unless they already exist.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RL_BAKERY_HOME="${RL_BAKERY_HOME:-$ROOT/.rl_bakery/standalone}"
DAY=2024-01-01
PORT="${SPARK_MASTER_PORT:-7077}"
ENVS=16
STEPS=125
while [[ $# -gt 0 ]]; do
  case "$1" in
    --day) DAY="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --envs) ENVS="$2"; shift 2 ;;
    --steps-per-env) STEPS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
MASTER_URL="spark://127.0.0.1:$PORT"
export RL_BAKERY_SPARK_MASTER="$MASTER_URL"
source "$ROOT/scripts/env.sh"   # uv, the locked environment, DAGSTER_HOME; cd to the repository root

export SPARK_LOCAL_IP=127.0.0.1        # master, worker, executors and the driver bind to loopback only
export SPARK_MASTER_HOST=127.0.0.1
export SPARK_MASTER_OPTS="${SPARK_MASTER_OPTS:-} -Dspark.master.rest.enabled=false"  # no REST submission port
export CARTPOLE_WAREHOUSE_URI="${CARTPOLE_WAREHOUSE_URI:-$RL_BAKERY_HOME/warehouse/cartpole}"
PYTHON="$(uv run --frozen python -c 'import sys; print(sys.executable)')"
export PYSPARK_PYTHON="$PYTHON"        # executors' Python workers (mapInPandas) use the same environment
export SPARK_HOME="$("$PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
CLUSTER="$RL_BAKERY_HOME/spark-standalone"
mkdir -p "$CLUSTER/work"
MASTER_PID=""
WORKER_PID=""

free_port() {  # a free loopback port (the web UIs get one each, so nothing clashes with other clusters)
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

stop_cluster() {
  local status=$?
  trap - EXIT INT TERM
  local children=""
  [[ -n "$WORKER_PID" ]] && children="$(pgrep -P "$WORKER_PID" || true)"  # executor JVMs the worker started
  for pid in $WORKER_PID $MASTER_PID; do
    kill "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 40); do
    local alive=""
    for pid in $WORKER_PID $MASTER_PID $children; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    [[ -z "$alive" ]] && break
    sleep 0.25
  done
  for pid in $WORKER_PID $MASTER_PID $children; do
    kill -9 "$pid" 2>/dev/null || true
  done
  [[ -n "$MASTER_PID" ]] && echo "standalone cluster stopped (master pid $MASTER_PID, worker pid ${WORKER_PID:-none})"
  exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() {  # wait_for <seconds> <description> <log> <command...>
  local seconds="$1" what="$2" log="$3"
  shift 3
  for _ in $(seq 1 $((seconds * 4))); do
    "$@" && return 0
    sleep 0.25
  done
  echo "timed out after ${seconds}s waiting for $what; last lines of $log:" >&2
  tail -n 40 "$log" >&2 || true
  return 1
}

if listening "$PORT"; then
  echo "127.0.0.1:$PORT is already in use; stop that process or pass --port" >&2
  exit 1
fi
MASTER_UI="$(free_port)"
WORKER_UI="$(free_port)"

echo "starting the Spark standalone master on $MASTER_URL (pyspark at $SPARK_HOME)"
"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
  --host 127.0.0.1 --port "$PORT" --webui-port "$MASTER_UI" >"$CLUSTER/master.log" 2>&1 &
MASTER_PID=$!
wait_for 90 "the master" "$CLUSTER/master.log" listening "$PORT"

echo "starting a worker (2 cores, 3g) registered with $MASTER_URL"
"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
  --host 127.0.0.1 --cores 2 --memory 3g --webui-port "$WORKER_UI" --work-dir "$CLUSTER/work" \
  "$MASTER_URL" >"$CLUSTER/worker.log" 2>&1 &
WORKER_PID=$!
wait_for 90 "the worker to register" "$CLUSTER/worker.log" grep -q "Successfully registered with master" "$CLUSTER/worker.log"

if [[ ! -e "$CARTPOLE_WAREHOUSE_URI/dt=$DAY/_SUCCESS" ]]; then
  echo "simulating $DAY: $ENVS CartPole players x $STEPS steps (random policy) into $CARTPOLE_WAREHOUSE_URI"
  "$PYTHON" - "$CARTPOLE_WAREHOUSE_URI" "$DAY" "$ENVS" "$STEPS" <<'EOF'
import sys

import rl_bakery_dagster  # noqa: F401
from rl_bakery_dagster.examples.cartpole.application import ENV_NAME, OBSERVATION_COLUMNS
from rl_bakery_dagster.examples.gym_simulator import BatchedGym, random_policy, write_day

warehouse, day, envs, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
product = BatchedGym(ENV_NAME, envs, seed=0)
write_day(product.log(random_policy(product.action_space, 0), steps, OBSERVATION_COLUMNS), warehouse, day)
EOF
fi

# The only change from the embedded default is configuration: the master URL, and the driver's
# address (loopback) so that executors can reach it. Executors get 1g each, up to the worker's cores.
CLUSTER_CONF='{"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1",
  "spark.executor.memory": "1g", "spark.cores.max": "2", "spark.ui.enabled": "false", "spark.log.level": "WARN"}'
export RL_BAKERY_SPARK_CONF="${RL_BAKERY_SPARK_CONF:-$CLUSTER_CONF}"
echo "running cartpole daily_training for $DAY on $MASTER_URL"
started=$SECONDS
uv run --frozen dagster job execute -m rl_bakery_dagster.examples.cartpole.definitions \
  -j daily_training --tags "{\"dagster/partition\": \"$DAY\"}"
echo "the daily run took $((SECONDS - started))s"

# The master's record of what ran on it: the run must have been a standalone application.
"$PYTHON" - "$MASTER_UI" <<'EOF'
import json
import sys
import urllib.request

state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=10))
apps = [a for a in state.get("completedapps", []) + state.get("activeapps", []) if a["name"] == "rl_bakery_dagster"]
if not apps:
    sys.exit(f"the master ran no rl_bakery_dagster application: {json.dumps(state)[:2000]}")
workers = [w for w in state["workers"] if w["state"] == "ALIVE"]
print(f"master {state['url']}: application {apps[-1]['id']} ({apps[-1]['state']}) on {len(workers)} worker(s), "
      f"{workers[0]['cores']} cores at {workers[0]['host']}")
EOF
for asset in timesteps trajectories agent_checkpoint; do
  test -d "$RL_BAKERY_HOME/storage/cartpole/$asset/dt=$DAY" || { echo "missing $asset[$DAY]" >&2; exit 1; }
done
echo "cartpole[$DAY] materialised on the standalone cluster under $RL_BAKERY_HOME/storage/cartpole"
