# Sourced by the other scripts: finds or installs uv, syncs the locked environment, sets the local homes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
find_uv() { type -P uv || python3 -c 'import uv; print(uv.find_uv_bin())' 2>/dev/null; }
if ! UV_BIN="$(find_uv)"; then
  echo "installing uv (the package manager) with pip ..." >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
  UV_BIN="$(find_uv)"
fi
export PATH="$(dirname "$UV_BIN"):$PATH"
uv sync --frozen --quiet
case "${RL_BAKERY_SPARK_MASTER:-local}" in
  local*) export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" ;;  # the embedded Spark listens on loopback only
esac
export RL_BAKERY_HOME="${RL_BAKERY_HOME:-$PWD/.rl_bakery}"
export DAGSTER_HOME="${DAGSTER_HOME:-$RL_BAKERY_HOME/dagster}"
# dagster 1.13 warns that these commands are superseded by `dg` (not deprecated; see the README's "Why not dg")
for command in dev_command job_execute_command asset_materialize_command definitions_validate_command; do
  case "${PYTHONWARNINGS:-}" in
    *"$command"*) ;;
    *) PYTHONWARNINGS="${PYTHONWARNINGS:+$PYTHONWARNINGS,}ignore:Function \`$command\` is superseded" ;;
  esac
done
export PYTHONWARNINGS
uv run --frozen python -m rl_bakery_dagster.local_instance >/dev/null
