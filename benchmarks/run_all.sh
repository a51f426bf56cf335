#!/usr/bin/env bash
# Runs every benchmark once, one at a time, each under a time limit, and keeps each one's JSON line
# in benchmarks/results/<name>.json (stdout and stderr go to $BENCH_LOGS, default a temp folder).
#   bash benchmarks/run_all.sh [name ...]     # names: trajectories_1e5 trajectories_1e6 trajectories_1e7
#                                             #        training_input simulation daily_run action_batch gate
set -euo pipefail
cd "$(dirname "$0")/.."
export SPARK_LOCAL_IP=127.0.0.1
RESULTS=benchmarks/results
LOGS="${BENCH_LOGS:-$(mktemp -d -t rl_bakery_bench.XXXXXX)}"
mkdir -p "$RESULTS" "$LOGS"

declare -A LIMIT=(
  [trajectories_1e5]=900 [trajectories_1e6]=1800 [trajectories_1e7]=3600
  [training_input]=3600 [simulation]=1800 [daily_run]=1800 [action_batch]=1200 [gate]=1800
)
declare -A ARGS=(
  [trajectories_1e5]="benchmarks/trajectories.py --rows 100000"
  [trajectories_1e6]="benchmarks/trajectories.py --rows 1000000"
  [trajectories_1e7]="benchmarks/trajectories.py --rows 10000000 --naive lean"
  [training_input]="benchmarks/training_input.py"
  [simulation]="benchmarks/simulation.py"
  [daily_run]="benchmarks/daily_run.py"
  [action_batch]="benchmarks/action_batch.py --users 1000000"
  [gate]="benchmarks/gate.py --repetitions 2000"
)
ORDER=(trajectories_1e5 trajectories_1e6 trajectories_1e7 training_input simulation daily_run action_batch gate)
[[ $# -gt 0 ]] && ORDER=("$@")

for name in "${ORDER[@]}"; do
  echo "== $name: uv run python ${ARGS[$name]} (limit ${LIMIT[$name]}s; logs in $LOGS)"
  started=$SECONDS
  # shellcheck disable=SC2086  # the arguments are split on purpose
  if timeout "${LIMIT[$name]}" uv run --frozen python ${ARGS[$name]} >"$LOGS/$name.out" 2>"$LOGS/$name.err"; then
    tail -n 1 "$LOGS/$name.out" >"$RESULTS/$name.json"
    echo "   done in $((SECONDS - started))s -> $RESULTS/$name.json"
  else
    echo "   FAILED after $((SECONDS - started))s; last lines of $LOGS/$name.err:" >&2
    tail -n 20 "$LOGS/$name.err" >&2
  fi
done
uv run --frozen python benchmarks/summarize.py "$RESULTS"
